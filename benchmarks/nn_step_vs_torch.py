"""Network path: (1) MUSO's run time against retraining on the default experiment (digits, MLP,
10% random forgetting); (2) training steps per second of the jitted Flax step against the same
MLP, batch and optimizer in PyTorch on the CPU (skipped, and said so, without torch:
`pip install torch==2.13.0` installs a CPU build from local disk here).

    .venv/bin/python benchmarks/nn_step_vs_torch.py [--steps 300] [--out results/bench]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from muso_jax.io import reports
from muso_jax.data import load_images
from muso_jax.nn import experiment, muso
from muso_jax.nn.models import make_model
from muso_jax.nn.state import split
from muso_jax.nn.train import TrainConfig, make_optimizer, make_step


def flax_steps_per_second(x, y, batch, steps):
    net = split(make_model("mlp", x.shape[1:], 10, seed=0))
    tx = make_optimizer(TrainConfig(schedule="constant", weight_decay=0.0), 1)
    step = make_step(net.graphdef, tx)
    params, rest, opt_state = net.params, net.rest, tx.init(net.params)
    xb, yb, wb = jnp.asarray(x[:batch]), jnp.asarray(y[:batch]), jnp.ones(batch)
    start = time.perf_counter()
    params, rest, opt_state, loss0 = step(params, rest, opt_state, xb, yb, wb, None)
    jax.block_until_ready(params)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        params, rest, opt_state, loss = step(params, rest, opt_state, xb, yb, wb, None)
    jax.block_until_ready(params)
    return steps / (time.perf_counter() - start), compile_s, float(loss0), float(loss)


def torch_steps_per_second(x, y, batch, steps):
    import torch

    torch.manual_seed(0)
    layers, sizes = [], [int(np.prod(x.shape[1:])), 512, 512]
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(torch.nn.Flatten(), *layers, torch.nn.Linear(512, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    xb, yb = torch.as_tensor(x[:batch]), torch.as_tensor(y[:batch]).long()
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        return float(loss.detach())

    loss0 = step()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    return steps / (time.perf_counter() - start), loss0, loss, torch.__version__


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--out", type=Path, default=Path("results/bench"))
    args = ap.parse_args(argv)
    rows = []
    d = load_images("digits")
    x, y = d.x_train.astype(np.float32), d.y_train.astype(np.int32)

    # (1) MUSO against retraining, without a cache so retraining is timed, not loaded.
    result = experiment.run_protocol(experiment.Setup(), muso.MusoConfig())
    muso_s, retrain_s = result["rows"]["MUSO"]["RTE_s"], result["rows"]["Retrain"]["RTE_s"]
    rows.append(dict(case="MUSO RTE / retraining time (digits, MLP, 10% random, incl. compile)",
                     muso_seconds=muso_s, retrain_seconds=retrain_s, ratio=muso_s / retrain_s))

    # (2) one jitted Flax step against PyTorch, same model, batch, optimizer.
    sps, compile_s, l0, l1 = flax_steps_per_second(x, y, args.batch, args.steps)
    assert l1 < l0, "the Flax step does not train"
    rows.append(dict(case=f"Flax (jit) MLP 64-512-512-10 train step, batch {args.batch}", steps_per_second=sps,
                     compile_seconds=compile_s))
    try:
        tsps, t0, t1, version = torch_steps_per_second(x, y, args.batch, args.steps)
        assert t1 < t0, "the PyTorch step does not train"
        rows.append(dict(case=f"PyTorch {version} same MLP, batch {args.batch}", steps_per_second=tsps,
                         ratio_flax_over_torch=sps / tsps))
    except ImportError:
        rows.append(dict(case="PyTorch not installed: `pip install torch==2.13.0` to compare", steps_per_second=None))
    device = f"{jax.devices()[0].platform} ({platform.machine()}), float32"
    print(f"device: {device}")
    for row in rows:
        print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    print(f"wrote {reports.write_json(args.out / 'nn_step_vs_torch.json', dict(device=device, rows=rows))}")


if __name__ == "__main__":
    main()

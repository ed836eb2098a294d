"""Training throughput: the scan engine against the previous engine and PyTorch on the CPU.

For the MLP (784-512-512-10), the 28x28 CNN and the narrow ResNet-18, on Fashion-MNIST-shaped
synthetic batches (28x28x1, 10 classes with a class signal), same batch size and optimizer (SGD,
momentum 0.9, weight decay 5e-4, constant lr 0.01, float32), images per second of one epoch:

* engine: ``muso_jax.nn.train.run_epochs``, one compiled ``lax.scan`` per epoch (compile timed
  apart, on the first epoch);
* previous: the engine this project had before (a Python loop of one jitted step per batch,
  batch indices drawn on the host) with flax's ``nnx.Conv`` and ``nnx.max_pool`` layers;
* PyTorch 2.13 CPU (`pip install torch==2.13.0`; skipped, and said so, without it): the same
  architecture (:func:`torch_model`) in a loop over the same batches.

The step's arithmetic is the same in the engine and the previous loop (tests/test_nn_train.py),
and our layers equal flax's (tests/test_nn_layers.py); here each run is checked to learn (its
training accuracy after its epochs beats chance, 10%, by far). The three run in turn, ``--reps``
epochs each, and the medians are compared.

    .venv/bin/python -m benchmarks.nn_engine [--n 4096] [--batch 64 256] [--reps 3] [--out results/bench]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from muso_jax.io import reports
from muso_jax.nn import engine, models
from muso_jax.nn.state import predict, split
from muso_jax.nn.train import TrainConfig, init_state, knobs_from_config, run_epochs

MODELS = ("mlp", "cnn", "resnet18-narrow")
SHAPE = (28, 28, 1)


def data(n: int, seed: int = 0):
    """Images whose class shifts a fixed random pattern: learnable in one epoch, not trivially."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n).astype(np.int32)
    patterns = rng.normal(size=(10,) + SHAPE).astype(np.float32)
    x = patterns[y] + rng.normal(size=(n,) + SHAPE).astype(np.float32)
    return x, y


@contextlib.contextmanager
def flax_layers():
    """Build (and trace) the models with flax's own convolution and max-pool, as before."""
    saved = models.Conv, models.max_pool2
    models.Conv, models.max_pool2 = nnx.Conv, lambda x: nnx.max_pool(x, (2, 2), strides=(2, 2))
    try:
        yield
    finally:
        models.Conv, models.max_pool2 = saved


def _model(name):
    return split(models.make_model(name, SHAPE, 10, seed=0, **({"hidden": (512, 512)} if name == "mlp" else {})))


CONFIG = dict(lr=0.01, momentum=0.9, weight_decay=5e-4, schedule="constant")


def engine_epoch(name, x, y, batch):
    """A callable running one epoch of the scan engine, and its compile (first epoch) seconds."""
    net = _model(name)
    cfg = TrainConfig(epochs=1, batch_size=batch, **CONFIG)
    rows = engine.rows_for(jnp.asarray(y), num_classes=10)
    knobs = knobs_from_config(net, cfg, 1)
    x = jnp.asarray(x)
    holder = {"state": init_state(net, "sgd"), "epoch": 0}

    def epoch():
        trained, holder["state"], _ = run_epochs(jax.random.key(0), net, x, rows, knobs, optimizer="sgd",
                                                 batch_size=batch, epochs=holder["epoch"] + 1, state=holder["state"],
                                                 first_epoch=holder["epoch"])
        holder["epoch"] += 1
        jax.block_until_ready(holder["state"].params)
        return trained

    start = time.perf_counter()
    trained = epoch()
    return epoch, time.perf_counter() - start, trained


def previous_epoch(name, x, y, batch):
    """The previous engine: one jitted step per batch, host-drawn indices, flax's conv layers."""
    with flax_layers():
        net = _model(name)
        cfg = TrainConfig(epochs=1, batch_size=batch, **CONFIG)
        rows = engine.rows_for(jnp.asarray(y), num_classes=10)
        knobs = knobs_from_config(net, cfg, 1)
        step = jax.jit(lambda s, xb, v, r: engine.step(net.graphdef, "sgd", s, xb, v, r, knobs))
        x_dev = jnp.asarray(x)
        valid = jnp.ones(batch, bool)
        holder = {"state": init_state(net, "sgd"), "epoch": 0}

        def epoch():
            order = np.asarray(jax.random.permutation(jax.random.key(holder["epoch"]), len(y)))
            state = holder["state"]
            for start in range(0, len(y) - batch + 1, batch):
                idx = order[start:start + batch]
                state, _ = step(state, x_dev[idx], valid, jax.tree.map(lambda a: a[idx], rows))
            holder["state"], holder["epoch"] = state, holder["epoch"] + 1
            jax.block_until_ready(state.params)
            return net._replace(params=state.params, rest=state.rest)

        start = time.perf_counter()
        trained = epoch()
        return epoch, time.perf_counter() - start, trained


def torch_model(name, torch):
    """The three architectures in PyTorch, layer for layer (NCHW; padding 1 = 'SAME' for 3x3)."""
    nn = torch.nn
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                             nn.Linear(512, 10))
    if name == "cnn":
        return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(7 * 7 * 64, 128), nn.ReLU(), nn.Linear(128, 10))
    bn = lambda c: nn.BatchNorm2d(c, momentum=1.0 - models.BN_MOMENTUM)  # PyTorch weighs the new batch

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), bn(cout)
            self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), bn(cout)
            self.shortcut = None
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, 0, bias=False), bn(cout))

        def forward(self, x):
            out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            return torch.relu(out + (x if self.shortcut is None else self.shortcut(x)))

    class ResNet(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.stem, self.bn = nn.Conv2d(1, width, 3, 1, 1, bias=False), bn(width)
            blocks, cin = [], width
            for i, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
                for j in range(2):
                    blocks.append(Block(cin, cout, 2 if (i > 0 and j == 0) else 1))
                    cin = cout
            self.blocks, self.head = nn.Sequential(*blocks), nn.Linear(cin, 10)

        def forward(self, x):
            return self.head(self.blocks(torch.relu(self.bn(self.stem(x)))).mean(dim=(2, 3)))

    assert name == "resnet18-narrow", name
    return ResNet(models.NARROW_WIDTH)


def torch_epoch(name, x, y, batch):
    """The same model, optimizer and batches in PyTorch (None without torch)."""
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    model = torch_model(name, torch)
    opt = torch.optim.SGD(model.parameters(), lr=CONFIG["lr"], momentum=CONFIG["momentum"],
                          weight_decay=CONFIG["weight_decay"])
    xt = torch.as_tensor(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))  # NCHW
    yt = torch.as_tensor(y).long()
    loss_fn = torch.nn.CrossEntropyLoss()
    holder = {"epoch": 0}

    def epoch():
        g = torch.Generator().manual_seed(holder["epoch"])
        order = torch.randperm(len(y), generator=g)
        model.train()
        for start in range(0, len(y) - batch + 1, batch):
            idx = order[start:start + batch]
            opt.zero_grad()
            loss_fn(model(xt[idx]), yt[idx]).backward()
            opt.step()
        holder["epoch"] += 1
        return model

    start = time.perf_counter()
    trained = epoch()
    return epoch, time.perf_counter() - start, trained


def _accuracy(kind, trained, x, y):
    if kind == "torch":
        import torch

        trained.eval()
        with torch.no_grad():
            logits = trained(torch.as_tensor(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))).numpy()
    else:
        logits = np.asarray(predict(trained, jnp.asarray(x)))
    return 100.0 * float(np.mean(np.argmax(logits, 1) == y))


def measure(name, batch, n, reps):
    x, y = data(n)
    runs = {"engine": engine_epoch(name, x, y, batch), "previous": previous_epoch(name, x, y, batch)}
    made = torch_epoch(name, x, y, batch)
    if made is not None:
        runs["torch"] = made
    row = dict(model=name, batch=batch, n=n)
    times, last = {kind: [] for kind in runs}, {}
    for _ in range(reps):  # in turn, so a busy moment hits all of them
        for kind, (epoch, _, _) in runs.items():
            start = time.perf_counter()
            last[kind] = epoch()
            times[kind].append(time.perf_counter() - start)
    for kind, (_, first, _) in runs.items():
        acc = _accuracy(kind, last[kind], x, y)
        assert acc > 25.0, f"{kind} {name}: {acc:.1f}% training accuracy after {reps + 1} epochs (chance 10%)"
        row[f"{kind}_train_accuracy"] = acc
        row[f"{kind}_first_epoch_s"] = first
    for kind, t in times.items():
        row[f"{kind}_img_per_s"] = n / float(np.median(t))
        row[f"{kind}_compile_s"] = max(row[f"{kind}_first_epoch_s"] - float(np.median(t)), 0.0)
    row["engine_vs_previous"] = row["engine_img_per_s"] / row["previous_img_per_s"]
    if "torch" in runs:
        row["engine_vs_torch"] = row["engine_img_per_s"] / row["torch_img_per_s"]
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=4096, help="images per epoch")
    p.add_argument("--batch", type=int, nargs="+", default=[64, 256])
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("results/bench"))
    args = p.parse_args(argv)
    rows = []
    for name in args.models:
        for batch in args.batch:
            row = measure(name, batch, args.n, args.reps)
            rows.append(row)
            torch_part = (f", torch {row['torch_img_per_s']:7.0f} (engine x{row['engine_vs_torch']:.2f})"
                          if "torch_img_per_s" in row else ", torch: not installed")
            print(f"{name:16} batch {batch:4}: engine {row['engine_img_per_s']:7.0f} img/s, previous "
                  f"{row['previous_img_per_s']:7.0f} (x{row['engine_vs_previous']:.2f}){torch_part}; "
                  f"compile {row['engine_compile_s']:.1f} s", flush=True)
    reports.write_json(args.out / "nn_engine.json", dict(rows=rows, devices=str(jax.devices()), config=CONFIG))
    return rows


if __name__ == "__main__":
    main()

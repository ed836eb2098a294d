"""Shadow models for the privacy audit: B networks trained (and unlearned) under vmap against a
Python loop of the same single-model calls (muso_jax.nn.shadows). The answers are compared
model by model before timing, on one epoch of each (the timed runs' own difference is reported:
float32 round-off of the batched products, a few ulps after one epoch, can grow chaotically over
more epochs on some members); the first call of each side (compilation) is reported apart.

Cases: the audit's MLP on digits (B models, E epochs of training, then MUSO and RL on each), and
the same MLP on a stratified Fashion-MNIST subset when the Debian package's idx files are there.

    .venv/bin/python -m benchmarks.shadows [--models 16] [--epochs 5] [--fmnist-size 2000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import _common as c
from muso_jax.data import forget_mask, load_images, training_subset
from muso_jax.nn import baselines, muso, shadows
from muso_jax.nn.models import make_model
from muso_jax.nn.state import split
from muso_jax.nn.train import TrainConfig, train

FMNIST = Path("/usr/share/datasets/fashion-mnist")


def _flat(net):
    return np.concatenate([np.ravel(a) for a in jax.tree.leaves(net.params)])


def _timed(fn):
    """(first call's seconds, second call's seconds, output): the first compiles."""
    start = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(fn())
    return first, time.perf_counter() - start, out


def _rel_diff(out_v, out_l, b):
    scale = max(float(np.abs(_flat(n)).max()) for n in out_l)
    return max(float(np.abs(_flat(shadows.member(out_v, i)) - _flat(out_l[i])).max()) for i in range(b)) / scale


def _versus(case, many, loop, b, epochs):
    """Time many(epochs) against loop(epochs) after checking many(1) == loop(1); (row, many's output)."""
    check = _rel_diff(many(1), loop(1), b)
    # float32 networks; the batched products may reassociate: after one epoch a few float32 ulps
    assert check < 1e-4, (case, check)
    first_v, t_v, out_v = _timed(lambda: many(epochs))
    first_l, t_l, out_l = _timed(lambda: loop(epochs))
    diff = _rel_diff(out_v, out_l, b)
    row = dict(case=case, models=b, vmap_seconds=t_v, loop_seconds=t_l, vmap_compile_seconds=first_v - t_v,
               loop_compile_seconds=first_l - t_l, ratio_loop_over_vmap=t_l / t_v, one_epoch_rel_diff=check,
               max_rel_diff=diff)
    print(f"  {case}: vmap {t_v:.2f} s, loop {t_l:.2f} s -> x{t_l / t_v:.1f} (compile apart: vmap "
          f"{first_v - t_v:.1f} s, loop {first_l - t_l:.1f} s), max |diff| / max |param| {check:.1e} after one "
          f"epoch, {diff:.1e} after {epochs}", flush=True)
    return row, out_v


def population(data, b: int, epochs: int, label: str):
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    nets = [split(make_model("mlp", data.x_train.shape[1:], data.num_classes, seed=s)) for s in range(b)]
    keys = jax.random.split(jax.random.key(0), b)
    net0s = shadows.stack(nets)
    cfg = TrainConfig(epochs=epochs)
    row, net_ps = _versus(f"{label}: train {epochs} epochs",  # the trained population, unlearned below
                          lambda e: shadows.train_many(keys, net0s, x, y, cfg._replace(epochs=e)),
                          lambda e: [train(keys[i], nets[i], x, y, cfg._replace(epochs=e)) for i in range(b)], b,
                          epochs)
    rows = [row]
    forget = forget_mask("random", data.y_train, num_classes=data.num_classes, percent=10, seed=0)
    for name, fn, mcfg in (("MUSO", muso.unlearn, muso.MusoConfig()),
                           ("RL", baselines.random_labels, baselines.DEFAULTS["RL"]._replace(epochs=2))):
        rows.append(_versus(f"{label}: {name} ({mcfg.epochs} epochs)",
                            lambda e, fn=fn, mcfg=mcfg: shadows.unlearn_many(fn, keys, net0s, net_ps, x, y, forget,
                                                                             mcfg._replace(epochs=e))[0],
                            lambda e, fn=fn, mcfg=mcfg: [fn(keys[i], nets[i], shadows.member(net_ps, i), x, y, forget,
                                                            mcfg._replace(epochs=e))[0] for i in range(b)],
                            b, mcfg.epochs)[0])
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--fmnist-size", type=int, default=2000, help="0 skips the Fashion-MNIST case")
    ap.add_argument("--out", type=Path, default=Path("results/bench"))
    args = ap.parse_args(argv)
    digits = load_images("digits")
    rows = population(digits, args.models, args.epochs, f"MLP on digits ({len(digits.y_train)} images)")
    if args.fmnist_size == 0:
        pass
    elif (FMNIST / "train-labels-idx1-ubyte.gz").exists() or (FMNIST / "train-labels-idx1-ubyte").exists():
        fm = training_subset(load_images("fashion-mnist"), args.fmnist_size)
        rows += population(fm, args.models, args.epochs, f"MLP on a Fashion-MNIST subset ({args.fmnist_size} images)")
    else:
        print(f"  Fashion-MNIST not in {FMNIST} (apt-get install dataset-fashion-mnist): that case skipped")
    return c.save(args.out, "shadows", dict(rows=rows)), rows


if __name__ == "__main__":
    print(main()[0])

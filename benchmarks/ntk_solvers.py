"""The linearized retrain's outputs f_r(X_f) on Fashion-MNIST by each solver of
muso_jax.nn.ntk_solvers, against the exact logit-kernel solve: seconds, cost record, relative
error of f_r(X_f) and agreement of the argmax relabel. The CNN (make_model("cnn", (28, 28, 1),
10), float32) at its initialization; N_r training images retained, the next N_f forgotten. The
unit of cost: one training epoch of the same CNN over the same N_r images (the engine).

    .venv/bin/python -m benchmarks.ntk_solvers [--n-r 2000] [--n-f 200] [--out results]

Compilation: each solver first runs on a tiny problem (16 retained, 4 forgotten images, the
same code at other shapes), whose wall clock is almost all compilation and is reported as
``compile_seconds_estimate``; the timed run at full size still compiles its own shapes once
(``seconds`` includes that; the scans keep it to seconds). CG runs once to the largest
iteration count and keeps the iterates at the smaller ones: the seconds at a checkpoint are
the run's seconds prorated by passes over D_r (``seconds_prorated``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from muso_jax.data import load_images
from muso_jax.nn import ntk_solvers as S
from muso_jax.nn.models import make_model
from muso_jax.nn.state import split
from muso_jax.nn.train import TrainConfig, train


def _row(name, out, cost, ref, **extra):
    row = dict(solver=name, **extra, cost=cost._asdict())
    if ref is not None:
        row["rel_error"] = float(np.linalg.norm(out - ref) / np.linalg.norm(ref))
        row["argmax_agreement_pct"] = float(100 * np.mean(np.argmax(out, 1) == np.argmax(ref, 1)))
    return row


def _print(row):
    c = row["cost"]
    budget = row.get("budget", "")
    err = f"rel err {row['rel_error']:.2e}, argmax agree {row['argmax_agreement_pct']:.1f}%" if "rel_error" in row else ""
    secs = row.get("seconds_prorated", c["seconds"])
    print(f"  {row['solver']:<12} {str(budget):>5}: {secs:8.2f} s  entries {c['kernel_entries']:>11,}  passes "
          f"{c['passes']:>5}  it {c['iterations']:>3}  res {c['residual']:.1e}  {err}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-r", type=int, default=2000)
    ap.add_argument("--n-f", type=int, default=200)
    ap.add_argument("--ms", type=int, nargs="+", default=[64, 128, 256, 512, 1024])
    ap.add_argument("--its", type=int, nargs="+", default=[2, 5, 10, 20, 40])
    ap.add_argument("--chunk", type=int, default=64)
    ap.add_argument("--skip-exact", action="store_true", help="no reference (probe runs)")
    ap.add_argument("--out", type=Path, default=Path("results"))
    args = ap.parse_args(argv)
    from benchmarks import _common as c

    d = load_images("fashion-mnist")
    n_r, n_f = args.n_r, args.n_f
    x_r, y_r = jnp.asarray(d.x_train[:n_r]), jnp.asarray(d.y_train[:n_r])
    x_f = jnp.asarray(d.x_train[n_r:n_r + n_f])
    net = split(make_model("cnn", (28, 28, 1), 10, seed=0))
    n_params = sum(int(np.size(a)) for a in jax.tree.leaves(net.params))
    print(f"device: {c.device()}; CNN {n_params:,} parameters, N_r = {n_r}, N_f = {n_f}, float32 network, "
          f"float64 solves", flush=True)
    common = dict(kernel="logit", chunk=args.chunk)
    tiny = (x_r[:16], y_r[:16], x_f[:4])

    compile_est = {}
    for name, fn in [("exact", lambda a, b, f: S.exact(net, a, b, f, **common)),
                     ("last-layers", lambda a, b, f: S.last_layers(net, a, b, f, **common)),
                     ("nystrom", lambda a, b, f: S.nystrom(jax.random.key(0), net, a, b, f, m=8, **common)),
                     ("cg", lambda a, b, f: S.cg(net, a, b, f, iterations=2, **common))]:
        compile_est[name] = c.once(lambda: fn(*tiny)[0])[0]
    print("  compile estimates (tiny problem): " + ", ".join(f"{k} {v:.1f} s" for k, v in compile_est.items()))

    rows, ref = [], None
    if not args.skip_exact:
        ref, cost = S.exact(net, x_r, y_r, x_f, **common)
        rows.append(_row("exact", ref, cost, ref, budget=n_r))
        _print(rows[-1])
    out, cost = S.last_layers(net, x_r, y_r, x_f, **common)
    rows.append(_row("last-layers", out, cost, ref, budget="head"))
    _print(rows[-1])
    for m in args.ms:
        if m > n_r:
            continue
        out, cost = S.nystrom(jax.random.key(0), net, x_r, y_r, x_f, m=m, **common)
        rows.append(_row("nystrom", out, cost, ref, budget=m))
        _print(rows[-1])
    path = S.cg_path(net, x_r, y_r, x_f, iterations=tuple(args.its), **common)
    total_passes = path[-1][1].passes
    for t, (out, cost) in zip(args.its, path):
        rows.append(_row("cg", out, cost, ref, budget=t,
                         seconds_prorated=cost.seconds * cost.passes / total_passes))
        _print(rows[-1])

    # The unit of cost: one epoch of the engine over the same N_r images (second call: compiled).
    cfg = TrainConfig(epochs=1)
    first = c.once(lambda: train(jax.random.key(0), net, x_r, y_r, cfg).params)[0]
    epoch = c.once(lambda: train(jax.random.key(1), net, x_r, y_r, cfg).params)[0]
    print(f"  one training epoch over N_r = {n_r} images: {epoch:.2f} s (first call {first:.2f} s incl. compile)")
    for row in rows:
        row["epochs_of_cost"] = row.get("seconds_prorated", row["cost"]["seconds"]) / epoch
    payload = dict(n_r=n_r, n_f=n_f, params=n_params, kernel="logit", ridge=1e-6, ridge_scale="mean_diagonal",
                   chunk=args.chunk, compile_seconds_estimate=compile_est, epoch_seconds=epoch,
                   epoch_first_call_seconds=first, rows=rows,
                   note="2-core CPU shared with another job: timings are noisy (one run each)")
    return c.save(args.out, "ntk_solvers", payload), rows


if __name__ == "__main__":
    t0 = time.perf_counter()
    paths, _ = main()
    print(paths[0], f"({time.perf_counter() - t0:.0f} s)")

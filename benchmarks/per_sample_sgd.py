"""Per-sample SGD: jit + lax.scan against the same loop in NumPy, same steps, over widths M.

Both run cyclic per-sample SGD with step lr (t+1)^-decay and compute the residual once per
epoch (what `muso_jax.sgd` checks). The JAX answer is compared with NumPy's before anything
is timed; compile time is reported apart. Also the authors' loop, which recomputes the full
residual after every step (timed on a few hundred steps and scaled).

    .venv/bin/python benchmarks/per_sample_sgd.py [--n 2000] [--widths 64 256 1024 5000] [--epochs 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import muso_jax as mj  # noqa: E402
from benchmarks import _common as c  # noqa: E402

LR, DECAY = 1.0, 0.2


def numpy_sgd(phi, y, theta0, epochs, residual_every_step=False, steps=None):
    theta = theta0.copy()
    n = len(y) if steps is None else steps
    for _ in range(epochs):
        for t in range(n):
            r = phi[t] @ theta - y[t]
            theta -= (LR * (t + 1.0) ** -DECAY * r) * phi[t]
            if residual_every_step:
                np.linalg.norm(phi @ theta - y)
        np.linalg.norm(phi @ theta - y)
    return theta


def case(phi, y, theta0, epochs: int, authors_steps: int) -> dict:
    n, m = phi.shape
    kw = dict(lr=LR, decay=DECAY, order="cyclic", tol=0.0, max_epochs=epochs)
    api = lambda: mj.sgd(None, phi, y, theta0, **kw)[0]
    core = jax.jit(lambda p, yy, t: mj.sgd(None, p, yy, t, **kw)[0])  # inputs traced: no host-side checks
    phi_np, y_np, theta0_np = (np.asarray(a) for a in (phi, y, theta0))
    first, t_core, theta = c.first_and_best(lambda: core(phi, y, theta0))
    check = numpy_sgd(phi_np, y_np, theta0_np, epochs)
    err = float(np.linalg.norm(np.asarray(theta) - check) / np.linalg.norm(check))
    assert err < 1e-10, f"JAX and NumPy SGD disagree at M = {m}: {err:.2e}"
    _, t_api, _ = c.first_and_best(api)
    t_np = min(c.once(lambda: numpy_sgd(phi_np, y_np, theta0_np, epochs))[0] for _ in range(2))
    t_auth, _ = c.once(lambda: numpy_sgd(phi_np, y_np, theta0_np, 1, residual_every_step=True, steps=authors_steps))
    steps = n * epochs
    t_auth *= steps / authors_steps
    return dict(n=n, m=m, steps=steps, jax_seconds=t_core, jax_api_seconds=t_api, compile_seconds=first - t_core,
                numpy_seconds=t_np, authors_seconds=t_auth, ratio_numpy_over_jax=t_np / t_core,
                ratio_numpy_over_jax_api=t_np / t_api, ratio_authors_over_jax=t_auth / t_core,
                ns_per_step_jax=1e9 * t_core / steps, ns_per_step_numpy=1e9 * t_np / steps, rel_diff_to_numpy=err)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--widths", type=int, nargs="+", default=[64, 256, 1024, 5000])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--authors-steps", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path("results/bench"))
    args = ap.parse_args(argv)
    phi, y, theta0 = c.rff_problem(args.n, max(args.widths))
    rows = []
    for m in args.widths:
        row = case(phi[:, :m], y, theta0[:m], args.epochs, args.authors_steps)
        rows.append(row)
        print(f"  per-sample SGD N={row['n']} M={m:5d}: jit+scan {row['jax_seconds']:.4f} s "
              f"({row['ns_per_step_jax']:.0f} ns/step; public call {row['jax_api_seconds']:.4f} s), "
              f"NumPy {row['numpy_seconds']:.4f} s -> x{row['ratio_numpy_over_jax']:.1f} "
              f"(public call x{row['ratio_numpy_over_jax_api']:.1f}); authors' loop x{row['ratio_authors_over_jax']:.0f}; "
              f"compile {row['compile_seconds']:.2f} s, |diff| {row['rel_diff_to_numpy']:.1e}", flush=True)
    fig, (ax,) = c.figure()
    ms = [r["m"] for r in rows]
    ax.loglog(ms, [r["ns_per_step_jax"] for r in rows], "o-", label="JAX jit + scan")
    ax.loglog(ms, [r["ns_per_step_numpy"] for r in rows], "s-", label="NumPy loop")
    ax.loglog(ms, [1e9 * r["authors_seconds"] / r["steps"] for r in rows], "^-", label="authors' loop (residual every step)")
    for r in rows:
        ax.annotate(f"x{r['ratio_numpy_over_jax']:.1f}", (r["m"], r["ns_per_step_jax"]), textcoords="offset points",
                    xytext=(4, -12), fontsize=8)
    ax.set_xlabel("features M")
    ax.set_ylabel("ns per SGD step")
    ax.set_title(f"per-sample SGD, N = {args.n}, {args.epochs} epochs, float64")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return c.save(args.out, "per_sample_sgd", dict(epochs=args.epochs, rows=rows), fig), rows


if __name__ == "__main__":
    print(main()[0])

"""float32 against float64: time and the parameter gap each reaches, for the closed-form
retrain oracle, the cached deletion, and per-sample SGD retraining. The reference for both
is the float64 closed form; the gap is ||theta - theta_r|| / ||theta_r - theta0||.

    .venv/bin/python benchmarks/precision.py [--n 2000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import muso_jax as mj  # noqa: E402
from benchmarks import _common as c  # noqa: E402
from muso_jax import deletion  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--out", type=Path, default=Path("results/bench"))
    args = ap.parse_args(argv)
    n, m = args.n, 4 * args.n
    phi64, y64, theta0_64 = c.rff_problem(n, m)
    keep = np.arange(args.k, n)
    theta_r = mj.min_norm_solution(phi64[keep], y64[keep], theta0_64)
    scale = float(jnp.linalg.norm(theta_r - theta0_64))
    gap = lambda t: float(jnp.linalg.norm(t.astype(jnp.float64) - theta_r)) / scale
    rows = []
    for dtype in (jnp.float64, jnp.float32):
        phi, y, theta0 = (a.astype(dtype) for a in (phi64, y64, theta0_64))
        phi_r, y_r = phi[keep], y[keep]
        oracle = jax.jit(lambda p, yy, t: mj.min_norm_solution(p, yy, t))
        first, t_oracle, th = c.first_and_best(lambda: oracle(phi_r, y_r, theta0))
        fact = deletion.fit(phi, y, theta0)
        _, t_del, (new, _) = c.first_and_best(lambda: deletion.delete(fact, np.arange(args.k)))
        # Tolerance a float32 residual can reach (sqrt(N) eps32 ||y|| ~ 1e-5 relative).
        tol = 1e-10 if dtype == jnp.float64 else 1e-4
        sgd = jax.jit(lambda p, yy, t: mj.sgd(None, p, yy, t, lr=1.0, order="cyclic", tol=tol, max_epochs=500))
        sgd(phi_r, y_r, theta0)
        t_sgd, (th_sgd, info) = c.once(lambda: sgd(phi_r, y_r, theta0))
        row = dict(dtype=jnp.dtype(dtype).name, oracle_seconds=t_oracle, oracle_gap=gap(th),
                   deletion_seconds=t_del, deletion_gap=gap(new.theta), sgd_seconds=t_sgd, sgd_gap=gap(th_sgd),
                   sgd_epochs=float(info.epochs), sgd_converged=bool(info.converged), sgd_tol=tol)
        rows.append(row)
        print(f"  {row['dtype']}: oracle {t_oracle:.3f} s gap {row['oracle_gap']:.1e}; deletion of {args.k} rows "
              f"{t_del:.4f} s gap {row['deletion_gap']:.1e}; SGD to residual {tol:g}: {t_sgd:.2f} s, "
              f"{row['sgd_epochs']:.0f} epochs, gap {row['sgd_gap']:.1e}", flush=True)
    f64, f32 = rows
    for key in ("oracle", "deletion", "sgd"):
        f32[f"speedup_{key}_over_float64"] = f64[f"{key}_seconds"] / f32[f"{key}_seconds"]
    return c.save(args.out, "precision", dict(n=n, m=m, k=args.k, rows=rows)), rows


if __name__ == "__main__":
    print(main()[0])

"""Per-sample SGD: jit + lax.scan against the same loop in NumPy, same steps, over widths M; the
primal form against the dual form (``sgd(form="dual")``); each against its bandwidth floor.

All run cyclic per-sample SGD with step lr (t+1)^-decay and compute the residual once per epoch
(what `muso_jax.sgd` checks). The JAX answers (both forms) are compared with NumPy's before
anything is timed; compile time is reported apart. Also the authors' loop, which recomputes the
full residual after every step (timed on a few hundred steps and scaled).

Floors (benchmarks/floors.py, bytes / measured bandwidth):

* primal: a step must stream its feature row from memory, 8 M bytes (Phi is far larger than the
  cache at the default sizes; theta, 8 M bytes, stays in cache and is not counted), and each
  epoch's residual check reads Phi once, 8 N M bytes;
* dual: a step reads one row of the Gram, 8 N bytes, each check reads G once, 8 N^2 bytes, and
  theta = theta0 + Phi^T alpha at the end reads Phi once; the Gram itself (2 N^2 M flops) is
  timed apart against the matmul peak, and the dual rows are timed with the Gram given.

    .venv/bin/python benchmarks/per_sample_sgd.py [--n 2000] [--widths 64 256 1024 5000 8000] [--epochs 5]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

import muso_jax as mj  # noqa: E402
from benchmarks import _common as c  # noqa: E402
from benchmarks import floors  # noqa: E402

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


_gram = jax.jit(lambda p: p @ p.T)


def case(phi, y, theta0, epochs: int, authors_steps: int, hw: dict) -> dict:
    n, m = phi.shape
    kw = dict(lr=LR, decay=DECAY, order="cyclic", tol=0.0, max_epochs=epochs)
    api = lambda: mj.sgd(None, phi, y, theta0, form="primal", **kw)[0]
    # inputs traced: no host-side checks
    primal = jax.jit(lambda p, yy, t: mj.sgd(None, p, yy, t, form="primal", **kw)[0])
    dual = jax.jit(lambda p, yy, t, g: mj.sgd(None, p, yy, t, form="dual", gram=g, **kw)[0])
    phi_np, y_np, theta0_np = (np.asarray(a) for a in (phi, y, theta0))
    check = numpy_sgd(phi_np, y_np, theta0_np, epochs)
    first, t_core, theta = c.first_and_best(lambda: primal(phi, y, theta0))
    err = float(np.linalg.norm(np.asarray(theta) - check) / np.linalg.norm(check))
    assert err < 1e-10, f"JAX and NumPy SGD disagree at M = {m}: {err:.2e}"
    first_g, t_gram, G = c.first_and_best(lambda: _gram(phi))
    first_d, t_dual, theta_d = c.first_and_best(lambda: dual(phi, y, theta0, G))
    err_d = float(np.linalg.norm(np.asarray(theta_d) - check) / np.linalg.norm(check))
    assert err_d < 1e-10, f"dual-form and NumPy SGD disagree at M = {m}: {err_d:.2e}"
    _, t_api, _ = c.first_and_best(api)
    t_np = min(c.once(lambda: numpy_sgd(phi_np, y_np, theta0_np, epochs))[0] for _ in range(2))
    t_auth, _ = c.once(lambda: numpy_sgd(phi_np, y_np, theta0_np, 1, residual_every_step=True, steps=authors_steps))
    steps = n * epochs
    t_auth *= steps / authors_steps
    floor_primal = floors.roofline(bytes=8.0 * m * steps + 8.0 * n * m * epochs, floors=hw)
    floor_dual = floors.roofline(bytes=8.0 * n * steps + 8.0 * n * n * epochs + 8.0 * n * m, floors=hw)
    floor_gram = floors.roofline(flops=2.0 * n * n * m, bytes=8.0 * n * m, floors=hw)
    return dict(n=n, m=m, steps=steps, jax_seconds=t_core, jax_api_seconds=t_api, compile_seconds=first - t_core,
                numpy_seconds=t_np, authors_seconds=t_auth, ratio_numpy_over_jax=t_np / t_core,
                ratio_numpy_over_jax_api=t_np / t_api, ratio_authors_over_jax=t_auth / t_core,
                ns_per_step_jax=1e9 * t_core / steps, ns_per_step_numpy=1e9 * t_np / steps, rel_diff_to_numpy=err,
                dual_seconds=t_dual, dual_compile_seconds=first_d - t_dual, gram_seconds=t_gram,
                ns_per_step_dual=1e9 * t_dual / steps, rel_diff_dual_to_numpy=err_d,
                ratio_primal_over_dual=t_core / t_dual, ratio_primal_over_dual_with_gram=t_core / (t_dual + t_gram),
                dual_aim=m / (2 * n), dual_aim_met=bool(t_core / t_dual >= m / (2 * n)) if m >= 4 * n else None,
                floor_primal_seconds=floor_primal, floor_dual_seconds=floor_dual, floor_gram_seconds=floor_gram,
                jax_over_floor=t_core / floor_primal, numpy_over_floor=t_np / floor_primal,
                dual_over_floor=t_dual / floor_dual, gram_over_floor=t_gram / floor_gram)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--widths", type=int, nargs="+", default=[64, 256, 1024, 5000, 8000])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--authors-steps", type=int, default=200)
    ap.add_argument("--quick-floors", action="store_true", help="small floor arrays (tests)")
    ap.add_argument("--out", type=Path, default=Path("results/bench"))
    args = ap.parse_args(argv)
    hw = floors.measure(args.quick_floors)
    phi, y, theta0 = c.rff_problem(args.n, max(args.widths))
    rows = []
    for m in args.widths:
        row = case(phi[:, :m], y, theta0[:m], args.epochs, args.authors_steps, hw)
        rows.append(row)
        aim = "" if row["dual_aim_met"] is None else f" (aim M/2N = {row['dual_aim']:.1f}: {'met' if row['dual_aim_met'] else 'NOT met'})"
        print(f"  per-sample SGD N={row['n']} M={m:5d}: jit+scan {row['jax_seconds']:.4f} s "
              f"({row['ns_per_step_jax']:.0f} ns/step, {row['jax_over_floor']:.1f}x its floor; public call "
              f"{row['jax_api_seconds']:.4f} s), NumPy {row['numpy_seconds']:.4f} s -> x{row['ratio_numpy_over_jax']:.1f} "
              f"(public call x{row['ratio_numpy_over_jax_api']:.1f}); authors' loop x{row['ratio_authors_over_jax']:.0f}; "
              f"compile {row['compile_seconds']:.2f} s, |diff| {row['rel_diff_to_numpy']:.1e}", flush=True)
        print(f"      dual form {row['dual_seconds']:.4f} s ({row['ns_per_step_dual']:.0f} ns/step, "
              f"{row['dual_over_floor']:.1f}x its floor): primal/dual x{row['ratio_primal_over_dual']:.1f}{aim}; "
              f"the Gram {row['gram_seconds']:.3f} s ({row['gram_over_floor']:.1f}x its floor; with it "
              f"x{row['ratio_primal_over_dual_with_gram']:.2f}), |diff| {row['rel_diff_dual_to_numpy']:.1e}", flush=True)
    fig, axes = c.figure(2, width=5.6)
    ax = axes[0]
    ms = [r["m"] for r in rows]
    per = lambda key: [1e9 * r[key] / r["steps"] for r in rows]
    ax.loglog(ms, [r["ns_per_step_jax"] for r in rows], "o-", label="JAX primal (jit + scan)")
    ax.loglog(ms, per("floor_primal_seconds"), "o:", color="C0", label="primal bandwidth floor")
    ax.loglog(ms, [r["ns_per_step_dual"] for r in rows], "d-", color="C3", label="JAX dual form (Gram given)")
    ax.loglog(ms, per("floor_dual_seconds"), "d:", color="C3", label="dual bandwidth floor")
    ax.loglog(ms, [r["ns_per_step_numpy"] for r in rows], "s-", color="C1", label="NumPy loop")
    ax.loglog(ms, [1e9 * r["authors_seconds"] / r["steps"] for r in rows], "^-", color="C2",
              label="authors' loop (residual every step)")
    ax.set_xlabel("features M")
    ax.set_ylabel("ns per SGD step (residual check included)")
    ax.set_title(f"per-sample SGD, N = {args.n}, {args.epochs} epochs, float64")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    ax = axes[1]
    ax.semilogx(ms, [r["jax_over_floor"] for r in rows], "o-", label="JAX primal / its floor")
    ax.semilogx(ms, [r["numpy_over_floor"] for r in rows], "s-", color="C1", label="NumPy / the primal floor")
    ax.semilogx(ms, [r["dual_over_floor"] for r in rows], "d-", color="C3", label="JAX dual / its floor")
    ax.semilogx(ms, [r["ratio_primal_over_dual"] for r in rows], "x--", color="k", label="primal time / dual time")
    ax.semilogx(ms, [r["dual_aim"] for r in rows], ":", color="grey", label="aim for primal / dual: M / 2N")
    ax.axhline(1.5, color="C0", lw=0.8, ls="--", label="aim for primal / floor: 1.5")
    ax.set_yscale("log")
    ax.set_xlabel("features M")
    ax.set_ylabel("ratio")
    ax.set_title(f"against the floors ({hw['bandwidth']['best_gbs']:.0f} GB/s) and each other")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return c.save(args.out, "per_sample_sgd", dict(epochs=args.epochs, floors=hw, rows=rows), fig), rows


if __name__ == "__main__":
    print(main()[0])

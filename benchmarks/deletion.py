"""Exact unlearning of k rows: the cached factorization (muso_jax.deletion) against the closed
form from scratch and against SGD retraining to a comparable tolerance, at N rows and M = 4N
features, plus the floor: one triangular solve pair with the retained Gram's Cholesky factor
given, and the product Phi_r^T alpha that every path needs to produce theta.

Every path's parameters are compared with the from-scratch closed form before timing.
Costs: cached O(N^2 k + N M), scratch O(N^2 M + N^3), SGD O(epochs N M).

Hardware floors (benchmarks/floors.py, roofline = max(flops / peak, bytes / bandwidth)):

* cached deletion: H' = H - W H_F reads and writes H (16 N^2 bytes, 2 N^2 k flops); theta =
  theta0 + Phi_r^T alpha' and its certificate residual Phi theta read Phi twice (16 N M bytes,
  4 N M flops): memory bound at every size here;
* closed form from scratch: the Gram (2 N^2 M flops), Cholesky (N^3 / 3) and Phi_r^T alpha;
* the fit: the Gram and the inverse of G (N^3 flops through its Cholesky factor).

    .venv/bin/python benchmarks/deletion.py [--sizes 1000 2000 4000 8000] [--ks 1 10 100]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from jax.scipy.linalg import cho_solve  # noqa: E402
from tqdm import tqdm  # noqa: E402

import muso_jax as mj  # noqa: E402
from benchmarks import _common as c  # noqa: E402
from benchmarks import floors  # noqa: E402
from muso_jax import deletion  # noqa: E402
from muso_jax.closed_form import _min_norm  # noqa: E402

SGD_TOL = 1e-10  # residual norm; with ||y|| ~ sqrt(N) this is a relative gap of ~1e-11-1e-12


@jax.jit
def _scratch(phi_r, y_r, theta0):
    """The closed form on the retained rows: Gram, Cholesky, solve, Phi_r^T alpha."""
    return _min_norm(phi_r, y_r, theta0, 0.0, None)


@jax.jit
def _floor(L, phi_r, r_r, theta0):
    """What remains when the retained Gram's Cholesky factor is given: a solve pair + Phi_r^T alpha."""
    alpha = cho_solve((L, True), r_r)
    return theta0 + alpha @ phi_r


@jax.jit
def _solve_pair(L, r_r):
    return cho_solve((L, True), r_r)


_sgd = jax.jit(lambda phi_r, y_r, theta0: mj.sgd(None, phi_r, y_r, theta0, lr=1.0, order="cyclic", tol=SGD_TOL,
                                                  max_epochs=20000))


@jax.jit
def _gram(phi):
    return phi @ phi.T


@jax.jit
def _reference(G_rr, phi_r, y_r, theta0):
    L = jnp.linalg.cholesky(G_rr)
    return L, theta0 + cho_solve((L, True), y_r - phi_r @ theta0) @ phi_r


def one_size(n: int, ks, sgd_max_n: int, every_k_max_n: int, progress, sigma: float = 1.0,
             quick_floors: bool = False) -> list[dict]:
    """All cases at one N. Above ``every_k_max_n`` the costs that do not depend on k (the
    scratch solve, SGD retraining) are timed at the first k only and reused (said per row)."""
    m = 4 * n
    phi, y, theta0 = c.rff_problem(n, m, seed=n, sigma=sigma)
    # The fit timed without its compilation: the jitted core, compiled ahead of time.
    ridge = jnp.asarray(0.0, phi.dtype)
    fit_core = deletion._fit.lower(phi, y, theta0, ridge).compile()
    t_fit, (H, alpha, theta, ok) = c.once(lambda: fit_core(phi, y, theta0, ridge))
    assert bool(ok), f"the Gram is numerically singular at N = {n}"
    fact = deletion.Factorization(phi, y, theta0, ridge, H, alpha, jnp.ones(n, bool), theta)
    G = _gram(phi)  # for the reference solutions: a retained Gram is a principal block of G
    rows, shared = [], {}
    rng = np.random.default_rng(n)
    for i, k in enumerate(ks):
        forget = np.sort(rng.choice(n, size=k, replace=False))
        keep = np.setdiff1d(np.arange(n), forget)
        phi_r, y_r = phi[keep], y[keep]
        L, theta_r = _reference(G[keep][:, keep], phi_r, y_r, theta0)
        scale = float(jnp.linalg.norm(theta_r - theta0))
        # Cached path: the public call, validation and certificate included.
        first, t_cached, (new, cert) = c.first_and_best(lambda: deletion.delete(fact, forget))
        gap_cached = float(jnp.linalg.norm(new.theta - theta_r)) / scale
        assert gap_cached < 1e-9, f"cached deletion is off by {gap_cached:.2e} at N = {n}, k = {k}"
        every_k = n <= every_k_max_n or i == 0
        if every_k:
            _, t_scratch, theta_s = c.first_and_best(lambda: _scratch(phi_r, y_r, theta0), repeats=1)
            assert float(jnp.linalg.norm(theta_s - theta_r)) / scale < 1e-9
            shared.update(scratch=(t_scratch, k))
        r_r = y_r - phi_r @ theta0
        _, t_floor, theta_floor = c.first_and_best(lambda: _floor(L, phi_r, r_r, theta0))
        _, t_pair, _ = c.first_and_best(lambda: _solve_pair(L, r_r))
        assert float(jnp.linalg.norm(theta_floor - theta_r)) / scale < 1e-9
        t_scratch, scratch_k = shared["scratch"]
        row = dict(n=n, m=m, k=k, fit_seconds=t_fit, cached_seconds=t_cached, cached_compile_seconds=first - t_cached,
                   scratch_seconds=t_scratch, scratch_measured_at_k=scratch_k, floor_seconds=t_floor,
                   solve_pair_seconds=t_pair, gap_cached=gap_cached, certificate_residual=float(cert.residual),
                   certificate_gap_bound=float(cert.gap_bound) / scale,
                   ratio_scratch_over_cached=t_scratch / t_cached, ratio_cached_over_floor=t_cached / t_floor,
                   ratio_cached_over_solve_pair=t_cached / t_pair)
        hw = floors.measure(quick_floors)
        nr = n - k
        row.update(cached_hw_floor_seconds=floors.roofline(flops=2.0 * n * n * k + 4.0 * n * m,
                                                           bytes=16.0 * n * n + 16.0 * n * m, floors=hw),
                   scratch_hw_floor_seconds=floors.roofline(flops=2.0 * nr * nr * m + nr**3 / 3 + 4.0 * nr * m,
                                                            bytes=8.0 * nr * m, floors=hw),
                   fit_hw_floor_seconds=floors.roofline(flops=2.0 * n * n * m + 1.0 * n**3 + 4.0 * n * m,
                                                        bytes=8.0 * n * m, floors=hw))
        row.update(cached_over_hw_floor=t_cached / row["cached_hw_floor_seconds"],
                   scratch_over_hw_floor=t_scratch / row["scratch_hw_floor_seconds"],
                   fit_over_hw_floor=t_fit / row["fit_hw_floor_seconds"])
        if n <= sgd_max_n:
            if every_k:
                compiled = _sgd.lower(phi_r, y_r, theta0).compile()
                t_sgd, (theta_sgd, info) = c.once(lambda: compiled(phi_r, y_r, theta0))
                assert bool(info.converged), f"SGD retraining did not reach residual {SGD_TOL} at N = {n}"
                shared.update(sgd=(t_sgd, float(info.epochs), float(jnp.linalg.norm(theta_sgd - theta_r)) / scale, k))
            t_sgd, epochs, gap_sgd, sgd_k = shared["sgd"]
            row.update(sgd_seconds=t_sgd, sgd_epochs=epochs, gap_sgd=gap_sgd, sgd_measured_at_k=sgd_k,
                       ratio_sgd_over_cached=t_sgd / t_cached)
        rows.append(row)
        progress.update(1)
        progress.write(
            f"  N={n:5d} M={m:5d} k={k:3d}: cached {t_cached:.4f} s (gap {gap_cached:.1e}), scratch {t_scratch:.3f} s "
            f"(x{row['ratio_scratch_over_cached']:.0f})"
            + (f", SGD {row['sgd_seconds']:.2f} s / {row['sgd_epochs']:.0f} epochs (x{row['ratio_sgd_over_cached']:.0f}, "
               f"gap {row['gap_sgd']:.1e})" if "sgd_seconds" in row else "")
            + f", solve-pair floor {t_floor:.4f} s (cached/it {row['ratio_cached_over_floor']:.1f}), fit {t_fit:.2f} s; "
              f"hardware floors: cached {row['cached_over_hw_floor']:.1f}x, scratch {row['scratch_over_hw_floor']:.1f}x, "
              f"fit {row['fit_over_hw_floor']:.1f}x")
    return rows


def plot(rows, ks):
    fig, axes = c.figure(3, width=5.2)
    ax = axes[0]
    k_mid = ks[len(ks) // 2]
    sel = [r for r in rows if r["k"] == k_mid]
    ns = [r["n"] for r in sel]
    slopes = {}
    for key, label, style in (("cached_seconds", f"cached factorization (k = {k_mid})", "o-"),
                              ("scratch_seconds", "closed form from scratch", "s-"),
                              ("sgd_seconds", "SGD retraining", "^-"),
                              ("floor_seconds", "floor: solve pair + Phi_r^T alpha", "d--"),
                              ("fit_seconds", "one-time fit (Gram + inverse)", "x:")):
        pts = [(r["n"], r[key]) for r in sel if key in r]
        if len(pts) < 2:
            continue
        slopes[key] = c.loglog_slope(*zip(*pts))
        ax.loglog(*zip(*pts), style, label=f"{label}: slope {slopes[key]:.2f}")
    ax.set_xlabel("rows N (M = 4N)")
    ax.set_ylabel("seconds")
    ax.set_title("time to the exact retrained parameters")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    ax = axes[1]
    for k in ks:
        sel_k = [r for r in rows if r["k"] == k]
        ax.loglog([r["n"] for r in sel_k], [r["ratio_scratch_over_cached"] for r in sel_k], "o-", label=f"scratch / cached, k = {k}")
        pts = [(r["n"], r["ratio_sgd_over_cached"]) for r in sel_k if "ratio_sgd_over_cached" in r]
        if pts:
            ax.loglog(*zip(*pts), "^--", label=f"SGD / cached, k = {k}")
    ax.axhline(100, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("rows N (M = 4N)")
    ax.set_ylabel("speed-up of the cached path")
    ax.set_title("ratios (dotted: the issue's 100x aim)")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    ax = axes[2]
    for k, style in zip(ks, ("o-", "s-", "^-", "d-")):
        sel_k = [r for r in rows if r["k"] == k]
        ax.semilogx([r["n"] for r in sel_k], [r["cached_over_hw_floor"] for r in sel_k], style, label=f"cached, k = {k}")
    sel = [r for r in rows if r["k"] == ks[0]]
    ax.semilogx([r["n"] for r in sel], [r["scratch_over_hw_floor"] for r in sel], "x--", label="scratch")
    ax.semilogx([r["n"] for r in sel], [r["fit_over_hw_floor"] for r in sel], "+:", label="fit")
    ax.axhline(1.5, color="grey", lw=0.8, ls=":")
    ax.set_ylim(bottom=1.0)  # 1 is the floor itself
    ax.set_xlabel("rows N (M = 4N)")
    ax.set_ylabel("measured / roofline floor")
    ax.set_title("against the hardware floor (dotted: 1.5x aim)")
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig, slopes


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    ap.add_argument("--ks", type=int, nargs="+", default=[1, 10, 100])
    ap.add_argument("--sgd-max-n", type=int, default=4000,
                    help="largest N at which SGD retraining is timed (at 8000 it alone takes about a minute)")
    ap.add_argument("--every-k-max-n", type=int, default=4000,
                    help="above this N the k-independent costs (scratch solve, SGD) are timed at the first k only")
    ap.add_argument("--sigma", type=float, default=1.0,
                    help="RFF bandwidth: 1 gives Gram condition ~10 (SGD needs ~40 epochs), 2 about 800")
    ap.add_argument("--name", default="deletion", help="file name of the JSON and PNG")
    ap.add_argument("--quick-floors", action="store_true", help="small floor arrays (tests)")
    ap.add_argument("--out", type=Path, default=Path("results/bench"))
    args = ap.parse_args(argv)
    rows = []
    # A bar on a terminal only: in a log (CI, a redirected make bench) the rows printed are the progress.
    with tqdm(total=len(args.sizes) * len(args.ks), desc=args.name, unit="case",
              disable=not sys.stderr.isatty()) as progress:
        for n in args.sizes:
            rows += one_size(n, args.ks, args.sgd_max_n, args.every_k_max_n, progress, args.sigma, args.quick_floors)
    fig, slopes = plot(rows, args.ks)
    return c.save(args.out, args.name, dict(sgd_tol=SGD_TOL, sigma=args.sigma, slopes=slopes, rows=rows), fig), rows


if __name__ == "__main__":
    print(main()[0])

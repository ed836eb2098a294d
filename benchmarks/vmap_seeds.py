"""Batching: 16 seeds (or 16 forget sets) in one compiled call against a Python loop of the
same single call. Answers are compared element by element before timing.

Cases: per-sample SGD to residual 1e-10 on 16 random-feature problems (N = 40, M = 200, the
scale of a teaching example or a proofs_numeric draw) with ``batched.sgd_many`` (each run
frozen at its own stop) and with a plain ``jax.vmap`` of ``sgd`` (every run until the slowest
stops); per-sample SGD on 16 forget sets of one problem (N = 200, M = 800, shuffled order) with
``sgd_many``; the closed-form oracle on the 16 problems and on the 16 forget sets
(muso_jax.batched against min_norm_solution in a loop).

Each row also reports both sides as multiples of a hardware floor (benchmarks/floors.py):
per-sample dual-form SGD reads a Gram row per step (8 N bytes), G once per check (8 N^2) and
pays the Gram (2 N^2 M flops) per distinct Phi; the oracle does 2 N^2 M + N^3 / 3 + 4 N M
flops per solve. At these sizes the data sit in cache, so the DRAM floor is optimistic for
bytes: a row far above 1x is overhead, not bandwidth.

    .venv/bin/python benchmarks/vmap_seeds.py [--seeds 16]
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
from benchmarks import floors  # noqa: E402
from muso_jax import batched  # noqa: E402

SGD_KW = dict(lr=1.0, order="cyclic", tol=1e-10, max_epochs=500)
# sgd_many replays each separate run (same steps, same stop) in another summation order.
SGD_EXACT = 1e-12


HW: dict = {}  # the floors of this run (main fills it)


def _sgd_floor(steps, epochs, n, m, grams) -> float:
    """Seconds of the dual-form SGD runs' floor: per step a Gram row, per check G, and the Grams."""
    steps, epochs = float(np.sum(steps)), float(np.sum(epochs))
    return floors.roofline(flops=2.0 * n * n * m * grams,
                           bytes=8.0 * n * steps + 8.0 * n * n * epochs + 8.0 * n * m * grams, floors=HW)


def _oracle_floor(b, n, m, grams) -> float:
    """Seconds of B closed-form solves: ``grams`` Grams (B for B problems, one shared by B forget
    sets), then per run a Cholesky, the residual and Phi^T alpha."""
    return floors.roofline(flops=2.0 * n * n * m * grams + b * (n**3 / 3 + 4.0 * n * m), bytes=8.0 * n * m * grams,
                           floors=HW)


def _versus(case: str, batched_call, loop_call, tolerance: float, reference=None, floor=None) -> dict:
    """Time one batched call against the loop of single calls; answers compared first."""
    # milliseconds each: the best of 25 calls, so one scheduler hiccup does not set the ratio
    first_v, t_vmap, theta_v = c.first_and_best(batched_call, repeats=25)
    first_l, t_loop, theta_l = c.first_and_best(loop_call, repeats=25)
    diff = max(c.rel(theta_v[i], theta_l[i]) for i in range(len(theta_l)))
    exact = 0.0 if reference is None else max(c.rel(theta_v[i], r) for i, r in enumerate(reference))
    assert diff < tolerance and exact < tolerance, (case, diff, exact)
    row = dict(case=case, vmap_seconds=t_vmap, loop_seconds=t_loop, vmap_compile_seconds=first_v - t_vmap,
               loop_compile_seconds=first_l - t_loop, ratio_loop_over_vmap=t_loop / t_vmap, max_rel_diff=diff)
    if floor is not None:
        row.update(floor_seconds=floor, vmap_over_floor=t_vmap / floor, loop_over_floor=t_loop / floor)
    return row


def _seeds(b: int, n: int, m: int):
    return (jnp.stack(a) for a in zip(*(c.rff_problem(n, m, seed=s) for s in range(b))))


def sgd_seeds(b: int, n: int = 40, m: int = 200) -> dict:
    phis, ys, theta0s = _seeds(b, n, m)
    keys = jax.random.split(jax.random.key(0), b)
    one = jax.jit(lambda k, p, y, t: mj.sgd(k, p, y, t, **SGD_KW)[0])
    many = jax.jit(jax.vmap(lambda k, p, y, t: mj.sgd(k, p, y, t, **SGD_KW)[0]))  # plain vmap
    # vmap lets every problem run until the slowest converges (a converged SGD step is a
    # no-op up to round-off), so the answers agree to the stopping tolerance, not bitwise;
    # both must also be the closed form to that tolerance. The floor: the separate runs' steps.
    info = batched.sgd_many(keys, phis, ys, theta0s, **SGD_KW)[1]
    return _versus(f"per-sample SGD, {b} seeds, N={n}, M={m} (jax.vmap of sgd)", lambda: many(keys, phis, ys, theta0s),
                   lambda: [one(keys[i], phis[i], ys[i], theta0s[i]) for i in range(b)], 1e-9,
                   reference=[mj.min_norm_solution(phis[i], ys[i], theta0s[i]) for i in range(b)],
                   floor=_sgd_floor(info.steps, info.epochs, n, m, grams=b))


def sgd_many_seeds(b: int, n: int = 40, m: int = 200) -> dict:
    phis, ys, theta0s = _seeds(b, n, m)
    keys = jax.random.split(jax.random.key(0), b)
    # Both sides jitted whole, so neither pays the Python argument checks per call.
    single = jax.jit(lambda k, p, y, t: mj.sgd(k, p, y, t, **SGD_KW))
    many = jax.jit(lambda k, p, y, t: batched.sgd_many(k, p, y, t, **SGD_KW))
    one = lambda i: single(keys[i], phis[i], ys[i], theta0s[i])  # noqa: E731
    # Steps checked with the public call before timing (its own program: `many` still compiles
    # in the timed first call, reported apart).
    info = batched.sgd_many(keys, phis, ys, theta0s, **SGD_KW)[1]
    _same_steps(info, [mj.sgd(keys[i], phis[i], ys[i], theta0s[i], **SGD_KW)[1] for i in range(b)])
    return _versus(f"per-sample SGD, {b} seeds, N={n}, M={m} (sgd_many)", lambda: many(keys, phis, ys, theta0s)[0],
                   lambda: [one(i)[0] for i in range(b)], SGD_EXACT,
                   floor=_sgd_floor(info.steps, info.epochs, n, m, grams=b))


def sgd_many_forget_sets(b: int, n: int = 200, m: int = 800) -> dict:
    phi, y, theta0 = c.rff_problem(n, m, seed=1)
    retain = np.random.default_rng(0).random((b, n)) >= 0.1
    keys = jax.random.split(jax.random.key(0), b)
    kw = dict(lr=1.0, tol=1e-10, max_epochs=2000)
    # Phi passed as an argument (a closed-over array would be a constant that XLA folds).
    single = jax.jit(lambda k, p, yy, t, w: mj.sgd(k, p, yy, t, retain=w, **kw))
    many = jax.jit(lambda k, p, yy, t, w: batched.sgd_many(k, p, yy, t, retain=w, **kw))
    one = lambda i: single(keys[i], phi, y, theta0, retain[i])  # noqa: E731
    info = batched.sgd_many(keys, phi, y, theta0, retain=retain, **kw)[1]  # checked before timing
    _same_steps(info, [mj.sgd(keys[i], phi, y, theta0, retain=retain[i], **kw)[1] for i in range(b)])
    # The floor pays the Gram once (shared Phi); the loop computes it once per run.
    return _versus(f"per-sample SGD, {b} forget sets, N={n}, M={m} (sgd_many)",
                   lambda: many(keys, phi, y, theta0, retain)[0], lambda: [one(i)[0] for i in range(b)], SGD_EXACT,
                   floor=_sgd_floor(info.steps, info.epochs, n, m, grams=1))


def _same_steps(info, singles) -> None:
    """Each batched run took its separate run's steps and epochs (frozen at its own stop)."""
    assert [int(s) for s in info.steps] == [int(o.steps) for o in singles]
    assert [float(e) for e in info.epochs] == [float(o.epochs) for o in singles]


def oracle_seeds(b: int, n: int = 40, m: int = 200) -> dict:
    phis, ys, theta0s = _seeds(b, n, m)
    one = jax.jit(lambda p, y, t: mj.min_norm_solution(p, y, t))
    # batched.min_norm_many: one program; _linalg loops over the batch, one LAPACK call at a time.
    return _versus(f"retrain oracle, {b} seeds, N={n}, M={m}", lambda: batched.min_norm_many(phis, ys, theta0s),
                   lambda: [one(phis[i], ys[i], theta0s[i]) for i in range(b)], 1e-10,
                   floor=_oracle_floor(b, n, m, grams=b))


def retrain_forget_sets(b: int, n: int = 200, m: int = 800) -> dict:
    phi, y, theta0 = c.rff_problem(n, m, seed=1)
    masks = np.random.default_rng(0).random((b, n)) < 0.1
    single = jax.jit(lambda p, yy, t, w: mj.min_norm_solution(p, yy, t, retain=w))
    return _versus(f"retrain oracle, {b} forget sets, N={n}, M={m}",
                   lambda: batched.retrain_many(phi, y, theta0, masks),
                   lambda: [single(phi, y, theta0, ~masks[i]) for i in range(b)], 1e-10,
                   floor=_oracle_floor(b, n, m, grams=1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path("results/bench"))
    ap.add_argument("--quick-floors", action="store_true", help="small floor arrays (tests)")
    args = ap.parse_args(argv)
    HW.update(floors.measure(args.quick_floors))
    rows = [sgd_many_seeds(args.seeds), sgd_seeds(args.seeds), sgd_many_forget_sets(args.seeds),
            oracle_seeds(args.seeds), retrain_forget_sets(args.seeds)]
    for r in rows:
        print(f"  {r['case']}: vmap {r['vmap_seconds']:.4f} s, loop {r['loop_seconds']:.4f} s -> "
              f"x{r['ratio_loop_over_vmap']:.1f} (compile {r['vmap_compile_seconds']:.2f} s apart), "
              + (f"batched {r['vmap_over_floor']:.1f}x / loop {r['loop_over_floor']:.1f}x the floor, "
                 if "floor_seconds" in r else "") +
              f"|diff| {r['max_rel_diff']:.1e}", flush=True)
    return c.save(args.out, "vmap_seeds", dict(floors=HW, rows=rows)), rows


if __name__ == "__main__":
    print(main()[0])

"""Run one scenario many times and print a line per iteration (see tests/_hang.py).

Scenarios:
  pattern  jax alone: jit(vmap(lax.cond(Cholesky ok, Cholesky solve, SVD solve))) over 5
           matrices of 300 x 300, the program shape that deadlocks jaxlib 0.10.2's CPU pool.
  library  the library's vmapped solves at a size where jaxlib splits LAPACK batches over
           its thread pool: the linear experiment's oracle stage (two solves per repetition,
           vmapped over 5 repetitions), batched.retrain_many, a user's vmap of
           min_norm_solution, the projector, and a deletion; first, once, the whole linear
           experiment as one compiled program and a proofs_numeric module.

Usage: python tests/_hang_probe.py SCENARIO ITERATIONS [SECONDS]  (stops at whichever first)
"""

import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

N, M, B = 300, 1200, 5


def pattern():
    from jax import lax
    from jax.scipy.linalg import cho_solve

    def solve(G, r):
        L = jnp.linalg.cholesky(G)
        ok = jnp.all(jnp.isfinite(L)) & (jnp.min(jnp.diagonal(L)) > 1e-8)

        def pinv(_):
            U, s, _v = jnp.linalg.svd(G)
            return U @ ((U.T @ r) / s)

        return lax.cond(ok, lambda _: cho_solve((L, True), r), pinv, None)

    f = jax.jit(jax.vmap(solve))
    A = np.random.default_rng(0).standard_normal((B, N, M)) / np.sqrt(M)
    G = jnp.asarray(A @ A.transpose(0, 2, 1))
    r = jnp.ones((B, N))
    return lambda i: f(G + i * 1e-9, r).block_until_ready()


def library():
    import muso_jax as mj
    from muso_jax import batched, deletion

    rng = np.random.default_rng(0)
    phis = jnp.asarray(rng.standard_normal((B, N, M)) / np.sqrt(M))
    ys = jnp.asarray(rng.standard_normal((B, N)))
    theta0 = jnp.zeros((B, M))
    forget = np.zeros((B, N), bool)
    for b in range(B):
        forget[b, rng.choice(N, 10, replace=False)] = True

    @jax.jit
    def oracle_stage(phis, ys, theta0):
        # The shape of experiments.linear's `prepare`: two dependent solves per repetition.
        def one(phi, y, t0):
            base = mj.min_norm_solution(phi[:250], y[:250], t0, ridge=1e-3)
            return mj.min_norm_solution(phi[:250], y[:250], base + 0.1)
        return jax.vmap(one)(phis, ys, theta0)

    proj = jax.jit(jax.vmap(lambda p: mj.projector(p[:200])))

    from muso_jax.experiments import linear
    import proofs_numeric.projector_form as projector_form

    x = rng.standard_normal((400, 20))
    y = np.where(x[:, 0] > 0, 1.0, -1.0)
    cfg = linear.Config(num_frequencies=M // 2, sigma=3.0, n_retain=N - 50, reps=B, max_epochs=5)
    linear.run(cfg, x[:N], y[:N], x[N:], y[N:], one_call=True)
    print("linear experiment (one call) done", flush=True)
    with tempfile.TemporaryDirectory() as out:
        projector_form.main(jax.random.key(0), out, size="quick")
    print("proofs done", flush=True)

    def step(i):
        oracle_stage(phis, ys + i * 1e-9, theta0).block_until_ready()
        batched.retrain_many(phis[0], ys[0], theta0[0], forget).block_until_ready()
        jax.vmap(mj.min_norm_solution)(phis, ys, theta0).block_until_ready()
        proj(phis).block_until_ready()
        if i % 10 == 0:
            fact = deletion.fit(phis[0, :200], ys[0, :200], theta0[0])
            deletion.delete(fact, np.array([3, 7, 11]))
    return step


if __name__ == "__main__":
    scenario, iterations = sys.argv[1], int(sys.argv[2])
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else float("inf")
    step = {"pattern": pattern, "library": library}[scenario]()
    step(0)  # the first iteration compiles every program
    print(f"iteration 1/{iterations} (compiles)", flush=True)
    start = time.monotonic()  # after the one-time work: SECONDS bounds the loop, which runs at least once
    for i in range(1, iterations):
        step(i)
        print(f"iteration {i + 1}/{iterations} at {time.monotonic() - start:.1f} s", flush=True)
        if time.monotonic() - start > seconds:
            break
    print("done", flush=True)

"""The one Gram solve (muso_jax._linalg): exact against NumPy, the same under jit and vmap,
differentiable, each matrix of a batch with its own Cholesky-or-SVD branch, and no LAPACK
call with a batch dimension in any compiled program."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muso_jax import _linalg

# Well-conditioned SPD draws (condition 5 to 15; the rank-3 draw's nonzero part ~34): Cholesky
# and the pseudo-inverse agree with a float64 reference to ~cond eps ~ 1e-14 (measured <= 1.3e-15);
# 1e-10 leaves room for the condition number and fails on any wrong branch or index.
EXACT = 1e-10
# Two routes through one program that differ only in batching (vmap of the per-matrix branch):
# the same operations on the same matrix, so round-off at most (measured 0).
SAME = 1e-12


def _spd(seed, n=6, b=None, rank=None):
    rng = np.random.default_rng(seed)
    shape = (n, rank or 3 * n) if b is None else (b, n, rank or 3 * n)
    A = rng.standard_normal(shape)
    return jnp.asarray(A @ np.swapaxes(A, -1, -2))


@pytest.mark.parametrize("well_posed", [True, False, None])
@pytest.mark.parametrize("k", [None, 3])
def test_solve_equals_numpy(well_posed, k):
    G = _spd(0)
    r = jnp.asarray(np.random.default_rng(1).standard_normal((6,) if k is None else (6, k)))
    x = _linalg.solve(G, r, well_posed=well_posed)
    np.testing.assert_allclose(x, np.linalg.solve(np.asarray(G), np.asarray(r)), rtol=EXACT, atol=EXACT)


def test_singular_gram_gives_the_pseudo_inverse_and_cholesky_only_gives_nan():
    G = _spd(2, rank=3)  # 6 x 6 of rank 3
    r = G @ jnp.ones(6)  # in the range: the pseudo-inverse solution is exact there
    expected = np.linalg.pinv(np.asarray(G), rcond=1e-10) @ np.asarray(r)
    # The three zero eigenvalues sit at ~1e-17 of the largest, far below either cutoff, so both
    # pseudo-inverses invert the same rank-3 part (condition ~34): EXACT (was 1e-8, needlessly
    # loose; measured 1.3e-15).
    np.testing.assert_allclose(_linalg.solve(G, r), expected, rtol=EXACT, atol=EXACT)
    np.testing.assert_allclose(_linalg.solve(G, r, well_posed=False), expected, rtol=EXACT, atol=EXACT)
    exact_singular = jnp.zeros((3, 3)).at[0, 0].set(1.0)
    assert not np.all(np.isfinite(_linalg.solve(exact_singular, jnp.ones(3), well_posed=True)))


def test_vmap_takes_each_matrix_own_branch():
    """A batch mixing a singular and a regular Gram equals the one-at-a-time solves."""
    G = jnp.stack([_spd(3), _spd(4, rank=2), _spd(5)])
    r = jnp.asarray(np.random.default_rng(6).standard_normal((3, 6)))
    batched = jax.vmap(_linalg.solve)(G, r)
    for b in range(3):
        np.testing.assert_allclose(batched[b], _linalg.solve(G[b], r[b]), rtol=SAME, atol=SAME)
    nested = jax.vmap(jax.vmap(_linalg.solve))(G[None], r[None])
    np.testing.assert_allclose(nested[0], batched, rtol=SAME, atol=SAME)
    # One argument batched, the other not.
    np.testing.assert_allclose(jax.vmap(lambda rr: _linalg.solve(G[0], rr))(r)[1], _linalg.solve(G[0], r[1]),
                               rtol=SAME, atol=SAME)


def test_gradients_equal_those_of_the_dense_solve():
    G, r = _spd(7), jnp.asarray(np.random.default_rng(8).standard_normal(6))
    loss = lambda solver: lambda G, r: jnp.sum(jnp.sin(solver(G, r)))
    ours = jax.grad(loss(_linalg.solve), argnums=(0, 1))(G, r)
    dense = jax.grad(loss(jnp.linalg.solve), argnums=(0, 1))(G, r)
    # Cholesky vs LU, each gradient two solves (x = G^-1 r, then G^-T g): ~2 cond eps ~ 4e-15
    # relative (measured 2e-15); EXACT relative (was 1e-9), 1e-12 absolute for entries near 0.
    for a, b in zip(ours, dense):
        np.testing.assert_allclose(a, b, rtol=EXACT, atol=1e-12)
    per_example = jax.vmap(jax.grad(loss(_linalg.solve), argnums=1))(jnp.stack([G, 2 * G]), jnp.stack([r, r]))
    np.testing.assert_allclose(per_example[1], jax.grad(loss(jnp.linalg.solve), argnums=1)(2 * G, r), rtol=EXACT)


def test_inverse_svd_and_eigvalsh():
    G = _spd(9)
    H, ok = _linalg.inverse(G)
    assert bool(ok)
    # ||H G - I|| ~ cond eps ~ 1e-15 (measured 3e-16); EXACT absolute on entries at most 1.
    np.testing.assert_allclose(H @ G, np.eye(6), rtol=0, atol=EXACT)
    A = jnp.asarray(np.random.default_rng(10).standard_normal((2, 4, 7)))
    U, s, Vt = jax.vmap(_linalg.svd)(A)
    # A backward-stable SVD reconstructs A to a few eps ||A|| (||A|| ~ 5): ~1e-14 (measured 1.8e-15).
    np.testing.assert_allclose(jnp.einsum("bik,bk,bkj->bij", U, s, Vt), A, rtol=0, atol=1e-12)
    # Eigenvalues to ~eps ||G|| absolute, so ~cond eps relative on the smallest (measured 4e-16).
    np.testing.assert_allclose(jax.vmap(_linalg.eigvalsh)(jnp.stack([G, G]))[1], np.linalg.eigvalsh(np.asarray(G)),
                               rtol=EXACT)
    assert not bool(_linalg.is_positive_definite(jnp.zeros((3, 3)).at[0, 0].set(1.0)))


def test_bad_well_posed_is_named():
    with pytest.raises(ValueError, match=r"argument `well_posed`: expected True, False or None; got 'yes'"):
        _linalg.solve(_spd(0), jnp.ones(6), well_posed="yes")


LAPACK = re.compile(r'custom_call_target="lapack_\w+".*?num_batch_dims="(\d+)"')


def batched_lapack_calls(fn, *args) -> list[str]:
    """The LAPACK custom calls of fn's optimized program that carry a batch dimension."""
    text = jax.jit(fn).lower(*args).compile().as_text()
    calls = LAPACK.findall(text)
    assert calls, "expected the program to call LAPACK at all"
    return [c for c in calls if c != "0"]


def test_the_check_sees_a_batched_call_in_plain_jax():
    """The structural check below can fail: a plain vmap of a Cholesky is one batched call."""
    assert batched_lapack_calls(jax.vmap(jnp.linalg.cholesky), _spd(0, b=3)) == ["1"]


def test_no_library_program_calls_lapack_with_a_batch():
    """No program of the library can run two batched LAPACK calls at once (docs/deadlock.md):
    none has one. Checked on the vmapped paths, compiled."""
    import muso_jax as mj
    from muso_jax import batched, deletion, kernel_form

    rng = np.random.default_rng(0)
    phi = jnp.asarray(rng.standard_normal((3, 8, 20)))
    y, t0 = jnp.asarray(rng.standard_normal((3, 8))), jnp.zeros((3, 20))
    G = jnp.einsum("bij,bkj->bik", phi, phi)
    forget = np.zeros((3, 8), bool)
    forget[:, 2] = True
    programs = {
        "vmap(min_norm_solution)": (jax.vmap(lambda a, b, c: mj.min_norm_solution(a, b, c, ridge=1e-8)), phi, y, t0),
        "vmap(muso_labels)": (jax.vmap(lambda a, b, c: mj.muso_labels(a[:6], b[:6], a[6:], c)), phi, y, t0),
        "vmap(projector)": (jax.vmap(mj.projector), phi),
        "vmap(projector), N > M": (jax.vmap(lambda a: mj.projector(a.T[:10])), phi),
        "vmap(full_row_rank)": (jax.vmap(mj.full_row_rank), phi),
        "vmap(gd_iterate)": (jax.vmap(lambda a, b, c: mj.gd_iterate(a, b, c, 1e-3, 5)), phi, y, t0),
        "vmap(dual_coefficients)": (jax.vmap(lambda K, b: kernel_form.dual_coefficients(K, b, 0 * b)), G, y),
        "retrain_many": (lambda a, b, c: batched._retrain_many(a, b, c, jnp.asarray(forget), 0.0), phi[0], y[0], t0[0]),
        "min_norm_many": (lambda a, b, c: batched._min_norm_many(a, b, c, 0.0), phi, y, t0),
        "vmap(deletion fit)": (jax.vmap(lambda a, b, c: deletion._fit(a, b, c, 1e-8)), phi, y, t0),
        "grad(min_norm_solution)": (jax.vmap(jax.grad(lambda a, b, c: jnp.sum(mj.min_norm_solution(a, b, c)))),
                                    phi, y, t0),
    }
    found = {name: batched_lapack_calls(fn, *args) for name, (fn, *args) in programs.items()}
    assert {k: v for k, v in found.items() if v} == {}

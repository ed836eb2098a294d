"""Closed forms: min-norm interpolant, projector, MUSO labels (exact algebra, tight tolerances)."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import muso_jax as mj
from helpers import SHAPES, problem, rel

seeds = st.integers(0, 2**16)
shapes = st.sampled_from(SHAPES)
classes = st.sampled_from([0, 3])  # 0: +-1 targets of shape (N,); 3: one-hot (N, 3)

# Exact identities evaluated through a Cholesky solve at Gram condition ~5 (helpers.SIGMA):
# float64 round-off ~cond N eps ~ 3e-14 (measured <= 4e-15); 1e-10 relative leaves a wide margin
# and still fails on any algebraic error (O(1)).
EXACT = 1e-10
# Entries of P (M x M, M <= 160, entries at most 1) and its eigenvalues: eigvalsh and the solve
# behind P each add ~M eps ~ 4e-14 absolute (measured <= 2e-15); 1e-12 absolute, no relative part.
PROJ_ATOL = 1e-12


def _reference_min_norm(phi, y, theta0):
    """theta0 + pinv(Phi) (y - Phi theta0), by NumPy's SVD: an independent implementation."""
    phi, y, theta0 = map(np.asarray, (phi, y, theta0))
    return theta0 + np.linalg.pinv(phi) @ (y - phi @ theta0)


@given(seeds, shapes, classes)
def test_min_norm_solution_interpolates_and_is_closest_to_theta0(seed, shape, k):
    p = problem(seed, *shape, k=k)
    theta = mj.min_norm_solution(p.phi, p.y, p.theta0)
    assert rel(p.phi @ theta, p.y) < EXACT
    assert rel(theta, _reference_min_norm(p.phi, p.y, p.theta0)) < EXACT
    # Closest to theta0: the step theta - theta0 lies in row(Phi), i.e. P (theta - theta0) = itself.
    step = theta - p.theta0
    assert rel(mj.projector(p.phi) @ step, step) < EXACT


def test_matrix_targets_solve_column_by_column():
    p = problem(1, *SHAPES[0], k=3)
    theta = mj.min_norm_solution(p.phi, p.y, p.theta0)
    for j in range(3):
        col = mj.min_norm_solution(p.phi, p.y[:, j], p.theta0[:, j])
        assert rel(theta[:, j], col) < EXACT


@given(seeds, shapes, classes)
def test_muso_labels_are_the_retrained_outputs(seed, shape, k):
    p = problem(seed, *shape, k=k)
    r, f = slice(0, shape[0] // 2), slice(shape[0] // 2, None)
    theta_r = _reference_min_norm(p.phi[r], p.y[r], p.theta0)
    labels = mj.muso_labels(p.phi[r], p.y[r], p.phi[f], p.theta0)
    assert rel(labels, p.phi[f] @ theta_r) < EXACT


@given(seeds, shapes, classes)
def test_projector_form_equals_direct_form(seed, shape, k):
    p = problem(seed, *shape, k=k)
    r, f = slice(0, shape[0] // 2), slice(shape[0] // 2, None)
    theta_p = mj.min_norm_solution(p.phi, p.y, p.theta0)  # interpolates D, hence D_r
    direct = mj.muso_labels(p.phi[r], p.y[r], p.phi[f], p.theta0)
    P = mj.projector(p.phi[r])
    explicit = p.phi[f] @ (p.theta0 + P @ (theta_p - p.theta0))
    assert rel(mj.projector_labels(p.phi[r], p.phi[f], p.theta0, theta_p), direct) < EXACT
    assert rel(explicit, direct) < EXACT


@given(seeds, shapes)
def test_projector_is_an_orthogonal_projector(seed, shape):
    phi = problem(seed, *shape).phi
    P = mj.projector(phi)
    assert float(jnp.max(jnp.abs(P - P.T))) <= 1e-15  # X^T X: symmetric up to matmul round-off
    assert rel(P @ P, P) < EXACT
    eig = jnp.linalg.eigvalsh(P)
    # Eigenvalues in {0, 1}: N of them at 1 (rank N), the rest at 0, up to PROJ_ATOL.
    np.testing.assert_allclose(eig[-shape[0]:], 1.0, rtol=0, atol=PROJ_ATOL)
    np.testing.assert_allclose(eig[: -shape[0]], 0.0, rtol=0, atol=PROJ_ATOL)
    np.testing.assert_allclose(P @ phi.T, phi.T, rtol=0, atol=PROJ_ATOL)


def test_ridge_projector_has_eigenvalues_s_over_s_plus_ridge():
    phi = problem(2, *SHAPES[0]).phi
    ridge = 0.3
    s2 = jnp.linalg.svd(phi, compute_uv=False) ** 2
    eig = jnp.linalg.eigvalsh(mj.projector(phi, ridge=ridge))
    np.testing.assert_allclose(jnp.sort(eig)[-len(s2):], jnp.sort(s2 / (s2 + ridge)), rtol=0, atol=PROJ_ATOL)
    assert float(eig.min()) > -PROJ_ATOL and float(eig.max()) < 1.0  # the zero eigenvalues, up to round-off


def test_where_mask_equals_solving_on_the_subset():
    p = problem(3, *SHAPES[1], k=3)
    keep = jnp.arange(SHAPES[1][0]) % 3 != 0
    sub = mj.min_norm_solution(p.phi[keep], p.y[keep], p.theta0, ridge=1e-3)
    masked = mj.min_norm_solution(p.phi, p.y, p.theta0, ridge=1e-3, retain=keep)
    assert rel(masked, sub) < EXACT


def test_ridge_shrinks_the_step_as_predicted():
    p = problem(4, *SHAPES[0])
    ridge = 0.5
    phi, y, t0 = map(np.asarray, p[1:])
    expected = t0 + phi.T @ np.linalg.solve(phi @ phi.T + ridge * np.eye(len(y)), y - phi @ t0)
    assert rel(mj.min_norm_solution(p.phi, p.y, p.theta0, ridge=ridge), expected) < EXACT


def test_under_parameterized_warns_and_falls_back_to_least_squares():
    p = problem(5, 40, 10)  # N = 40 rows, M = 20 features
    with pytest.warns(mj.UnderParameterizedWarning, match="N = 40 rows > M = 20"):
        theta = mj.min_norm_solution(p.phi, p.y, p.theta0)
    assert jnp.all(jnp.isfinite(theta))
    # Full column rank: the least-squares solution is unique; the residual is not zero.
    # cond(Phi) ~ 5 here: even through normal equations the error is ~cond^2 eps ~ 5e-15
    # (measured 4e-15), so EXACT (was 1e-8, needlessly loose).
    assert rel(theta, _reference_min_norm(p.phi, p.y, p.theta0)) < EXACT
    assert rel(p.phi @ theta, p.y) > 1e-2
    assert not bool(mj.full_row_rank(p.phi))


def test_repeated_rows_fall_back_to_the_pseudo_inverse():
    p = problem(6, *SHAPES[0])
    phi = jnp.concatenate([p.phi, p.phi[:3]])  # rank N, N + 3 rows, consistent labels
    y = jnp.concatenate([p.y, p.y[:3]])
    assert not bool(mj.full_row_rank(phi)) and bool(mj.full_row_rank(p.phi))
    theta = mj.min_norm_solution(phi, y, p.theta0)
    # The SVD pseudo-inverse drops the 3 zero singular values (at round-off, ~eps s_max, far below
    # its cutoff) and inverts the rest, condition ~5: round-off again (measured 1.2e-15), so EXACT
    # (was 1e-8, needlessly loose).
    assert rel(theta, mj.min_norm_solution(p.phi, p.y, p.theta0)) < EXACT
    assert rel(mj.projector(phi), mj.projector(p.phi)) < EXACT


@pytest.mark.parametrize(
    "fn",
    [
        lambda phi, y, t0: mj.min_norm_solution(phi, y, t0, ridge=1e-8),
        lambda phi, y, t0: mj.muso_labels(phi[:8], y[:8], phi[8:], t0),
        lambda phi, y, t0: mj.projector(phi),
        lambda phi, y, t0: mj.projector_labels(phi[:8], phi[8:], t0, t0 + 1.0),
    ],
)
def test_jit_equals_eager_and_vmap_equals_loop(fn):
    probs = [problem(s, *SHAPES[0]) for s in range(3)]
    eager = [fn(p.phi, p.y, p.theta0) for p in probs]
    # The same operations, possibly fused or batched differently by XLA: a few ulp at most
    # (measured 0); 1e-12 relative (1e-13 absolute for entries near 0) still catches any mix-up.
    np.testing.assert_allclose(jax.jit(fn)(*probs[0][1:]), eager[0], rtol=1e-12, atol=1e-13)
    stacked = [jnp.stack(a) for a in zip(*(p[1:] for p in probs))]
    np.testing.assert_allclose(jax.vmap(fn)(*stacked), jnp.stack(eager), rtol=1e-12, atol=1e-13)


def test_numpy_inputs_are_accepted():
    p = problem(7, *SHAPES[0])
    a = mj.min_norm_solution(np.asarray(p.phi), np.asarray(p.y), np.asarray(p.theta0))
    assert rel(a, mj.min_norm_solution(p.phi, p.y, p.theta0)) == 0.0


@pytest.mark.parametrize(
    "call, arg",
    [
        (lambda p: mj.min_norm_solution(p.phi[0], p.y, p.theta0), "phi"),
        (lambda p: mj.min_norm_solution(p.phi, p.y[:-1], p.theta0), "y"),
        (lambda p: mj.min_norm_solution(p.phi, p.y, p.theta0[:-1]), "theta0"),
        (lambda p: mj.min_norm_solution(p.phi, p.y, jnp.stack([p.theta0] * 2, 1)), "theta0"),
        (lambda p: mj.min_norm_solution(p.phi.at[0, 0].set(jnp.nan), p.y, p.theta0), "phi"),
        (lambda p: mj.min_norm_solution(p.phi, p.y.at[1].set(jnp.inf), p.theta0), "y"),
        (lambda p: mj.min_norm_solution(p.phi, p.y, p.theta0, ridge=-1.0), "ridge"),
        (lambda p: mj.min_norm_solution(p.phi, p.y, p.theta0, ridge=float("inf")), "ridge"),
        (lambda p: mj.projector(p.phi, ridge=float("nan")), "ridge"),
        (lambda p: mj.min_norm_solution(p.phi, p.y, p.theta0, retain=(p.y > 0)[:-1]), "retain"),
        (lambda p: mj.muso_labels(p.phi[:5], p.y[:5], p.phi[5:, :-1], p.theta0), "phi_f"),
        (lambda p: mj.projector(jnp.zeros((0, 3))), "phi_r"),
        (lambda p: mj.projector_labels(p.phi[:5], p.phi[5:], p.theta0, p.theta0[:-2]), "theta_p"),
    ],
)
def test_bad_input_names_the_argument(call, arg):
    p = problem(8, *SHAPES[0])
    with pytest.raises(ValueError, match=f"`{arg}`"):
        call(p)


@pytest.mark.parametrize("ridge", [0.0, 1e-3, 0.5])
def test_projector_is_the_same_matrix_solved_on_either_side(ridge):
    """Tall Phi_r (N_r > M) goes through the M x M system; compare with the N_r-side formula
    evaluated by NumPy on the same matrix, and check projector properties."""
    phi = np.asarray(problem(21, 40, 6).phi)  # N_r = 40 rows, M = 12 features
    P = np.asarray(mj.projector(phi, ridge=ridge))
    reference = phi.T @ np.linalg.pinv(phi @ phi.T + ridge * np.eye(40), hermitian=True) @ phi
    # The reference inverts the 40 x 40 Gram of rank 12 (ridge 0: NumPy's pinv cuts its null space)
    # at cond(Phi)^2 ~ 8: a few 1e-15 of round-off plus what the cutoff leaves (measured 2.6e-13);
    # 1e-10 absolute on entries at most 1.
    np.testing.assert_allclose(P, reference, rtol=0, atol=1e-10)
    np.testing.assert_allclose(P, P.T, rtol=0, atol=1e-15)  # symmetric by construction, up to matmul round-off
    eig = np.linalg.eigvalsh(P)
    assert eig.min() > -PROJ_ATOL and eig.max() < 1 + PROJ_ATOL
    if ridge == 0.0:  # full column rank: the row space is everything
        np.testing.assert_allclose(P, np.eye(12), rtol=0, atol=PROJ_ATOL)  # 12 x 12 solve at cond ~8 (measured 4e-16)


def test_reverse_mode_gradients_flow_through_the_closed_form():
    """theta_inf is linear in y: d sum(theta)/dy = G^-1 Phi 1, by jax.grad and by hand (1e-10:
    one Cholesky solve at condition ~3)."""
    p = problem(5, *SHAPES[0])
    grad = jax.grad(lambda y: jnp.sum(mj.min_norm_solution(p.phi, y, p.theta0)))(p.y)
    expected = np.linalg.solve(np.asarray(p.phi @ p.phi.T), np.asarray(p.phi @ jnp.ones(p.phi.shape[1])))
    assert rel(grad, expected) < EXACT

"""Kernel form of the linear core: the same retrain, outputs, labels and gaps as the explicit
features, computed from K = Phi Phi^T and the start's outputs f0 = Phi theta0 alone."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st

import muso_jax as mj
from muso_jax import kernel_form as kf
from helpers import SHAPES, problem, rel

seeds = st.sampled_from([0, 1])  # each new problem costs a compile of its feature map
shapes = st.sampled_from(SHAPES)
classes = st.sampled_from([0, 3])  # 0: +-1 targets of shape (N,); 3: one-hot (N, 3)

# Both sides are Cholesky solves of Gram matrices with condition about 5 (helpers.SIGMA), in a
# different order of operations: round-off ~cond eps ~ 1e-15 (measured <= 1e-15); 1e-10
# relative is far above it and far below any algebraic error.
EXACT = 1e-10


def _split(p):
    n = p.phi.shape[0]
    r, f = slice(0, (2 * n) // 3), slice((2 * n) // 3, None)
    K = p.phi @ p.phi.T
    f0 = p.phi @ p.theta0
    return r, f, K, f0


@given(seeds, shapes, classes)
def test_dual_coefficients_give_the_min_norm_retrain(seed, shape, k):
    p = problem(seed, *shape, k=k)
    r, _, K, f0 = _split(p)
    alpha_r = kf.dual_coefficients(K[r, r], p.y[r], f0[r])
    theta_r = p.theta0 + p.phi[r].T @ alpha_r
    assert rel(theta_r, mj.min_norm_solution(p.phi[r], p.y[r], p.theta0)) < EXACT
    # Retrained outputs anywhere: on the retained rows they interpolate y_r.
    assert rel(kf.retrain_outputs(K[:, r], f0, alpha_r), p.phi @ theta_r) < EXACT
    assert rel(kf.retrain_outputs(K[r, r], f0[r], alpha_r), p.y[r]) < EXACT


@given(seeds, shapes, classes)
def test_muso_labels_match_the_feature_form(seed, shape, k):
    p = problem(seed, *shape, k=k)
    r, f, K, f0 = _split(p)
    labels = kf.muso_labels_from_kernel(K[r, r], K[f, r], p.y[r], f0[r], f0[f])
    assert rel(labels, mj.muso_labels(p.phi[r], p.y[r], p.phi[f], p.theta0)) < EXACT


@given(seeds, shapes)
def test_ridge_matches_the_feature_form(seed, shape):
    p = problem(seed, *shape, k=3)
    r, f, K, f0 = _split(p)
    eps = 0.3  # large enough to move the answer by far more than the tolerance
    labels = kf.muso_labels_from_kernel(K[r, r], K[f, r], p.y[r], f0[r], f0[f], ridge=eps)
    assert rel(labels, mj.muso_labels(p.phi[r], p.y[r], p.phi[f], p.theta0, ridge=eps)) < EXACT
    assert rel(labels, kf.muso_labels_from_kernel(K[r, r], K[f, r], p.y[r], f0[r], f0[f])) > 1e-3  # measured 0.1


@given(seeds, shapes, classes)
def test_parameter_gap_is_the_explicit_norm(seed, shape, k):
    p = problem(seed, *shape, k=k)
    r, _, K, f0 = _split(p)
    alpha_p = kf.dual_coefficients(K, p.y, f0)
    alpha_r = jnp.zeros_like(alpha_p).at[r].set(kf.dual_coefficients(K[r, r], p.y[r], f0[r]))
    theta_p = mj.min_norm_solution(p.phi, p.y, p.theta0)
    theta_r = mj.min_norm_solution(p.phi[r], p.y[r], p.theta0)
    assert abs(float(kf.parameter_gap(K, alpha_p, alpha_r)) / float(jnp.linalg.norm(theta_p - theta_r)) - 1) < EXACT
    # Arbitrary coefficients, and a model half way: relative gap 1/2 exactly.
    alpha_a = jax.random.normal(jax.random.key(seed), alpha_p.shape)
    explicit = jnp.linalg.norm(p.phi.T @ (alpha_a - alpha_p))
    assert abs(float(kf.parameter_gap(K, alpha_a, alpha_p)) / float(explicit) - 1) < EXACT
    assert abs(float(kf.relative_gap_from_kernel(K, (alpha_p + alpha_r) / 2, alpha_r, alpha_p)) - 0.5) < EXACT
    assert float(kf.parameter_gap(K, alpha_a, alpha_a)) == 0.0


@pytest.mark.parametrize("K, what", [(-jnp.eye(3), "positive semi-definite"),
                                     (jnp.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]), "symmetric")])
def test_a_kernel_that_is_not_a_gram_matrix_is_refused(K, what):
    """An indefinite or non-symmetric K is no kernel: it used to give a gap of 0.0."""
    with pytest.raises(ValueError, match=rf"argument `K`: expected a {what} kernel"):
        kf.parameter_gap(K, jnp.ones(3), jnp.zeros(3))
    with pytest.raises(ValueError, match=rf"argument `K_rr`: expected a {what} kernel"):
        kf.dual_coefficients(K, jnp.ones(3), jnp.zeros(3))


def test_round_off_below_zero_is_clipped_not_nan():
    """A PSD kernel of rank 1 whose quadratic form round-off can push below zero gives >= 0."""
    v = jnp.array([1.0, 2.0, 3.0])
    K = jnp.outer(v, v)
    d = jnp.array([2.0, -1.0, 0.0])  # K d = 0 exactly in exact arithmetic
    gap = float(kf.parameter_gap(K, d, jnp.zeros(3)))
    assert np.isfinite(gap) and gap >= 0.0


def test_jit_equals_eager_and_vmap_equals_loop():
    ps = [problem(s, *SHAPES[0], k=3) for s in (0, 1, 2)]
    parts = [_split(p) for p in ps]
    r, f = parts[0][0], parts[0][1]
    Krr = jnp.stack([K[r, r] for _, _, K, _ in parts])
    Kfr = jnp.stack([K[f, r] for _, _, K, _ in parts])
    K = jnp.stack([K for _, _, K, _ in parts])
    y_r = jnp.stack([p.y[r] for p in ps])
    f0 = jnp.stack([f0 for *_, f0 in parts])
    f0_r, f0_f = f0[:, r], f0[:, f]

    def all_of_them(Krr, Kfr, K, y_r, f0, f0_r, f0_f):
        alpha_r = kf.dual_coefficients(Krr, y_r, f0_r, ridge=1e-8)
        padded = jnp.zeros_like(f0).at[r].set(alpha_r)
        return (alpha_r, kf.retrain_outputs(Kfr, f0_f, alpha_r), kf.muso_labels_from_kernel(Krr, Kfr, y_r, f0_r, f0_f),
                kf.parameter_gap(K, padded, f0), kf.relative_gap_from_kernel(K, f0, padded, 2 * f0))

    args = (Krr, Kfr, K, y_r, f0, f0_r, f0_f)
    looped = [all_of_them(*(a[i] for a in args)) for i in range(3)]
    jitted = [jax.jit(all_of_them)(*(a[i] for a in args)) for i in range(3)]
    mapped = jax.vmap(all_of_them)(*args)
    for i in range(3):
        for eager, jit_out, vmap_out in zip(looped[i], jitted[i], mapped):
            # Same operations, possibly fused or batched differently by XLA: round-off only.
            np.testing.assert_allclose(jit_out, eager, rtol=1e-12, atol=1e-13)
            np.testing.assert_allclose(vmap_out[i], eager, rtol=1e-12, atol=1e-13)


def test_singular_kernel_falls_back_to_the_pseudo_inverse():
    """Duplicate rows make K_rr singular: the least-squares coefficients of minimum norm."""
    p = problem(0, *SHAPES[0], k=0)
    phi = jnp.concatenate([p.phi[:5], p.phi[:1]])
    y = jnp.concatenate([p.y[:5], p.y[:1]])
    K = phi @ phi.T
    alpha = kf.dual_coefficients(K, y, phi @ p.theta0)
    assert bool(jnp.all(jnp.isfinite(alpha)))
    # phi^T alpha is the min-norm step: pinv(Phi) (y - Phi theta0). Both SVD routes drop the one
    # zero singular value (at round-off, far below either cutoff) and invert the rest at
    # condition ~5: round-off (measured 1e-15), so EXACT (was 1e-9, needlessly loose).
    step = np.linalg.pinv(np.asarray(phi)) @ np.asarray(y - phi @ p.theta0)
    assert rel(phi.T @ alpha, step) < EXACT


def test_bad_inputs_raise_naming_the_argument():
    p = problem(0, *SHAPES[0], k=3)
    r, f, K, f0 = _split(p)
    Krr, Kfr, y_r, f0_r, f0_f = K[r, r], K[f, r], p.y[r], f0[r], f0[f]
    with pytest.raises(ValueError, match="`K_rr`.*square"):
        kf.dual_coefficients(K[r, :], y_r, f0_r)
    with pytest.raises(ValueError, match="`y_r`.*number of rows"):
        kf.dual_coefficients(Krr, y_r[:-1], f0_r)
    with pytest.raises(ValueError, match="`f0_r`.*shape"):
        kf.dual_coefficients(Krr, y_r, f0_r[:, :2])
    with pytest.raises(ValueError, match="`ridge`"):
        kf.dual_coefficients(Krr, y_r, f0_r, ridge=-1.0)
    with pytest.raises(ValueError, match="`K_rr`.*finite"):
        kf.dual_coefficients(Krr.at[0, 0].set(jnp.nan), y_r, f0_r)
    with pytest.raises(ValueError, match="`K_fr`.*columns"):
        kf.muso_labels_from_kernel(Krr, Kfr[:, :-1], y_r, f0_r, f0_f)
    with pytest.raises(ValueError, match="`f0_f`.*trailing"):
        kf.muso_labels_from_kernel(Krr, Kfr, y_r, f0_r, f0_f[:, 0:1])
    with pytest.raises(ValueError, match="`f0_x`.*number of rows"):
        kf.retrain_outputs(Kfr, f0_f[:-1], y_r)
    with pytest.raises(ValueError, match="`alpha_b`.*shape"):
        kf.parameter_gap(K, f0, f0[:, :1])
    with pytest.raises(ValueError, match="`alpha_p`.*shape"):
        kf.relative_gap_from_kernel(K, f0, f0, f0[:-1])

"""The linearized network is MUSO's linear model: closed-form retrain = gradient descent, and
fine-tuning on MUSO's labels lands on the retrain (certified in parameter space and by the kernel)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muso_jax.nn import linearized as lin
from muso_jax.nn import ntk
from muso_jax.nn.models import make_model
from muso_jax.nn.state import split

# N K = 90 tangent-feature rows, P = 1,699 parameters: over-parameterized. 16-dimensional inputs
# keep the empirical NTK's condition number near 200, so plain gradient descent reaches the
# float64 floor in about 3,000 steps.
N, D_IN, K, N_F = 30, 16, 3, 10
FORGET = np.arange(N) >= N - N_F
R = ~FORGET
# The exactness target for ||p_u - p_r|| / ||p_p - p_r||. Gradient descent stops at ||residual||
# <= 1e-13 ||targets|| (~5e-13); its error lies in row(J), so it is at most residual /
# sqrt(lambda_min) ~ 3e-13 (lambda_min ~ 2.4), against ||p_p - p_r|| ~ 1.2: ~3e-13 relative
# (measured 1.9e-13). 1e-11 leaves room for the round-off of thousands of float64 steps (was
# 1e-8, four orders looser than the math).
CERTIFICATE = 1e-11


@functools.lru_cache(maxsize=4)
def _setup(seed=0):
    net0 = split(make_model("mlp", (D_IN,), K, seed=seed, param_dtype=jnp.float64, hidden=(32, 32)))
    x = jax.random.normal(jax.random.key(seed), (N, D_IN))
    y = jax.nn.one_hot(jax.random.randint(jax.random.key(seed + 1), (N,), 0, K), K, dtype=jnp.float64)
    return net0, x, y


def test_closed_form_retrain_is_the_limit_of_gradient_descent_from_p0():
    net0, x, y = _setup()
    alpha_r = lin.retrain(net0, x[R], y[R])
    params_r = lin.parameters(net0, x[R], alpha_r)
    theta = lin.flatten(ntk.kernel(net0, x[R]))
    spectrum = jnp.linalg.eigvalsh(theta)
    params_gd, steps, residual = lin.gradient_descent(net0, net0.params, x[R], y[R], 2.0 / (spectrum[-1] + spectrum[0]),
                                                      1e-13, 20_000)
    assert int(steps) < 20_000
    # The GD error lies in row(J_r), so ||error|| <= ||residual|| / sqrt(lambda_min); 1e-12 for
    # the round-off of thousands of float64 steps.
    bound = float(residual) / float(jnp.sqrt(spectrum[0])) + 1e-12
    assert float(lin.distance(params_gd, params_r)) <= bound
    assert float(lin.distance(params_gd, params_r)) / float(lin.distance(net0.params, params_r)) < CERTIFICATE
    # Kernel-form outputs equal the parameter-space model's, and interpolate D_r: exact algebra
    # through one Cholesky solve at condition ~200, 1e-10 relative.
    x_test = jax.random.normal(jax.random.key(9), (7, D_IN))
    np.testing.assert_allclose(lin.predict_linearized(net0, x[R], alpha_r, x_test), ntk.linearized_apply(net0, params_r, x_test),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ntk.linearized_apply(net0, params_r, x[R]), y[R], rtol=1e-10, atol=1e-10)


def test_muso_labels_land_on_the_retrained_linearized_network():
    net0, x, y = _setup()
    params_u, u = lin.unlearn_linearized(net0, x, y, FORGET)
    assert u._fields[0] == "seconds" and u.seconds > 0
    # The certificate measures the returned parameters: the same two distances recomputed, so a
    # few ulp of the ratio at most (measured 0).
    assert float(lin.distance(params_u, u.params_r)) / float(lin.distance(lin.parameters(net0, x, u.alpha_p), u.params_r)) \
        == pytest.approx(float(u.relative_gap), rel=1e-12)
    assert float(u.relative_gap) < CERTIFICATE, float(u.relative_gap)
    assert float(u.relative_gap_kernel) < CERTIFICATE, float(u.relative_gap_kernel)
    # Both certificates measure the same iterate (p_u = p0 + J^T alpha_u in exact arithmetic):
    # they differ by the round-off of the two runs, about 1e-15 of ||p_p - p_r||.
    assert abs(float(u.relative_gap) - float(u.relative_gap_kernel)) < 1e-12
    # The labels are the retrained linearized network's outputs on D_f (round-off of two solves).
    expected = lin.predict_linearized(net0, x[R], lin.retrain(net0, x[R], y[R]), x[FORGET])
    np.testing.assert_allclose(u.labels_f, expected, rtol=1e-10, atol=1e-10)
    # The retrained model is not the original: the certificate is not trivially satisfied.
    assert float(lin.distance(lin.parameters(net0, x, u.alpha_p), u.params_r)) > 1e-2


def test_true_labels_or_slightly_wrong_labels_miss_the_retrain():
    """The original already interpolates the true labels: fine-tuning on them does not move it
    (gap 1). Labels off by 1e-5 leave a gap of order 1e-5, far above the certificate."""
    net0, x, y = _setup()
    _, true = lin.unlearn_linearized(net0, x, y, FORGET, labels_f=y[FORGET])
    assert float(true.relative_gap) > 0.5 and float(true.relative_gap_kernel) > 0.5
    _, muso = lin.unlearn_linearized(net0, x, y, FORGET)
    _, off = lin.unlearn_linearized(net0, x, y, FORGET, labels_f=muso.labels_f + 1e-5)
    assert float(off.relative_gap) > 1e3 * CERTIFICATE


def test_relative_gap_is_zero_or_infinite_when_the_original_is_the_retrain():
    """alpha_p = alpha_r: nothing to unlearn (p_p = p_r). MUSO's labels are p_r's own outputs,
    so fine-tuning stays put: gap 0, not 0/0. The true labels move it off p_r: gap inf."""
    net0, x, y = _setup()
    alpha_p = jnp.zeros_like(y).at[R].set(lin.retrain(net0, x[R], y[R]))
    _, same = lin.unlearn_linearized(net0, x, y, FORGET, alpha_p=alpha_p)
    assert float(same.relative_gap) == 0.0 and float(same.relative_gap_kernel) == 0.0
    _, moved = lin.unlearn_linearized(net0, x, y, FORGET, alpha_p=alpha_p, labels_f=y[FORGET], max_steps=10)
    assert float(moved.relative_gap) == np.inf and float(moved.relative_gap_kernel) == np.inf


def test_bad_inputs_raise_naming_the_argument():
    net0, x, y = _setup()
    with pytest.raises(ValueError, match="`y`.*shape"):
        lin.unlearn_linearized(net0, x, y[:, :2], FORGET)
    with pytest.raises(ValueError, match="`labels_f`.*shape"):
        lin.unlearn_linearized(net0, x, y, FORGET, labels_f=y[:3])
    with pytest.raises(ValueError, match="`forget`"):
        lin.unlearn_linearized(net0, x, y, np.ones(N, dtype=bool))
    with pytest.raises(ValueError, match="`x`: expected inputs the network accepts"):
        lin.unlearn_linearized(net0, x[:, :3], y, FORGET)
    with pytest.raises(ValueError, match="`y_r`"):
        lin.retrain(net0, x[R], y[:3])
    with pytest.raises(ValueError, match="`lr`"):
        lin.unlearn_linearized(net0, x, y, FORGET, lr=-1.0)


@pytest.mark.parametrize("case, match", [
    ("parameters", r"argument `alpha_r`: expected shape \(20, 3\)"),
    ("parameters_x", r"argument `x_r`: expected inputs the network accepts"),
    ("distance", r"argument `params_b`: expected the leaf .* of shape"),
    ("distance_tree", r"argument `params_b`: expected a parameter pytree with the structure of `params_a`"),
    ("descent_params", r"argument `params`: expected the leaf .* like `net0.params`"),
    ("descent_targets", r"argument `targets`: expected shape \(20, 3\)"),
    ("descent_steps", r"argument `max_steps`: expected an integer >= 1"),
    ("predict", r"argument `x`: expected inputs the network accepts"),
    ("flatten", r"argument `theta`: expected a \(N1, K, N2, K\) multi-output kernel"),
])
def test_shape_mismatches_raise_naming_the_argument(case, match):
    net0, x, y = _setup()
    cut = jax.tree.map(lambda a: a[:1], net0.params)
    calls = dict(
        parameters=lambda: lin.parameters(net0, x[R], y[:3]),
        parameters_x=lambda: lin.parameters(net0, x[R, :5], y[R]),
        distance=lambda: lin.distance(net0.params, cut),
        distance_tree=lambda: lin.distance(net0.params, {"w": jnp.ones(3)}),
        descent_params=lambda: lin.gradient_descent(net0, cut, x[R], y[R], 0.1, 1e-6, 10),
        descent_targets=lambda: lin.gradient_descent(net0, net0.params, x[R], y[:3], 0.1, 1e-6, 10),
        descent_steps=lambda: lin.gradient_descent(net0, net0.params, x[R], y[R], 0.1, 1e-6, 0),
        predict=lambda: lin.predict_linearized(net0, x[R], jnp.zeros((20, K)), x[:3, :5]),
        flatten=lambda: lin.flatten(jnp.ones((3, 3))),
    )
    with pytest.raises(ValueError, match=match):
        calls[case]()

"""NTK-guided MUSO: the relabel is the linearized network's retrain (checked against explicit
Jacobians), and on a class-forgetting split it moves every forget point off its class."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from muso_jax.nn import muso_ntk
from muso_jax.nn.models import make_model
from muso_jax.nn.state import forward, split
from muso_jax.nn.train import TrainConfig, train

K, N_R, N_F = 3, 12, 5


@pytest.fixture(scope="module")
def tiny():
    net = split(make_model("mlp", (4,), K, seed=0, param_dtype=jnp.float64, hidden=(16, 16)))
    x = jax.random.normal(jax.random.key(1), (N_R + N_F, 4))
    y = jax.random.randint(jax.random.key(2), (N_R + N_F,), 0, K)
    return net, x, y


def _explicit_jacobian(net, x):
    flat, unravel = ravel_pytree(net.params)
    f = lambda p: forward(net.graphdef, unravel(p), net.rest, x, train=False)[0]
    return np.asarray(f(flat)), np.asarray(jax.jacrev(f)(flat))  # (N, K), (N, K, P)


def test_full_kernel_relabel_is_the_linearized_retrain(tiny):
    """kernel='full': f_0(X_f) + J_f J_r^T (J_r J_r^T)^-1 (Y_r - f_0(X_r)) from explicit
    Jacobians (P = 419 > N_r K = 36: the linearized model interpolates). 1e-10: the same
    float64 algebra at a kernel condition number of ~250 (the scalar kernels ~70-110): ~cond eps
    ~ 6e-14 (measured 2e-15 absolute; was 1e-8, needlessly loose)."""
    net, x, y = tiny
    f0, J = _explicit_jacobian(net, x)
    Jr, Jf = J[:N_R].reshape(N_R * K, -1), J[N_R:].reshape(N_F * K, -1)
    resid = (np.eye(K)[np.asarray(y[:N_R])] - f0[:N_R]).reshape(-1)
    expected = f0[N_R:] + (Jf @ Jr.T @ np.linalg.solve(Jr @ Jr.T, resid)).reshape(N_F, K)
    got = muso_ntk.linearized_retrain_outputs(net, x[:N_R], y[:N_R], x[N_R:], muso_ntk.NtkConfig(kernel="full", ridge=0.0))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["logit", "mean"])
def test_scalar_kernels_use_theta_bar_times_identity(tiny, kind):
    net, x, y = tiny
    f0, J = _explicit_jacobian(net, x)
    blocks = [J[:, a] @ J[:, a].T for a in range(K)]
    theta = blocks[0] if kind == "logit" else sum(blocks) / K
    resid = np.eye(K)[np.asarray(y[:N_R])] - f0[:N_R]
    expected = f0[N_R:] + theta[N_R:, :N_R] @ np.linalg.solve(theta[:N_R, :N_R], resid)
    got = muso_ntk.linearized_retrain_outputs(net, x[:N_R], y[:N_R], x[N_R:], muso_ntk.NtkConfig(kernel=kind, ridge=0.0))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)  # see the full kernel's test above


def test_class_forgetting_on_blobs_relabels_off_the_class_and_unlearns():
    """Three Gaussian blobs, forget class 0: no forget point keeps label 0 under the NTK relabel
    (the retrain never saw class 0, and its one-hot targets put 0 on that output), and the
    fine-tuned network predicts class 0 for none of them, while the other classes stay right.
    (With ``alternate=True`` it does NOT: measured, every forget point stays class 0; see the
    module docstring.)"""
    key = jax.random.key(3)
    centers = jnp.array([[3.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 3.0, 0]])
    y = jnp.repeat(jnp.arange(3), 20)
    x = (centers[y] + 0.5 * jax.random.normal(key, (60, 4))).astype(jnp.float32)
    net0 = split(make_model("mlp", (4,), 3, seed=0, param_dtype=jnp.float32, hidden=(32, 32)))
    net_p = train(jax.random.key(4), net0, x, y, TrainConfig(epochs=20, batch_size=16, lr=0.05))
    forget = np.asarray(y) == 0
    cfg = muso_ntk.NtkConfig(epochs=10, lr=1e-2, batch_size=16)
    outputs = muso_ntk.linearized_retrain_outputs(net0, x[~forget], y[~forget], x[forget], cfg)
    assert not np.any(np.argmax(outputs, axis=1) == 0)
    net_u, info = muso_ntk.unlearn(jax.random.key(5), net0, net_p, x, y, forget, cfg)
    pred = np.argmax(np.asarray(forward(net_u.graphdef, net_u.params, net_u.rest, x, train=False)[0]), axis=1)
    assert np.mean(pred[forget] == 0) == 0.0
    assert np.mean(pred[~forget] == np.asarray(y)[~forget]) == 1.0
    assert info._fields[0] == "seconds" and info.seconds > 0


def _explicit_min_norm_outputs(net, x, y):
    """f_0(X_f) + J_f pinv(J_r) (Y_r - f_0(X_r)): the minimum-norm least-squares fit of D_r by
    the linearized network, from explicit Jacobians (lstsq)."""
    f0, J = _explicit_jacobian(net, x)
    Jr, Jf = J[:N_R].reshape(N_R * K, -1), J[N_R:].reshape(N_F * K, -1)
    resid = (np.eye(K)[np.asarray(y[:N_R])] - f0[:N_R]).reshape(-1)
    return f0[N_R:] + (Jf @ np.linalg.lstsq(Jr, resid, rcond=None)[0]).reshape(N_F, K)


def test_a_singular_kernel_gives_the_minimum_norm_retrain():
    """An MLP 4-2-3 has P = 19 parameters < N_r K = 36 tangent rows: its full kernel has rank 19.
    With ridge 0 the relabel is the pseudo-inverse solve, the minimum-norm least-squares fit (the
    limit of gradient descent from p_0), not a LinAlgError. 1e-6: lstsq and the kernel's SVD
    drop the null space at different round-off levels, at a kernel condition near 1e6 (measured
    2e-15 here, but a singular value near either cutoff could move the answer by cond eps)."""
    net = split(make_model("mlp", (4,), K, seed=0, param_dtype=jnp.float64, hidden=(2,)))
    x = jax.random.normal(jax.random.key(1), (N_R + N_F, 4))
    y = jax.random.randint(jax.random.key(2), (N_R + N_F,), 0, K)
    cfg = muso_ntk.NtkConfig(kernel="full", ridge=0.0)
    got = muso_ntk.linearized_retrain_outputs(net, x[:N_R], y[:N_R], x[N_R:], cfg)
    np.testing.assert_allclose(got, _explicit_min_norm_outputs(net, x, y), rtol=1e-6, atol=1e-6)


def test_ridge_is_absolute_or_relative_to_the_mean_diagonal(tiny):
    """ridge_scale="absolute" with ridge c * mean(diag Theta_rr) is the default relative ridge c:
    the same solve (1e-12); the default is unchanged (relative, 1e-6)."""
    net, x, y = tiny
    theta = muso_ntk.ntk.kernel(net, x[:N_R], output=0)
    scale = float(jnp.mean(jnp.diagonal(theta)))
    relative = muso_ntk.NtkConfig(ridge=1e-2)
    absolute = muso_ntk.NtkConfig(ridge=1e-2 * scale, ridge_scale="absolute")
    assert muso_ntk.NtkConfig().ridge == 1e-6 and muso_ntk.NtkConfig().ridge_scale == "mean_diagonal"
    a = muso_ntk.linearized_retrain_outputs(net, x[:N_R], y[:N_R], x[N_R:], relative)
    b = muso_ntk.linearized_retrain_outputs(net, x[:N_R], y[:N_R], x[N_R:], absolute)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    c = muso_ntk.linearized_retrain_outputs(net, x[:N_R], y[:N_R], x[N_R:], absolute._replace(ridge=1e-2))
    assert np.max(np.abs(a - c)) > 1e-6  # a different epsilon (scale is not 1 here)


def test_the_kernel_solve_is_float64_for_a_float32_network():
    """With x64 off, a float32 network's relabel is still solved in float64: it equals the NumPy
    float64 solve of the same float32 kernel to 1e-10, far below float32's 1e-7."""
    with jax.enable_x64(False):
        net = split(make_model("mlp", (4,), K, seed=0, hidden=(16, 16)))
        x = np.asarray(jax.random.normal(jax.random.key(1), (N_R + N_F, 4)))
        y = np.asarray(jax.random.randint(jax.random.key(2), (N_R + N_F,), 0, K))
        cfg = muso_ntk.NtkConfig(ridge=1e-3)
        got = muso_ntk.linearized_retrain_outputs(net, x[:N_R], y[:N_R], x[N_R:], cfg)
        theta = np.asarray(muso_ntk.ntk.kernel(net, x, output=0), np.float64)
        f0 = np.asarray(muso_ntk.predict(net, x), np.float64)
    rr = theta[:N_R, :N_R] + 1e-3 * np.mean(np.diag(theta[:N_R, :N_R])) * np.eye(N_R)
    expected = f0[N_R:] + theta[N_R:, :N_R] @ np.linalg.solve(rr, np.eye(K)[y[:N_R]] - f0[:N_R])
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("field, value, match", [
    ("kernel", "diag", r"argument `kernel`: expected one of \['logit', 'mean', 'full'\]; got 'diag'"),
    ("ridge", -1.0, r"argument `ridge`: expected a finite number >= 0; got -1.0"),
    ("ridge_scale", "trace", r"argument `ridge_scale`: expected one of \['mean_diagonal', 'absolute'\]; got 'trace'"),
    ("temperature", 0.0, r"argument `temperature`: expected a finite number > 0; got 0.0"),
    ("logit", 3, r"argument `logit`: expected a logit index in \[0, 3\); got 3"),
    ("chunk", 0, r"argument `chunk`: expected an integer >= 1; got 0"),
    ("epochs", 0, r"argument `epochs`: expected an integer >= 1; got 0"),
])
def test_bad_config_names_the_argument(tiny, field, value, match):
    net, x, y = tiny
    with pytest.raises(ValueError, match=match):
        muso_ntk.linearized_retrain_outputs(net, x[:N_R], y[:N_R], x[N_R:], muso_ntk.NtkConfig(**{field: value}))


def test_bad_data_names_the_argument(tiny):
    net, x, y = tiny
    cfg = muso_ntk.NtkConfig()
    with pytest.raises(ValueError, match="argument `y_r`: expected one label per row of `x_r`"):
        muso_ntk.linearized_retrain_outputs(net, x[:N_R], y[:N_R - 1], x[N_R:], cfg)
    with pytest.raises(ValueError, match="argument `x_f`: expected inputs the network accepts"):
        muso_ntk.linearized_retrain_outputs(net, x[:N_R], y[:N_R], x[N_R:, :3], cfg)

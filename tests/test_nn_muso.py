"""MUSO for networks: the relabel step is the linear theory at step 0, the head-only algorithm
is exact on frozen features, the projector is a projector (and the authors' ablation is not)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import muso_jax as mj
from muso_jax.nn import muso
from muso_jax.nn.models import head_matrix, make_model, with_bias_column
from muso_jax.nn.state import predict, split
from muso_jax.nn.train import TrainConfig, train

N, N_R, D_IN, K = 40, 30, 6, 3


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N, D_IN))
    y = (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 0.5).astype(np.int32)
    return x, y


def _nets(hidden=(256,)):
    x, y = _data()
    net0 = split(make_model("mlp", (D_IN,), K, seed=0, hidden=hidden, param_dtype=jnp.float64))
    netp = train(jax.random.key(0), net0, x, y, TrainConfig(epochs=5, batch_size=8, lr=0.05))
    return x, y, net0, netp


def test_relabel_at_step_zero_is_the_linear_projector_form():
    x, y, net0, netp = _nets()
    W0, Wp = head_matrix(net0.params["head"]), head_matrix(netp.params["head"])
    z_sub = with_bias_column(predict(netp, x[:N_R:2], features=True))
    z_f = predict(netp, x[N_R:], features=True)
    eps = 1e-6
    R = muso.relabel_head(muso.head_projector(z_sub, eps), W0, Wp)
    labels = muso.forget_logits(z_f, z_f, R, Wp)  # step 0: current = original network
    linear = mj.projector_labels(z_sub, with_bias_column(z_f), W0, Wp, ridge=eps)
    # The same ridge projector in two implementations: a 15 x 15 solve of Z Z^T + eps I with
    # cond(Z) ~ 24, i.e. ~cond^2 eps ~ 1e-13 relative (measured 1.2e-14 absolute on logits ~1-10).
    np.testing.assert_allclose(labels, linear, rtol=1e-10, atol=1e-12)


def test_head_only_muso_on_frozen_features_reproduces_retraining_the_head():
    """Frozen extractor, head with F + 1 = 257 > N_r = 30: the head is the linear model of the
    theory. Train it on D (squared loss, SGD) from W_0, relabel D_f with the network relabel step
    (subset = all of D_r, eps = 0), fine-tune: it must land on the head retrained on D_r."""
    x, y, net0, netp = _nets()
    Z = with_bias_column(predict(net0, x, features=True))  # frozen features of the extractor
    Y = jax.nn.one_hot(y, K, dtype=Z.dtype)
    W0 = head_matrix(net0.params["head"])
    Wp, info = mj.sgd(jax.random.key(1), Z, Y, W0, lr=1.0 / float(jnp.max(jnp.sum(Z**2, 1))), tol=1e-12,
                      max_epochs=50000)
    assert bool(info.converged)
    R = muso.relabel_head(muso.head_projector(Z[:N_R], 0.0), W0, Wp)
    labels = muso.forget_logits(Z[N_R:, :-1], Z[N_R:, :-1], R, Wp)
    Wu, info_u = mj.sgd(jax.random.key(2), Z, Y.at[N_R:].set(labels), Wp, lr=1.0 / float(jnp.max(jnp.sum(Z**2, 1))),
                        tol=1e-12, max_epochs=50000)
    W_retrain = mj.min_norm_solution(Z[:N_R], Y[:N_R], W0)
    assert bool(info_u.converged)
    gap = float(jnp.linalg.norm(Wu - W_retrain) / jnp.linalg.norm(Wp - W_retrain))
    # The exactness theorem, through the network relabel code. SGD stops at residual 1e-12, so Wu
    # is within 1e-12 / s_min(Z) (s_min ~ 0.64) of its limit W_retrain, against ||Wp - W_retrain||
    # ~ 1.25: ~1.3e-12, plus the round-off of ~1e6 steps (measured 2e-12). 1e-10 (was 1e-8).
    assert gap < 1e-10


@pytest.mark.parametrize("n_rows", [10, 400])  # solved on the row side, then on the feature side
def test_relabel_projector_is_a_projector_and_the_ablation_is_not(n_rows):
    rng = np.random.default_rng(3)
    z = jnp.asarray(np.c_[rng.normal(size=(n_rows, 20)), np.ones(n_rows)])
    eps = 1e-6
    P = np.asarray(muso.head_projector(z, eps))
    eig = np.linalg.eigvalsh((P + P.T) / 2)
    # P is 21 x 21 with entries at most 1, from a solve on the smaller side: symmetric and in
    # [0, 1] up to ~n eps round-off (measured: exactly symmetric, eigenvalues >= -3e-16); 1e-12
    # absolute (the eigenvalue bounds were 1e-10).
    np.testing.assert_allclose(P, P.T, rtol=0, atol=1e-12)
    assert eig.min() > -1e-12 and eig.max() < 1 + 1e-12
    # Idempotent up to the ridge: P^2 - P has eigenvalues -eps s / (s + eps)^2, at most ~eps / s_min.
    s_min = float(np.linalg.svd(np.asarray(z), compute_uv=False)[-1] ** 2)
    assert np.linalg.norm(P @ P - P, 2) <= 2 * eps / s_min
    bad = np.asarray(muso.head_projector(z, eps, "authors_woodbury"))
    assert np.abs(np.linalg.eigvals(bad)).max() > 1e3  # ~1/eps: not a projector


def test_epsilon_ramp_runs_from_start_to_end():
    cfg = muso.MusoConfig(epochs=5)
    eps = [muso.epsilon(e, cfg) for e in range(5)]
    # eps_end + (eps_start - eps_end) * 1 cancels: up to half an ulp of 1e-2 (8.7e-19) is left,
    # 8.7e-13 relative to eps_start = 1e-6 (measured 7.4e-13).
    np.testing.assert_allclose([eps[0], eps[-1]], [cfg.eps_start, cfg.eps_end], rtol=1e-12)
    assert all(a < b for a, b in zip(eps, eps[1:]))


def test_unlearn_runs_and_reports(tmp_path):
    x, y, net0, netp = _nets(hidden=(32,))
    f = np.arange(N) >= N_R
    cfg = muso.MusoConfig(epochs=2, batch_size=16, lr=1e-3)
    netu, info = muso.unlearn(jax.random.key(0), net0, netp, x, y, f, cfg)
    assert info._fields[0] == "seconds" and info.seconds > 0 and len(info.losses) == 2
    for changed in (info.changed_at_start, info.changed_at_end):  # percent of the N - N_R forget points
        # A percentage of 10 points is a whole count once scaled back, up to float round-off.
        assert 0 <= changed <= 100 and abs(changed * (N - N_R) / 100 - round(changed * (N - N_R) / 100)) < 1e-9
    moved = sum(float(jnp.sum((a - b) ** 2)) for a, b in zip(jax.tree.leaves(netu.params), jax.tree.leaves(netp.params)))
    assert moved > 0
    soft, _ = muso.unlearn(jax.random.key(0), net0, netp, x, y, f, cfg._replace(soft=True))
    differs = sum(float(jnp.sum((a - b) ** 2)) for a, b in zip(jax.tree.leaves(soft.params), jax.tree.leaves(netu.params)))
    assert differs > 0  # the KL variant trains on other targets than the hard labels
    with pytest.raises(ValueError, match="`projector`"):
        muso.unlearn(jax.random.key(0), net0, netp, x, y, f, cfg._replace(projector="woodbury"))


@pytest.mark.parametrize("field, value, expected", [
    ("epochs", 0, "an integer >= 1"), ("batch_size", 0, "an integer >= 1"), ("lr", -1e-3, "a finite number > 0"),
    ("subset_ratio", 0.0, r"a number in \(0, 1\]"), ("eps_start", -1e-6, "a finite number >= 0"),
    ("schedule", "linear", "one of"),
])
def test_bad_configuration_is_refused_naming_the_field(field, value, expected):
    x, y = _data()
    net0 = split(make_model("mlp", (D_IN,), K, seed=0, hidden=(8,), param_dtype=jnp.float64))
    with pytest.raises(ValueError, match=f"argument `{field}`: expected {expected}"):
        muso.unlearn(jax.random.key(0), net0, net0, x, y, np.arange(N) >= N_R, muso.MusoConfig(**{field: value}))


@pytest.mark.parametrize("variant", muso.PROJECTORS)
@pytest.mark.parametrize("z, eps, match", [
    (np.ones(5), 1e-3, "argument `z`: expected a \\(n, F \\+ 1\\) feature matrix"),
    (np.ones((2, 3, 4)), 1e-3, "argument `z`: expected a \\(n, F \\+ 1\\) feature matrix"),
    (np.full((4, 3), np.nan), 1e-3, "argument `z`: expected finite values"),
    (np.ones((4, 3)), -1.0, "argument `eps`: expected a finite number >= 0"),
])
def test_head_projector_refuses_bad_input_naming_the_argument(variant, z, eps, match):
    with pytest.raises(ValueError, match=match):
        muso.head_projector(z, eps, variant)

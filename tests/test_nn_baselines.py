"""Baselines: each changes the model, reads only the data it is allowed, and SalUn's frozen
weights stay bit-identical whatever the optimizer does."""

import jax
import numpy as np
import pytest

from muso_jax.nn import baselines
from muso_jax.nn.models import make_model
from muso_jax.nn.state import split
from muso_jax.nn.train import TrainConfig, train

K = 3


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    y = ((x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)).astype(np.int32)
    net0 = split(make_model("mlp", (5,), K, seed=0, hidden=(32,)))
    netp = train(jax.random.key(0), net0, x, y, TrainConfig(epochs=5, batch_size=16))
    f = np.arange(60) >= 45
    return net0, netp, x[~f], y[~f], x[f], y[f]


def _small(name):
    return baselines.DEFAULTS[name]._replace(epochs=2, batch_size=16)


def _flat(net):
    return np.concatenate([np.ravel(a) for a in jax.tree.leaves(net.params)])


@pytest.mark.parametrize("name", list(baselines.METHODS))
def test_each_method_changes_the_model(name, setup):
    net0, netp, x_r, y_r, x_f, y_f = setup
    net_u, seconds = baselines.METHODS[name](jax.random.key(1), netp, net0, x_r, y_r, x_f, y_f, _small(name))
    assert seconds > 0 and np.all(np.isfinite(_flat(net_u)))
    assert np.linalg.norm(_flat(net_u) - _flat(netp)) > 0


@pytest.mark.parametrize("name, poisoned", [("FT", "forget"), ("l1-sparse", "forget"), ("GA", "retain")])
def test_methods_read_only_the_data_they_are_allowed(name, poisoned, setup):
    """Poison the data a method must not read (NaN inputs, labels out of range): the result is
    unchanged, so it was never read."""
    net0, netp, x_r, y_r, x_f, y_f = setup
    args = dict(x_r=x_r, y_r=y_r, x_f=x_f, y_f=y_f)
    clean, _ = baselines.METHODS[name](jax.random.key(1), netp, net0, **args, cfg=_small(name))
    if poisoned == "forget":
        args.update(x_f=np.full_like(x_f, np.nan), y_f=np.full_like(y_f, 10**6))
    else:
        args.update(x_r=np.full_like(x_r, np.nan), y_r=np.full_like(y_r, 10**6))
    dirty, _ = baselines.METHODS[name](jax.random.key(1), netp, net0, **args, cfg=_small(name))
    np.testing.assert_array_equal(_flat(clean), _flat(dirty))


def test_salun_frozen_weights_stay_bit_identical_under_momentum_and_weight_decay(setup):
    net0, netp, x_r, y_r, x_f, y_f = setup
    cfg = _small("SalUn")._replace(weight_decay=5e-2, lr=0.1)  # strong decay and momentum
    mask = baselines.saliency_mask(netp, x_f, y_f, cfg.sparsity)
    frozen = np.concatenate([np.ravel(m) for m in jax.tree.leaves(mask)]) == 0
    assert 0.3 < frozen.mean() < 0.7  # sparsity 0.5
    net_u, _ = baselines.salun(jax.random.key(1), netp, net0, x_r, y_r, x_f, y_f, cfg)
    before, after = _flat(netp), _flat(net_u)
    np.testing.assert_array_equal(after[frozen], before[frozen])  # bit for bit
    assert np.mean(after[~frozen] != before[~frozen]) > 0.9  # the salient weights do move


def test_l1_sparse_penalty_shrinks_the_weights_against_plain_finetuning(setup):
    net0, netp, x_r, y_r, x_f, y_f = setup
    cfg = _small("l1-sparse")._replace(l1=0.5, weight_decay=0.0)
    sparse, _ = baselines.l1_sparse(jax.random.key(1), netp, net0, x_r, y_r, x_f, y_f, cfg)
    plain, _ = baselines.finetune(jax.random.key(1), netp, net0, x_r, y_r, x_f, y_f, cfg)
    assert np.abs(_flat(sparse)).sum() < 0.9 * np.abs(_flat(plain)).sum()

"""Baselines: each changes the model, reads only the data it is allowed, and SalUn's frozen
weights stay bit-identical whatever the optimizer does; every method refuses bad input first."""

import jax
import numpy as np
import pytest

from muso_jax.nn import baselines, muso, muso_ntk
from muso_jax.nn.models import make_model
from muso_jax.nn.state import split
from muso_jax.nn.train import TrainConfig, train

K, N = 3, 60
FORGET = np.arange(N) >= 45


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 5)).astype(np.float32)
    y = ((x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)).astype(np.int32)
    net0 = split(make_model("mlp", (5,), K, seed=0, hidden=(32,)))
    netp = train(jax.random.key(0), net0, x, y, TrainConfig(epochs=5, batch_size=16))
    return net0, netp, x, y


def _small(name):
    return baselines.DEFAULTS[name]._replace(epochs=2, batch_size=16)


def _flat(net):
    return np.concatenate([np.ravel(a) for a in jax.tree.leaves(net.params)])


@pytest.mark.parametrize("name", list(baselines.METHODS))
def test_each_method_changes_the_model(name, setup):
    net0, netp, x, y = setup
    net_u, info = baselines.METHODS[name](jax.random.key(1), net0, netp, x, y, FORGET, _small(name))
    assert info._fields[0] == "seconds" and info.seconds > 0 and np.all(np.isfinite(_flat(net_u)))
    assert np.linalg.norm(_flat(net_u) - _flat(netp)) > 0


def test_a_forget_set_of_indices_is_the_same_forget_set_as_its_mask(setup):
    net0, netp, x, y = setup
    by_mask, _ = baselines.random_labels(jax.random.key(1), net0, netp, x, y, FORGET, _small("RL"))
    by_index, _ = baselines.random_labels(jax.random.key(1), net0, netp, x, y, np.flatnonzero(FORGET), _small("RL"))
    np.testing.assert_array_equal(_flat(by_mask), _flat(by_index))


@pytest.mark.parametrize("name, poisoned", [("FT", FORGET), ("l1-sparse", FORGET), ("GA", ~FORGET)])
def test_methods_read_only_the_data_they_are_allowed(name, poisoned, setup):
    """Replace the rows a method must not read with other inputs and labels: the result is
    unchanged, bit for bit, so they were never read."""
    net0, netp, x, y = setup
    clean, _ = baselines.METHODS[name](jax.random.key(1), net0, netp, x, y, FORGET, _small(name))
    rng = np.random.default_rng(7)
    x_dirty, y_dirty = x.copy(), y.copy()
    x_dirty[poisoned] = rng.normal(size=x[poisoned].shape).astype(x.dtype) * 100
    y_dirty[poisoned] = (y[poisoned] + 1) % K
    dirty, _ = baselines.METHODS[name](jax.random.key(1), net0, netp, x_dirty, y_dirty, FORGET, _small(name))
    np.testing.assert_array_equal(_flat(clean), _flat(dirty))


def test_salun_frozen_weights_stay_bit_identical_under_momentum_and_weight_decay(setup):
    net0, netp, x, y = setup
    cfg = _small("SalUn")._replace(weight_decay=5e-2, lr=0.1)  # strong decay and momentum
    mask = baselines.saliency_mask(netp, x[FORGET], y[FORGET], cfg.sparsity)
    frozen = np.concatenate([np.ravel(m) for m in jax.tree.leaves(mask)]) == 0
    # sparsity 0.5: the median threshold freezes half, up to ties at the threshold (which `>=`
    # counts as salient); the range tells "about half" from none or all.
    assert 0.3 < frozen.mean() < 0.7
    net_u, _ = baselines.salun(jax.random.key(1), net0, netp, x, y, FORGET, cfg)
    before, after = _flat(netp), _flat(net_u)
    np.testing.assert_array_equal(after[frozen], before[frozen])  # bit for bit
    assert np.mean(after[~frozen] != before[~frozen]) > 0.9  # the salient weights do move


def test_l1_sparse_penalty_shrinks_the_weights_against_plain_finetuning(setup):
    net0, netp, x, y = setup
    cfg = _small("l1-sparse")._replace(l1=0.5, weight_decay=0.0)
    sparse, _ = baselines.l1_sparse(jax.random.key(1), net0, netp, x, y, FORGET, cfg)
    plain, _ = baselines.finetune(jax.random.key(1), net0, netp, x, y, FORGET, cfg)
    assert np.abs(_flat(sparse)).sum() < 0.9 * np.abs(_flat(plain)).sum()


# Every unlearning method of the network path, with the one signature.
ALL = {**{name: (fn, _small(name)) for name, fn in baselines.METHODS.items()},
       "MUSO": (muso.unlearn, muso.MusoConfig(epochs=1, batch_size=16)),
       "muso-ntk": (muso_ntk.unlearn, muso_ntk.NtkConfig(epochs=1, batch_size=16))}


@pytest.mark.parametrize("name", list(ALL))
@pytest.mark.parametrize("forget, match", [
    (np.zeros(N, bool), "expected a non-empty forget set"),
    (np.array([], np.int64), "expected a non-empty forget set"),
    (np.ones(N, bool), "expected at least one retained row"),
    (np.array([3, 3]), "expected unique indices"),
])
def test_a_bad_forget_set_is_refused_before_any_work(name, forget, match, setup):
    net0, netp, x, y = setup
    fn, cfg = ALL[name]
    with pytest.raises(ValueError, match=f"argument `forget`: {match}"):
        fn(jax.random.key(1), net0, netp, x, y, forget, cfg)


@pytest.mark.parametrize("name", list(ALL))
@pytest.mark.parametrize("bad, match", [
    ("length", r"argument `y`: expected one label per row of `x` \(60\); got 59 labels"),
    ("label", r"argument `y`: expected labels in \[0, 3\) \(the network has 3 logits\); got labels from 0 to 3"),
    ("nan", r"argument `x`: expected finite values; got 1 NaN/inf entries"),
    ("net0", r"argument `net0`: expected the initialization of `net_p`"),
])
def test_bad_data_is_refused_naming_the_argument(name, bad, match, setup):
    net0, netp, x, y = setup
    fn, cfg = ALL[name]
    if bad == "length":
        y = y[:-1]
    elif bad == "label":
        y = np.where(np.arange(N) == 50, K, y)  # a D_f row: the methods that skip D_f must refuse it too
    elif bad == "nan":
        x = np.where(np.arange(x.size).reshape(x.shape) == 251, np.nan, x)
    else:
        net0 = split(make_model("mlp", (5,), K, seed=0, hidden=(8,)))
    with pytest.raises(ValueError, match=match):
        fn(jax.random.key(1), net0, netp, x, y, FORGET, cfg)


@pytest.mark.parametrize("field, value, expected", [
    ("temperature", 0.0, "a finite number > 0"), ("temperature", -1.0, "a finite number > 0"),
    ("epochs", 0, "an integer >= 1"), ("batch_size", 0, "an integer >= 1"), ("lr", 0.0, "a finite number > 0"),
    ("max_epochs", -1, "an integer >= 0"), ("sparsity", 1.5, r"a number in \[0, 1\]"),
    ("beta", -0.1, r"a number in \[0, 1\]"), ("l1", -1.0, "a finite number >= 0"),
    ("optimizer", "lion", "one of"),
])
def test_bad_configuration_is_refused_naming_the_field(field, value, expected, setup):
    net0, netp, x, y = setup
    name = {"max_epochs": "SCRUB", "sparsity": "SalUn", "beta": "NegGrad+", "l1": "l1-sparse"}.get(field, "SCRUB")
    with pytest.raises(ValueError, match=f"argument `{field}`: expected {expected}"):
        baselines.METHODS[name](jax.random.key(1), net0, netp, x, y, FORGET, _small(name)._replace(**{field: value}))

"""B networks at once: vmapped training and every unlearning method equal a loop of the
single-model calls, model by model; a looped method says so; bad batches are refused."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muso_jax.nn import experiment, muso, shadows
from muso_jax.nn.models import make_model
from muso_jax.nn.state import split
from muso_jax.nn.train import TrainConfig, train

K, N, B = 3, 48, 3
FORGET = np.arange(N) >= 36
CFG = TrainConfig(epochs=2, batch_size=16)


def _flat(net):
    return np.concatenate([np.ravel(a) for a in jax.tree.leaves((net.params, net.rest))])


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 5))  # float64 networks: the comparison is not blurred by float32
    y = ((x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)).astype(np.int32)
    nets = [split(make_model("mlp", (5,), K, seed=s, hidden=(16,), param_dtype=jnp.float64)) for s in range(B)]
    keys = jax.random.split(jax.random.key(3), B)
    net0s = shadows.stack(nets)
    net_ps = shadows.train_many(keys, net0s, x, y, CFG)
    return x, y, nets, keys, net0s, net_ps


def test_train_many_equals_a_loop_of_train(batch):
    x, y, nets, keys, net0s, net_ps = batch
    retrained = shadows.train_many(keys, net0s, x, y, CFG, retain=~FORGET)
    for b in range(B):
        alone = train(keys[b], nets[b], x, y, CFG)
        # float64, the same steps in the same order: equal to round-off of a batched matmul
        np.testing.assert_allclose(_flat(shadows.member(net_ps, b)), _flat(alone), rtol=0, atol=1e-12)
        alone_r = train(keys[b], nets[b], x, y, CFG, retain=~FORGET)
        np.testing.assert_allclose(_flat(shadows.member(retrained, b)), _flat(alone_r), rtol=0, atol=1e-12)
    assert not np.allclose(_flat(shadows.member(net_ps, 0)), _flat(shadows.member(net_ps, 1)))


@pytest.mark.parametrize("name", ["MUSO", *experiment.METHODS])
def test_unlearn_many_equals_a_loop_of_the_method(name, batch):
    x, y, nets, keys, net0s, net_ps = batch
    fn = muso.unlearn if name == "MUSO" else experiment.METHODS[name]
    cfg = (muso.MusoConfig() if name == "MUSO" else experiment.DEFAULTS[name])._replace(epochs=2, batch_size=16)
    many, info = shadows.unlearn_many(fn, keys, net0s, net_ps, x, y, FORGET, cfg)
    assert info.vmapped == (fn not in shadows.LOOPED) and info.seconds > 0
    assert info.vmapped or "host" in info.reason
    for b in range(B):
        alone, _ = fn(keys[b], nets[b], shadows.member(net_ps, b), x, y, FORGET, cfg)
        # 1e-10: float64 round-off of batched products, through two epochs of training
        np.testing.assert_allclose(_flat(shadows.member(many, b)), _flat(alone), rtol=0, atol=1e-10)


def test_predict_many_is_each_models_predict(batch):
    from muso_jax.nn.state import predict

    x, _, _, _, _, net_ps = batch
    logits = shadows.predict_many(net_ps, x)
    assert logits.shape == (B, N, K)
    for b in range(B):
        np.testing.assert_allclose(logits[b], predict(shadows.member(net_ps, b), x), rtol=0, atol=1e-12)


def test_bad_batches_are_refused(batch):
    x, y, nets, keys, net0s, _ = batch
    with pytest.raises(ValueError, match="argument `nets`: expected at least one"):
        shadows.stack([])
    other = split(make_model("mlp", (5,), K, seed=0, hidden=(8,), param_dtype=jnp.float64))
    with pytest.raises(ValueError, match="argument `nets`: expected networks of one architecture"):
        shadows.stack([nets[0], other])
    with pytest.raises(ValueError, match=r"argument `keys`: expected \(3,\) typed PRNG keys"):
        shadows.train_many(keys[:2], net0s, x, y, CFG)
    with pytest.raises(ValueError, match="argument `keys`"):
        shadows.train_many(jnp.zeros((B, 2), jnp.uint32), net0s, x, y, CFG)
    with pytest.raises(ValueError, match="argument `net_ps`: expected 3 models"):
        shadows.unlearn_many(muso.unlearn, keys, net0s, shadows.stack(nets[:2]), x, y, FORGET, muso.MusoConfig())

"""Flax models and the training loop (determinism, resume); the on-disk cache is tested in test_io.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from muso_jax.io import cache
from muso_jax.nn.models import head_matrix, make_model
from muso_jax.nn.state import predict, split
from muso_jax.nn.train import TrainConfig, make_optimizer, steps_per_epoch, train


@pytest.mark.parametrize("name, shape, kw", [("mlp", (8, 8, 1), {}), ("cnn", (8, 8, 1), {}),
                                             ("resnet18", (8, 8, 3), dict(width=4))])
def test_models_expose_features_and_head(name, shape, kw):
    model = make_model(name, shape, 5, seed=0, param_dtype=jnp.float64, **kw)
    x = jnp.linspace(0, 1, 3 * int(np.prod(shape))).reshape((3,) + shape)
    model.eval()  # running statistics, as predict() uses
    z, logits = model.features(x), model(x)
    assert logits.shape == (3, 5) and z.shape[0] == 3
    net = split(model)
    W = head_matrix(net.params["head"])
    assert W.shape == (z.shape[1] + 1, 5) and W.dtype == jnp.float64
    np.testing.assert_allclose(predict(net, x), jnp.c_[z, jnp.ones(3)] @ W, rtol=1e-12)


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="`model`.*'mlp'"):
        make_model("vgg", (8, 8, 1), 10, seed=0)


def _toy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int32)


def test_training_learns_is_replayed_by_the_key_and_resumes_exactly(tmp_path):
    x, y = _toy()
    net0 = split(make_model("mlp", (4,), 2, seed=1, hidden=(16,)))
    cfg = TrainConfig(epochs=4, batch_size=8, lr=0.1)
    a = train(jax.random.key(0), net0, x, y, cfg)
    b = train(jax.random.key(0), net0, x, y, cfg)
    assert all(bool(jnp.array_equal(u, v)) for u, v in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)))
    assert float(jnp.mean(jnp.argmax(predict(a, x), 1) == y)) > 0.9
    # Interrupt after epoch 2 (checkpoint to disk), resume: identical to the uninterrupted run.
    saved = {}

    class Interrupted(Exception):
        pass

    def checkpoint(epoch, net, opt_state, loss):
        cache.save(tmp_path / "ckpt.npz", (net, opt_state))
        saved["epoch"] = epoch
        if epoch == 1:
            raise Interrupted

    with pytest.raises(Interrupted):
        train(jax.random.key(0), net0, x, y, cfg, on_epoch=checkpoint)
    tx = make_optimizer(cfg, steps_per_epoch(len(y), cfg.batch_size))
    net, opt_state = cache.load(tmp_path / "ckpt.npz", (net0, tx.init(net0.params)))
    c = train(jax.random.key(0), net0, x, y, cfg, start=(net, opt_state, saved["epoch"] + 1))
    assert all(bool(jnp.array_equal(u, v)) for u, v in zip(jax.tree.leaves(a.params), jax.tree.leaves(c.params)))


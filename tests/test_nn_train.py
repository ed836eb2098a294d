"""Flax models and the training loop (determinism, resume); the on-disk cache is tested in test_io.py."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from muso_jax.io import cache
from muso_jax.nn import state
from muso_jax.nn.models import head_matrix, make_model
from muso_jax.nn.state import forward, predict, split
from muso_jax.nn import baselines, engine, muso, muso_ntk
from muso_jax.nn.train import TrainConfig, family, init_state, knobs_from_config, train


MODELS = {"mlp": ((8, 8, 1), {}), "cnn": ((8, 8, 1), {}), "resnet18": ((8, 8, 3), dict(width=4))}


@functools.lru_cache(maxsize=None)
def _model(name):
    """One float64 model per architecture for the whole module (ResNet-18's eager init is slow)."""
    shape, kw = MODELS[name]
    return make_model(name, shape, 5, seed=0, param_dtype=jnp.float64, **kw)


@pytest.mark.parametrize("name", list(MODELS))
def test_models_expose_features_and_head(name):
    shape = MODELS[name][0]
    model = _model(name)
    x = jnp.linspace(0, 1, 3 * int(np.prod(shape))).reshape((3,) + shape)
    model.eval()  # running statistics, as predict() uses
    z, logits = model.features(x), model(x)
    assert logits.shape == (3, 5) and z.shape[0] == 3
    net = split(model)
    W = head_matrix(net.params["head"])
    assert W.shape == (z.shape[1] + 1, 5) and W.dtype == jnp.float64
    # The same head as one matmul on [z, 1]: a few ulp (measured 0).
    np.testing.assert_allclose(predict(net, x), jnp.c_[z, jnp.ones(3)] @ W, rtol=1e-12)


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="`model`.*'mlp'"):
        make_model("vgg", (8, 8, 1), 10, seed=0)


@pytest.mark.parametrize("k", [0, -1, 2.0])
def test_number_of_classes_is_checked(k):
    with pytest.raises(ValueError, match=f"argument `num_classes`: expected an integer >= 1; got {k!r}"):
        make_model("mlp", (4,), k, seed=0)


def test_predict_keeps_a_bounded_number_of_compiled_functions():
    net = split(make_model("mlp", (4,), 2, seed=0, hidden=(3,), param_dtype=jnp.float64))
    # The same forward pass in batches of 2: round-off only (measured 0).
    np.testing.assert_allclose(predict(net, np.ones((3, 4)), batch_size=2), forward(*net, np.ones((3, 4)), train=False)[0],
                               rtol=1e-13)
    # Any hashable stands for a graphdef: the cache is keyed by it and compiles nothing until called.
    for i in range(3 * state.PREDICT_CACHE_SIZE):
        state._predict_fn(("architecture", i), i % 2 == 0)
    assert state._predict_fn.cache_info().currsize <= state.PREDICT_CACHE_SIZE


class _WithBatchNorm(nnx.Module):
    """Linear, BatchNorm, ReLU, head: the smallest network whose training reads batch statistics."""

    def __init__(self, rngs, dtype=jnp.float64):
        # No bias before BatchNorm (as in ResNets): its gradient is 0 in exact arithmetic, and
        # Adam would turn the round-off into steps of lr * round-off / eps.
        self.dense = nnx.Linear(4, 6, use_bias=False, param_dtype=dtype, rngs=rngs)
        self.bn = nnx.BatchNorm(6, momentum=0.5, dtype=dtype, param_dtype=dtype, rngs=rngs)
        self.head = nnx.Linear(6, 3, param_dtype=dtype, rngs=rngs)

    def features(self, x, *, mask=None):
        return jax.nn.relu(self.bn(self.dense(x), mask=None if mask is None else mask[:, None]))

    def __call__(self, x, *, mask=None):
        return self.head(self.features(x, mask=mask))


def _python_loop(net0, x, y, cfg, epochs, retain=None):
    """The reference of the engine: a Python loop of the same jitted step over the same batches,
    each batch cut to its real rows (no padding, no skipped batches)."""
    state = init_state(net0, cfg.optimizer)
    member = np.ones(len(y), bool) if retain is None else retain
    rows = engine.rows_for(y, member=member, num_classes=3, dtype=jax.tree.leaves(net0.params)[0].dtype)
    n = int(member.sum())
    k = knobs_from_config(net0, cfg, cfg.epochs * engine.steps_per_epoch(n, cfg.batch_size))
    step = jax.jit(lambda s, xb, v, r: engine.step(net0.graphdef, family(cfg.optimizer), s, xb, v, r, k))
    for epoch in range(epochs):
        idx, valid = engine.order(jax.random.fold_in(jax.random.key(0), epoch), jnp.asarray(member), cfg.batch_size)
        for i, v in zip(np.asarray(idx), np.asarray(valid)):
            real = i[v]
            if len(real):
                batch = jax.tree.map(lambda a: a[real], rows)
                state, _ = step(state, x[real], jnp.ones(len(real), bool), batch)
    return state


@pytest.mark.parametrize("dtype, rtol", [
    # The scan and the loop run the same operations, fused differently by XLA: round-off of nine
    # steps through BatchNorm (relative to max(|p|, 0.01), measured 1.8e-14 in float64 and
    # 2.3e-6 in float32); ten times that.
    (jnp.float64, 1e-12),
    (jnp.float32, 2e-5),
])
@pytest.mark.parametrize("optimizer, schedule", [("sgd", "cosine"), ("adamw", "step")])
def test_engine_equals_a_python_loop_of_the_same_step_padded_tail_and_batch_norm(dtype, rtol, optimizer, schedule):
    """11 rows in batches of 4: the last batch has 3 real rows and 1 padding row, which must
    enter neither the loss nor BatchNorm's statistics. On a retained subset of 7 rows, the
    batches past the members are skipped. Running statistics: flax keeps them in float32 (1e-6)."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(11, 4)).astype(dtype), rng.integers(0, 3, 11).astype(np.int32)
    net0 = split(_WithBatchNorm(nnx.Rngs(0), dtype))
    cfg = TrainConfig(epochs=3, batch_size=4, lr=0.1, optimizer=optimizer, schedule=schedule)
    for retain in (None, np.arange(11) % 3 != 0):
        got = train(jax.random.key(0), net0, x, y, cfg, retain=retain)
        want = _python_loop(net0, x, y, cfg, 3, retain)
        for a, b in zip(jax.tree.leaves(got.params), jax.tree.leaves(want.params)):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-2)  # |p| < 0.01: absolute
        for a, b in zip(jax.tree.leaves(got.rest), jax.tree.leaves(want.rest)):  # float32 statistics
            np.testing.assert_allclose(a, b, rtol=max(rtol, 1e-6), atol=1e-8)


def test_engine_order_puts_members_first_and_pads_the_tail():
    member = jnp.asarray(np.arange(10) % 3 != 0)  # 6 members
    idx, valid = engine.order(jax.random.key(3), member, 4)
    assert idx.shape == valid.shape == (3, 4)
    assert np.asarray(valid).sum() == 6 and np.asarray(valid).ravel()[:6].all()
    real = np.asarray(idx)[np.asarray(valid)]
    assert sorted(real) == list(np.flatnonzero(np.asarray(member)))


def test_augmentation_crops_and_flips_each_image():
    """Every augmented image is a (padded) shift of its original, possibly mirrored."""
    x = jnp.asarray(np.random.default_rng(0).normal(size=(6, 8, 8, 1)))
    out = engine.augment(jax.random.key(0), x)
    p = engine.CROP_PADDING
    for img, orig in zip(np.asarray(out), np.asarray(x)):
        padded = np.pad(orig, ((p, p), (p, p), (0, 0)))
        shifts = [padded[i:i + 8, j:j + 8] for i in range(2 * p + 1) for j in range(2 * p + 1)]
        assert any(np.array_equal(img, s) or np.array_equal(img, s[:, ::-1]) for s in shifts)
    assert not np.array_equal(out, x)


def test_resnet_batch_norm_reads_only_the_masked_rows():
    """Every BatchNorm of ResNet-18 (stem, blocks, shortcuts) sees the mask: with two garbage
    rows masked out, the real rows' outputs and the running statistics are those of the real
    rows alone: float64 round-off through 20 layers for the outputs (1e-10); flax keeps the
    running statistics in float32 whatever ``param_dtype``, so those agree to float32 (1e-6)."""
    net = split(_model("resnet18"))
    x = np.random.default_rng(1).normal(size=(5, 8, 8, 3))
    x[3:] *= 1e3
    fn = jax.jit(lambda net, x, mask: forward(*net, x, train=True, mask=mask))
    out, rest = fn(net, x, jnp.asarray(np.arange(5) < 3))
    ref_out, ref_rest = fn(net, x[:3], None)
    np.testing.assert_allclose(out[:3], ref_out, rtol=1e-10, atol=1e-10)
    for a, b in zip(jax.tree.leaves(rest), jax.tree.leaves(ref_rest)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("bad, match", [
    ("length", r"argument `y`: expected one label per row of `x` \(50\); got 49 labels"),
    ("range", r"argument `y`: expected labels in \[0, 2\) \(the network has 2 logits\); got labels from 0 to 2"),
    ("negative", r"argument `y`: expected labels in \[0, 2\).*got labels from -1 to 1"),
    ("float", r"argument `y`: expected a 1-D array of integer class labels; got .* dtype float"),
    ("nan", r"argument `x`: expected finite values; got 1 NaN/inf entries"),
    ("shape", r"argument `x`: expected inputs the network accepts; got shape \(50, 3\)"),
])
def test_training_refuses_bad_data_naming_the_argument(bad, match):
    x, y = _toy()
    x, y = dict(length=(x, y[:-1]), range=(x, np.r_[2, y[1:]]),
                negative=(x, np.r_[-1, y[1:]]), float=(x, y.astype(float)),
                nan=(np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x), y), shape=(x[:, :3], y))[bad]
    net0 = split(make_model("mlp", (4,), 2, seed=1, hidden=(16,)))
    with pytest.raises(ValueError, match=match):
        train(jax.random.key(0), net0, x, y, TrainConfig(epochs=1, batch_size=8))


@pytest.mark.parametrize("field, value, expected", [
    ("epochs", 0, "an integer >= 1"), ("batch_size", 0, "an integer >= 1"), ("epochs", 2.0, "an integer >= 1"),
    ("lr", 0.0, "a finite number > 0"), ("lr", -0.1, "a finite number > 0"), ("lr", float("nan"), "a finite number > 0"),
    ("momentum", 1.0, r"a number in \[0, 1\)"), ("weight_decay", -1.0, "a finite number >= 0"),
    ("optimizer", "lion", "one of"), ("schedule", "linear", "one of"),
])
def test_training_configuration_is_checked_naming_the_field(field, value, expected):
    x, y = _toy()
    net0 = split(make_model("mlp", (4,), 2, seed=1, hidden=(16,)))
    with pytest.raises(ValueError, match=f"argument `{field}`: expected {expected}"):
        train(jax.random.key(0), net0, x, y, TrainConfig(epochs=1, batch_size=8)._replace(**{field: value}))


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
    assert float(jnp.mean(jnp.argmax(predict(a, x), 1).astype(y.dtype) == y)) > 0.9
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
    net, opt_state = cache.load(tmp_path / "ckpt.npz", (net0, init_state(net0, cfg.optimizer).opt_state))
    c = train(jax.random.key(0), net0, x, y, cfg, start=(net, opt_state, saved["epoch"] + 1))
    assert all(bool(jnp.array_equal(u, v)) for u, v in zip(jax.tree.leaves(a.params), jax.tree.leaves(c.params)))



def test_one_compiled_epoch_per_model_optimizer_and_batch_shared_by_every_method_and_seed():
    """Original, Retrain, the eight baselines, MUSO and muso-ntk on two seeds compile one epoch
    program per (optimizer family, batch size): SGD at 64 (training and seven baselines), Adam(W)
    at 64 (Bad Teacher, muso-ntk) and Adam at 128 (MUSO): 3, whatever the number of seeds."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 4)).astype(np.float32), rng.integers(0, 3, 60).astype(np.int32)
    forget = np.arange(60) < 6
    net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float32))
    engine.program.cache_clear()
    before = engine.traces
    cfg = TrainConfig(epochs=1)
    for seed in range(2):
        key = jax.random.key(seed)
        net_p = train(key, net0, x, y, cfg)
        train(key, net0, x, y, cfg, retain=~forget)
        for method, config in baselines.DEFAULTS.items():
            baselines.METHODS[method](key, net0, net_p, x, y, forget, config._replace(epochs=1))
        muso.unlearn(key, net0, net_p, x, y, forget, muso.MusoConfig(epochs=1))
        muso_ntk.unlearn(key, net0, net_p, x, y, forget, muso_ntk.NtkConfig(epochs=1))
    assert engine.traces - before == 3


def test_bfloat16_compute_keeps_float32_parameters_and_outputs():
    """``--precision bf16``: the layers compute in bfloat16, parameters, optimizer state and
    predict's outputs stay float32, and training still learns. (Standard promotion: flax's
    BatchNorm and optax mix bfloat16 activations with float32 statistics by design.)"""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 1)).astype(np.float32)
    y = (x[:, :4].mean(axis=(1, 2, 3)) > 0).astype(np.int32)
    with jax.numpy_dtype_promotion("standard"):
        net0 = split(make_model("cnn", (8, 8, 1), 2, seed=0, dtype=jnp.bfloat16))
        net = train(jax.random.key(0), net0, x, y, TrainConfig(epochs=8, batch_size=16, lr=0.05))
        logits = predict(net, x)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(net.params)) and logits.dtype == jnp.float32
    assert float(np.mean(np.asarray(jnp.argmax(logits, 1)) == y)) > 0.8


def test_augmentation_of_non_images_is_refused_before_training():
    x, y = _toy()
    net0 = split(make_model("mlp", (4,), 2, seed=1, hidden=(4,)))
    with pytest.raises(ValueError, match=r"argument `augment`: expected \(N, H, W, C\) images.*\(50, 4\)"):
        train(jax.random.key(0), net0, x, y, TrainConfig(epochs=1, augment=True))

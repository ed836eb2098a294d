"""The CPU-friendly convolution and pooling (muso_jax.nn.layers) against XLA's own, in value and
gradient: float64, where both sum the same products in another order (1e-12 relative)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from muso_jax.nn import layers


def _reference(x, kernel, stride):
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("k, stride, size", [(3, 1, 7), (3, 1, 8), (3, 2, 8), (3, 2, 7), (1, 2, 8), (1, 1, 5),
                                             (5, 1, 6), (2, 1, 5)])
def test_conv2d_equals_xla_convolution_in_value_and_gradient(k, stride, size):
    rng = np.random.default_rng(k * 100 + stride * 10 + size)
    x = jnp.asarray(rng.normal(size=(2, size, size + 1, 3)))
    kernel = jnp.asarray(rng.normal(size=(k, k, 3, 4)))
    probe = jnp.asarray(rng.normal(size=_reference(x, kernel, stride).shape))  # a random cotangent
    ours, theirs = layers.conv2d(x, kernel, stride), _reference(x, kernel, stride)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-12)
    loss = lambda f: lambda x, w: jnp.sum(probe * f(x, w, stride))
    for g_ours, g_theirs in zip(jax.grad(loss(layers.conv2d), argnums=(0, 1))(x, kernel),
                                jax.grad(loss(_reference), argnums=(0, 1))(x, kernel)):
        np.testing.assert_allclose(g_ours, g_theirs, rtol=1e-12, atol=1e-12)
    # Forward mode too (the empirical NTK pushes tangents through jax.jvp).
    tangents = (jnp.asarray(rng.normal(size=x.shape)), jnp.asarray(rng.normal(size=kernel.shape)))
    _, t_ours = jax.jvp(lambda x, w: layers.conv2d(x, w, stride), (x, kernel), tangents)
    _, t_theirs = jax.jvp(lambda x, w: _reference(x, w, stride), (x, kernel), tangents)
    np.testing.assert_allclose(t_ours, t_theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("h, w", [(8, 8), (7, 9)])
def test_max_pool2_equals_flax_max_pool_in_value_and_gradient(h, w):
    x = jnp.asarray(np.random.default_rng(h).normal(size=(2, h, w, 3)))  # no ties: one maximum per window
    reference = lambda x: nnx.max_pool(x, (2, 2), strides=(2, 2), padding="VALID")
    np.testing.assert_array_equal(layers.max_pool2(x), reference(x))
    probe = jnp.asarray(np.random.default_rng(1).normal(size=reference(x).shape))
    np.testing.assert_array_equal(jax.grad(lambda x: jnp.sum(probe * layers.max_pool2(x)))(x),
                                  jax.grad(lambda x: jnp.sum(probe * reference(x)))(x))


def test_conv_layer_matches_flax_conv_with_the_same_parameters():
    ours = layers.Conv(3, 5, (3, 3), strides=2, param_dtype=jnp.float64, rngs=nnx.Rngs(0))
    theirs = nnx.Conv(3, 5, (3, 3), strides=2, padding="SAME", param_dtype=jnp.float64, rngs=nnx.Rngs(1))
    theirs.kernel[...], theirs.bias[...] = ours.kernel[...], ours.bias[...] + 0.5
    ours.bias[...] = ours.bias[...] + 0.5
    x = jnp.asarray(np.random.default_rng(2).normal(size=(2, 9, 9, 3)))
    np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-12, atol=1e-12)
    # Same initializer family and shapes as flax's: LeCun normal kernel, zero bias.
    assert ours.kernel[...].shape == (3, 3, 3, 5) and ours.kernel[...].dtype == jnp.float64
    assert 0.5 < float(jnp.std(layers.Conv(64, 64, rngs=nnx.Rngs(0)).kernel[...])) * np.sqrt(9 * 64) < 1.5


def test_conv_layer_computes_in_its_dtype_and_keeps_float32_parameters():
    conv = layers.Conv(3, 4, param_dtype=jnp.float32, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    y = conv(jnp.ones((1, 5, 5, 3), jnp.float32))
    assert y.dtype == jnp.bfloat16 and conv.kernel[...].dtype == jnp.float32

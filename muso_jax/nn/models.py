"""Networks that expose what MUSO's relabel step reads: penultimate features and the head.

Every model has ``features(x, mask=None) -> z`` (penultimate activations, (B, F)) and ``head``,
an ``nnx.Linear(F, K)``; ``model(x, mask=None) = head(features(x))``. ``mask`` ((B,) booleans)
names the rows that enter BatchNorm's batch statistics in training mode: the padding rows of a
short last batch must not (models without BatchNorm ignore it). The head's weight and bias, stacked as
``[kernel; bias]`` of shape (F + 1, K), are the last layer W of the MUSO paper, acting on
``[z, 1]`` (arXiv 2410.08557, nonlinear section).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from muso_jax.nn.layers import Conv, max_pool2

MODELS = ("mlp", "cnn", "resnet18", "resnet18-narrow")
NARROW_WIDTH = 16  # resnet18-narrow: stages of 16/32/64/128 channels, ~0.7M parameters, trainable on a CPU
# BatchNorm's running averages: running = 0.9 running + 0.1 batch, PyTorch's default (flax's 0.99
# leaves the running statistics far behind the weights after a few epochs of fine-tuning).
BN_MOMENTUM = 0.9


class MLP(nnx.Module):
    """Fully connected ReLU network on flattened inputs."""

    def __init__(self, in_shape, num_classes: int, hidden: Sequence[int] = (512, 512), *, param_dtype, dtype, rngs):
        sizes = (int(jnp.prod(jnp.array(in_shape))),) + tuple(hidden)
        self.layers = nnx.List([nnx.Linear(a, b, param_dtype=param_dtype, dtype=dtype, rngs=rngs)
                                for a, b in zip(sizes[:-1], sizes[1:])])
        self.head = nnx.Linear(sizes[-1], num_classes, param_dtype=param_dtype, dtype=dtype, rngs=rngs)

    def features(self, x, *, mask=None):
        z = x.reshape(x.shape[0], -1)
        for layer in self.layers:
            z = jax.nn.relu(layer(z))
        return z

    def __call__(self, x, *, mask=None):
        return self.head(self.features(x, mask=mask))


class CNN(nnx.Module):
    """Two 3x3 conv + max-pool stages, then a dense layer: a small CNN for 8x8 to 32x32 images."""

    def __init__(self, in_shape, num_classes: int, channels=(32, 64), width: int = 128, *, param_dtype, dtype, rngs):
        h, w, c = in_shape
        self.convs = nnx.List([Conv(a, b, (3, 3), param_dtype=param_dtype, dtype=dtype, rngs=rngs)
                               for a, b in zip((c,) + tuple(channels[:-1]), channels)])
        flat = (h // 2 ** len(channels)) * (w // 2 ** len(channels)) * channels[-1]
        self.dense = nnx.Linear(flat, width, param_dtype=param_dtype, dtype=dtype, rngs=rngs)
        self.head = nnx.Linear(width, num_classes, param_dtype=param_dtype, dtype=dtype, rngs=rngs)

    def features(self, x, *, mask=None):
        for conv in self.convs:
            x = max_pool2(jax.nn.relu(conv(x)))
        return jax.nn.relu(self.dense(x.reshape(x.shape[0], -1)))

    def __call__(self, x, *, mask=None):
        return self.head(self.features(x, mask=mask))


def _normalize(bn: nnx.BatchNorm, x, mask):
    """``bn(x)`` with batch statistics over the rows of ``mask`` only (all rows when None)."""
    return bn(x, mask=None if mask is None else mask.reshape(mask.shape + (1,) * (x.ndim - 1)))


class BasicBlock(nnx.Module):
    """ResNet basic block: two 3x3 conv + BN, identity or 1x1-conv shortcut (He et al. 2016)."""

    def __init__(self, cin: int, cout: int, stride: int, *, param_dtype, dtype, rngs):
        kw = dict(use_bias=False, param_dtype=param_dtype, dtype=dtype, rngs=rngs)
        bn = dict(momentum=BN_MOMENTUM, dtype=dtype or param_dtype, param_dtype=param_dtype, rngs=rngs)
        self.conv1 = Conv(cin, cout, (3, 3), strides=stride, **kw)
        self.bn1 = nnx.BatchNorm(cout, **bn)
        self.conv2 = Conv(cout, cout, (3, 3), **kw)
        self.bn2 = nnx.BatchNorm(cout, **bn)
        self.shortcut = nnx.data(None)
        if stride != 1 or cin != cout:
            self.shortcut = nnx.data(nnx.Sequential(Conv(cin, cout, (1, 1), strides=stride, **kw),
                                                    nnx.BatchNorm(cout, **bn)))

    def __call__(self, x, *, mask=None):
        y = jax.nn.relu(_normalize(self.bn1, self.conv1(x), mask))
        y = _normalize(self.bn2, self.conv2(y), mask)
        if self.shortcut is not None:
            conv, bn = self.shortcut.layers
            x = _normalize(bn, conv(x), mask)
        return jax.nn.relu(y + x)


class ResNet18(nnx.Module):
    """CIFAR-style ResNet-18: 3x3 stem without max-pool, stages of 2 blocks at 64/128/256/512."""

    def __init__(self, in_shape, num_classes: int, width: int = 64, *, param_dtype, dtype, rngs):
        c = in_shape[-1]
        self.stem = Conv(c, width, (3, 3), use_bias=False, param_dtype=param_dtype, dtype=dtype, rngs=rngs)
        self.bn = nnx.BatchNorm(width, momentum=BN_MOMENTUM, dtype=dtype or param_dtype, param_dtype=param_dtype,
                                rngs=rngs)
        blocks, cin = [], width
        for i, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
            for j in range(2):
                blocks.append(BasicBlock(cin, cout, 2 if (i > 0 and j == 0) else 1, param_dtype=param_dtype,
                                         dtype=dtype, rngs=rngs))
                cin = cout
        self.blocks = nnx.List(blocks)
        self.head = nnx.Linear(cin, num_classes, param_dtype=param_dtype, dtype=dtype, rngs=rngs)

    def features(self, x, *, mask=None):
        x = jax.nn.relu(_normalize(self.bn, self.stem(x), mask))
        for block in self.blocks:
            x = block(x, mask=mask)
        return jnp.mean(x, axis=(1, 2))

    def __call__(self, x, *, mask=None):
        return self.head(self.features(x, mask=mask))


def make_model(name: str, in_shape, num_classes: int, *, seed: int, param_dtype=jnp.float32, dtype=None, **kwargs):
    """Build a model by name; ``seed`` draws the initial parameters p_0.

    ``param_dtype``: the parameters' dtype; ``dtype``: the compute dtype (None: the parameters'),
    e.g. ``jnp.bfloat16`` with float32 parameters for mixed precision on an accelerator: every
    layer casts its parameters and inputs to ``dtype`` (BatchNorm computes its statistics in float32).

    Parameters
    ----------
    name : str
        One of :data:`MODELS`: ``"mlp"``, ``"cnn"``, ``"resnet18"``, ``"resnet18-narrow"``.
    in_shape : tuple of int
        The shape of one input: (D,) or (H, W, C) for the MLP (flattened), (H, W, C) for the
        convolutional networks.
    num_classes : int
        K, the number of logits (>= 1).
    seed : int
        The seed of ``nnx.Rngs`` that draws p_0.
    param_dtype, dtype
        The parameters' dtype and the compute dtype (None: the parameters').
    **kwargs
        Passed to the model's class, e.g. ``hidden=(8,)`` for the MLP's hidden widths.

    Returns
    -------
    nnx.Module
        The model; :func:`muso_jax.nn.state.split` turns it into a :class:`~muso_jax.nn.state.Net`.

    Raises
    ------
    ValueError
        On an unknown ``name`` (naming ``model``) or a ``num_classes`` that is not an integer >= 1.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from muso_jax.nn.models import make_model
    >>> model = make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64)
    >>> model(jnp.zeros((16, 4))).shape, model.features(jnp.zeros((16, 4))).shape
    ((16, 3), (16, 8))
    >>> make_model("vgg", (4,), 3, seed=0)
    Traceback (most recent call last):
        ...
    ValueError: argument `model`: expected one of ['mlp', 'cnn', 'resnet18', 'resnet18-narrow']; got 'vgg'
    """
    classes = {"mlp": MLP, "cnn": CNN, "resnet18": ResNet18,
               "resnet18-narrow": lambda *a, **kw: ResNet18(*a, **{"width": NARROW_WIDTH, **kw})}
    if name not in classes:
        raise ValueError(f"argument `model`: expected one of {list(MODELS)}; got {name!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"argument `num_classes`: expected an integer >= 1; got {num_classes!r}")
    return classes[name](tuple(in_shape), num_classes, param_dtype=param_dtype, dtype=dtype, rngs=nnx.Rngs(seed),
                         **kwargs)


def num_classes(net) -> int:
    """K, the number of logits of a split network (the width of its head).

    Parameters
    ----------
    net : Net
        A split network (any object with ``params["head"]["bias"]``).

    Returns
    -------
    int
        K.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from muso_jax.nn.models import make_model, num_classes
    >>> from muso_jax.nn.state import split
    >>> num_classes(split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64)))
    3
    """
    return int(net.params["head"]["bias"][...].shape[0])


def head_matrix(head_state) -> jax.Array:
    r"""The last layer as one (F + 1, K) matrix ``[kernel; bias]``, acting on ``[z, 1]``.

    .. math::
        W = \begin{bmatrix} W_{kernel} \\ b^\top \end{bmatrix}, \qquad
        \mathrm{head}(z) = [z, 1]\, W

    the last layer W of the MUSO paper (arXiv 2410.08557, nonlinear section), whose rows act on
    the penultimate features plus a constant 1.

    Parameters
    ----------
    head_state
        The head's parameters, e.g. ``net.params["head"]``: ``kernel`` (F, K) and ``bias`` (K,).

    Returns
    -------
    jax.Array
        (F + 1, K).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn.models import head_matrix, make_model, with_bias_column
    >>> from muso_jax.nn.state import predict, split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> W = head_matrix(net0.params["head"])
    >>> W.shape
    (9, 3)
    >>> x = np.random.default_rng(0).normal(size=(16, 4))
    >>> z = predict(net0, x, features=True)
    >>> bool(jnp.allclose(with_bias_column(z) @ W, predict(net0, x)))
    True
    """
    return jnp.concatenate([head_state["kernel"][...], head_state["bias"][...][None, :]], axis=0)


def with_bias_column(z) -> jax.Array:
    """``[z, 1]``: penultimate features with the constant that multiplies the bias.

    Parameters
    ----------
    z : (n, F) features

    Returns
    -------
    jax.Array
        (n, F + 1), the last column ones, in ``z``'s dtype.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from muso_jax.nn.models import with_bias_column
    >>> zb = with_bias_column(jnp.zeros((2, 3)))
    >>> zb.shape, zb[:, -1].tolist()
    ((2, 4), [1.0, 1.0])
    """
    return jnp.concatenate([z, jnp.ones((z.shape[0], 1), z.dtype)], axis=1)

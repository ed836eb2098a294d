r"""Convolution and max-pooling written for XLA's CPU backend inside a compiled epoch.

Measured on 2 cores, jaxlib 0.10.2 (docs/engine.md): inside a ``lax.scan`` body, the gradient of
``lax.conv_general_dilated`` with respect to its kernel runs about 90 times slower than the same
operation compiled on its own (5.3 s against 61 ms for a 3x3, 32 -> 64 convolution of 64 images
of 28x28), and the input gradient 3 times slower, while a forward convolution and a matrix
product keep their speed. So :func:`conv2d` keeps XLA's forward convolution and defines its
derivative through the im2col form of a convolution (Chellapilla et al. 2006; Goodfellow et al.,
*Deep Learning*, section 9.5): with cols(x) the (B H W, k_h k_w C_in) matrix of the shifted,
zero-padded copies of x,

.. math::
    y = \mathrm{cols}(x)\, W, \qquad
    dy = \mathrm{cols}(dx)\, W + \mathrm{cols}(x)\, dW

a tangent built of slices, pads and matrix products: forward mode (the NTK's ``jax.jvp``) uses
it as it is, and reverse mode transposes it into ``dL/dW = cols(x)^T dL/dy`` (a matrix product)
and the adjoint of the slices for ``dL/dx``. Strided and 1x1 convolutions are cols(x) times the
kernel matrix throughout. Max-pooling over 2x2 windows is a reshape and a max, whose gradient is elementwise
(XLA's select-and-scatter is not).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

_DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _same_padding(size: int, k: int, stride: int) -> tuple[int, int]:
    """'SAME' padding of one spatial axis: output ceil(size / stride), the extra pixel at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + k - size, 0)
    return total // 2, total - total // 2


def columns(x, kh: int, kw: int, stride: int = 1):
    r"""``cols(x)``: (B, H_out, W_out, kh * kw * C), the 'SAME'-padded windows of every output pixel,
    ordered (row offset, column offset, channel) like a (kh, kw, C, C_out) kernel reshaped.

    .. math::
        \mathrm{cols}(x)_{b,h,w,(i,j,c)} = \tilde x_{b,\, s h + i,\, s w + j,\, c}

    with :math:`\tilde x` the zero-padded image and s the stride (im2col: Chellapilla et al.
    2006; Goodfellow et al., *Deep Learning*, section 9.5).

    Parameters
    ----------
    x : (B, H, W, C) images, NHWC
    kh, kw : int
        The window's height and width.
    stride : int
        The step between windows; ``H_out = ceil(H / stride)``, ``W_out = ceil(W / stride)``.

    Returns
    -------
    jax.Array
        (B, H_out, W_out, kh * kw * C).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from muso_jax.nn.layers import columns
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> columns(x, 3, 3).shape, columns(x, 3, 3, stride=2).shape
    ((1, 4, 4, 9), (1, 2, 2, 9))
    >>> columns(x, 3, 3)[0, 0, 0].tolist()  # the top-left window, zero-padded
    [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 4.0, 5.0]
    """
    _, h, w, _ = x.shape
    (top, bottom), (left, right) = _same_padding(h, kh, stride), _same_padding(w, kw, stride)
    padded = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    ho, wo = -(-h // stride), -(-w // stride)
    views = [padded[:, i:i + (ho - 1) * stride + 1:stride, j:j + (wo - 1) * stride + 1:stride, :]
             for i in range(kh) for j in range(kw)]
    return views[0] if len(views) == 1 else jnp.concatenate(views, axis=-1)


def _by_columns(x, kernel, stride: int):
    kh, kw, cin, cout = kernel.shape
    cols = columns(x, kh, kw, stride)
    return (cols.reshape(-1, kh * kw * cin) @ kernel.reshape(kh * kw * cin, cout)).reshape(cols.shape[:3] + (cout,))


def _forward(x, kernel):
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_DIMENSIONS)


@jax.custom_jvp
def _conv_stride1(x, kernel):
    return _forward(x, kernel)


@_conv_stride1.defjvp
def _conv_stride1_jvp(primals, tangents):
    """Forward: XLA's convolution. Tangent: ``cols(dx) W + cols(x) dW``, linear in (dx, dW) and
    built of slices, pads and matrix products, so its transpose (the backward pass) is too."""
    (x, kernel), (dx, dkernel) = primals, tangents
    return _forward(x, kernel), _by_columns(dx, kernel, 1) + _by_columns(x, dkernel, 1)


def conv2d(x, kernel, stride: int = 1):
    r"""'SAME' 2-D convolution (cross-correlation, as every deep-learning library) of NHWC images
    ``x`` with an HWIO ``kernel``: equal to ``lax.conv_general_dilated(x, kernel, (stride,
    stride), "SAME")`` in value and gradient (summation order aside).

    .. math::
        y = \mathrm{cols}(x)\, W, \qquad dy = \mathrm{cols}(dx)\, W + \mathrm{cols}(x)\, dW

    (see the module docstring): odd stride-1 kernels keep XLA's forward convolution with this
    tangent; strided and 1x1 convolutions are the matrix product throughout.

    Parameters
    ----------
    x : (B, H, W, C_in) images
    kernel : (kh, kw, C_in, C_out)
    stride : int

    Returns
    -------
    jax.Array
        (B, ceil(H / stride), ceil(W / stride), C_out).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from muso_jax.nn.layers import conv2d
    >>> x = jnp.cos(jnp.arange(2 * 6 * 6 * 3.0)).reshape(2, 6, 6, 3)
    >>> kernel = jnp.sin(jnp.arange(3 * 3 * 3 * 4.0)).reshape(3, 3, 3, 4)
    >>> y = conv2d(x, kernel)
    >>> y.shape, conv2d(x, kernel, stride=2).shape
    ((2, 6, 6, 4), (2, 3, 3, 4))
    >>> reference = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME",
    ...                                          dimension_numbers=("NHWC", "HWIO", "NHWC"))
    >>> bool(jnp.allclose(y, reference, atol=1e-5))
    True
    """
    kh, kw = kernel.shape[:2]
    if stride == 1 and kh % 2 == 1 and kw % 2 == 1 and (kh, kw) != (1, 1):
        return _conv_stride1(x, kernel)
    return _by_columns(x, kernel, stride)


def max_pool2(x):
    r"""Max over non-overlapping 2x2 windows (stride 2, 'VALID': an odd last row or column is dropped).

    .. math::
        y_{b,h,w,c} = \max_{i, j \in \{0, 1\}} x_{b,\, 2h + i,\, 2w + j,\, c}

    Parameters
    ----------
    x : (B, H, W, C) images

    Returns
    -------
    jax.Array
        (B, H // 2, W // 2, C).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from muso_jax.nn.layers import max_pool2
    >>> x = jnp.arange(16.0).reshape(1, 4, 4, 1)
    >>> max_pool2(x)[0, :, :, 0].tolist()
    [[5.0, 7.0], [13.0, 15.0]]
    >>> max_pool2(jnp.zeros((1, 5, 5, 2))).shape
    (1, 2, 2, 2)
    """
    b, h, w, c = x.shape
    x = x[:, :h - h % 2, :w - w % 2, :]
    return jnp.max(x.reshape(b, h // 2, 2, w // 2, 2, c), axis=(2, 4))


class Conv(nnx.Module):
    """A 'SAME' convolution layer by :func:`conv2d`: parameters ``kernel`` (kh, kw, C_in, C_out) and
    ``bias`` (C_out,), initialized like ``nnx.Conv`` (LeCun normal, zeros)."""

    def __init__(self, cin: int, cout: int, kernel_size=(3, 3), *, strides: int = 1, use_bias: bool = True,
                 param_dtype=jnp.float32, dtype=None, rngs: nnx.Rngs):
        init = nnx.initializers.lecun_normal()
        self.kernel = nnx.Param(init(rngs.params(), tuple(kernel_size) + (cin, cout), param_dtype))
        self.bias = nnx.Param(jnp.zeros((cout,), param_dtype)) if use_bias else nnx.data(None)
        self.strides, self.dtype = int(strides), dtype

    def __call__(self, x):
        dtype = self.dtype or self.kernel[...].dtype
        y = conv2d(x.astype(dtype), self.kernel[...].astype(dtype), self.strides)
        return y if self.bias is None else y + self.bias[...].astype(dtype).reshape(1, 1, 1, -1)

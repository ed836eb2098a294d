"""Random-feature maps and their analytic kernels.

A feature map is a :class:`FeatureMap` of pure functions made by a factory that closes over
its hyperparameters (the stax pattern):

* ``init(key, in_dim) -> params`` draws the random weights once;
* ``apply(params, x) -> phi`` maps ONE example ``x`` of shape ``(d,)`` to ``phi`` of shape
  ``(M,)``; batch it with ``jax.vmap(apply, (None, 0))``;
* ``kernel(x, x2) -> k`` is the analytic limit ``E[phi(x) . phi(x2)]`` over the draw, for one
  pair of examples (the Monte-Carlo inner product converges to it as M grows).

The linear model on these features, ``f(x) = phi(x)^T theta``, is the setting of MUSO's
exactness theorem (Yang et al., arXiv 2410.08557, section "random features").
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from muso_jax import _checks


class FeatureMap(NamedTuple):
    """A random-feature map: ``init``, ``apply`` (one example) and its analytic ``kernel``."""

    init: Callable[[jax.Array, int], Any]
    apply: Callable[[Any, jax.Array], jax.Array]
    kernel: Callable[[jax.Array, jax.Array], jax.Array]
    num_features: int


class RFFParams(NamedTuple):
    W: jax.Array  # (d, D) frequencies, entries N(0, 1/sigma^2)


class ReLUParams(NamedTuple):
    W: jax.Array  # (d, M) weights, entries N(0, weight_std^2)
    b: jax.Array  # (M,) biases, entries N(0, bias_std^2)


def random_fourier(num_frequencies: int, sigma: float, *, dtype=None) -> FeatureMap:
    r"""Random Fourier features for the Gaussian kernel (Rahimi & Recht 2007), as in MUSO.

    .. math::
        W \in \mathbb{R}^{d \times D},\ W_{ij} \sim N(0, 1/\sigma^2), \qquad
        \phi(x) = \sqrt{1/D}\,[\cos(W^\top x);\ \sin(W^\top x)] \in \mathbb{R}^{2D}

    so ``M = 2D`` and ``||phi(x)|| = 1`` for every x. The kernel is
    ``E[phi(x) . phi(x')] = exp(-||x - x'||^2 / (2 sigma^2))``. The MUSO paper's linear
    experiment (arXiv 2410.08557) uses D = 2500, sigma = 20 on raw 0-255 MNIST pixels.

    Parameters
    ----------
    num_frequencies : int
        D >= 1, the number of frequencies; the map has M = 2D features.
    sigma : float
        Bandwidth > 0 of the Gaussian kernel.
    dtype : dtype, optional
        Of the drawn frequencies (default: JAX's default float).

    Returns
    -------
    FeatureMap
        ``init(key, d)`` draws ``RFFParams(W)`` with W of shape (d, D); ``apply(params, x)``
        maps one (d,) example to (2D,) features; ``kernel(x, x2)`` is the Gaussian kernel.

    Raises
    ------
    ValueError
        If ``num_frequencies`` is not an integer >= 1 or ``sigma`` is not positive.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import features
    >>> fmap = features.random_fourier(30, 2.0)
    >>> fmap.num_features
    60
    >>> params = fmap.init(jax.random.key(0), 3)  # inputs of dimension d = 3
    >>> params.W.shape
    (3, 30)
    >>> x = jax.random.normal(jax.random.key(1), (5, 3))
    >>> phi = features.featurize(fmap, params, x)
    >>> phi.shape
    (5, 60)
    >>> np.allclose(jnp.linalg.norm(phi, axis=1), 1.0)  # every ||phi(x)|| = 1
    True
    >>> round(float(fmap.kernel(x[0], x[0])), 6)
    1.0
    >>> features.random_fourier(0, 2.0)
    Traceback (most recent call last):
    ...
    ValueError: argument `num_frequencies`: expected an integer >= 1; got 0
    """
    D = _checks.positive_int("num_frequencies", num_frequencies)
    _checks.positive("sigma", sigma)

    def init(key, in_dim: int) -> RFFParams:
        d = _checks.positive_int("in_dim", in_dim)
        dt = dtype or jnp.result_type(float)
        return RFFParams(W=jax.random.normal(key, (d, D), dt) / jnp.asarray(sigma, dt))

    def apply(params: RFFParams, x: jax.Array) -> jax.Array:
        z = x @ params.W
        return jnp.concatenate([jnp.cos(z), jnp.sin(z)]) * jnp.sqrt(1.0 / D).astype(z.dtype)

    def kernel(x: jax.Array, x2: jax.Array) -> jax.Array:
        diff = x - x2
        return jnp.exp(-(diff @ diff) / (2.0 * sigma**2))

    return FeatureMap(init, apply, kernel, 2 * D)


def random_relu(num_features: int, *, weight_std: float = 1.0, bias_std: float = 1.0, dtype=None) -> FeatureMap:
    r"""ReLU random features and their arc-cosine kernel (Cho & Saul 2009, order 1).

    .. math::
        \phi(x) = \mathrm{relu}(W^\top x + b) / \sqrt{M}, \quad
        W_{ij} \sim N(0, s_w^2),\ b_j \sim N(0, s_b^2)

    With ``u = (s_w x, s_b)`` and ``u'`` likewise, ``E[phi(x) . phi(x')] =
    ||u|| ||u'|| (sin a + (pi - a) cos a) / (2 pi)``, ``a`` the angle between ``u`` and ``u'``.

    Parameters
    ----------
    num_features : int
        M >= 1.
    weight_std : float, optional
        :math:`s_w > 0`.
    bias_std : float, optional
        :math:`s_b \ge 0`.
    dtype : dtype, optional
        Of the drawn weights (default: JAX's default float).

    Returns
    -------
    FeatureMap
        ``init(key, d)`` draws ``ReLUParams(W, b)`` with W (d, M) and b (M,); ``apply`` maps
        one (d,) example to (M,) non-negative features; ``kernel`` is the arc-cosine kernel.

    Raises
    ------
    ValueError
        If ``num_features`` is not an integer >= 1, ``weight_std`` is not positive or
        ``bias_std`` is negative.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from muso_jax import features
    >>> fmap = features.random_relu(30)
    >>> params = fmap.init(jax.random.key(0), 3)
    >>> params.W.shape, params.b.shape
    ((3, 30), (30,))
    >>> phi = features.featurize(fmap, params, jax.random.normal(jax.random.key(1), (5, 3)))
    >>> phi.shape, bool((phi >= 0).all())
    ((5, 30), True)
    >>> e1, e2 = jnp.array([1.0, 0.0, 0.0]), jnp.array([0.0, 1.0, 0.0])
    >>> round(float(fmap.kernel(e1, e1)), 6)  # ||u||^2 / 2 with u = (1, 0, 0, 1)
    1.0
    >>> round(float(fmap.kernel(e1, e2)), 6)  # angle pi / 3 between (1, 0, 0, 1) and (0, 1, 0, 1)
    0.608998
    """
    M = _checks.positive_int("num_features", num_features)
    _checks.positive("weight_std", weight_std)
    _checks.nonnegative("bias_std", bias_std)

    def init(key, in_dim: int) -> ReLUParams:
        d = _checks.positive_int("in_dim", in_dim)
        dt = dtype or jnp.result_type(float)
        kw, kb = jax.random.split(key)
        return ReLUParams(
            W=weight_std * jax.random.normal(kw, (d, M), dt),
            b=bias_std * jax.random.normal(kb, (M,), dt),
        )

    def apply(params: ReLUParams, x: jax.Array) -> jax.Array:
        return jax.nn.relu(x @ params.W + params.b) * jnp.sqrt(1.0 / M).astype(params.W.dtype)

    def kernel(x: jax.Array, x2: jax.Array) -> jax.Array:
        u = jnp.append(weight_std * x, bias_std)
        u2 = jnp.append(weight_std * x2, bias_std)
        nu, nu2 = jnp.linalg.norm(u), jnp.linalg.norm(u2)
        scale = nu * nu2
        # A zero vector (x = 0 with no bias) has no angle; its kernel is 0 whatever cos is.
        cos = jnp.clip(jnp.where(scale > 0, u @ u2 / jnp.where(scale > 0, scale, 1.0), 1.0), -1.0, 1.0)
        angle = jnp.arccos(cos)
        return nu * nu2 * (jnp.sin(angle) + (jnp.pi - angle) * cos) / (2.0 * jnp.pi)

    return FeatureMap(init, apply, kernel, M)


def _feature_map(feature_map):
    if not isinstance(feature_map, FeatureMap):
        raise ValueError(f"argument `feature_map`: expected a FeatureMap (random_fourier, random_relu); "
                         f"got {type(feature_map).__name__}")


def _inputs(name, x, d=None):
    x = _checks.array(name, x, ndim=(2,), what="(N, d) batch of inputs")
    if d is not None and x.shape[1] != d:
        raise ValueError(f"argument `{name}`: expected inputs of dimension d = {d} (the feature map's); "
                         f"got shape {tuple(x.shape)}")
    return x


def featurize(feature_map: FeatureMap, params, x: jax.Array) -> jax.Array:
    r"""Feature matrix ``Phi`` of shape (N, M) for a batch ``x`` of shape (N, d).

    .. math::
        \Phi = [\phi(x_1); \dots; \phi(x_N)] \in \mathbb{R}^{N \times M}

    Parameters
    ----------
    feature_map : FeatureMap
        From :func:`random_fourier` or :func:`random_relu`.
    params
        Drawn by ``feature_map.init``.
    x : (N, d) array
        Inputs, d the dimension the parameters were drawn for.

    Returns
    -------
    jax.Array
        ``Phi``, of shape (N, M) with M = ``feature_map.num_features``.

    Raises
    ------
    ValueError
        If ``feature_map`` is not a FeatureMap, ``params`` are not what its ``init`` draws
        (their type and every shape are compared), or ``x`` is not (N, d).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import features
    >>> fmap = features.random_fourier(30, 2.0)
    >>> params = fmap.init(jax.random.key(0), 3)
    >>> x = jax.random.normal(jax.random.key(1), (5, 3))
    >>> features.featurize(fmap, params, x).shape
    (5, 60)
    >>> np.allclose(features.featurize(fmap, params, x)[0], fmap.apply(params, x[0]))
    True
    >>> features.featurize(fmap, params, jnp.ones((5, 4)))
    Traceback (most recent call last):
    ...
    ValueError: argument `x`: expected inputs of dimension d = 3 (the feature map's); got shape (5, 4)
    """
    _feature_map(feature_map)
    W = getattr(params, "W", None)
    if W is None or getattr(W, "ndim", 0) != 2:
        raise ValueError(f"argument `params`: expected the parameters drawn by this feature map's init "
                         f"(weights W of shape (d, M)); got {type(params).__name__}")
    # What this map's init draws for inputs of W's dimension (shapes only, nothing is computed):
    # the parameters of the other kind of map, or of another width, are refused here.
    expected = jax.eval_shape(lambda k: feature_map.init(k, W.shape[0]), jax.random.key(0))
    shapes = lambda p: [tuple(np.shape(leaf)) for leaf in jax.tree.leaves(p)]
    if type(params) is not type(expected) or shapes(params) != shapes(expected):
        raise ValueError(f"argument `params`: expected the parameters drawn by this feature map's init "
                         f"({type(expected).__name__} with shapes {shapes(expected)}); got "
                         f"{type(params).__name__} with shapes {shapes(params)}")
    x = _inputs("x", x, W.shape[0])
    return jax.vmap(feature_map.apply, (None, 0))(params, x)


def kernel_matrix(feature_map: FeatureMap, x: jax.Array, x2: jax.Array) -> jax.Array:
    r"""Analytic kernel matrix ``K[i, j] = k(x_i, x2_j)``, shape (N, N2).

    .. math::
        K_{ij} = k(x_i, x'_j) = \lim_{M \to \infty} \phi(x_i)^\top \phi(x'_j)

    Parameters
    ----------
    feature_map : FeatureMap
        From :func:`random_fourier` or :func:`random_relu`.
    x : (N, d) array
        First inputs.
    x2 : (N2, d) array
        Second inputs, of the same d.

    Returns
    -------
    jax.Array
        ``K``, of shape (N, N2).

    Raises
    ------
    ValueError
        If ``feature_map`` is not a FeatureMap or the inputs are not (N, d) and (N2, d).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import features
    >>> fmap = features.random_fourier(30, 2.0)
    >>> x = jax.random.normal(jax.random.key(1), (5, 3))
    >>> K = features.kernel_matrix(fmap, x, x[:2])
    >>> K.shape
    (5, 2)
    >>> np.allclose(K[:2], K[:2].T), np.allclose(jnp.diag(K[:2]), 1.0)
    (True, True)
    >>> d2 = jnp.sum((x[2] - x[0]) ** 2)  # the Gaussian kernel exp(-||x - x'||^2 / (2 sigma^2))
    >>> bool(np.isclose(K[2, 0], jnp.exp(-d2 / 8.0)))
    True
    """
    _feature_map(feature_map)
    x = _inputs("x", x)
    x2 = _inputs("x2", x2, x.shape[1])
    return jax.vmap(jax.vmap(feature_map.kernel, (None, 0)), (0, None))(x, x2)

r"""The empirical neural tangent kernel of a network at fixed parameters, and its linearization.

The tangent features of a network ``f(x; p)`` at ``p0`` are ``phi_a(x) = d f_a(x; p) / d p``
at ``p0``: fixed random features, one row per (input, logit). The linearized network

.. math::
    f_{\rm lin}(x; p) = f(x; p_0) + J(x)\,(p - p_0), \qquad J(x) = \partial_p f(x; p_0)

is exactly the linear model of MUSO's theory (Yang et al., arXiv 2410.08557; the linearization
of Lee et al., arXiv 1902.06720), and its kernel is the empirical NTK

.. math::
    \Theta_{ia,jb} = \langle \partial_p f_a(x_i; p_0), \partial_p f_b(x_j; p_0) \rangle.

Everything runs in evaluation mode (``train=False``: BatchNorm uses its running statistics),
so ``p -> f(x; p)`` is a fixed function. The kernel is computed in blocks of ``chunk`` rows:
the per-example Jacobians of one block of x1 (a reverse pass with K cotangents per example,
``chunk * K * P`` numbers) are pushed forward through the network at one block of x2 (JVPs),
so memory stays bounded whatever N is; only the (N1, K, N2, K) output grows with N.

``layers`` restricts the kernel to a subset of the parameters, named by their top-level
groups (``"head"``, ``"dense"``, ``"convs"``, ``"layers"``): the tangent kernel of the
linearization in those parameters alone, the others frozen at ``p0``,
``Theta^S = sum_{p in S} d_p f_a(x_i) d_p f_b(x_j)``. The full kernel is the sum over the groups.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from muso_jax import _checks
from muso_jax.nn.models import num_classes
from muso_jax.nn.state import Net, check_inputs, forward, param_dtype


def logits(net: Net, params, x):
    """Evaluation-mode logits ``f(x; params)`` of a batch, (B, K), inputs cast to the
    parameters' dtype: the fixed function ``p -> f(x; p)`` that the kernel differentiates.

    Parameters
    ----------
    net : Net
        The network (its graphdef and batch statistics).
    params
        Parameters p with the structure of ``net.params``.
    x : (B, ...) inputs

    Returns
    -------
    jax.Array
        (B, K).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import ntk
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> from muso_jax.nn.state import predict
    >>> f = ntk.logits(net0, net0.params, x)
    >>> f.shape, bool(jnp.allclose(f, predict(net0, x)))
    ((16, 3), True)
    """
    return forward(net.graphdef, params, net.rest, jnp.asarray(x).astype(param_dtype(net)), train=False)[0]


def check_layers(name: str, layers, net: Net):
    """``layers`` as a tuple of top-level parameter-group names of ``net`` (None: all parameters).

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    layers : None or sequence of str
        Distinct top-level keys of ``net.params`` (e.g. ``"head"``, ``"layers"``).
    net : Net

    Returns
    -------
    tuple of str or None

    Raises
    ------
    ValueError
        Naming ``name``: not a non-empty tuple or list, an unknown group, or a repeated one.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import ntk
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> ntk.check_layers("layers", ["head"], net0), ntk.check_layers("layers", None, net0)
    (('head',), None)
    >>> ntk.check_layers("layers", ("conv",), net0)
    Traceback (most recent call last):
        ...
    ValueError: argument `layers`: expected parameter groups among ['head', 'layers']; got 'conv'
    """
    if layers is None:
        return None
    groups = list(net.params.keys())
    if isinstance(layers, str) or not isinstance(layers, (tuple, list)) or not layers:
        raise ValueError(f"argument `{name}`: expected None or a non-empty tuple of parameter groups among "
                         f"{groups}; got {layers!r}")
    for layer in layers:
        if layer not in groups:
            raise ValueError(f"argument `{name}`: expected parameter groups among {groups}; got {layer!r}")
    if len(set(layers)) != len(layers):
        raise ValueError(f"argument `{name}`: expected distinct parameter groups; got {tuple(layers)!r}")
    return tuple(layers)


def subset(net: Net, layers):
    """The parameters the kernel differentiates: all of them (``layers`` None) or the named groups.

    Parameters
    ----------
    net : Net
    layers : tuple of str or None
        Checked groups (:func:`check_layers`).

    Returns
    -------
    pytree
        ``net.params``, or a dict of the named groups.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import ntk
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> list(ntk.subset(net0, ("head",)))
    ['head']
    >>> ntk.subset(net0, None) is net0.params
    True
    """
    return net.params if layers is None else {k: net.params[k] for k in layers}


def join(net: Net, sub, layers):
    """The full parameter pytree with the groups of ``sub`` in place of ``net.params``' ones.

    Parameters
    ----------
    net : Net
        The network whose other groups are kept (frozen at ``net.params``).
    sub
        Parameters of the groups ``layers`` (as :func:`subset` returns them).
    layers : tuple of str or None
        None: ``sub`` is the whole pytree.

    Returns
    -------
    pytree
        Every group of ``net.params``, those of ``layers`` taken from ``sub`` (an ``nnx.State``
        with the same leaves; its inner nodes may be States where ``net.params`` has dicts).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import ntk
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> head = jax.tree.map(lambda a: a + 1.0, ntk.subset(net0, ("head",)))
    >>> params = ntk.join(net0, head, ("head",))
    >>> shift = ntk.logits(net0, params, x) - ntk.logits(net0, net0.params, x)
    >>> shift.shape, bool(jnp.all(shift > 0))  # a larger head, the hidden layer unchanged
    ((16, 3), True)
    """
    if layers is None:
        return sub
    return nnx.State({k: (sub[k] if k in layers else net.params[k]) for k in net.params.keys()})


def _inputs(name: str, x, net: Net):
    """A batch of inputs in the parameters' dtype; returns it and the number of logits K."""
    return check_inputs(name, net, x).astype(param_dtype(net)), num_classes(net)


def check_params(name: str, params, reference, reference_name: str = "net0.params"):
    """Raise unless ``params`` is a pytree of ``reference``'s structure and leaf shapes.

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    params, reference
        Parameter pytrees.
    reference_name : str
        The reference's name, for the error message.

    Returns
    -------
    None

    Raises
    ------
    ValueError
        Naming ``name``: another structure, or a leaf of another shape.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import ntk
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> ntk.check_params("params", net0.params, net0.params) is None
    True
    >>> ntk.check_params("params", ntk.subset(net0, ("head",)), net0.params)
    Traceback (most recent call last):
        ...
    ValueError: argument `params`: expected a parameter pytree with the structure of `net0.params` (4 leaves); got another structure (2 leaves)
    """
    if jax.tree.structure(params) != jax.tree.structure(reference):
        raise ValueError(
            f"argument `{name}`: expected a parameter pytree with the structure of `{reference_name}` "
            f"({len(jax.tree.leaves(reference))} leaves); got another structure ({len(jax.tree.leaves(params))} leaves)"
        )
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(reference)):
        if jnp.shape(a) != jnp.shape(b):
            raise ValueError(
                f"argument `{name}`: expected the leaf {jax.tree_util.keystr(path)} of shape {jnp.shape(b)} like "
                f"`{reference_name}`; got shape {jnp.shape(a)}"
            )


def _outputs_like(name: str, v, x, net: Net, what: str):
    """A (B, K) array matching the B inputs ``x`` and the K logits of ``net``."""
    k = num_classes(net)
    v = _checks.array(name, v, ndim=(2,), what=f"(B, K = {k}) {what}")
    if v.shape != (x.shape[0], k):
        raise ValueError(f"argument `{name}`: expected shape ({x.shape[0]}, {k}) (one row of K logits per input); "
                         f"got shape {tuple(v.shape)}")
    return v


def _jacobian(net: Net, x, output, layers=None):
    """Per-example Jacobians of a block: leaves (c, K, *shape), or (c, *shape) for one logit."""

    def one(xi):
        f = lambda p: logits(net, join(net, p, layers), xi[None])[0]
        g = f if output is None else (lambda p: f(p)[output])
        return jax.jacrev(g)(subset(net, layers))

    return jax.vmap(one)(x)


def _block(net: Net, Ja, xb, output, layers=None):
    """One block of the kernel: the rows whose Jacobians are ``Ja`` against the inputs ``xb``.

    Each Jacobian row of the a-block is pushed forward through the network at xb
    (``jax.linearize`` once, then a vmapped JVP): about 2 multiply-adds per parameter per
    (row, example), against K for contracting two materialized Jacobians. Measured on an MLP
    64-512-512-10 (CPU, float32) it is 3x faster for the full kernel and 2x for one logit.
    """
    lead = 1 if output is not None else 2
    shape = jax.tree.leaves(Ja)[0].shape[:lead]
    tangents = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[lead:]), Ja)
    _, push = jax.linearize(lambda p: logits(net, join(net, p, layers), xb), subset(net, layers))
    out = jax.vmap(push)(tangents)  # (rows, c_b, K)
    if output is not None:
        out = out[..., output]
    return out.reshape(shape + out.shape[1:])


def _transpose(theta, lead: int):
    """``Theta[i,a,j,b] -> Theta[j,b,i,a]`` (or the plain transpose of a one-logit kernel)."""
    return theta.T if lead == 1 else theta.transpose(2, 3, 0, 1)


def _blocks(x, chunk):
    n = x.shape[0]
    pad = -n % chunk
    x = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)]) if pad else x
    return x.reshape((-1, chunk) + x.shape[1:])


@functools.partial(jax.jit, static_argnames=("chunk", "output", "symmetric", "layers"))
def _kernel(net, x1, x2, *, chunk, output, symmetric, layers=None):
    lead = 1 if output is not None else 2
    xs1, xs2 = _blocks(x1, chunk), _blocks(x2, chunk)
    n2c = xs2.shape[0]

    def row(carry, args):
        i, xa = args
        Ja = _jacobian(net, xa, output, layers)

        def column(_, args):
            j, xb = args
            compute = lambda _: _block(net, Ja, xb, output, layers)
            if not symmetric:
                return None, compute(None)
            # Gram of one set: only the blocks on and above the diagonal are computed (the ones
            # below are their transposes); a diagonal block is made exactly symmetric.
            def on_or_above(_):
                block = compute(None)
                return jnp.where(i == j, (block + _transpose(block, lead)) / 2, block)

            shape = jax.eval_shape(compute, None)
            below = lambda _: jnp.zeros(shape.shape, shape.dtype)
            return None, lax.cond(j >= i, on_or_above, below, None)

        _, blocks = lax.scan(column, None, (jnp.arange(n2c), xs2))  # (n2c, c, [K,] c, [K])
        # Bring the column-block axis next to the column rows: (c, [K,] n2c, c, [K]).
        return carry, jnp.moveaxis(blocks, 0, lead)

    _, rows = lax.scan(row, None, (jnp.arange(xs1.shape[0]), xs1))  # (n1c, c, [K,] n2c, c, [K])
    n1p, n2p = xs1.shape[0] * chunk, n2c * chunk
    theta = rows.reshape((n1p, n2p) if lead == 1 else (n1p, -1, n2p, rows.shape[-1]))
    if symmetric:
        owner = jnp.repeat(jnp.arange(xs1.shape[0]), chunk)  # block index of each padded row
        upper = owner[:, None] <= owner[None, :]
        theta = jnp.where(upper if lead == 1 else upper[:, None, :, None], theta, _transpose(theta, lead))
    n1, n2 = x1.shape[0], x2.shape[0]
    return theta[:n1, :, :n2] if output is None else theta[:n1, :n2]


def kernel(net: Net, x1, x2=None, *, chunk: int = 32, output=None, layers=None):
    r"""Empirical NTK of ``net`` (at its parameters) between two batches of inputs.

    .. math::
        \Theta_{ia,jb} = \sum_{\rm params} \partial_p f_a(x_i)\, \partial_p f_b(x_j)

    (the neural tangent kernel of Jacot et al. 2018, arXiv 1806.07572, at fixed parameters:
    the kernel of the linearized network, Lee et al., arXiv 1902.06720, that MUSO's theory
    applies to, arXiv 2410.08557).

    Parameters
    ----------
    net : Net
        The network; its parameters are ``p0``. Float64 parameters give a float64 kernel
        (inputs are cast to the parameters' dtype).
    x1 : (N1, ...) inputs
    x2 : (N2, ...) inputs, optional
        None means x1 (the Gram matrix, computed on and above the block diagonal and then made
        exactly symmetric).
    chunk : int
        Rows per block; the working memory is about ``chunk * K * P`` numbers (the Jacobian
        rows of one block) plus the output. The result does not depend on it (up to round-off:
        the same products, batched differently).
    output : int, optional
        None for the full multi-output kernel; an int ``a`` for the kernel of logit ``a``
        alone (the diagonal block ``[:, a, :, a]``).
    layers : tuple of str, optional
        None (all parameters) or top-level parameter groups (e.g. ``("head",)``): the tangent
        kernel of those parameters alone.

    Returns
    -------
    jax.Array
        (N1, K, N2, K) for ``output=None``, (N1, N2) for one logit.

    Raises
    ------
    ValueError
        On a bad ``chunk``, ``layers``, ``output``, or inputs (``x1``, ``x2``).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import ntk
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> theta = ntk.kernel(net0, x)
    >>> theta.shape, bool(jnp.allclose(theta, theta.transpose(2, 3, 0, 1)))  # a symmetric Gram
    ((16, 3, 16, 3), True)
    >>> theta0 = ntk.kernel(net0, x, output=0)
    >>> theta0.shape, bool(jnp.allclose(theta0, theta[:, 0, :, 0]))
    ((16, 16), True)
    >>> ntk.kernel(net0, x, output=3)
    Traceback (most recent call last):
        ...
    ValueError: argument `output`: expected None or a logit index in [0, 3); got 3
    """
    chunk = _checks.positive_int("chunk", chunk)
    layers = check_layers("layers", layers, net)
    x1, k = _inputs("x1", x1, net)
    symmetric = x2 is None
    if symmetric:
        x2 = x1
    else:
        x2, _ = _inputs("x2", x2, net)
        if x2.shape[1:] != x1.shape[1:]:
            raise ValueError(
                f"argument `x2`: expected inputs of shape (N2, {', '.join(map(str, x1.shape[1:]))}) like "
                f"`x1`; got shape {tuple(x2.shape)}"
            )
    check_output(output, k)
    return _kernel(net, x1, x2, chunk=min(chunk, max(x1.shape[0], x2.shape[0])), output=output,
                   symmetric=symmetric, layers=layers)


def check_output(output, k: int):
    """``output`` unchanged when it is None or a logit index in [0, K), else a ValueError.

    Parameters
    ----------
    output : int or None
    k : int
        K, the number of logits.

    Returns
    -------
    int or None

    Raises
    ------
    ValueError
        Naming ``output``.

    Examples
    --------
    >>> from muso_jax.nn.ntk import check_output
    >>> check_output(None, 3), check_output(2, 3)
    (None, 2)
    >>> check_output(3, 3)
    Traceback (most recent call last):
        ...
    ValueError: argument `output`: expected None or a logit index in [0, 3); got 3
    """
    if output is not None and (isinstance(output, bool) or not isinstance(output, int) or not 0 <= output < k):
        raise ValueError(f"argument `output`: expected None or a logit index in [0, {k}); got {output!r}")
    return output


def diagonal(net: Net, x, *, chunk: int = 32, output=None, layers=None):
    r"""The kernel's diagonal ``Theta_{ia,ia} = ||d_p f_a(x_i)||^2`` without the rest of it.

    (N, K) for ``output=None`` (every logit), (N,) for one logit ``a``; ``layers`` as in
    :func:`kernel`. One block of per-example Jacobians at a time: N (or N K) gradient rows,
    linear in N, against the N^2 entries of the kernel.

    .. math::
        \Theta_{ia,ia} = \lVert \partial_p f_a(x_i; p_0) \rVert^2

    Parameters
    ----------
    net : Net
    x : (N, ...) inputs
    chunk : int
        Rows per block.
    output : int, optional
        None for every logit; an int ``a`` for logit ``a`` alone.
    layers : tuple of str, optional
        As in :func:`kernel`.

    Returns
    -------
    jax.Array
        (N, K) for ``output=None``, (N,) for one logit.

    Raises
    ------
    ValueError
        On a bad ``chunk``, ``layers``, ``output`` or ``x``.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import ntk
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> d = ntk.diagonal(net0, x)
    >>> d.shape, bool(jnp.allclose(d, jnp.einsum("iaia->ia", ntk.kernel(net0, x))))
    ((16, 3), True)
    """
    chunk = _checks.positive_int("chunk", chunk)
    layers = check_layers("layers", layers, net)
    x, k = _inputs("x", x, net)
    check_output(output, k)
    return _diagonal(net, x, chunk=min(chunk, x.shape[0]), output=output, layers=layers)


@functools.partial(jax.jit, static_argnames=("chunk", "output", "layers"))
def _diagonal(net, x, *, chunk, output, layers):
    lead = 1 if output is not None else 2

    def one_block(_, xa):
        J = _jacobian(net, xa, output, layers)
        return None, sum(jnp.sum(a.reshape(a.shape[:lead] + (-1,)) ** 2, axis=-1) for a in jax.tree.leaves(J))

    _, d = lax.scan(one_block, None, _blocks(x, chunk))
    return d.reshape((-1,) + d.shape[2:])[: x.shape[0]]


def linearized_apply(net0: Net, params, x):
    r"""The linearized network at ``p0 = net0.params``, evaluated by one forward-mode pass.

    .. math::
        f_{\rm lin}(x; p) = f(x; p_0) + J(x)\,(p - p_0)

    (Lee et al., arXiv 1902.06720: the linear model of MUSO's theory, arXiv 2410.08557, with
    the tangent features as its features.)

    Parameters
    ----------
    net0 : Net
        The network at its initialization (the expansion point p_0).
    params
        Parameters p with the structure of ``net0.params``.
    x : (B, ...) inputs

    Returns
    -------
    jax.Array
        (B, K) outputs.

    Raises
    ------
    ValueError
        On ``params`` of another structure or shapes, or bad ``x``.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import ntk
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> f = ntk.linearized_apply(net0, net0.params, x)  # at p = p_0: the network itself
    >>> f.shape, bool(jnp.allclose(f, ntk.logits(net0, net0.params, x)))
    ((16, 3), True)
    """
    check_params("params", params, net0.params)
    x, _ = _inputs("x", x, net0)
    dp = jax.tree.map(jnp.subtract, params, net0.params)
    f0, jdp = jax.jvp(lambda p: logits(net0, p, x), (net0.params,), (dp,))
    return f0 + jdp


def pullback(net0: Net, x, cotangent):
    r"""``J(x)^T v``: the parameter-space vector of tangent-feature coefficients ``v`` (B, K).

    ``net0.params + pullback(net0, x, alpha)`` is the model ``p0 + Phi^T alpha`` of the kernel
    form (:mod:`muso_jax.kernel_form`) with the tangent features as ``Phi``.

    .. math::
        J(x)^\top v = \sum_{i, a} v_{ia}\, \partial_p f_a(x_i; p_0)

    Parameters
    ----------
    net0 : Net
        The expansion point p_0.
    x : (B, ...) inputs
    cotangent : (B, K)
        The coefficients v.

    Returns
    -------
    pytree
        Like ``net0.params``.

    Raises
    ------
    ValueError
        On bad ``x`` or a ``cotangent`` of another shape than (B, K).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import ntk
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> v = jax.nn.one_hot(y, 3, dtype=jnp.float64)
    >>> g = ntk.pullback(net0, x, v)
    >>> [a.shape for a in jax.tree.leaves(g)] == [a.shape for a in jax.tree.leaves(net0.params)]
    True
    >>> ntk.pullback(net0, x, v[:8])
    Traceback (most recent call last):
        ...
    ValueError: argument `cotangent`: expected shape (16, 3) (one row of K logits per input); got shape (8, 3)
    """
    x, _ = _inputs("x", x, net0)
    cotangent = _outputs_like("cotangent", cotangent, x, net0, "array of coefficients")
    _, vjp = jax.vjp(lambda p: logits(net0, p, x), net0.params)
    return vjp(cotangent.astype(param_dtype(net0)))[0]


def gradient_step(net0: Net, params, x, y, lr):
    r"""One gradient-descent step of the linearized network on the squared loss (sum convention).

    .. math::
        L(p) = \tfrac12 \sum_i \|f_{\rm lin}(x_i; p) - y_i\|^2, \qquad
        p \leftarrow p - \eta\, J^\top (f_{\rm lin}(x; p) - y)

    Every step adds ``J^T r`` (tangent features times coefficients), so the iterates stay in
    ``p0 + row(J)``: the implicit bias of MUSO's lemma. Returns ``(params, residual)`` with the
    residual ``f_lin(x; p) - y`` before the step.

    (MUSO, arXiv 2410.08557, implicit-bias lemma, on the tangent features.)

    Parameters
    ----------
    net0 : Net
        The expansion point p_0.
    params
        The current p, like ``net0.params``.
    x : (B, ...) inputs
    y : (B, K) targets
    lr : float
        The step size, > 0.

    Returns
    -------
    tuple
        ``(params, residual)``: p after the step and the (B, K) residual before it.

    Raises
    ------
    ValueError
        On bad ``x``, ``y`` (shape (B, K)) or ``lr``.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import ntk
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> targets = jax.nn.one_hot(y, 3, dtype=jnp.float64)
    >>> p1, r0 = ntk.gradient_step(net0, net0.params, x, targets, 0.01)
    >>> p2, r1 = ntk.gradient_step(net0, p1, x, targets, 0.01)
    >>> r0.shape, bool(jnp.linalg.norm(r1) < jnp.linalg.norm(r0))  # the residual shrinks
    ((16, 3), True)
    """
    x, _ = _inputs("x", x, net0)
    y = _outputs_like("y", y, x, net0, "array of targets")
    _checks.positive("lr", lr)
    residual = linearized_apply(net0, params, x) - y
    grad = pullback(net0, x, residual)
    return jax.tree.map(lambda p, g: p - lr * g, params, grad), residual

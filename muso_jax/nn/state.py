"""A network as pure data: ``graphdef`` (static structure) plus ``params`` and ``rest`` (batch
statistics), with ``forward`` for the logits or the penultimate features. The Flax NNX
split / merge pattern turns a Module into functions that jit and grad handle."""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from muso_jax import _checks

# Compiled evaluation functions kept, one per (architecture, features) pair. A run uses one or
# two architectures; the bound keeps a long session that builds many from holding them all.
PREDICT_CACHE_SIZE = 8


class Net(NamedTuple):
    graphdef: Any  # static: hashable, passed to jit as a static argument or closed over
    params: Any  # nnx.State of the trainable parameters
    rest: Any  # nnx.State of everything else (BatchNorm running statistics)


def split(model) -> Net:
    """A Flax NNX module as a :class:`Net`: ``nnx.split(model, nnx.Param, ...)``.

    Parameters
    ----------
    model
        An ``nnx.Module``, e.g. from :func:`muso_jax.nn.models.make_model`.

    Returns
    -------
    Net
        ``(graphdef, params, rest)``: the static structure, the ``nnx.Param`` leaves and
        everything else (BatchNorm running statistics; an empty state for an MLP).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> net0._fields
    ('graphdef', 'params', 'rest')
    >>> [leaf.shape for leaf in jax.tree.leaves(net0.params)]
    [(3,), (8, 3), (8,), (4, 8)]
    """
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return Net(graphdef, params, rest)


def forward(graphdef, params, rest, x, *, train: bool, features: bool = False, mask=None):
    """Logits (or penultimate features) and the updated batch statistics.

    ``train=True`` normalizes with batch statistics and updates the running averages;
    ``train=False`` uses the running averages (evaluation mode). ``mask``: (B,) booleans, the
    rows that count in the batch statistics (padding rows are False); None counts every row.

    Parameters
    ----------
    graphdef, params, rest
        The three fields of a :class:`Net`.
    x : (B, ...) inputs
        In the dtype the model computes in (no cast here).
    train : bool
        Training mode (batch statistics) or evaluation mode (running averages).
    features : bool
        Return the penultimate features z instead of the logits.
    mask : (B,) bool, optional
        The rows that enter BatchNorm's batch statistics; None: all.

    Returns
    -------
    tuple
        ``(out, rest)``: (B, K) logits or (B, F) features, and the batch statistics after the
        call (changed only with ``train=True`` on a model with BatchNorm).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import forward, split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x = np.random.default_rng(0).normal(size=(16, 4))
    >>> logits, rest = forward(net0.graphdef, net0.params, net0.rest, x, train=False)
    >>> logits.shape
    (16, 3)
    >>> forward(*net0, x, train=False, features=True)[0].shape
    (16, 8)
    """
    # copy=True gives the merged module Variables of the current trace: without it, BatchNorm's
    # update of its running statistics under jax.grad raises flax's TraceContextError.
    model = nnx.merge(graphdef, params, rest, copy=train)
    model.train() if train else model.eval()
    out = model.features(x, mask=mask) if features else model(x, mask=mask)
    return out, nnx.split(model, nnx.Param, ...)[2]


def param_dtype(net: Net):
    """The dtype of the network's parameters (its logits and features come back in it).

    Parameters
    ----------
    net : Net
        A split network.

    Returns
    -------
    numpy.dtype
        The dtype of its first parameter leaf (all leaves share it).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import param_dtype, split
    >>> param_dtype(split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64)))
    dtype('float64')
    """
    return jax.tree.leaves(net.params)[0].dtype


def check_inputs(name: str, net: Net, x):
    """``x`` as an array of inputs the network accepts, (B, ...), finite when concrete.

    Raises ValueError naming ``name`` on a wrong rank or shape (found by tracing one row through
    the network, no computation), a non-numeric dtype or NaN/inf entries.

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    net : Net
        The network the inputs are for.
    x : (B, ...) inputs
        2-D to 5-D, e.g. (B, D) vectors or (B, H, W, C) images.

    Returns
    -------
    jax.Array
        ``x`` as an array, dtype unchanged.

    Raises
    ------
    ValueError
        Naming ``name``: wrong rank or shape, non-numeric dtype, NaN or inf entries.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import check_inputs, split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> check_inputs("x", net0, np.zeros((16, 4))).shape
    (16, 4)
    >>> check_inputs("x_f", net0, np.zeros((16, 5)))
    Traceback (most recent call last):
        ...
    ValueError: argument `x_f`: expected inputs the network accepts; got shape (16, 5) ...
    """
    x = _checks.array(name, x, ndim=tuple(range(2, 6)), what="(B, ...) batch of inputs")
    try:
        # The probe row in the parameters' dtype: it checks shapes, not a float32/float64 mix.
        probe = x[:1].astype(param_dtype(net))
        jax.eval_shape(lambda p, r, v: forward(net.graphdef, p, r, v, train=False)[0], net.params, net.rest, probe)
    except Exception as err:  # noqa: BLE001 - any shape failure inside the model is a bad input
        raise ValueError(
            f"argument `{name}`: expected inputs the network accepts; got shape {tuple(x.shape)} ({err})"
        ) from err
    return x


def predict(net: Net, x, *, batch_size: int = 512, features: bool = False):
    """Evaluation-mode outputs for a whole array, in batches (a jitted forward per batch shape), in
    the parameters' dtype.

    Parameters
    ----------
    net : Net
        The network.
    x : (N, ...) inputs
    batch_size : int
        Rows per forward pass (the last batch may be shorter: one more compiled shape).
    features : bool
        The penultimate features instead of the logits.

    Returns
    -------
    jax.Array
        (N, K) logits or (N, F) features, in the parameters' dtype.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import predict, split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x = np.random.default_rng(0).normal(size=(16, 4))
    >>> predict(net0, x).shape, predict(net0, x, features=True).shape
    ((16, 3), (16, 8))
    """
    fn = _predict_fn(net.graphdef, features)
    outs = [fn(net.params, net.rest, x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return jnp.concatenate(outs)


@functools.lru_cache(maxsize=PREDICT_CACHE_SIZE)
def _predict_fn(graphdef, features):
    # In the parameters' dtype: a bfloat16-compute model still reports float32 logits and features.
    return jax.jit(lambda p, r, x: forward(graphdef, p, r, x, train=False, features=features)[0].astype(
        jax.tree.leaves(p)[0].dtype))

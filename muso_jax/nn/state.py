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
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return Net(graphdef, params, rest)


def forward(graphdef, params, rest, x, *, train: bool, features: bool = False, mask=None):
    """Logits (or penultimate features) and the updated batch statistics.

    ``train=True`` normalizes with batch statistics and updates the running averages;
    ``train=False`` uses the running averages (evaluation mode). ``mask``: (B,) booleans, the
    rows that count in the batch statistics (padding rows are False); None counts every row.
    """
    # copy=True gives the merged module Variables of the current trace: without it, BatchNorm's
    # update of its running statistics under jax.grad raises flax's TraceContextError.
    model = nnx.merge(graphdef, params, rest, copy=train)
    model.train() if train else model.eval()
    out = model.features(x, mask=mask) if features else model(x, mask=mask)
    return out, nnx.split(model, nnx.Param, ...)[2]


def param_dtype(net: Net):
    """The dtype of the network's parameters (its logits and features come back in it)."""
    return jax.tree.leaves(net.params)[0].dtype


def check_inputs(name: str, net: Net, x):
    """``x`` as an array of inputs the network accepts, (B, ...), finite when concrete.

    Raises ValueError naming ``name`` on a wrong rank or shape (found by tracing one row through
    the network, no computation), a non-numeric dtype or NaN/inf entries.
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
    the parameters' dtype."""
    fn = _predict_fn(net.graphdef, features)
    outs = [fn(net.params, net.rest, x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return jnp.concatenate(outs)


@functools.lru_cache(maxsize=PREDICT_CACHE_SIZE)
def _predict_fn(graphdef, features):
    # In the parameters' dtype: a bfloat16-compute model still reports float32 logits and features.
    return jax.jit(lambda p, r, x: forward(graphdef, p, r, x, train=False, features=features)[0].astype(
        jax.tree.leaves(p)[0].dtype))

"""A network as pure data: ``graphdef`` (static structure) plus ``params`` and ``rest`` (batch
statistics), with ``forward`` for the logits or the penultimate features. The Flax NNX
split / merge pattern turns a Module into functions that jit and grad handle."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx


class Net(NamedTuple):
    graphdef: Any  # static: hashable, passed to jit as a static argument or closed over
    params: Any  # nnx.State of the trainable parameters
    rest: Any  # nnx.State of everything else (BatchNorm running statistics)


def split(model) -> Net:
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    return Net(graphdef, params, rest)


def forward(graphdef, params, rest, x, *, train: bool, features: bool = False):
    """Logits (or penultimate features) and the updated batch statistics.

    ``train=True`` normalizes with batch statistics and updates the running averages;
    ``train=False`` uses the running averages (evaluation mode).
    """
    model = nnx.merge(graphdef, params, rest)
    model.train() if train else model.eval()
    out = model.features(x) if features else model(x)
    return out, nnx.split(model, nnx.Param, ...)[2]


def predict(net: Net, x, *, batch_size: int = 512, features: bool = False):
    """Evaluation-mode outputs for a whole array, in batches (a jitted forward per batch shape)."""
    fn = _predict_fn(net.graphdef, features)
    outs = [fn(net.params, net.rest, x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
    return jnp.concatenate(outs)


_PREDICT = {}


def _predict_fn(graphdef, features):
    key = (graphdef, features)
    if key not in _PREDICT:
        _PREDICT[key] = jax.jit(lambda p, r, x: forward(graphdef, p, r, x, train=False, features=features)[0])
    return _PREDICT[key]

"""Many networks at once: B models of one architecture as ONE :class:`~muso_jax.nn.state.Net`
whose parameters carry a leading axis of size B, trained and unlearned by ``jax.vmap`` of the
single-model functions.

Every training run and unlearning method of the network path is a loop of the engine's compiled
epoch (:mod:`muso_jax.nn.engine`) whose per-run numbers are data, so ``jax.vmap`` of the method
over (key, initialization, original) batches each epoch into one program for the B models. The
rows (``x``, ``y``, the forget set) are shared by the B models; keys and initializations differ.
Under vmap every model makes exactly the steps it makes alone: the result equals a loop of the
single-model calls (bit for bit on the CPU for training; to float32 round-off where a batched
matrix product reassociates, as in MUSO's relabel head).

A method whose relabel runs on the host (muso-ntk's float64 kernel solve, :data:`LOOPED`) runs
as a Python loop over the B models instead; :func:`unlearn_many` says which way it ran.
"""

from __future__ import annotations

import time
import warnings
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp

from muso_jax.nn import muso_ntk
from muso_jax.nn.state import Net, predict
from muso_jax.nn.train import train

# Methods that cannot be traced under vmap, with the reason.
LOOPED = {muso_ntk.unlearn: "its linearized retrain solves on the host in float64 (numpy)"}


class ShadowInfo(NamedTuple):
    seconds: float  # wall clock of the B unlearnings together, compilation included
    vmapped: bool  # False: a Python loop over the models (a method of LOOPED)
    reason: str  # why it was looped ("" under vmap)


def stack(nets: Sequence[Net]) -> Net:
    """B networks of one architecture as one Net with a leading model axis.

    Parameters
    ----------
    nets : sequence of Net
        At least one, all of one graphdef.

    Returns
    -------
    Net
        Every leaf of ``params`` and ``rest`` stacked: (B, ...).

    Raises
    ------
    ValueError
        On no networks or networks of different architectures (naming ``nets``).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import shadows
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> nets = [split(make_model("mlp", (4,), 3, seed=s, hidden=(8,), param_dtype=jnp.float64)) for s in (0, 1)]
    >>> net0s = shadows.stack(nets)
    >>> [leaf.shape for leaf in jax.tree.leaves(net0s.params)]
    [(2, 3), (2, 8, 3), (2, 8), (2, 4, 8)]
    >>> shadows.stack([])
    Traceback (most recent call last):
        ...
    ValueError: argument `nets`: expected at least one network; got none
    """
    nets = list(nets)
    if not nets:
        raise ValueError("argument `nets`: expected at least one network; got none")
    graphdef = nets[0].graphdef
    if any(n.graphdef != graphdef for n in nets):
        raise ValueError("argument `nets`: expected networks of one architecture; got different graphdefs")
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *[(n.params, n.rest) for n in nets])
    return Net(graphdef, *stacked)


def size(nets: Net) -> int:
    """B, the number of models in a stacked Net.

    Parameters
    ----------
    nets : Net
        Stacked (:func:`stack`).

    Returns
    -------
    int

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import shadows
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> nets = [split(make_model("mlp", (4,), 3, seed=s, hidden=(8,), param_dtype=jnp.float64)) for s in (0, 1)]
    >>> net0s = shadows.stack(nets)
    >>> shadows.size(net0s)
    2
    """
    return int(jax.tree.leaves(nets.params)[0].shape[0])


def member(nets: Net, b: int) -> Net:
    """Model ``b`` of a stacked Net.

    Parameters
    ----------
    nets : Net
        Stacked (:func:`stack`).
    b : int
        In [0, B).

    Returns
    -------
    Net
        The b-th slice of every leaf.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import shadows
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> nets = [split(make_model("mlp", (4,), 3, seed=s, hidden=(8,), param_dtype=jnp.float64)) for s in (0, 1)]
    >>> net0s = shadows.stack(nets)
    >>> second = shadows.member(net0s, 1)
    >>> all(bool(jnp.array_equal(a, b)) for a, b in zip(jax.tree.leaves(second.params),
    ...                                                   jax.tree.leaves(nets[1].params)))
    True
    """
    return Net(nets.graphdef, *jax.tree.map(lambda a: a[b], (nets.params, nets.rest)))


def _quiet(fn, *args):
    """``fn(*args)`` without the warning that donated buffers are unused: under vmap the engine's
    donated state is a batched value, copied instead of updated in place."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Some donated buffers were not usable")
        return jax.block_until_ready(fn(*args))


def _check_keys(keys, b: int):
    if not (hasattr(keys, "shape") and keys.shape == (b,) and jax.dtypes.issubdtype(keys.dtype,
                                                                                  jax.dtypes.prng_key)):
        raise ValueError(f"argument `keys`: expected ({b},) typed PRNG keys (jax.random.split(key, {b})), one per "
                         f"model; got {getattr(keys, 'dtype', type(keys).__name__)} of shape "
                         f"{getattr(keys, 'shape', None)}")


def train_many(keys, net0s: Net, x, y, cfg, *, retain=None, on_progress=None) -> Net:
    """:func:`muso_jax.nn.train.train` of every model: model b from ``member(net0s, b)`` with
    ``keys[b]`` on the rows ``retain`` (shared; None: all), in one vmapped epoch per epoch.
    ``on_progress(steps)`` after each epoch of the B models together.

    Parameters
    ----------
    keys : (B,) typed PRNG keys
        ``jax.random.split(key, B)``.
    net0s : Net
        B stacked initializations.
    x : (N, ...) inputs
    y : (N,) int labels
        Shared by the B models.
    cfg : TrainConfig
    retain : (N,) bool, optional
        The rows trained on; None: all.
    on_progress : callable, optional

    Returns
    -------
    Net
        The B trained networks, stacked.

    Raises
    ------
    ValueError
        On ``keys`` that are not (B,) typed keys, or what :func:`muso_jax.nn.train.train`
        refuses.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import shadows
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> nets = [split(make_model("mlp", (4,), 3, seed=s, hidden=(8,), param_dtype=jnp.float64)) for s in (0, 1)]
    >>> net0s = shadows.stack(nets)
    >>> from muso_jax.nn.train import TrainConfig
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> keys, cfg = jax.random.split(jax.random.key(0), 2), TrainConfig(epochs=1, batch_size=8)
    >>> net_ps = shadows.train_many(keys, net0s, x, y, cfg)
    >>> from muso_jax.nn.train import train
    >>> alone = train(keys[1], nets[1], x, y, cfg)  # model 1 trained by itself: the same bits on a CPU
    >>> all(bool(jnp.array_equal(a, b)) for a, b in zip(jax.tree.leaves(shadows.member(net_ps, 1).params),
    ...                                                   jax.tree.leaves(alone.params)))
    True
    >>> shadows.train_many(jax.random.key(0), net0s, x, y, cfg)
    Traceback (most recent call last):
        ...
    ValueError: argument `keys`: expected (2,) typed PRNG keys (jax.random.split(key, 2)), one per model; ...
    """
    b = size(net0s)
    _check_keys(keys, b)
    graphdef = net0s.graphdef

    def one(key, params, rest):
        net = train(key, Net(graphdef, params, rest), x, y, cfg, retain=retain, on_progress=on_progress)
        return net.params, net.rest

    return Net(graphdef, *_quiet(jax.vmap(one), keys, net0s.params, net0s.rest))


def unlearn_many(method, keys, net0s: Net, net_ps: Net, x, y, forget, cfg, *,
                 on_progress=None) -> tuple[Net, ShadowInfo]:
    """``method`` (a function of :data:`muso_jax.nn.experiment.METHODS` or ``muso.unlearn``) on
    every model: model b unlearns ``forget`` from ``member(net_ps, b)`` with ``member(net0s, b)``
    and ``keys[b]``. Returns the stacked unlearned Nets and a :class:`ShadowInfo`:
    the wall clock of the B unlearnings together (compilation included) and whether they ran
    under vmap (else a loop, for the ``reason`` of :data:`LOOPED`). ``on_progress(steps)`` after
    each epoch: of the B models together under vmap, of one model in the loop.

    Parameters
    ----------
    method : callable
        An unlearning method with MUSO's signature.
    keys : (B,) typed PRNG keys
    net0s, net_ps : Net
        B stacked initializations and B stacked originals.
    x : (N, ...) inputs
    y : (N,) int labels
    forget : (N,) bool mask or int indices
        D_f, shared by the B models.
    cfg : NamedTuple
        The method's configuration.
    on_progress : callable, optional

    Returns
    -------
    tuple
        ``(Net, ShadowInfo)``: the B unlearned networks, stacked, and the wall clock and the
        way they ran.

    Raises
    ------
    ValueError
        On bad ``keys``, ``net_ps`` of another B, or what ``method`` refuses.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import shadows
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> nets = [split(make_model("mlp", (4,), 3, seed=s, hidden=(8,), param_dtype=jnp.float64)) for s in (0, 1)]
    >>> net0s = shadows.stack(nets)
    >>> from muso_jax.nn.train import TrainConfig
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> keys, cfg = jax.random.split(jax.random.key(0), 2), TrainConfig(epochs=1, batch_size=8)
    >>> from muso_jax.nn import baselines, muso_ntk
    >>> net_ps, forget = shadows.train_many(keys, net0s, x, y, cfg), np.arange(16) < 4
    >>> net_us, info = shadows.unlearn_many(baselines.finetune, keys, net0s, net_ps, x, y, forget,
    ...                                     baselines.BaselineConfig(epochs=1, batch_size=8))
    >>> shadows.size(net_us), info.vmapped, info.seconds >= 0
    (2, True, True)
    >>> ntk_cfg = muso_ntk.NtkConfig(epochs=1, batch_size=8, optimizer="sgd")
    >>> _, info = shadows.unlearn_many(muso_ntk.unlearn, keys, net0s, net_ps, x, y, forget, ntk_cfg)
    >>> info.vmapped, info.reason  # a host-side solve: a loop over the models
    (False, 'its linearized retrain solves on the host in float64 (numpy)')
    """
    b = size(net0s)
    _check_keys(keys, b)
    if size(net_ps) != b:
        raise ValueError(f"argument `net_ps`: expected {b} models like `net0s`; got {size(net_ps)}")
    graphdef = net0s.graphdef
    start = time.perf_counter()
    if method in LOOPED:
        outs = [method(keys[i], member(net0s, i), member(net_ps, i), x, y, forget, cfg, on_progress=on_progress)[0]
                for i in range(b)]
        nets = jax.block_until_ready(stack(outs))
    else:
        def one(key, p0, r0, pp, rp):
            net, _ = method(key, Net(graphdef, p0, r0), Net(graphdef, pp, rp), x, y, forget, cfg,
                            on_progress=on_progress)
            return net.params, net.rest

        nets = Net(graphdef, *_quiet(jax.vmap(one), keys, net0s.params, net0s.rest, net_ps.params, net_ps.rest))
    return nets, ShadowInfo(time.perf_counter() - start, method not in LOOPED, LOOPED.get(method, ""))


def predict_many(nets: Net, x, *, batch_size: int = 512) -> jax.Array:
    """(B, N, K) evaluation-mode logits of every model on ``x``.

    Parameters
    ----------
    nets : Net
        B stacked networks.
    x : (N, ...) inputs
    batch_size : int
        Rows per forward pass.

    Returns
    -------
    jax.Array
        (B, N, K).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import shadows
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> nets = [split(make_model("mlp", (4,), 3, seed=s, hidden=(8,), param_dtype=jnp.float64)) for s in (0, 1)]
    >>> net0s = shadows.stack(nets)
    >>> from muso_jax.nn.state import predict
    >>> x = np.random.default_rng(0).normal(size=(16, 4))
    >>> logits = shadows.predict_many(net0s, x)
    >>> logits.shape, bool(jnp.allclose(logits[1], predict(nets[1], x)))
    ((2, 16, 3), True)
    """
    return jax.vmap(lambda p, r: predict(Net(nets.graphdef, p, r), x, batch_size=batch_size))(nets.params,
                                                                                               nets.rest)

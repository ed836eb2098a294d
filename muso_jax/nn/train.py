"""Training a network: the configuration, the checks at the boundary of the network path, and
:func:`train` / :func:`run_epochs`, epochs of the compiled program of :mod:`muso_jax.nn.engine` (shared
by every unlearning method)."""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from muso_jax import _checks
from muso_jax.nn import engine
from muso_jax.nn.engine import steps_per_epoch
from muso_jax.nn.models import num_classes
from muso_jax.nn.state import Net, check_inputs, param_dtype

OPTIMIZERS = ("sgd", "adam", "adamw")  # adam is adamw with no weight decay (weight_decay is ignored)
SCHEDULES = engine.SCHEDULES


class TrainConfig(NamedTuple):
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    optimizer: str = "sgd"  # sgd with momentum | adam | adamw
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # constant | cosine | step (x0.1 at 80% and 90%, as the authors)
    augment: bool = False  # random crop (padding 4) and horizontal flip on the device: CIFAR's recipe


# The limits of every configuration field of the network path (TrainConfig, MusoConfig,
# NtkConfig, BaselineConfig): a field is checked wherever it appears.
_INTEGERS = dict(epochs=1, batch_size=1, max_epochs=0, chunk=1, logit=0)  # field -> minimum
_POSITIVE = ("lr", "temperature")
_NONNEGATIVE = ("weight_decay", "l1", "ridge", "eps_start", "eps_end")
_INTERVALS = dict(momentum=(0.0, 1.0, "[0, 1)"), sparsity=(0.0, 1.0, "[0, 1]"), beta=(0.0, 1.0, "[0, 1]"),
                  subset_ratio=(0.0, 1.0, "(0, 1]"))
_CHOICES = dict(optimizer=OPTIMIZERS, schedule=SCHEDULES)


def _inside(value, low, high, spec):
    return (low < value if spec[0] == "(" else low <= value) and (value < high if spec[-1] == ")" else value <= high)


def check_config(cfg) -> None:
    """Refuse, naming the field, any value of a configuration NamedTuple outside its domain.

    Integers (``epochs``, ``batch_size``, ...) must be Python/NumPy integers at or above their
    minimum; learning rates and temperatures finite and > 0; penalties and ridges finite and
    >= 0; shares in their interval; names among their choices.

    Parameters
    ----------
    cfg : NamedTuple
        A :class:`TrainConfig`, :class:`muso_jax.nn.muso.MusoConfig`,
        :class:`muso_jax.nn.muso_ntk.NtkConfig` or :class:`muso_jax.nn.baselines.BaselineConfig`
        (the fields it has are checked).

    Returns
    -------
    None

    Raises
    ------
    ValueError
        Naming the first field outside its domain.

    Examples
    --------
    >>> from muso_jax.nn.train import TrainConfig, check_config
    >>> check_config(TrainConfig(epochs=1, batch_size=8)) is None
    True
    >>> check_config(TrainConfig(lr=0.0))
    Traceback (most recent call last):
        ...
    ValueError: argument `lr`: expected a finite number > 0; got 0.0
    >>> check_config(TrainConfig(optimizer="rmsprop"))
    Traceback (most recent call last):
        ...
    ValueError: argument `optimizer`: expected one of ['sgd', 'adam', 'adamw']; got 'rmsprop'
    """
    fields = cfg._asdict()
    for field, options in _CHOICES.items():
        if field in fields and fields[field] not in options:
            raise ValueError(f"argument `{field}`: expected one of {list(options)}; got {fields[field]!r}")
    for field, low in _INTEGERS.items():
        if field in fields:
            v = fields[field]
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"argument `{field}`: expected an integer >= {low}; got {v!r}")
    for field in (*_POSITIVE, *_NONNEGATIVE, *_INTERVALS):
        if field not in fields:
            continue
        v = fields[field]
        ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and np.isfinite(v)
        if field in _POSITIVE:
            ok, what = ok and v > 0, "a finite number > 0"
        elif field in _NONNEGATIVE:
            ok, what = ok and v >= 0, "a finite number >= 0"
        else:
            low, high, spec = _INTERVALS[field]
            ok, what = ok and _inside(v, low, high, spec), f"a number in {spec}"
        if not ok:
            raise ValueError(f"argument `{field}`: expected {what}; got {v!r}")


def check_data(net: Net, x, y, *, x_name: str = "x", y_name: str = "y"):
    """The one validator of a labelled data set for a network: returns ``(x, y)`` as arrays.

    ``x``: (N, ...) finite inputs the network accepts; ``y``: (N,) integer labels in [0, K)
    with K the network's number of logits. Raises ValueError naming ``x`` or ``y``, what was
    expected and what came in, before any training: a NaN input or an out-of-range label would
    otherwise train silently into a NaN or meaningless network.

    Parameters
    ----------
    net : Net
        The network the data is for (its input shape and K).
    x : (N, ...) inputs
    y : (N,) int labels in [0, K)
    x_name, y_name : str
        The names the errors use.

    Returns
    -------
    tuple
        ``(x, y)`` as JAX arrays.

    Raises
    ------
    ValueError
        Naming ``x`` (shape, dtype, NaN/inf) or ``y`` (rank, dtype, length, range).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import train
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> cfg = train.TrainConfig(epochs=1, batch_size=8)
    >>> [a.shape for a in train.check_data(net0, x, y)]
    [(16, 4), (16,)]
    >>> train.check_data(net0, x, y + 1)
    Traceback (most recent call last):
        ...
    ValueError: argument `y`: expected labels in [0, 3) (the network has 3 logits); got labels from 1 to 3
    """
    x = check_inputs(x_name, net, x)
    k = num_classes(net)
    y_np = np.asarray(y)
    if y_np.ndim != 1 or not np.issubdtype(y_np.dtype, np.integer):
        raise ValueError(f"argument `{y_name}`: expected a 1-D array of integer class labels; got an array of "
                         f"shape {y_np.shape} and dtype {y_np.dtype}")
    if len(y_np) != x.shape[0]:
        raise ValueError(f"argument `{y_name}`: expected one label per row of `{x_name}` ({x.shape[0]}); "
                         f"got {len(y_np)} labels")
    if y_np.min() < 0 or y_np.max() >= k:
        raise ValueError(f"argument `{y_name}`: expected labels in [0, {k}) (the network has {k} logits); "
                         f"got labels from {y_np.min()} to {y_np.max()}")
    return x, jnp.asarray(y_np)


def check_unlearning(net0: Net, net_p: Net, x, y, forget, cfg):
    """The boundary of every unlearning method: ``(x, y, forget)`` validated, ``forget`` as an
    (N,) boolean mask.

    ``cfg`` by :func:`check_config`; ``net0`` and ``net_p`` of one architecture; ``x``, ``y`` by
    :func:`check_data`; ``forget`` (a boolean mask over the N rows or their indices) by
    :func:`muso_jax._checks.forget_set`, which refuses an empty or total forget set.

    Parameters
    ----------
    net0, net_p : Net
        The initialization p_0 and the original network, of one architecture.
    x : (N, ...) inputs
    y : (N,) int labels
    forget : (N,) bool mask or int indices
        D_f; the other rows are D_r.
    cfg : NamedTuple
        The method's configuration (:func:`check_config`).

    Returns
    -------
    tuple
        ``(x, y, forget)``: arrays, ``forget`` as an (N,) NumPy boolean mask.

    Raises
    ------
    ValueError
        Naming the bad argument (``net0``, ``x``, ``y``, ``forget`` or a field of ``cfg``).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import train
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> cfg = train.TrainConfig(epochs=1, batch_size=8)
    >>> _, _, forget = train.check_unlearning(net0, net0, x, y, [0, 1, 2, 3], cfg)
    >>> forget.shape, int(forget.sum())
    ((16,), 4)
    >>> train.check_unlearning(net0, net0, x, y, np.zeros(16, bool), cfg)
    Traceback (most recent call last):
        ...
    ValueError: argument `forget`: expected a non-empty forget set; got no rows to forget
    """
    check_config(cfg)
    if net0.graphdef != net_p.graphdef or jax.tree.structure(net0.params) != jax.tree.structure(net_p.params):
        raise ValueError("argument `net0`: expected the initialization of `net_p` (the same architecture); "
                         "got a network of another structure")
    x, y = check_data(net_p, x, y)
    return x, y, _checks.forget_set(forget, len(y))



def family(optimizer: str) -> str:
    """The engine's optimizer family of a configuration's ``optimizer``.

    Parameters
    ----------
    optimizer : str
        One of :data:`OPTIMIZERS`.

    Returns
    -------
    str
        ``"sgd"`` for SGD, ``"adamw"`` for Adam and AdamW (Adam: AdamW with decay 0).

    Examples
    --------
    >>> from muso_jax.nn.train import family
    >>> family("sgd"), family("adam"), family("adamw")
    ('sgd', 'adamw', 'adamw')
    """
    return "sgd" if optimizer == "sgd" else "adamw"


def init_state(net: Net, optimizer: str) -> engine.State:
    """A fresh training state from ``net`` (its arrays copied: the engine donates the state's buffers).

    Parameters
    ----------
    net : Net
    optimizer : str
        One of :data:`OPTIMIZERS`.

    Returns
    -------
    muso_jax.nn.engine.State
        Copies of the parameters and batch statistics, and a new optimizer state.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import train
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> cfg = train.TrainConfig(epochs=1, batch_size=8)
    >>> state = train.init_state(net0, "sgd")
    >>> state._fields, int(state.opt_state.count)
    (('params', 'rest', 'opt_state'), 0)
    """
    params, rest = jax.tree.map(jnp.copy, (net.params, net.rest))
    dtype = jax.tree.leaves(params)[0].dtype
    return engine.State(params, rest, engine.optimizer(family(optimizer), dtype).init(params))


def knobs_from_config(net: Net, cfg, total_steps: int, **overrides) -> engine.Knobs:
    """The engine's :class:`~muso_jax.nn.engine.Knobs` of a configuration (TrainConfig or a
    method's config with ``lr``, ``optimizer``, ``weight_decay`` and optionally ``momentum``,
    ``schedule``).

    Missing fields default to the constant schedule and momentum 0.9; ``optimizer="adam"``
    zeroes the weight decay.

    Parameters
    ----------
    net : Net
        The network (dtype, F and K of the knobs).
    cfg : NamedTuple
        The configuration.
    total_steps : int
        Optimizer steps of the whole run, for the schedule.
    **overrides
        Fields of :func:`muso_jax.nn.engine.knobs_for`, e.g. ``head=R`` or ``l1=...``.

    Returns
    -------
    muso_jax.nn.engine.Knobs

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import train
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> cfg = train.TrainConfig(epochs=1, batch_size=8)
    >>> knobs = train.knobs_from_config(net0, cfg, total_steps=2)
    >>> float(knobs.lr), float(knobs.momentum), knobs.head.shape
    (0.05, 0.9, (9, 3))
    """
    fields = cfg._asdict()
    decay = 0.0 if cfg.optimizer == "adam" else cfg.weight_decay
    features = net.params["head"]["kernel"][...].shape[0]
    return engine.knobs_for(net.params, lr=cfg.lr, schedule=fields.get("schedule", "constant"),
                            total_steps=total_steps, momentum=fields.get("momentum", 0.9), weight_decay=decay,
                            features=features, num_classes=num_classes(net), **overrides)


def run_epochs(key, net: Net, x, rows: engine.Rows, knobs: engine.Knobs, *, optimizer: str, batch_size: int,
               epochs: int, augment: bool = False, state: Optional[engine.State] = None, first_epoch: int = 0,
               on_epoch: Optional[Callable] = None, on_progress: Optional[Callable] = None):
    """Epochs ``first_epoch .. epochs - 1`` of the engine on the rows of ``x`` with targets ``rows``.

    Epoch ``e`` draws its order from ``fold_in(key, e)``: a resumed run (``state`` and
    ``first_epoch`` from a checkpoint) replays the batches of an uninterrupted one and ends on
    the same bits. ``on_epoch(epoch, net, opt_state, loss)`` runs after each epoch (the caller
    checkpoints there; the arrays it receives are donated to the next epoch: copy or save what
    it keeps). ``on_progress(steps)`` gets the optimizer steps of each epoch.
    Returns ``(net, state, losses)``.

    Parameters
    ----------
    key
        A JAX PRNG key.
    net : Net
        The start (ignored for the parameters when ``state`` is given; its graphdef is used).
    x : (N, ...) inputs
        All N rows; ``rows.member`` selects the run's.
    rows : muso_jax.nn.engine.Rows
    knobs : muso_jax.nn.engine.Knobs
    optimizer : str
        One of :data:`OPTIMIZERS`.
    batch_size, epochs, first_epoch : int
    augment : bool
        Crop and flip (images).
    state : muso_jax.nn.engine.State, optional
        A state to resume from; None starts from ``net`` (:func:`init_state`).
    on_epoch, on_progress : callable, optional

    Returns
    -------
    tuple
        ``(Net, State, losses)``: the network and state after the last epoch and the mean loss
        of each epoch run (a tuple of floats).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import train
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> cfg = train.TrainConfig(epochs=1, batch_size=8)
    >>> from muso_jax.nn import engine
    >>> rows = engine.rows_for(y, num_classes=3, dtype=jnp.float64)
    >>> knobs = train.knobs_from_config(net0, cfg, total_steps=4)
    >>> seen = []
    >>> net, state, losses = train.run_epochs(jax.random.key(0), net0, jnp.asarray(x), rows, knobs,
    ...                                       optimizer="sgd", batch_size=8, epochs=2,
    ...                                       on_epoch=lambda epoch, *rest: seen.append(epoch))
    >>> len(losses), seen, int(state.opt_state.count)
    (2, [0, 1], 4)
    """
    state = init_state(net, optimizer) if state is None else state
    run = engine.program(net.graphdef, family(optimizer), int(batch_size), bool(augment))
    members = int(jnp.sum(rows.member))
    losses = []
    for epoch in range(first_epoch, epochs):
        state, loss = run(state, x, rows, knobs, key, jnp.asarray(epoch, jnp.int32))
        losses.append(float(loss) if _checks.is_concrete(loss) else loss)  # an array under vmap
        if on_progress is not None:
            on_progress(steps_per_epoch(members, batch_size))
        if on_epoch is not None:
            on_epoch(epoch, Net(net.graphdef, state.params, state.rest), state.opt_state, losses[-1])
    return Net(net.graphdef, state.params, state.rest), state, tuple(losses)


def train(key, net0: Net, x, y, cfg: TrainConfig, *, retain=None, start=None, on_epoch: Optional[Callable] = None,
          on_progress: Optional[Callable] = None) -> Net:
    r"""Train from ``net0`` (or resume from ``start = (net, opt_state, epoch)``) for ``cfg.epochs``.

    ``retain``: (N,) booleans, the rows trained on (Retrain: D_r); None trains on all rows. The
    whole ``x`` stays on the device and every subset runs the same compiled epoch.
    ``x``, ``y``: see :func:`check_data`; callbacks: see :func:`run_epochs`.

    Minimizes the mean cross-entropy over the trained rows by ``cfg.optimizer`` from p_0,

    .. math::
        \min_p \frac{1}{|D|} \sum_{(x_i, y_i) \in D} \mathrm{CE}(f(x_i; p), y_i),

    D the retained rows: the Original network on all of D, Retrain on D_r from the same p_0
    (the reference of exact unlearning, MUSO, arXiv 2410.08557).

    Parameters
    ----------
    key
        A JAX PRNG key (batch orders, augmentation).
    net0 : Net
        The initialization p_0.
    x : (N, ...) inputs
    y : (N,) int labels in [0, K)
    cfg : TrainConfig
    retain : (N,) bool, optional
        The rows trained on; None: all.
    start : tuple, optional
        ``(net, opt_state, epoch)`` of a checkpoint, to resume.
    on_epoch, on_progress : callable, optional

    Returns
    -------
    Net
        The trained network.

    Raises
    ------
    ValueError
        On a bad field of ``cfg``, bad data, or ``augment`` on inputs that are not images.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import train
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> cfg = train.TrainConfig(epochs=1, batch_size=8)
    >>> net_p = train.train(jax.random.key(0), net0, x, y, cfg)
    >>> net_r = train.train(jax.random.key(0), net0, x, y, cfg, retain=np.arange(16) >= 4)
    >>> kernel = lambda net: net.params["head"]["kernel"][...]
    >>> kernel(net_p).shape
    (8, 3)
    >>> bool(jnp.any(kernel(net_p) != kernel(net0))), bool(jnp.any(kernel(net_r) != kernel(net_p)))
    (True, True)
    >>> train.train(jax.random.key(0), net0, x, y, cfg._replace(augment=True))
    Traceback (most recent call last):
        ...
    ValueError: argument `augment`: expected (N, H, W, C) images to crop and flip; got inputs of shape (16, 4)
    """
    check_config(cfg)
    x, y = check_data(net0, x, y)
    if cfg.augment and x.ndim != 4:
        raise ValueError(f"argument `augment`: expected (N, H, W, C) images to crop and flip; got inputs of shape "
                         f"{tuple(x.shape)}")
    member = None if retain is None else jnp.asarray(_checks.retain_mask(retain, len(y)))
    n = len(y) if member is None else int(jnp.sum(member))
    rows = engine.rows_for(y, member=member, num_classes=num_classes(net0),
                           dtype=param_dtype(net0))
    state, first = None, 0
    if start is not None:
        net, opt_state, first = start
        state = engine.State(*jax.tree.map(jnp.copy, (net.params, net.rest, opt_state)))
    total = cfg.epochs * steps_per_epoch(n, cfg.batch_size)
    net, _, _ = run_epochs(key, net0, x, rows, knobs_from_config(net0, cfg, total), optimizer=cfg.optimizer,
                           batch_size=cfg.batch_size, epochs=cfg.epochs, augment=cfg.augment, state=state,
                           first_epoch=first, on_epoch=on_epoch, on_progress=on_progress)
    return net

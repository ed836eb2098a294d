"""Training networks with optax: one jitted step, batches drawn by an explicit key, an epoch
loop that MUSO's unlearning reuses with its own per-batch targets."""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from muso_jax import _checks
from muso_jax.nn.models import num_classes
from muso_jax.nn.state import Net, check_inputs, forward

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "cosine", "step")


class TrainConfig(NamedTuple):
    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.05
    optimizer: str = "sgd"  # sgd with momentum | adam | adamw
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # constant | cosine | step (x0.1 at 80% and 90%, as the authors)


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
    """The boundary of every unlearning method: ``(x_r, y_r, x_f, y_f)`` from validated inputs.

    ``cfg`` by :func:`check_config`; ``net0`` and ``net_p`` of one architecture; ``x``, ``y`` by
    :func:`check_data`; ``forget`` (a boolean mask over the N rows or their indices) by
    :func:`muso_jax._checks.forget_set`, which refuses an empty or total forget set. D_r and
    D_f keep the order of their rows in ``x``.
    """
    check_config(cfg)
    if net0.graphdef != net_p.graphdef or jax.tree.structure(net0.params) != jax.tree.structure(net_p.params):
        raise ValueError("argument `net0`: expected the initialization of `net_p` (the same architecture); "
                         "got a network of another structure")
    x, y = check_data(net_p, x, y)
    mask = _checks.forget_set(forget, len(y))
    keep, drop = np.flatnonzero(~mask), np.flatnonzero(mask)
    return x[keep], y[keep], x[drop], y[drop]


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """The optimizer and schedule of ``cfg`` over ``cfg.epochs * steps_per_epoch`` steps."""
    check_config(cfg)
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "cosine":
        lr = optax.cosine_decay_schedule(cfg.lr, total)
    elif cfg.schedule == "step":
        lr = optax.piecewise_constant_schedule(cfg.lr, {int(0.8 * total): 0.1, int(0.9 * total): 0.1})
    else:
        lr = cfg.lr
    if cfg.optimizer == "sgd":
        return optax.chain(optax.add_decayed_weights(cfg.weight_decay), optax.sgd(lr, momentum=cfg.momentum))
    if cfg.optimizer == "adam":
        return optax.adam(lr)
    return optax.adamw(lr, weight_decay=cfg.weight_decay)


def cross_entropy(logits, labels):
    """Per-example cross-entropy for integer labels."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)


def make_step(graphdef, tx, loss: Callable = None):
    """One jitted optimizer step on a padded batch.

    ``loss(params, rest, logits, xb, yb, extra) -> per-example losses``; the default is
    cross-entropy on ``yb``. Rows with weight 0 (padding) do not count, neither in the loss nor
    in BatchNorm's batch statistics (the step equals one on the real rows alone).
    """
    loss = loss or (lambda params, rest, logits, xb, yb, extra: cross_entropy(logits, yb))

    def objective(params, rest, xb, yb, wb, extra):
        logits, new_rest = forward(graphdef, params, rest, xb, train=True, mask=wb > 0)
        per_example = loss(params, rest, logits, xb, yb, extra)
        wb = wb.astype(per_example.dtype)  # float32 batch weights; the loss has the parameters' dtype
        return jnp.sum(wb * per_example) / jnp.maximum(jnp.sum(wb), 1.0), new_rest

    @jax.jit
    def step(params, rest, opt_state, xb, yb, wb, extra):
        (value, new_rest), grads = jax.value_and_grad(objective, has_aux=True)(params, rest, xb, yb, wb, extra)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_rest, opt_state, value

    return step


def batches(key, n: int, batch_size: int):
    """Index batches of one epoch in a key-drawn order; the last is padded (weight 0)."""
    order = np.asarray(jax.random.permutation(key, n))
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        weight = np.ones(batch_size, np.float32)
        if len(idx) < batch_size:
            weight[len(idx):] = 0.0
            idx = np.concatenate([idx, np.full(batch_size - len(idx), idx[0])])
        yield idx, weight


def run_epoch(key, step, net: Net, opt_state, x, y, batch_size: int, extra=None, on_batch=None):
    """One pass over (x, y) in a key-drawn order. Returns the new net, optimizer state, mean loss."""
    params, rest, losses = net.params, net.rest, []
    for idx, w in batches(key, len(y), batch_size):
        batch_extra = extra(idx) if callable(extra) else extra
        params, rest, opt_state, value = step(params, rest, opt_state, x[idx], y[idx], jnp.asarray(w), batch_extra)
        losses.append(value)
        if on_batch is not None:
            on_batch()
    return Net(net.graphdef, params, rest), opt_state, float(jnp.mean(jnp.stack(losses)))


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)


def train(key, net0: Net, x, y, cfg: TrainConfig, *, start=None, on_epoch: Optional[Callable] = None,
          on_batch: Optional[Callable] = None) -> Net:
    """Train from ``net0`` (or resume from ``start = (net, opt_state, epoch)``) for ``cfg.epochs``.

    Epoch ``e`` draws its batch order from ``fold_in(key, e)``, so a resumed run replays the
    same batches as an uninterrupted one. ``on_epoch(epoch, net, opt_state, loss)`` is called
    after each epoch (the caller checkpoints there). ``x``, ``y``: see :func:`check_data`.
    """
    check_config(cfg)
    x, y = check_data(net0, x, y)
    tx = make_optimizer(cfg, steps_per_epoch(len(y), cfg.batch_size))
    step = make_step(net0.graphdef, tx)
    net, opt_state, first = start if start is not None else (net0, tx.init(net0.params), 0)
    for epoch in range(first, cfg.epochs):
        net, opt_state, loss = run_epoch(jax.random.fold_in(key, epoch), step, net, opt_state, x, y,
                                         cfg.batch_size, on_batch=on_batch)
        if on_epoch is not None:
            on_epoch(epoch, net, opt_state, loss)
    return net

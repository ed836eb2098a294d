r"""The training engine: one epoch is one compiled program, shared by every training run.

Training a network (Original, Retrain) and every unlearning method (MUSO, muso-ntk, the eight
baselines) are the same program with different DATA: each of the N rows of the device-resident
training set carries its own target (:class:`Rows`), and the numbers that change between runs
(learning rate, weight decay, temperature, the MUSO relabel head, a frozen-weight mask) arrive as
arrays (:class:`Knobs`). So one program is compiled per (architecture, optimizer family, batch
size, augmentation, data shapes) and reused by all methods and all seeds.

The objective of a batch b of rows (valid rows only; a padded tail has ``valid = False``):

.. math::
    L = \frac{1}{|b|} \sum_{i \in b} c_i \big[(1 - d_i)\,\mathrm{CE}(f(x_i), \hat y_i)
        + d_i\,\mathrm{KL}(\mathrm{softmax}(t_i / T) \,\|\, \mathrm{softmax}(f(x_i) / T))\big]
        + \lambda_1 \lVert p \rVert_1

with ``c`` the row's signed weight (``-1`` ascends: GA, SCRUB's max pass, NegGrad+), ``d`` its
distillation share (Bad Teacher, SCRUB, soft MUSO), ``t`` its teacher logits and ``\hat y`` its
hard label. A MUSO row (``relabel``) takes both from the CURRENT network's penultimate features
z of the same forward pass (Yang et al., arXiv 2410.08557, nonlinear section):
``t = [z, 1] R - reference`` with ``reference`` the original network's logits, and
``\hat y = argmax t``.

An epoch draws its order on the device from ``fold_in(key, epoch)``: a permutation of all N rows
with the run's members (``Rows.member``) first, cut into ``ceil(N / B)`` batches scanned by
``lax.scan``; the batches past the members are skipped (no optimizer step), so Retrain on D_r
and GA on D_f run the program compiled for Original. The state (parameters, batch statistics,
optimizer) is donated: its buffers are updated in place.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

FAMILIES = ("sgd", "adamw")  # SGD with momentum and coupled weight decay | Adam(W): Adam is AdamW with decay 0
SCHEDULES = ("constant", "cosine", "step")  # step: x0.1 at 80% and again at 90% of the steps
CROP_PADDING = 4  # the field's CIFAR recipe: pad 4, random 32x32 crop, horizontal flip

# How many times an epoch program was traced (each trace is one compilation): the test of
# "one program per (model, optimizer, shapes)" reads it.
traces = 0


class Rows(NamedTuple):
    """Per-row targets over the N rows of the training data (arrays, leading axis N)."""

    member: Any  # (N,) bool: the row belongs to this run's training set
    labels: Any  # (N,) int: hard labels (ignored on relabel rows)
    coef: Any  # (N,) float: signed weight of the row's loss
    distill: Any  # (N,) float in [0, 1]: share of the KL term
    reference: Any  # (N, K) float: teacher logits, or the original logits of a relabel row
    relabel: Any  # (N,) bool: MUSO row, targets from the current features


class Knobs(NamedTuple):
    """Scalars and arrays of one run that are data, not program (so they never recompile)."""

    lr: Any  # base learning rate
    schedule: Any  # index into SCHEDULES
    total_steps: Any  # steps of the whole run, for the schedule
    momentum: Any  # SGD family only
    weight_decay: Any
    temperature: Any  # T of the KL term
    l1: Any  # lambda_1 of the l1 penalty
    head: Any  # (F + 1, K) relabel matrix R of MUSO rows (zeros when unused)
    update_mask: Any  # tree like the parameters: 1 moves a weight, 0 freezes it (SalUn)


class State(NamedTuple):
    params: Any
    rest: Any  # BatchNorm running statistics
    opt_state: Any


def rows_for(labels, *, member=None, coef=None, distill=None, reference=None, relabel=None, num_classes: int,
             dtype=jnp.float32) -> Rows:
    """:class:`Rows` of plain supervised training on ``labels`` (every field overridable).

    The defaults: every row a member, weight ``c = 1``, no distillation (``d = 0``), zero
    reference logits, no relabel row: the cross-entropy on ``labels`` (the objective of the
    module docstring).

    Parameters
    ----------
    labels : (N,) int
        Hard labels in [0, K).
    member : (N,) bool, optional
        The rows of this run's training set.
    coef : (N,) float, optional
        Signed weights c of the rows' losses (-1 ascends).
    distill : (N,) float, optional
        Shares d in [0, 1] of the KL term.
    reference : (N, K) float, optional
        Teacher logits t, or the original network's logits of relabel rows.
    relabel : (N,) bool, optional
        MUSO rows: targets from the current network's features and ``Knobs.head``.
    num_classes : int
        K.
    dtype
        The float fields' dtype (the parameters').

    Returns
    -------
    Rows
        Arrays with leading axis N.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import engine
    >>> rows = engine.rows_for(np.arange(16) % 3, num_classes=3, dtype=jnp.float64)
    >>> rows._fields
    ('member', 'labels', 'coef', 'distill', 'reference', 'relabel')
    >>> [a.shape for a in rows]
    [(16,), (16,), (16,), (16,), (16, 3), (16,)]
    >>> bool(rows.member.all()), float(rows.coef.sum()), bool(rows.relabel.any())
    (True, 16.0, False)
    """
    labels = jnp.asarray(labels)
    n = labels.shape[0]
    return Rows(
        member=jnp.ones(n, bool) if member is None else jnp.asarray(member, bool),
        labels=labels,
        coef=jnp.ones(n, dtype) if coef is None else jnp.asarray(coef, dtype),
        distill=jnp.zeros(n, dtype) if distill is None else jnp.asarray(distill, dtype),
        reference=jnp.zeros((n, num_classes), dtype) if reference is None else jnp.asarray(reference, dtype),
        relabel=jnp.zeros(n, bool) if relabel is None else jnp.asarray(relabel, bool),
    )


def knobs_for(params, *, lr, schedule="constant", total_steps=1, momentum=0.0, weight_decay=0.0, temperature=1.0,
              l1=0.0, head=None, update_mask=None, features: int, num_classes: int) -> Knobs:
    """:class:`Knobs` as arrays of the parameters' dtype (``head`` zeros, ``update_mask`` ones by default).

    Parameters
    ----------
    params
        The parameter pytree (its dtype and, for ``update_mask``, its structure).
    lr, momentum, weight_decay, temperature, l1 : float
        The base learning rate, SGD momentum, weight decay, KL temperature T, l1 weight.
    schedule : str
        One of :data:`SCHEDULES`.
    total_steps : int
        Optimizer steps of the whole run (at least 1), for the schedule.
    head : (F + 1, K), optional
        MUSO's relabel matrix R; None: zeros.
    update_mask : pytree like ``params``, optional
        1 moves a weight, 0 freezes it; None: ones.
    features, num_classes : int
        F and K, the shape of the default ``head``.

    Returns
    -------
    Knobs

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import engine
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> knobs = engine.knobs_for(net0.params, lr=0.1, features=8, num_classes=3)
    >>> knobs.head.shape, knobs.lr.dtype == knobs.head.dtype, int(knobs.schedule)
    ((9, 3), True, 0)
    """
    dtype = jax.tree.leaves(params)[0].dtype
    scalar = lambda v: jnp.asarray(v, dtype)
    return Knobs(
        lr=scalar(lr), schedule=jnp.asarray(SCHEDULES.index(schedule), jnp.int32),
        total_steps=jnp.asarray(max(int(total_steps), 1), jnp.int32), momentum=scalar(momentum),
        weight_decay=scalar(weight_decay), temperature=scalar(temperature), l1=scalar(l1),
        head=jnp.zeros((features + 1, num_classes), dtype) if head is None else jnp.asarray(head, dtype),
        update_mask=jax.tree.map(jnp.ones_like, params) if update_mask is None else update_mask,
    )


def optimizer(family: str, dtype) -> optax.GradientTransformation:
    """The optimizer of a family with its hyperparameters held in the state (set by :func:`step`).

    ``"sgd"``: coupled weight decay then SGD with momentum,
    ``optax.chain(add_decayed_weights(wd), sgd(lr, momentum))``; ``"adamw"``: ``optax.adamw``
    (Adam is AdamW with decay 0). Both by ``optax.inject_hyperparams``, so the learning rate,
    momentum and weight decay are state, not program.

    Parameters
    ----------
    family : str
        One of :data:`FAMILIES`.
    dtype
        The hyperparameters' dtype (the parameters').

    Returns
    -------
    optax.GradientTransformation

    Raises
    ------
    ValueError
        On an unknown ``family``.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import engine
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> opt_state = engine.optimizer("sgd", jnp.float64).init(net0.params)
    >>> sorted(opt_state.hyperparams)
    ['learning_rate', 'momentum', 'weight_decay']
    >>> engine.optimizer("rmsprop", jnp.float64)
    Traceback (most recent call last):
        ...
    ValueError: argument `family`: expected one of ['sgd', 'adamw']; got 'rmsprop'
    """
    if family == "sgd":
        def make(learning_rate, momentum, weight_decay):
            return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(learning_rate, momentum=momentum))
        return optax.inject_hyperparams(make, hyperparam_dtype=dtype)(learning_rate=0.0, momentum=0.0,
                                                                      weight_decay=0.0)
    if family == "adamw":
        return optax.inject_hyperparams(lambda learning_rate, weight_decay: optax.adamw(
            learning_rate, weight_decay=weight_decay), hyperparam_dtype=dtype)(learning_rate=0.0, weight_decay=0.0)
    raise ValueError(f"argument `family`: expected one of {list(FAMILIES)}; got {family!r}")


def learning_rate(knobs: Knobs, count):
    r"""The learning rate at optimizer step ``count``: constant, cosine decay to 0, or step decay.

    .. math::
        \eta_t = \eta \cdot \begin{cases}
            1 & \text{constant} \\
            \tfrac12 \left(1 + \cos(\pi \min(t / T, 1))\right) & \text{cosine} \\
            0.1^{[t \ge \lfloor 0.8 T \rfloor] + [t \ge \lfloor 0.9 T \rfloor]} & \text{step}
        \end{cases}

    with T = ``knobs.total_steps`` (the step schedule: x0.1 at 80% and 90% of the steps, as the
    MUSO authors' scripts).

    Parameters
    ----------
    knobs : Knobs
        ``lr``, ``schedule`` and ``total_steps``.
    count : int array
        The optimizer step t.

    Returns
    -------
    jax.Array
        A scalar in ``knobs.lr``'s dtype.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import engine
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> knobs = engine.knobs_for(net0.params, lr=0.1, schedule="cosine", total_steps=10, features=8,
    ...                          num_classes=3)
    >>> rate = jax.jit(engine.learning_rate)  # the engine evaluates it inside its compiled step
    >>> [round(float(rate(knobs, jnp.asarray(t))), 6) for t in (0, 5, 10)]
    [0.1, 0.05, 0.0]
    """
    dtype = knobs.lr.dtype
    progress = count.astype(dtype) / knobs.total_steps.astype(dtype)
    cosine = 0.5 * (1.0 + jnp.cos(jnp.pi * jnp.minimum(progress, 1.0)))
    # x0.1 once count reaches int(0.8 T), again at int(0.9 T) (integer boundaries, as the step indices)
    b1, b2 = (knobs.total_steps * 8) // 10, (knobs.total_steps * 9) // 10
    step = jnp.where(count >= b2, 0.01, jnp.where(count >= b1, 0.1, 1.0)).astype(dtype)
    factor = jnp.stack([jnp.ones((), dtype), cosine, step])[knobs.schedule]
    return knobs.lr * factor


def _per_row_loss(logits, z, rows: Rows, knobs: Knobs):
    """``(1 - d) CE(logits, y_hat) + d KL(softmax(t / T) || softmax(logits / T))`` per row."""
    relabel_logits = jnp.concatenate([z, jnp.ones((z.shape[0], 1), z.dtype)], axis=1) @ knobs.head - rows.reference
    teacher = jnp.where(rows.relabel[:, None], relabel_logits, rows.reference)
    labels = jnp.where(rows.relabel, jnp.argmax(teacher, axis=1).astype(rows.labels.dtype), rows.labels)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    t = knobs.temperature
    kl = optax.kl_divergence(jax.nn.log_softmax(logits / t), jax.nn.softmax(teacher / t))
    return (1.0 - rows.distill) * ce + rows.distill * kl


def step(graphdef, family: str, state: State, xb, valid, rows: Rows, knobs: Knobs):
    r"""One optimizer step on a batch (``valid``: (B,) booleans; the others are padding).

    Padding rows count neither in the loss nor in BatchNorm's batch statistics: the step equals
    one on the valid rows alone. Returns ``(state, loss)``.

    The loss is the objective of the module docstring over the valid rows b,

    .. math::
        L = \frac{1}{|b|} \sum_{i \in b} c_i \big[(1 - d_i)\,\mathrm{CE}(f(x_i), \hat y_i)
            + d_i\,\mathrm{KL}(\mathrm{softmax}(t_i / T) \,\|\, \mathrm{softmax}(f(x_i) / T))\big]
            + \lambda_1 \lVert p \rVert_1,

    with MUSO's relabel rows' targets :math:`t = [z, 1] R - \mathrm{reference}`,
    :math:`\hat y = \arg\max t` (Yang et al., arXiv 2410.08557, nonlinear section); the update
    is masked by ``knobs.update_mask`` after the optimizer.

    Parameters
    ----------
    graphdef
        The network's static structure.
    family : str
        One of :data:`FAMILIES`.
    state : State
        Parameters, batch statistics, optimizer state (:func:`optimizer`).
    xb : (B, ...) inputs
    valid : (B,) bool
        The real rows of the batch.
    rows : Rows
        The batch's rows (leading axis B).
    knobs : Knobs

    Returns
    -------
    tuple
        ``(State, loss)``: the state after the step and the scalar loss before it.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import engine
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x = np.random.default_rng(0).normal(size=(8, 4))
    >>> rows = engine.rows_for(np.arange(8) % 3, num_classes=3, dtype=jnp.float64)
    >>> knobs = engine.knobs_for(net0.params, lr=0.1, features=8, num_classes=3)
    >>> state = engine.State(net0.params, net0.rest, engine.optimizer("sgd", jnp.float64).init(net0.params))
    >>> step = jax.jit(engine.step, static_argnums=(0, 1))  # the engine runs it inside its epoch
    >>> new, loss = step(net0.graphdef, "sgd", state, x, rows.member, rows, knobs)
    >>> bool(loss > 0), int(new.opt_state.count)
    (True, 1)
    """
    params, rest, opt_state = state
    dtype = jax.tree.leaves(params)[0].dtype

    def objective(params):
        model = nnx.merge(graphdef, params, rest, copy=True)  # copy: fresh Variables in this trace
        model.train()
        z = model.features(xb, mask=valid)
        logits = model.head(z).astype(dtype)  # bfloat16 compute: the loss in the parameters' dtype
        per_row = _per_row_loss(logits, jax.lax.stop_gradient(z).astype(dtype), rows, knobs)
        w = valid.astype(dtype)
        value = jnp.sum(w * rows.coef * per_row) / jnp.maximum(jnp.sum(w), 1.0)
        value = value + knobs.l1 * sum(jnp.sum(jnp.abs(p)) for p in jax.tree.leaves(params))
        return value, nnx.split(model, nnx.Param, ...)[2]

    (value, rest), grads = jax.value_and_grad(objective, has_aux=True)(params)
    hyper = dict(opt_state.hyperparams, learning_rate=learning_rate(knobs, opt_state.count),
                 weight_decay=knobs.weight_decay)
    if family == "sgd":
        hyper["momentum"] = knobs.momentum
    opt_state = opt_state._replace(hyperparams=hyper)
    updates, opt_state = optimizer(family, dtype).update(grads, opt_state, params)
    # Masked AFTER the optimizer: momentum and weight decay cannot move a frozen weight.
    updates = jax.tree.map(jnp.multiply, updates, knobs.update_mask)
    return State(optax.apply_updates(params, updates), rest, opt_state), value


def augment(key, xb):
    """Random crop of the zero-padded image (``CROP_PADDING`` pixels each side) and horizontal flip.

    The CIFAR recipe: pad 4 pixels of zeros on every side, crop an H x W window at a uniform
    offset in [0, 8]^2, flip left-right with probability 1/2; one draw per image.

    Parameters
    ----------
    key
        A JAX PRNG key.
    xb : (B, H, W, C) images

    Returns
    -------
    jax.Array
        (B, H, W, C), the augmented batch.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> from muso_jax.nn import engine
    >>> xb = jnp.ones((2, 8, 8, 1))
    >>> out = jax.jit(engine.augment)(jax.random.key(0), xb)
    >>> out.shape, bool(out.max() <= 1.0), bool(out.min() >= 0.0)
    ((2, 8, 8, 1), True, True)
    """
    b, h, w, _ = xb.shape
    p = CROP_PADDING
    k_crop, k_flip = jax.random.split(key)
    padded = jnp.pad(xb, ((0, 0), (p, p), (p, p), (0, 0)))
    offsets = jax.random.randint(k_crop, (b, 2), 0, 2 * p + 1)
    crop = jax.vmap(lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, img.shape[-1])))
    xb = crop(padded, offsets)
    flip = jax.random.bernoulli(k_flip, 0.5, (b,))
    return jnp.where(flip[:, None, None, None], xb[:, :, ::-1, :], xb)


def order(key, member, batch_size: int):
    """Row indices of one epoch, (S, B) with S = ceil(N / B), and their validity: a permutation
    drawn from ``key`` with the members first (in permuted order), padded at the end.

    Parameters
    ----------
    key
        A JAX PRNG key (the engine folds the epoch into it).
    member : (N,) bool
        The run's rows.
    batch_size : int
        B.

    Returns
    -------
    tuple
        ``(idx, valid)``: (S, B) int row indices and (S, B) bool, True on the first
        ``sum(member)`` slots (the members), False on the rest and on the padding.

    Examples
    --------
    >>> import jax
    >>> import numpy as np
    >>> from muso_jax.nn import engine
    >>> member = np.arange(10) < 3
    >>> idx, valid = map(np.asarray, jax.jit(engine.order, static_argnums=2)(jax.random.key(0), member, 4))
    >>> idx.shape, int(valid.sum())
    ((3, 4), 3)
    >>> sorted(idx[valid].tolist())  # the members fill the first slots
    [0, 1, 2]
    """
    n = member.shape[0]
    s = -(-n // batch_size)
    perm = jax.random.permutation(key, n)
    perm = perm[jnp.argsort(~member[perm], stable=True)]
    slots = jnp.arange(s * batch_size)
    idx = jnp.concatenate([perm, jnp.zeros(s * batch_size - n, perm.dtype)]).reshape(s, batch_size)
    valid = (slots < jnp.sum(member)).reshape(s, batch_size)
    return idx, valid


def _epoch(graphdef, family, batch_size, augmented, state, x, rows, knobs, key, epoch):
    global traces
    traces += 1
    key = jax.random.fold_in(key, epoch)
    idx, valid = order(key, rows.member, batch_size)

    def body(carry, batch):
        state, total, steps = carry
        b, i, v = batch

        def run(state):
            xb = x[i]
            if augmented:
                xb = augment(jax.random.fold_in(key, b), xb)
            return step(graphdef, family, state, xb, v, jax.tree.map(lambda a: a[i], rows), knobs)

        def skip(state):
            return state, jnp.zeros((), total.dtype)

        state, value = jax.lax.cond(v[0], run, skip, state)
        return (state, total + value.astype(total.dtype), steps + v[0].astype(jnp.int32)), None

    dtype = knobs.lr.dtype
    carry = (state, jnp.zeros((), dtype), jnp.zeros((), jnp.int32))
    (state, total, steps), _ = jax.lax.scan(body, carry, (jnp.arange(idx.shape[0]), idx, valid))
    return state, total / jnp.maximum(steps, 1).astype(dtype)


@functools.lru_cache(maxsize=16)
def program(graphdef, family: str, batch_size: int, augmented: bool):
    """The compiled epoch ``(state, x, rows, knobs, key, epoch) -> (state, mean loss)``, the state donated.

    One program per (graphdef, family, batch size, augmentation), kept by an LRU cache; jit
    compiles it once per data shape. The epoch scans ``ceil(N / B)`` batches of :func:`order`
    and steps (:func:`step`) on those with members.

    Parameters
    ----------
    graphdef
        The network's static structure.
    family : str
        One of :data:`FAMILIES`.
    batch_size : int
    augmented : bool
        Crop and flip every batch (:func:`augment`; (N, H, W, C) images).

    Returns
    -------
    callable
        The jitted epoch; ``state`` (argument 0) is donated.

    Raises
    ------
    ValueError
        On an unknown ``family``.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import engine
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 4)))
    >>> rows = engine.rows_for(np.arange(16) % 3, num_classes=3, dtype=jnp.float64)
    >>> knobs = engine.knobs_for(net0.params, lr=0.1, features=8, num_classes=3)
    >>> params, rest = jax.tree.map(jnp.copy, (net0.params, net0.rest))  # the state is donated
    >>> state = engine.State(params, rest, engine.optimizer("sgd", jnp.float64).init(params))
    >>> run = engine.program(net0.graphdef, "sgd", 8, False)
    >>> state, loss = run(state, x, rows, knobs, jax.random.key(0), jnp.asarray(0, jnp.int32))
    >>> int(state.opt_state.count), bool(loss > 0)
    (2, True)
    >>> run is engine.program(net0.graphdef, "sgd", 8, False)
    True
    """
    if family not in FAMILIES:
        raise ValueError(f"argument `family`: expected one of {list(FAMILIES)}; got {family!r}")
    fn = functools.partial(_epoch, graphdef, family, batch_size, augmented)
    return jax.jit(fn, donate_argnums=0)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimizer steps of one epoch over ``n`` rows: ``ceil(n / batch_size)`` (a short last batch counts).

    Parameters
    ----------
    n, batch_size : int

    Returns
    -------
    int

    Examples
    --------
    >>> from muso_jax.nn.engine import steps_per_epoch
    >>> steps_per_epoch(16, 8), steps_per_epoch(17, 8)
    (2, 3)
    """
    return -(-n // batch_size)

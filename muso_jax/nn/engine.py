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
    """:class:`Rows` of plain supervised training on ``labels`` (every field overridable)."""
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
    """:class:`Knobs` as arrays of the parameters' dtype (``head`` zeros, ``update_mask`` ones by default)."""
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
    """The optimizer of a family with its hyperparameters held in the state (set by :func:`step`)."""
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
    """The learning rate at optimizer step ``count``: constant, cosine decay to 0, or step decay."""
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
    """One optimizer step on a batch (``valid``: (B,) booleans; the others are padding).

    Padding rows count neither in the loss nor in BatchNorm's batch statistics: the step equals
    one on the valid rows alone. Returns ``(state, loss)``.
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
    """Random crop of the zero-padded image (``CROP_PADDING`` pixels each side) and horizontal flip."""
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
    drawn from ``key`` with the members first (in permuted order), padded at the end."""
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
    """The compiled epoch ``(state, x, rows, knobs, key, epoch) -> (state, mean loss)``, the state donated."""
    if family not in FAMILIES:
        raise ValueError(f"argument `family`: expected one of {list(FAMILIES)}; got {family!r}")
    fn = functools.partial(_epoch, graphdef, family, batch_size, augmented)
    return jax.jit(fn, donate_argnums=0)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return -(-n // batch_size)

"""The field's unlearning baselines, each a function with MUSO's signature:

    method(key, net0, net_p, x, y, forget, cfg, *, on_batch=None) -> (net_u, BaselineInfo)

``forget`` is a boolean mask over the rows of ``x`` or their indices (D_f; the other rows are
D_r). ``net0`` (the random initialization p_0) serves MUSO and Bad Teacher's incompetent
teacher; a method reads only the data its paper allows (FT and l1-sparse never touch D_f, GA
never touches D_r). Defaults follow the cited papers' code where they state one, scaled to
small data (epochs); every method shares one optimizer step.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from muso_jax.nn.models import num_classes
from muso_jax.nn.state import Net, forward
from muso_jax.nn.train import (TrainConfig, check_config, check_data, check_unlearning, cross_entropy, make_optimizer,
                               make_step, run_epoch, steps_per_epoch)


class BaselineConfig(NamedTuple):
    epochs: int = 10
    lr: float = 0.01
    optimizer: str = "sgd"
    batch_size: int = 64
    weight_decay: float = 5e-4
    sparsity: float = 0.5  # SalUn: share of weights frozen (the least salient)
    l1: float = 5e-4  # l1-sparse: initial penalty, decayed linearly to 0
    temperature: float = 4.0  # SCRUB distillation temperature
    max_epochs: int = 2  # SCRUB: epochs with a max (forget) pass
    beta: float = 0.999  # NegGrad+: weight of the retain loss


class BaselineInfo(NamedTuple):
    seconds: float  # wall clock of the unlearning alone (RTE), after the input checks


DEFAULTS = {
    "FT": BaselineConfig(),  # fine-tune on D_r (Golatkar et al. 2020; SalUn code settings)
    "GA": BaselineConfig(epochs=5, lr=1e-4),  # gradient ascent on D_f (Thudi et al. 2022)
    "RL": BaselineConfig(),  # random labels on D_f with D_r (Golatkar et al. 2020 / amnesiac, Graves et al. 2021)
    "BadTeacher": BaselineConfig(epochs=1, lr=1e-4, optimizer="adam", temperature=1.0),  # Chundawat et al. 2023
    "SalUn": BaselineConfig(),  # saliency mask + RL (Fan et al. 2024, arXiv 2310.12508)
    "l1-sparse": BaselineConfig(),  # FT with a decaying l1 penalty (Jia et al. 2023, arXiv 2304.04934)
    "SCRUB": BaselineConfig(epochs=5, lr=5e-4),  # max-min distillation (Kurmanji et al. 2023)
    "NegGrad+": BaselineConfig(epochs=5),  # descent on D_r, ascent on D_f (Kurmanji et al. 2023)
}


def _tx(cfg, n, mask=None):
    tx = make_optimizer(TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, optimizer=cfg.optimizer,
                                    weight_decay=cfg.weight_decay, schedule="constant"), steps_per_epoch(n, cfg.batch_size))
    if mask is None:
        return tx
    # Masked AFTER the optimizer: momentum and weight decay cannot move a frozen weight (x + 0 = x).
    return optax.chain(tx, optax.GradientTransformation(lambda p: optax.EmptyState(),
                                                        lambda u, s, p=None: (jax.tree.map(jnp.multiply, u, mask), s)))


def _fit(key, net, x, y, cfg, loss=None, extra=None, tx=None, on_batch=None, epochs=None):
    tx = tx or _tx(cfg, len(y))
    step = make_step(net.graphdef, tx, loss)
    opt_state = tx.init(net.params)
    x, y = jnp.asarray(x), jnp.asarray(y)
    for epoch in range(epochs or cfg.epochs):
        net, opt_state, _ = run_epoch(jax.random.fold_in(key, epoch), step, net, opt_state, x, y, cfg.batch_size,
                                      extra=extra, on_batch=on_batch)
    return net


def _method(fn):
    """The public method around ``fn(key, net0, net_p, x_r, y_r, x_f, y_f, cfg, on_batch)``:
    validation and the split into D_r and D_f first, then the timed unlearning."""
    def unlearn(key, net0: Net, net_p: Net, x, y, forget, cfg: BaselineConfig, *,
                on_batch=None) -> tuple[Net, BaselineInfo]:
        x_r, y_r, x_f, y_f = check_unlearning(net0, net_p, x, y, forget, cfg)
        start = time.perf_counter()
        net = fn(key, net0, net_p, x_r, y_r, x_f, y_f, cfg, on_batch)
        jax.block_until_ready(net.params)
        return net, BaselineInfo(time.perf_counter() - start)
    unlearn.__name__, unlearn.__qualname__, unlearn.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
    return unlearn


def _random_wrong_labels(key, y, k):
    """A uniformly random label different from the true one, per row."""
    shift = jax.random.randint(key, y.shape, 1, k).astype(y.dtype)  # the labels' int type (may be int32)
    return (y + shift) % k


@_method
def finetune(key, net0, net_p, x_r, y_r, x_f, y_f, cfg, on_batch):
    """FT: continue training on D_r only (reads no D_f)."""
    return _fit(key, net_p, x_r, y_r, cfg, on_batch=on_batch)


@_method
def gradient_ascent(key, net0, net_p, x_r, y_r, x_f, y_f, cfg, on_batch):
    """GA: ascend the cross-entropy on D_f (reads no D_r)."""
    return _fit(key, net_p, x_f, y_f, cfg, loss=lambda p, r, logits, xb, yb, e: -cross_entropy(logits, yb),
                on_batch=on_batch)


def _relabeled_union(key, net_p, x_r, y_r, x_f, y_f):
    y_rand = _random_wrong_labels(key, jnp.asarray(y_f), num_classes(net_p))
    return jnp.concatenate([jnp.asarray(x_r), jnp.asarray(x_f)]), jnp.concatenate([jnp.asarray(y_r), y_rand])


@_method
def random_labels(key, net0, net_p, x_r, y_r, x_f, y_f, cfg, on_batch):
    """RL: train on D_r plus D_f with random wrong labels."""
    x, y = _relabeled_union(jax.random.fold_in(key, 99), net_p, x_r, y_r, x_f, y_f)
    return _fit(key, net_p, x, y, cfg, on_batch=on_batch)


def saliency_mask(net_p: Net, x_f, y_f, sparsity: float):
    """SalUn's weight saliency: 1 where |grad of the D_f cross-entropy| is in the top (1 - sparsity)."""
    x_f, y_f = check_data(net_p, x_f, y_f, x_name="x_f", y_name="y_f")
    check_config(BaselineConfig(sparsity=sparsity))  # the domain of BaselineConfig.sparsity

    def loss(params):
        logits, _ = forward(net_p.graphdef, params, net_p.rest, x_f, train=False)
        return jnp.mean(cross_entropy(logits, y_f))

    grads = jax.grad(loss)(net_p.params)
    flat = jnp.concatenate([jnp.abs(g).ravel() for g in jax.tree.leaves(grads)])
    threshold = jnp.quantile(flat, sparsity)
    return jax.tree.map(lambda g: (jnp.abs(g) >= threshold).astype(g.dtype), grads)


@_method
def salun(key, net0, net_p, x_r, y_r, x_f, y_f, cfg, on_batch):
    """SalUn: random-label fine-tuning that moves only the salient weights."""
    mask = saliency_mask(net_p, x_f, y_f, cfg.sparsity)
    x, y = _relabeled_union(jax.random.fold_in(key, 99), net_p, x_r, y_r, x_f, y_f)
    return _fit(key, net_p, x, y, cfg, tx=_tx(cfg, len(y), mask), on_batch=on_batch)


@_method
def l1_sparse(key, net0, net_p, x_r, y_r, x_f, y_f, cfg, on_batch):
    """l1-sparse: FT on D_r with an l1 penalty decayed linearly from ``cfg.l1`` to 0 (reads no D_f)."""
    def loss(p, r, logits, xb, yb, alpha):  # alpha arrives as data: one compiled step for all epochs
        return cross_entropy(logits, yb) + alpha * sum(jnp.sum(jnp.abs(w)) for w in jax.tree.leaves(p))

    tx = _tx(cfg, len(y_r))
    step = make_step(net_p.graphdef, tx, loss)
    net, opt_state = net_p, tx.init(net_p.params)
    x_r, y_r = jnp.asarray(x_r), jnp.asarray(y_r)
    for epoch in range(cfg.epochs):
        alpha = jnp.asarray(cfg.l1 * (1.0 - epoch / cfg.epochs), jnp.float32)
        net, opt_state, _ = run_epoch(jax.random.fold_in(key, epoch), step, net, opt_state, x_r, y_r, cfg.batch_size,
                                      extra=alpha, on_batch=on_batch)
    return net


def _kl_to(teacher: Net, temperature):
    def kl(logits, xb):
        t_logits, _ = forward(teacher.graphdef, teacher.params, teacher.rest, xb, train=False)
        return optax.kl_divergence(jax.nn.log_softmax(logits / temperature), jax.nn.softmax(t_logits / temperature))
    return kl


@_method
def bad_teacher(key, net0, net_p, x_r, y_r, x_f, y_f, cfg, on_batch):
    """Bad Teacher: distil the original (competent) teacher on D_r and a randomly initialized
    (incompetent) teacher on D_f, at temperature ``cfg.temperature``."""
    good_kl, bad_kl = _kl_to(net_p, cfg.temperature), _kl_to(net0, cfg.temperature)  # p_0: randomly initialized
    x = jnp.concatenate([jnp.asarray(x_r), jnp.asarray(x_f)])
    y = jnp.concatenate([jnp.asarray(y_r), jnp.asarray(y_f)])
    is_f = jnp.concatenate([jnp.zeros(len(y_r), bool), jnp.ones(len(y_f), bool)])
    loss = lambda p, r, logits, xb, yb, e: jnp.where(e, bad_kl(logits, xb), good_kl(logits, xb))
    return _fit(key, net_p, x, y, cfg, loss=loss, extra=lambda idx: is_f[idx], on_batch=on_batch)


@_method
def scrub(key, net0, net_p, x_r, y_r, x_f, y_f, cfg, on_batch):
    """SCRUB: alternate a max pass (move away from the teacher on D_f) with a min pass (stay
    close on D_r, plus cross-entropy), the max passes only in the first ``cfg.max_epochs``."""
    kl = _kl_to(net_p, cfg.temperature)
    tx = _tx(cfg, len(y_r))
    max_step = make_step(net_p.graphdef, tx, lambda p, r, logits, xb, yb, e: -kl(logits, xb))
    min_step = make_step(net_p.graphdef, tx, lambda p, r, logits, xb, yb, e: kl(logits, xb) + cross_entropy(logits, yb))
    net, opt_state = net_p, tx.init(net_p.params)
    arrays = [jnp.asarray(a) for a in (x_r, y_r, x_f, y_f)]
    for epoch in range(cfg.epochs):
        if epoch < cfg.max_epochs:
            net, opt_state, _ = run_epoch(jax.random.fold_in(key, 2 * epoch), max_step, net, opt_state, arrays[2],
                                          arrays[3], cfg.batch_size, on_batch=on_batch)
        net, opt_state, _ = run_epoch(jax.random.fold_in(key, 2 * epoch + 1), min_step, net, opt_state, arrays[0],
                                      arrays[1], cfg.batch_size, on_batch=on_batch)
    return net


@_method
def neggrad_plus(key, net0, net_p, x_r, y_r, x_f, y_f, cfg, on_batch):
    """NegGrad+: on mixed batches, beta * CE on D_r rows minus (1 - beta) * CE on D_f rows."""
    x = jnp.concatenate([jnp.asarray(x_r), jnp.asarray(x_f)])
    y = jnp.concatenate([jnp.asarray(y_r), jnp.asarray(y_f)])
    is_f = jnp.concatenate([jnp.zeros(len(y_r), bool), jnp.ones(len(y_f), bool)])
    loss = lambda p, r, logits, xb, yb, e: jnp.where(e, -(1 - cfg.beta), cfg.beta) * cross_entropy(logits, yb)
    return _fit(key, net_p, x, y, cfg, loss=loss, extra=lambda idx: is_f[idx], on_batch=on_batch)


METHODS = {"FT": finetune, "GA": gradient_ascent, "RL": random_labels, "BadTeacher": bad_teacher, "SalUn": salun,
           "l1-sparse": l1_sparse, "SCRUB": scrub, "NegGrad+": neggrad_plus}

r"""MUSO for networks: alternate a closed-form relabel of the last layer with fine-tuning
(Yang et al., arXiv 2410.08557, the nonlinear section; defaults from the authors' scripts).

Treat the penultimate features ``z(x)`` plus a constant 1 as the random features of the linear
theory and ``W_0``, ``W_p`` (the heads of p_0 and of the original network, (F + 1) x K) as
theta_0 and theta_p. Before every epoch:

.. math::
    P = Z^\top (Z Z^\top + \epsilon I)^{-1} Z, \qquad R = P (W_p - W_0) + W_0 + W_p

with Z the features of a random subset of D_r under the CURRENT network and epsilon on a cosine
ramp. During the epoch, over shuffled batches of D_r and D_f, a forget point gets the logits

.. math::
    \ell(x) = [z_{cur}(x), 1] R - [z_{orig}(x), 1] W_p
            = [z_{cur}, 1][W_0 + P(W_p - W_0)] + ([z_{cur}, 1] - [z_{orig}, 1]) W_p

(z_orig from the frozen original network) and is trained on argmax(l) (or on softmax(l) with
the KL loss when ``soft``); retain points keep their labels. At step 0, z_cur = z_orig and the
labels are the linear theory's projector-form labels.

z_cur comes from the training forward pass of the batch itself (the engine's relabel rows,
:mod:`muso_jax.nn.engine`), at no extra cost; for a network with BatchNorm these are the
features under the batch's statistics, not the running averages.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

import muso_jax as mj
from muso_jax import _checks, _linalg
from muso_jax.nn import engine
from muso_jax.nn.models import head_matrix, num_classes, with_bias_column
from muso_jax.nn.state import Net, predict
from muso_jax.nn.train import check_unlearning, knobs_from_config, run_epochs, steps_per_epoch

PROJECTORS = ("exact", "authors_woodbury")


class MusoConfig(NamedTuple):
    """Defaults: the authors' random-subset forgetting (Adam, lr 3e-5, 2 epochs, batch 128)."""

    epochs: int = 2
    lr: float = 3e-5
    optimizer: str = "adam"
    schedule: str = "constant"
    weight_decay: float = 0.0
    batch_size: int = 128
    subset_ratio: float = 0.2  # share of D_r whose features build P
    eps_start: float = 1e-6  # cosine ramp of the ridge epsilon across epochs
    eps_end: float = 1e-2
    soft: bool = False  # KL to softmax(l) instead of cross-entropy on argmax(l)
    projector: str = "exact"  # "authors_woodbury": ABLATION, not a projector (see head_projector)


# The authors' class-forgetting setting: AdamW, lr 2.8e-4 with cosine decay, 5 epochs.
CLASS_DEFAULTS = MusoConfig(epochs=5, lr=2.8e-4, optimizer="adamw", schedule="cosine", weight_decay=5e-4)


def epsilon(epoch: int, cfg: MusoConfig) -> float:
    r"""Cosine ramp from ``eps_start`` (epoch 0) to ``eps_end`` (last epoch).

    .. math::
        \epsilon_e = \epsilon_{end} + (\epsilon_{start} - \epsilon_{end})\,
                     \tfrac12 \left(1 + \cos \frac{\pi e}{E - 1}\right)

    over the E = ``cfg.epochs`` epochs (``eps_start`` when E = 1): the ridge of the relabel
    projector before epoch e (the authors' scripts, MUSO arXiv 2410.08557).

    Parameters
    ----------
    epoch : int
        e, in [0, E).
    cfg : MusoConfig
        ``epochs``, ``eps_start``, ``eps_end``.

    Returns
    -------
    float

    Examples
    --------
    >>> from muso_jax.nn.muso import MusoConfig, epsilon
    >>> cfg = MusoConfig(epochs=3, eps_start=1e-6, eps_end=1e-2)
    >>> [round(epsilon(e, cfg), 7) for e in range(3)]
    [1e-06, 0.0050005, 0.01]
    """
    if cfg.epochs == 1:
        return cfg.eps_start
    c = (1.0 + math.cos(math.pi * epoch / (cfg.epochs - 1))) / 2.0
    return cfg.eps_end + (cfg.eps_start - cfg.eps_end) * c


def head_projector(z, eps, variant: str = "exact"):
    r"""The relabel projector on features ``z`` ((n, F + 1), bias column included).

    ``"exact"``: ``Z^T (Z Z^T + eps I)^{-1} Z``, solved on the smaller side, never inverted
    explicitly (:func:`muso_jax.projector`); eigenvalues ``s / (s + eps)`` in [0, 1).

    ``"authors_woodbury"`` (ABLATION, not a projector): our reading of the authors' latest public
    revision, a Woodbury form of ``(Z^T Z + eps I)^{-1} Z^T Z`` whose inner identity lacks the
    factor eps, ``(1/eps)[I - Z^T (I + Z Z^T)^{-1} Z] Z^T Z``; its eigenvalues are
    ``s / (eps (1 + s))``, up to about 1/eps. Kept so users can see whether results depend on it.

    .. math::
        P = Z^\top (Z Z^\top + \epsilon I)^{-1} Z

    (MUSO, arXiv 2410.08557, nonlinear section), with Z the (n, F + 1) features of a subset of
    D_r under the current network.

    Parameters
    ----------
    z : (n, F + 1) features
        The bias column included (:func:`muso_jax.nn.models.with_bias_column`).
    eps : float
        The ridge epsilon, >= 0 (> 0 for the ablation).
    variant : str
        One of :data:`PROJECTORS`.

    Returns
    -------
    jax.Array
        (F + 1, F + 1).

    Raises
    ------
    ValueError
        On an unknown ``variant`` (naming ``projector``), a bad ``z`` or a negative ``eps``.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn.muso import head_projector
    >>> z = np.random.default_rng(0).normal(size=(5, 9))
    >>> P = head_projector(z, 1e-6)
    >>> P.shape, bool(jnp.allclose(P, P.T)), round(float(jnp.trace(P)), 3)  # rank 5: trace ~ 5
    ((9, 9), True, 5.0)
    >>> float(jnp.trace(head_projector(z, 1e-6, "authors_woodbury"))) > 1e3  # not a projector
    True
    >>> head_projector(z, 1e-6, "woodbury")
    Traceback (most recent call last):
        ...
    ValueError: argument `projector`: expected one of ['exact', 'authors_woodbury']; got 'woodbury'
    """
    if variant not in PROJECTORS:
        raise ValueError(f"argument `projector`: expected one of {list(PROJECTORS)}; got {variant!r}")
    z = _checks.array("z", z, ndim=(2,), what="(n, F + 1) feature matrix")
    _checks.nonnegative("eps", eps)
    if variant == "exact":
        return mj.projector(z, ridge=eps)
    _checks.positive("eps", eps)  # the ablation divides by eps
    n = z.shape[0]
    inner = _linalg.solve(jnp.eye(n, dtype=z.dtype) + z @ z.T, z, well_posed=True)  # SPD, eigenvalues >= 1
    A = z.T @ z
    return (A - z.T @ (inner @ A)) / eps


def relabel_head(P, W0, Wp):
    r"""``R = P (W_p - W_0) + W_0 + W_p``.

    .. math::
        R = P (W_p - W_0) + W_0 + W_p

    the relabel matrix of MUSO for networks (arXiv 2410.08557, nonlinear section): with
    :func:`forget_logits` a forget point's logits are
    :math:`[z_{cur}, 1] R - [z_{orig}, 1] W_p`.

    Parameters
    ----------
    P : (F + 1, F + 1)
        The projector of :func:`head_projector`.
    W0, Wp : (F + 1, K)
        The heads of p_0 and of the original network (:func:`muso_jax.nn.models.head_matrix`).

    Returns
    -------
    jax.Array
        (F + 1, K).

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from muso_jax.nn.muso import relabel_head
    >>> W0, Wp = jnp.zeros((9, 3)), jnp.ones((9, 3))
    >>> relabel_head(jnp.eye(9), W0, Wp).shape
    (9, 3)
    >>> bool(jnp.all(relabel_head(jnp.eye(9), W0, Wp) == 2 * Wp))  # P = I: R = 2 W_p
    True
    """
    return P @ (Wp - W0) + W0 + Wp


def forget_logits(z_cur, z_orig, R, Wp):
    r"""``[z_cur, 1] R - [z_orig, 1] W_p``: the relabel logits of forget points.

    .. math::
        \ell(x) = [z_{cur}(x), 1]\, R - [z_{orig}(x), 1]\, W_p

    (MUSO, arXiv 2410.08557, nonlinear section); at step 0, z_cur = z_orig and
    :math:`\ell = [z, 1](W_0 + P (W_p - W_0))`, the linear theory's projector-form labels.

    Parameters
    ----------
    z_cur, z_orig : (n, F) features
        Of the forget points under the current and the original network (no bias column).
    R : (F + 1, K)
        :func:`relabel_head`.
    Wp : (F + 1, K)
        The original network's head.

    Returns
    -------
    jax.Array
        (n, K) logits; MUSO's hard labels are their argmax.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn.models import with_bias_column
    >>> from muso_jax.nn.muso import forget_logits, relabel_head
    >>> z = jnp.asarray(np.random.default_rng(0).normal(size=(4, 8)))
    >>> W0, Wp = jnp.zeros((9, 3)), jnp.ones((9, 3))
    >>> R = relabel_head(jnp.zeros((9, 9)), W0, Wp)  # P = 0: R = W_0 + W_p
    >>> logits = forget_logits(z, z, R, Wp)
    >>> logits.shape, bool(jnp.allclose(logits, with_bias_column(z) @ W0))  # step 0, P = 0: [z, 1] W_0
    ((4, 3), True)
    """
    return with_bias_column(z_cur) @ R - with_bias_column(z_orig) @ Wp


class MusoInfo(NamedTuple):
    seconds: float  # wall clock of the unlearning alone (RTE), after the input checks
    changed_at_start: float  # percent of D_f whose MUSO label differs from its true label, step 0
    changed_at_end: float  # the same with the final network's relabel
    epsilons: tuple
    losses: tuple


def _labels(net: Net, net_p: Net, x_f, R, Wp):
    z_cur = predict(net, x_f, features=True)
    z_orig = predict(net_p, x_f, features=True)
    return jnp.argmax(forget_logits(z_cur, z_orig, R, Wp), axis=1)


def _percent_changed(labels, y):
    """Percent of rows whose label differs (a float, or an array under vmap)."""
    share = 100.0 * jnp.mean(labels != jnp.asarray(y).astype(labels.dtype))
    return float(share) if _checks.is_concrete(share) else share


def unlearn(key, net0: Net, net_p: Net, x, y, forget, cfg: MusoConfig, *,
            on_progress=None) -> tuple[Net, MusoInfo]:
    r"""Run MUSO from the original network ``net_p`` with its initialization ``net0``.

    Every epoch shuffles all N rows (D_r and D_f together). Before epoch e, with Z the features
    of a random ``subset_ratio`` of D_r under the current network and :math:`\epsilon_e` of
    :func:`epsilon`,

    .. math::
        P = Z^\top (Z Z^\top + \epsilon_e I)^{-1} Z, \qquad R = P (W_p - W_0) + W_0 + W_p,

    and during the epoch a forget point is trained on :math:`\arg\max\, [z_{cur}, 1] R -
    [z_{orig}, 1] W_p` (its softmax with ``soft``), a retain point on its label (Yang et al.,
    MUSO, arXiv 2410.08557, nonlinear section).

    Parameters
    ----------
    key
        A JAX PRNG key (the subsets and batch orders).
    net0, net_p : Net
        The initialization p_0 and the original network.
    x : (N, ...) inputs
        The original training set D.
    y : (N,) int labels in [0, K)
    forget : (N,) bool mask or int indices
        D_f (the rest is D_r).
    cfg : MusoConfig
    on_progress : callable, optional
        Gets the optimizer steps of each epoch.

    Returns
    -------
    tuple
        ``(net_u, MusoInfo)``: the unlearned network; the wall clock, the percent of D_f whose
        MUSO label differs from its true label at the start and at the end, the epsilons and
        the epoch losses.

    Raises
    ------
    ValueError
        On a bad field of ``cfg`` (an unknown ``projector`` among them) or bad data (see
        :func:`muso_jax.nn.train.check_unlearning`).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import muso
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> from muso_jax.nn.train import TrainConfig, train
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> net_p = train(jax.random.key(0), net0, x, y, TrainConfig(epochs=1, batch_size=8))
    >>> cfg = muso.MusoConfig(epochs=1, batch_size=8, optimizer="sgd")
    >>> net_u, info = muso.unlearn(jax.random.key(1), net0, net_p, x, y, np.arange(16) < 4, cfg)
    >>> type(net_u).__name__, info.seconds >= 0, len(info.epsilons), len(info.losses)
    ('Net', True, 1, 1)
    >>> info.changed_at_start > 0  # MUSO relabels some forget points away from their labels
    True
    >>> muso.unlearn(jax.random.key(1), net0, net_p, x, y, [0, 1], cfg._replace(projector="woodbury"))
    Traceback (most recent call last):
        ...
    ValueError: argument `projector`: expected one of ['exact', 'authors_woodbury']; got 'woodbury'
    """
    if cfg.projector not in PROJECTORS:
        raise ValueError(f"argument `projector`: expected one of {list(PROJECTORS)}; got {cfg.projector!r}")
    x, y, forget = check_unlearning(net0, net_p, x, y, forget, cfg)
    start = time.perf_counter()
    W0, Wp = head_matrix(net0.params["head"]), head_matrix(net_p.params["head"])
    dtype = Wp.dtype
    is_forget = jnp.asarray(forget)
    x_r, x_f, y_f = x[~forget], x[forget], y[forget]
    soft = jnp.where(is_forget, 1.0, 0.0) if cfg.soft else None  # KL to softmax(l), temperature 1
    rows = engine.rows_for(y, relabel=is_forget, reference=predict(net_p, x), distill=soft,
                           num_classes=num_classes(net_p), dtype=dtype)
    total = cfg.epochs * steps_per_epoch(len(y), cfg.batch_size)
    n_sub = max(1, int(round(cfg.subset_ratio * len(x_r))))
    net, state = net_p, None
    eps_used, losses, changed0, R = [], [], None, None
    for epoch in range(cfg.epochs):
        eps = epsilon(epoch, cfg)
        subset = jax.random.choice(jax.random.fold_in(key, 2 * epoch), len(x_r), (n_sub,), replace=False)
        z = with_bias_column(predict(net, x_r[subset], features=True))
        R = relabel_head(head_projector(z, eps, cfg.projector), W0, Wp)
        if epoch == 0:
            changed0 = _percent_changed(_labels(net, net_p, x_f, R, Wp), y_f)
        net, state, loss = run_epochs(jax.random.fold_in(key, 1), net, x, rows,
                                      knobs_from_config(net_p, cfg, total, head=R), optimizer=cfg.optimizer,
                                      batch_size=cfg.batch_size, epochs=epoch + 1, state=state, first_epoch=epoch,
                                      on_progress=on_progress)
        eps_used.append(eps)
        losses.extend(loss)
    jax.block_until_ready(net.params)
    seconds = time.perf_counter() - start
    z = with_bias_column(predict(net, x_r[subset], features=True))
    R_end = relabel_head(head_projector(z, eps_used[-1], cfg.projector), W0, Wp)
    changed_end = _percent_changed(_labels(net, net_p, x_f, R_end, Wp), y_f)
    return net, MusoInfo(seconds, changed0, changed_end, tuple(eps_used), tuple(losses))

"""The field's unlearning baselines, each a function with MUSO's signature:

    ``method(key, net0, net_p, x, y, forget, cfg, *, on_progress=None) -> (net_u, BaselineInfo)``

``forget`` is a boolean mask over the rows of ``x`` or their indices (D_f; the other rows are
D_r). ``net0`` (the random initialization p_0) serves MUSO and Bad Teacher's incompetent
teacher; a method reads only the data its paper allows (FT and l1-sparse never touch D_f, GA
never touches D_r). Defaults follow the cited papers' code where they state one, scaled to
small data (epochs). Every method is a set of per-row targets (:class:`muso_jax.nn.engine.Rows`)
over ALL N rows for the engine's one compiled epoch: a method that trains on D_r or on D_f
alone marks its members, and the rows it must not read are never in a batch.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from muso_jax.nn import engine
from muso_jax.nn.models import num_classes
from muso_jax.nn.state import Net, forward, param_dtype, predict
from muso_jax.nn.train import (check_config, check_data, check_unlearning, knobs_from_config, run_epochs,
                               steps_per_epoch)


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


def _rows(net: Net, y, **fields) -> engine.Rows:
    return engine.rows_for(y, num_classes=num_classes(net), dtype=param_dtype(net), **fields)


def _fit(key, net, x, rows, cfg, on_progress, *, state=None, epoch=0, epochs=None, **overrides):
    """Epochs ``epoch .. epochs - 1`` (default: all of ``cfg.epochs``) with a constant learning rate."""
    total = cfg.epochs * steps_per_epoch(int(jnp.sum(rows.member)), cfg.batch_size)
    return run_epochs(key, net, x, rows, knobs_from_config(net, cfg, total, **overrides), optimizer=cfg.optimizer,
                      batch_size=cfg.batch_size, epochs=cfg.epochs if epochs is None else epochs, state=state,
                      first_epoch=epoch, on_progress=on_progress)


def _method(fn):
    """The public method around ``fn(key, net0, net_p, x, y, forget, cfg, on_progress)``:
    validation first (``forget`` becomes an (N,) boolean mask), then the timed unlearning."""
    def unlearn(key, net0: Net, net_p: Net, x, y, forget, cfg: BaselineConfig, *,
                on_progress=None) -> tuple[Net, BaselineInfo]:
        x, y, forget = check_unlearning(net0, net_p, x, y, forget, cfg)
        start = time.perf_counter()
        net = fn(key, net0, net_p, x, y, jnp.asarray(forget), cfg, on_progress)
        jax.block_until_ready(net.params)
        return net, BaselineInfo(time.perf_counter() - start)
    unlearn.__name__, unlearn.__qualname__, unlearn.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
    return unlearn


def _random_wrong_labels(key, y, k):
    """A uniformly random label different from the true one, per row."""
    shift = jax.random.randint(key, y.shape, 1, k).astype(y.dtype)  # the labels' int type (may be int32)
    return (y + shift) % k


@_method
def finetune(key, net0, net_p, x, y, forget, cfg, on_progress):
    r"""FT: continue training on D_r only (reads no D_f).

    .. math::
        \min_p \frac{1}{|D_r|} \sum_{(x, y) \in D_r} \mathrm{CE}(f(x; p), y)

    from ``net_p`` (Golatkar et al. 2020; the settings of the SalUn code, Fan et al. 2024,
    arXiv 2310.12508).

    Parameters
    ----------
    key
        A JAX PRNG key (batch orders).
    net0, net_p : Net
        The initialization p_0 and the original network.
    x : (N, ...) inputs
        The original training set D.
    y : (N,) int labels in [0, K)
    forget : (N,) bool mask or int indices
        D_f; the other rows are D_r.
    cfg : BaselineConfig
        ``epochs``, ``lr``, ``optimizer``, ``batch_size``, ``weight_decay``.
    on_progress : callable, optional
        Gets the optimizer steps of each epoch (keyword).

    Returns
    -------
    tuple
        ``(net_u, BaselineInfo)``: the unlearned network and the wall clock of the unlearning.

    Raises
    ------
    ValueError
        On a bad field of ``cfg`` or bad data (:func:`muso_jax.nn.train.check_unlearning`).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import baselines
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> from muso_jax.nn.train import TrainConfig, train
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> net_p = train(jax.random.key(0), net0, x, y, TrainConfig(epochs=1, batch_size=8))
    >>> forget, cfg = np.arange(16) < 4, baselines.BaselineConfig(epochs=1, batch_size=8)
    >>> same = lambda a, b: all(bool(jnp.array_equal(u, v)) for u, v in zip(jax.tree.leaves(a.params),
    ...                                                                      jax.tree.leaves(b.params)))
    >>> net_u, info = baselines.finetune(jax.random.key(1), net0, net_p, x, y, forget, cfg)
    >>> info.seconds >= 0, same(net_u, net_p)
    (True, False)
    >>> x_hidden = np.where(forget[:, None], 0.0, x)  # the result does not depend on D_f's inputs
    >>> same(net_u, baselines.finetune(jax.random.key(1), net0, net_p, x_hidden, y, forget, cfg)[0])
    True
    """
    return _fit(key, net_p, x, _rows(net_p, y, member=~forget), cfg, on_progress)[0]


@_method
def gradient_ascent(key, net0, net_p, x, y, forget, cfg, on_progress):
    r"""GA: ascend the cross-entropy on D_f (reads no D_r).

    .. math::
        \max_p \frac{1}{|D_f|} \sum_{(x, y) \in D_f} \mathrm{CE}(f(x; p), y)

    from ``net_p`` (Thudi et al. 2022), by descent on the row weight ``c = -1``.

    Parameters
    ----------
    key
        A JAX PRNG key (batch orders).
    net0, net_p : Net
        The initialization p_0 and the original network.
    x : (N, ...) inputs
        The original training set D.
    y : (N,) int labels in [0, K)
    forget : (N,) bool mask or int indices
        D_f; the other rows are D_r.
    cfg : BaselineConfig
        ``epochs``, ``lr``, ``optimizer``, ``batch_size``, ``weight_decay``.
    on_progress : callable, optional
        Gets the optimizer steps of each epoch (keyword).

    Returns
    -------
    tuple
        ``(net_u, BaselineInfo)``: the unlearned network and the wall clock of the unlearning.

    Raises
    ------
    ValueError
        On a bad field of ``cfg`` or bad data (:func:`muso_jax.nn.train.check_unlearning`).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import baselines
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> from muso_jax.nn.train import TrainConfig, train
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> net_p = train(jax.random.key(0), net0, x, y, TrainConfig(epochs=1, batch_size=8))
    >>> forget, cfg = np.arange(16) < 4, baselines.BaselineConfig(epochs=1, batch_size=8)
    >>> same = lambda a, b: all(bool(jnp.array_equal(u, v)) for u, v in zip(jax.tree.leaves(a.params),
    ...                                                                      jax.tree.leaves(b.params)))
    >>> net_u, info = baselines.gradient_ascent(jax.random.key(1), net0, net_p, x, y, forget, cfg)
    >>> info.seconds >= 0, same(net_u, net_p)
    (True, False)
    >>> x_hidden = np.where(forget[:, None], x, 0.0)  # the result does not depend on D_r's inputs
    >>> same(net_u, baselines.gradient_ascent(jax.random.key(1), net0, net_p, x_hidden, y, forget, cfg)[0])
    True
    """
    return _fit(key, net_p, x, _rows(net_p, y, member=forget, coef=-jnp.ones(len(y))), cfg, on_progress)[0]


def _relabeled(key, net_p, y, forget):
    """The labels with D_f's replaced by random wrong ones."""
    return jnp.where(forget, _random_wrong_labels(key, y, num_classes(net_p)), y)


@_method
def random_labels(key, net0, net_p, x, y, forget, cfg, on_progress):
    r"""RL: train on D_r plus D_f with random wrong labels.

    .. math::
        \min_p \frac{1}{|D|} \Big[\sum_{(x, y) \in D_r} \mathrm{CE}(f(x; p), y)
            + \sum_{(x, y) \in D_f} \mathrm{CE}(f(x; p), \tilde y)\Big], \qquad
        \tilde y \sim \mathcal U(\{0, \dots, K - 1\} \setminus \{y\})

    from ``net_p`` (Golatkar et al. 2020; Amnesiac ML, Graves et al. 2021).

    Parameters
    ----------
    key
        A JAX PRNG key (batch orders, the random labels).
    net0, net_p : Net
        The initialization p_0 and the original network.
    x : (N, ...) inputs
        The original training set D.
    y : (N,) int labels in [0, K)
    forget : (N,) bool mask or int indices
        D_f; the other rows are D_r.
    cfg : BaselineConfig
        ``epochs``, ``lr``, ``optimizer``, ``batch_size``, ``weight_decay``.
    on_progress : callable, optional
        Gets the optimizer steps of each epoch (keyword).

    Returns
    -------
    tuple
        ``(net_u, BaselineInfo)``: the unlearned network and the wall clock of the unlearning.

    Raises
    ------
    ValueError
        On a bad field of ``cfg`` or bad data (:func:`muso_jax.nn.train.check_unlearning`).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import baselines
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> from muso_jax.nn.train import TrainConfig, train
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> net_p = train(jax.random.key(0), net0, x, y, TrainConfig(epochs=1, batch_size=8))
    >>> forget, cfg = np.arange(16) < 4, baselines.BaselineConfig(epochs=1, batch_size=8)
    >>> same = lambda a, b: all(bool(jnp.array_equal(u, v)) for u, v in zip(jax.tree.leaves(a.params),
    ...                                                                      jax.tree.leaves(b.params)))
    >>> net_u, info = baselines.random_labels(jax.random.key(1), net0, net_p, x, y, forget, cfg)
    >>> info.seconds >= 0, same(net_u, net_p)
    (True, False)
    """
    labels = _relabeled(jax.random.fold_in(key, 99), net_p, y, forget)
    return _fit(key, net_p, x, _rows(net_p, labels), cfg, on_progress)[0]


def saliency_mask(net_p: Net, x_f, y_f, sparsity: float):
    r"""SalUn's weight saliency: 1 where the magnitude of the gradient of the D_f cross-entropy is in the top (1 - sparsity).

    .. math::
        m = \mathbb 1\left[\,|\nabla_p L_f(p_p)| \ge q_s\right], \qquad
        L_f(p) = \frac{1}{|D_f|} \sum_{(x, y) \in D_f} \mathrm{CE}(f(x; p), y)

    with :math:`q_s` the ``sparsity`` quantile of the absolute gradient entries over all the
    parameters (Fan et al. 2024, arXiv 2310.12508), in evaluation mode.

    Parameters
    ----------
    net_p : Net
        The original network.
    x_f : (N_f, ...) inputs
        D_f's inputs.
    y_f : (N_f,) int labels
    sparsity : float
        In [0, 1]: the share of weights frozen (the least salient).

    Returns
    -------
    pytree
        Like ``net_p.params``: 1.0 on the salient weights, 0.0 elsewhere (the parameters' dtype).

    Raises
    ------
    ValueError
        On bad data (naming ``x_f`` or ``y_f``) or a ``sparsity`` outside [0, 1].

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn.baselines import saliency_mask
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net_p = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> mask = saliency_mask(net_p, x[:4], y[:4], 0.5)
    >>> ones = sum(int(m.sum()) for m in jax.tree.leaves(mask))
    >>> size = sum(m.size for m in jax.tree.leaves(mask))
    >>> size, 0.4 < ones / size < 0.6
    (67, True)
    >>> saliency_mask(net_p, x[:4], y[:4], 1.5)
    Traceback (most recent call last):
        ...
    ValueError: argument `sparsity`: expected a number in [0, 1]; got 1.5
    """
    x_f, y_f = check_data(net_p, x_f, y_f, x_name="x_f", y_name="y_f")
    check_config(BaselineConfig(sparsity=sparsity))  # the domain of BaselineConfig.sparsity

    def loss(params):
        logits, _ = forward(net_p.graphdef, params, net_p.rest, x_f, train=False)
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y_f))

    grads = jax.grad(loss)(net_p.params)
    flat = jnp.concatenate([jnp.abs(g).ravel() for g in jax.tree.leaves(grads)])
    threshold = jnp.quantile(flat, sparsity)
    return jax.tree.map(lambda g: (jnp.abs(g) >= threshold).astype(g.dtype), grads)


@_method
def salun(key, net0, net_p, x, y, forget, cfg, on_progress):
    r"""SalUn: random-label fine-tuning that moves only the salient weights.

    .. math::
        p \leftarrow p - m \odot \Delta p

    :func:`random_labels`' update :math:`\Delta p` (after the optimizer: momentum and weight
    decay cannot move a frozen weight) masked by the saliency :math:`m` of
    :func:`saliency_mask` (Fan et al. 2024, arXiv 2310.12508).

    Parameters
    ----------
    key
        A JAX PRNG key (batch orders, the random labels).
    net0, net_p : Net
        The initialization p_0 and the original network.
    x : (N, ...) inputs
        The original training set D.
    y : (N,) int labels in [0, K)
    forget : (N,) bool mask or int indices
        D_f; the other rows are D_r.
    cfg : BaselineConfig
        ``epochs``, ``lr``, ``optimizer``, ``batch_size``, ``weight_decay``, ``sparsity``.
    on_progress : callable, optional
        Gets the optimizer steps of each epoch (keyword).

    Returns
    -------
    tuple
        ``(net_u, BaselineInfo)``: the unlearned network and the wall clock of the unlearning.

    Raises
    ------
    ValueError
        On a bad field of ``cfg`` or bad data (:func:`muso_jax.nn.train.check_unlearning`).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import baselines
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> from muso_jax.nn.train import TrainConfig, train
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> net_p = train(jax.random.key(0), net0, x, y, TrainConfig(epochs=1, batch_size=8))
    >>> forget, cfg = np.arange(16) < 4, baselines.BaselineConfig(epochs=1, batch_size=8)
    >>> same = lambda a, b: all(bool(jnp.array_equal(u, v)) for u, v in zip(jax.tree.leaves(a.params),
    ...                                                                      jax.tree.leaves(b.params)))
    >>> net_u, info = baselines.salun(jax.random.key(1), net0, net_p, x, y, forget, cfg)
    >>> info.seconds >= 0, same(net_u, net_p)
    (True, False)
    >>> mask = baselines.saliency_mask(net_p, x[forget], y[forget], cfg.sparsity)
    >>> all(bool(jnp.all((u != p) <= (m == 1))) for u, p, m in zip(  # only salient weights moved
    ...     jax.tree.leaves(net_u.params), jax.tree.leaves(net_p.params), jax.tree.leaves(mask)))
    True
    """
    mask = saliency_mask(net_p, x[forget], y[forget], cfg.sparsity)
    labels = _relabeled(jax.random.fold_in(key, 99), net_p, y, forget)
    return _fit(key, net_p, x, _rows(net_p, labels), cfg, on_progress, update_mask=mask)[0]


@_method
def l1_sparse(key, net0, net_p, x, y, forget, cfg, on_progress):
    r"""l1-sparse: FT on D_r with an l1 penalty decayed linearly from ``cfg.l1`` to 0 (reads no D_f).

    .. math::
        \min_p \frac{1}{|D_r|} \sum_{(x, y) \in D_r} \mathrm{CE}(f(x; p), y)
            + \gamma_e \lVert p \rVert_1, \qquad \gamma_e = \gamma \left(1 - \frac{e}{E}\right)

    in epoch e of E, :math:`\gamma` = ``cfg.l1`` (Jia et al. 2023, arXiv 2304.04934).

    Parameters
    ----------
    key
        A JAX PRNG key (batch orders).
    net0, net_p : Net
        The initialization p_0 and the original network.
    x : (N, ...) inputs
        The original training set D.
    y : (N,) int labels in [0, K)
    forget : (N,) bool mask or int indices
        D_f; the other rows are D_r.
    cfg : BaselineConfig
        ``epochs``, ``lr``, ``optimizer``, ``batch_size``, ``weight_decay``, ``l1``.
    on_progress : callable, optional
        Gets the optimizer steps of each epoch (keyword).

    Returns
    -------
    tuple
        ``(net_u, BaselineInfo)``: the unlearned network and the wall clock of the unlearning.

    Raises
    ------
    ValueError
        On a bad field of ``cfg`` or bad data (:func:`muso_jax.nn.train.check_unlearning`).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import baselines
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> from muso_jax.nn.train import TrainConfig, train
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> net_p = train(jax.random.key(0), net0, x, y, TrainConfig(epochs=1, batch_size=8))
    >>> forget, cfg = np.arange(16) < 4, baselines.BaselineConfig(epochs=1, batch_size=8)
    >>> same = lambda a, b: all(bool(jnp.array_equal(u, v)) for u, v in zip(jax.tree.leaves(a.params),
    ...                                                                      jax.tree.leaves(b.params)))
    >>> net_u, info = baselines.l1_sparse(jax.random.key(1), net0, net_p, x, y, forget, cfg)
    >>> info.seconds >= 0, same(net_u, net_p)
    (True, False)
    >>> no_penalty = baselines.l1_sparse(jax.random.key(1), net0, net_p, x, y, forget, cfg._replace(l1=0.0))[0]
    >>> same(no_penalty, baselines.finetune(jax.random.key(1), net0, net_p, x, y, forget, cfg)[0])  # l1 = 0: FT
    True
    """
    rows, net, state = _rows(net_p, y, member=~forget), net_p, None
    for epoch in range(cfg.epochs):  # the penalty is a knob (data): one compiled program for all epochs
        net, state, _ = _fit(key, net, x, rows, cfg, on_progress, state=state, epoch=epoch, epochs=epoch + 1,
                             l1=cfg.l1 * (1.0 - epoch / cfg.epochs))
    return net


@_method
def bad_teacher(key, net0, net_p, x, y, forget, cfg, on_progress):
    r"""Bad Teacher: distil the original (competent) teacher on D_r and a randomly initialized
    (incompetent) teacher on D_f, at temperature ``cfg.temperature``.

    .. math::
        \min_p \frac{1}{|D|} \sum_{x \in D} \mathrm{KL}\big(\mathrm{softmax}(t(x) / T) \,\|\,
            \mathrm{softmax}(f(x; p) / T)\big), \qquad
        t(x) = \begin{cases} f(x; p_0) & x \in D_f \\ f(x; p_p) & x \in D_r \end{cases}

    (Chundawat et al. 2023), ``net0`` the incompetent teacher.

    Parameters
    ----------
    key
        A JAX PRNG key (batch orders).
    net0, net_p : Net
        The initialization p_0 and the original network.
    x : (N, ...) inputs
        The original training set D.
    y : (N,) int labels in [0, K)
    forget : (N,) bool mask or int indices
        D_f; the other rows are D_r.
    cfg : BaselineConfig
        ``epochs``, ``lr``, ``optimizer``, ``batch_size``, ``weight_decay``, ``temperature``.
    on_progress : callable, optional
        Gets the optimizer steps of each epoch (keyword).

    Returns
    -------
    tuple
        ``(net_u, BaselineInfo)``: the unlearned network and the wall clock of the unlearning.

    Raises
    ------
    ValueError
        On a bad field of ``cfg`` or bad data (:func:`muso_jax.nn.train.check_unlearning`).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import baselines
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> from muso_jax.nn.train import TrainConfig, train
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> net_p = train(jax.random.key(0), net0, x, y, TrainConfig(epochs=1, batch_size=8))
    >>> forget, cfg = np.arange(16) < 4, baselines.BaselineConfig(epochs=1, batch_size=8)
    >>> same = lambda a, b: all(bool(jnp.array_equal(u, v)) for u, v in zip(jax.tree.leaves(a.params),
    ...                                                                      jax.tree.leaves(b.params)))
    >>> net_u, info = baselines.bad_teacher(jax.random.key(1), net0, net_p, x, y, forget, cfg)
    >>> info.seconds >= 0, same(net_u, net_p)
    (True, False)
    """
    teacher = jnp.where(forget[:, None], predict(net0, x), predict(net_p, x))  # net0: randomly initialized
    rows = _rows(net_p, y, distill=jnp.ones(len(y)), reference=teacher)
    return _fit(key, net_p, x, rows, cfg, on_progress, temperature=cfg.temperature)[0]


@_method
def scrub(key, net0, net_p, x, y, forget, cfg, on_progress):
    r"""SCRUB: alternate a max pass (move away from the teacher on D_f) with a min pass (stay
    close on D_r, plus cross-entropy), the max passes only in the first ``cfg.max_epochs``.

    .. math::
        \max_p \frac{1}{|D_f|} \sum_{D_f} \mathrm{KL}(t \,\|\, f_p), \qquad
        \min_p \frac{1}{|D_r|} \sum_{(x, y) \in D_r} \big[\mathrm{KL}(t \,\|\, f_p)
            + \mathrm{CE}(f(x; p), y)\big]

    with :math:`\mathrm{KL}(t \| f_p)` between the softmaxes at temperature T of the original
    network's (the teacher's) and the student's logits (Kurmanji et al. 2023).

    Parameters
    ----------
    key
        A JAX PRNG key (batch orders).
    net0, net_p : Net
        The initialization p_0 and the original network.
    x : (N, ...) inputs
        The original training set D.
    y : (N,) int labels in [0, K)
    forget : (N,) bool mask or int indices
        D_f; the other rows are D_r.
    cfg : BaselineConfig
        ``epochs``, ``lr``, ``optimizer``, ``batch_size``, ``weight_decay``, ``temperature``, ``max_epochs``.
    on_progress : callable, optional
        Gets the optimizer steps of each epoch (keyword).

    Returns
    -------
    tuple
        ``(net_u, BaselineInfo)``: the unlearned network and the wall clock of the unlearning.

    Raises
    ------
    ValueError
        On a bad field of ``cfg`` or bad data (:func:`muso_jax.nn.train.check_unlearning`).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import baselines
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> from muso_jax.nn.train import TrainConfig, train
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> net_p = train(jax.random.key(0), net0, x, y, TrainConfig(epochs=1, batch_size=8))
    >>> forget, cfg = np.arange(16) < 4, baselines.BaselineConfig(epochs=1, batch_size=8)
    >>> same = lambda a, b: all(bool(jnp.array_equal(u, v)) for u, v in zip(jax.tree.leaves(a.params),
    ...                                                                      jax.tree.leaves(b.params)))
    >>> net_u, info = baselines.scrub(jax.random.key(1), net0, net_p, x, y, forget, cfg)
    >>> info.seconds >= 0, same(net_u, net_p)
    (True, False)
    """
    teacher, ones = predict(net_p, x), jnp.ones(len(y))
    away = _rows(net_p, y, member=forget, coef=-ones, distill=ones, reference=teacher)
    # KL + CE = 2 [(1/2) CE + (1/2) KL]
    close = _rows(net_p, y, member=~forget, coef=2 * ones, distill=ones / 2, reference=teacher)
    net, state = net_p, None
    for epoch in range(cfg.epochs):
        if epoch < cfg.max_epochs:
            net, state, _ = _fit(jax.random.fold_in(key, 0), net, x, away, cfg, on_progress, state=state,
                                 epoch=epoch, epochs=epoch + 1, temperature=cfg.temperature)
        net, state, _ = _fit(jax.random.fold_in(key, 1), net, x, close, cfg, on_progress, state=state, epoch=epoch,
                             epochs=epoch + 1, temperature=cfg.temperature)
    return net


@_method
def neggrad_plus(key, net0, net_p, x, y, forget, cfg, on_progress):
    r"""NegGrad+: on mixed batches, beta * CE on D_r rows minus (1 - beta) * CE on D_f rows.

    .. math::
        \min_p \frac{1}{|b|} \Big[\beta \sum_{(x, y) \in b \cap D_r} \mathrm{CE}(f(x; p), y)
            - (1 - \beta) \sum_{(x, y) \in b \cap D_f} \mathrm{CE}(f(x; p), y)\Big]

    over batches b of all of D (Kurmanji et al. 2023).

    Parameters
    ----------
    key
        A JAX PRNG key (batch orders).
    net0, net_p : Net
        The initialization p_0 and the original network.
    x : (N, ...) inputs
        The original training set D.
    y : (N,) int labels in [0, K)
    forget : (N,) bool mask or int indices
        D_f; the other rows are D_r.
    cfg : BaselineConfig
        ``epochs``, ``lr``, ``optimizer``, ``batch_size``, ``weight_decay``, ``beta``.
    on_progress : callable, optional
        Gets the optimizer steps of each epoch (keyword).

    Returns
    -------
    tuple
        ``(net_u, BaselineInfo)``: the unlearned network and the wall clock of the unlearning.

    Raises
    ------
    ValueError
        On a bad field of ``cfg`` or bad data (:func:`muso_jax.nn.train.check_unlearning`).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import baselines
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> from muso_jax.nn.train import TrainConfig, train
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> net_p = train(jax.random.key(0), net0, x, y, TrainConfig(epochs=1, batch_size=8))
    >>> forget, cfg = np.arange(16) < 4, baselines.BaselineConfig(epochs=1, batch_size=8)
    >>> same = lambda a, b: all(bool(jnp.array_equal(u, v)) for u, v in zip(jax.tree.leaves(a.params),
    ...                                                                      jax.tree.leaves(b.params)))
    >>> net_u, info = baselines.neggrad_plus(jax.random.key(1), net0, net_p, x, y, forget, cfg)
    >>> info.seconds >= 0, same(net_u, net_p)
    (True, False)
    >>> baselines.neggrad_plus(jax.random.key(1), net0, net_p, x, y, forget, cfg._replace(beta=2.0))
    Traceback (most recent call last):
        ...
    ValueError: argument `beta`: expected a number in [0, 1]; got 2.0
    """
    coef = jnp.where(forget, -(1 - cfg.beta), cfg.beta)
    return _fit(key, net_p, x, _rows(net_p, y, coef=coef), cfg, on_progress)[0]


METHODS = {"FT": finetune, "GA": gradient_ascent, "RL": random_labels, "BadTeacher": bad_teacher, "SalUn": salun,
           "l1-sparse": l1_sparse, "SCRUB": scrub, "NegGrad+": neggrad_plus}

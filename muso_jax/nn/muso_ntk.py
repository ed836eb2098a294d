r"""NTK-guided MUSO for real networks: relabel the forgetting data with the outputs of the
*linearized* network retrained on D_r, then fine-tune the real network on D_r plus the
relabeled D_f.

The linearized network at its initialization p_0, ``f(x; p_0) + J(x)(p - p_0)``, is the
random-feature model of MUSO's theory (arXiv 2410.08557) with the tangent features ``J(x)``,
fixed before training. Gradient descent on the squared loss to one-hot targets ``Y`` lands on
the min-norm interpolant, whose outputs anywhere are (kernel form)

.. math::
    f_r(x) = f_0(x) + \Theta(x, X_r)\,[\Theta(X_r, X_r) + \epsilon I]^{-1} (Y_r - f_0(X_r))

with ``Theta`` the empirical NTK at p_0: MUSO's optimal labels for D_f are ``f_r(X_f)``.
The kernel choices trade exactness for cost:

* ``"full"``: the multi-output kernel (N K x N K); exact for the linearized network; cost
  grows as (N K)^2 P: small networks only.
* ``"mean"``: the mean of the K single-logit kernels, used as ``Theta_bar (x) I_K`` (the
  infinite-width structure of the NTK); K times the cost of one logit.
* ``"logit"``: the kernel of one logit as ``Theta_bar`` (cheapest; default).

With ``alternate`` the expansion point moves: before every epoch the kernel and ``f_0`` are
recomputed at the current parameters (the alternating form of the authors' algorithm, with
the tangent features in place of the penultimate ones). Measured NEGATIVE: on three Gaussian
blobs with class 0 forgotten, the alternating form leaves every forget point in class 0 (the
fixed form: none). Linearized at trained parameters, ``f_0(X_f)`` is the trained network's
own large logits for the forgotten class and dominates the one-hot-scale correction, the
failure the tangent features at p_0 were meant to avoid. Kept as the issue asked, not advised.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from muso_jax.nn import ntk, ntk_solvers
from muso_jax.nn.models import num_classes
from muso_jax.nn.state import Net, predict  # noqa: F401 - predict: used by callers through this module
from muso_jax.nn import engine
from muso_jax.nn.train import check_data, check_unlearning, knobs_from_config, run_epochs, steps_per_epoch
from muso_jax.nn.train import check_config as check_training_fields

KERNELS = ntk_solvers.KERNELS
RIDGE_SCALES = ntk_solvers.RIDGE_SCALES
SOLVERS = ("auto",) + ntk_solvers.SOLVERS
# solver="auto": the exact kernel up to this many retained rows, the head's kernel above. Chosen from
# measurements (docs/ntk_solvers.md): on the 28x28 CNN one kernel entry costs ~0.2 ms on 2 cores, so the
# exact kernel at N_r = 2,000 takes ~10 min and grows as N_r^2; the head's closed form costs one
# forward pass; Nystrom and CG cost tens of epochs before they agree with the exact relabel better.
AUTO_EXACT_MAX = 2000


def resolve_solver(cfg, n_retain: int) -> str:
    """The solver ``cfg.solver`` means for ``n_retain`` retained rows (``"auto"`` resolved).

    ``"auto"``: ``"exact"`` up to :data:`AUTO_EXACT_MAX` retained rows, ``"last-layers"`` above.

    Parameters
    ----------
    cfg : NtkConfig
    n_retain : int
        N_r.

    Returns
    -------
    str
        One of :data:`muso_jax.nn.ntk_solvers.SOLVERS`.

    Examples
    --------
    >>> from muso_jax.nn.muso_ntk import NtkConfig, resolve_solver
    >>> resolve_solver(NtkConfig(), 12), resolve_solver(NtkConfig(), 5000)
    ('exact', 'last-layers')
    >>> resolve_solver(NtkConfig(solver="cg"), 12)
    'cg'
    """
    if cfg.solver != "auto":
        return cfg.solver
    return "exact" if n_retain <= AUTO_EXACT_MAX else "last-layers"


class NtkConfig(NamedTuple):
    """``ridge`` is the epsilon added to the diagonal of Theta(X_r, X_r): as given when
    ``ridge_scale="absolute"``, times the mean diagonal of Theta(X_r, X_r) when
    ``"mean_diagonal"`` (the default: a relative ridge keeps its meaning when the kernel's scale
    changes with the architecture)."""

    epochs: int = 5
    lr: float = 1e-3
    optimizer: str = "adam"
    batch_size: int = 64
    weight_decay: float = 0.0
    kernel: str = "logit"
    logit: int = 0  # the logit of the "logit" kernel
    ridge: float = 1e-6  # epsilon; see ridge_scale
    ridge_scale: str = "mean_diagonal"  # "mean_diagonal": epsilon = ridge * mean(diag Theta_rr) | "absolute"
    soft: bool = False  # KL to softmax(f_r / temperature) instead of cross-entropy on argmax f_r
    temperature: float = 0.1  # f_r regresses one-hot targets: its outputs live on a 0-1 scale
    alternate: bool = False  # measured to fail (module docstring)
    chunk: int = 64
    solver: str = "auto"  # "auto" (resolve_solver) | "exact" | "last-layers" | "nystrom" | "cg" (ntk_solvers)
    budget: int = 256  # nystrom: landmarks m (<= N_r); cg: iterations at most; ignored otherwise
    layers: tuple = ("head",)  # last-layers: the parameter groups of the kernel (top-level names)
    tol: float = 0.0  # cg: stop at this relative residual (0: run the budget out)
    landmark_seed: int = 0  # nystrom: the key of the landmarks' draw


class NtkInfo(NamedTuple):
    seconds: float  # wall clock of the unlearning alone (RTE), kernels included, after the input checks
    relabel_seconds: float  # of which the first relabel (the solver)
    cost: ntk_solvers.Cost  # what the first relabel's solve cost


def check_config(cfg: NtkConfig) -> None:
    """Refuse, naming the field, a value of ``cfg`` outside its domain.

    The NTK fields (``kernel``, ``ridge_scale``, ``solver``, ``budget``, ``layers``, ``tol``,
    ``landmark_seed``) here, the training fields by :func:`muso_jax.nn.train.check_config`.

    Parameters
    ----------
    cfg : NtkConfig

    Returns
    -------
    None

    Raises
    ------
    ValueError
        Naming the first bad field.

    Examples
    --------
    >>> from muso_jax.nn.muso_ntk import NtkConfig, check_config
    >>> check_config(NtkConfig()) is None
    True
    >>> check_config(NtkConfig(solver="lanczos"))
    Traceback (most recent call last):
        ...
    ValueError: argument `solver`: expected one of ['auto', 'exact', 'last-layers', 'nystrom', 'cg']; got 'lanczos'
    """
    if cfg.kernel not in KERNELS:
        raise ValueError(f"argument `kernel`: expected one of {list(KERNELS)}; got {cfg.kernel!r}")
    if cfg.ridge_scale not in RIDGE_SCALES:
        raise ValueError(f"argument `ridge_scale`: expected one of {list(RIDGE_SCALES)}; got {cfg.ridge_scale!r}")
    if cfg.solver not in SOLVERS:
        raise ValueError(f"argument `solver`: expected one of {list(SOLVERS)}; got {cfg.solver!r}")
    if isinstance(cfg.budget, bool) or not isinstance(cfg.budget, (int, np.integer)) or cfg.budget < 1:
        raise ValueError(f"argument `budget`: expected an integer >= 1 (landmarks for nystrom, iterations for cg); "
                         f"got {cfg.budget!r}")
    if (isinstance(cfg.layers, str) or not isinstance(cfg.layers, tuple) or not cfg.layers
            or not all(isinstance(g, str) and g for g in cfg.layers)):
        raise ValueError(f"argument `layers`: expected a non-empty tuple of parameter-group names such as "
                         f"('head',) or ('dense', 'head'); got {cfg.layers!r}")
    if isinstance(cfg.tol, bool) or not isinstance(cfg.tol, (int, float, np.integer, np.floating)) or not (
            np.isfinite(cfg.tol) and cfg.tol >= 0):
        raise ValueError(f"argument `tol`: expected a finite number >= 0; got {cfg.tol!r}")
    if isinstance(cfg.landmark_seed, bool) or not isinstance(cfg.landmark_seed, (int, np.integer)) \
            or cfg.landmark_seed < 0:
        raise ValueError(f"argument `landmark_seed`: expected an integer >= 0; got {cfg.landmark_seed!r}")
    check_training_fields(cfg)


def linearized_retrain_outputs(net: Net, x_r, y_r, x_f, cfg: NtkConfig) -> np.ndarray:
    r"""``f_r(X_f)``: the forget points' outputs of the linearized ``net`` retrained on D_r, (N_f, K).

    .. math::
        f_r(X_f) = f_0(X_f) + \Theta_{fr} (\Theta_{rr} + \epsilon I)^{-1} (Y_r - f_0(X_r))

    Computed by ``cfg.solver`` (:mod:`muso_jax.nn.ntk_solvers`; ``"auto"``: :func:`resolve_solver`): ``"exact"`` (the kernel, float64
    solve: Cholesky, or the pseudo-inverse where singular, the minimum-norm least-squares fit of
    D_r), ``"last-layers"`` (the kernel of the parameter groups ``cfg.layers``; the head alone
    in closed form), ``"nystrom"`` (``cfg.budget`` landmarks drawn with ``cfg.landmark_seed``) or
    ``"cg"`` (matrix-free conjugate gradients, ``cfg.budget`` iterations at most, ``cfg.tol``).

    (MUSO's optimal labels, arXiv 2410.08557, for the linearized network at p_0: Lee et al.,
    arXiv 1902.06720.)

    Parameters
    ----------
    net : Net
        The expansion point p_0 (``net0``; the current network with ``alternate``).
    x_r : (N_r, ...) inputs
        D_r.
    y_r : (N_r,) int labels
        Y_r are their one-hot rows.
    x_f : (N_f, ...) inputs
        D_f.
    cfg : NtkConfig
        The kernel, ridge and solver fields.

    Returns
    -------
    numpy.ndarray
        (N_f, K) float64.

    Raises
    ------
    ValueError
        On a bad field of ``cfg`` or bad data, named.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import muso_ntk
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> cfg = muso_ntk.NtkConfig(epochs=1, batch_size=8, optimizer="sgd")
    >>> outputs = muso_ntk.linearized_retrain_outputs(net0, x[4:], y[4:], x[:4], cfg)
    >>> outputs.shape, bool((outputs.argmax(axis=1) != y[:4]).any())  # some forget labels change
    ((4, 3), True)
    """
    return linearized_retrain(net, x_r, y_r, x_f, cfg)[0]


def linearized_retrain(net: Net, x_r, y_r, x_f, cfg: NtkConfig):
    r""":func:`linearized_retrain_outputs` and the solver's :class:`muso_jax.nn.ntk_solvers.Cost`.

    .. math::
        f_r(X_f) = f_0(X_f) + \Theta_{fr} (\Theta_{rr} + \epsilon I)^{-1} (Y_r - f_0(X_r))

    Parameters
    ----------
    net : Net
        The expansion point.
    x_r : (N_r, ...) inputs
    y_r : (N_r,) int labels
    x_f : (N_f, ...) inputs
    cfg : NtkConfig

    Returns
    -------
    tuple
        ``(outputs, Cost)``: (N_f, K) float64 outputs and the solve's cost.

    Raises
    ------
    ValueError
        On a bad field of ``cfg`` (e.g. a Nystrom ``budget`` above N_r) or bad data, named.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import muso_ntk
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> cfg = muso_ntk.NtkConfig(epochs=1, batch_size=8, optimizer="sgd")
    >>> outputs, cost = muso_ntk.linearized_retrain(net0, x[4:], y[4:], x[:4], cfg)
    >>> outputs.shape, cost.solver  # "auto" with 12 retained rows: the exact kernel
    ((4, 3), 'exact')
    >>> muso_ntk.linearized_retrain(net0, x[4:], y[4:], x[:4], cfg._replace(solver="nystrom", budget=20))
    Traceback (most recent call last):
        ...
    ValueError: argument `budget`: expected the number of landmarks m <= N_r = 12 for solver='nystrom'; got 20
    """
    check_config(cfg)
    common = dict(kernel=cfg.kernel, logit=cfg.logit, ridge=cfg.ridge, ridge_scale=cfg.ridge_scale, chunk=cfg.chunk)
    cfg = cfg._replace(solver=resolve_solver(cfg, len(y_r)))
    if cfg.solver == "exact":
        return ntk_solvers.exact(net, x_r, y_r, x_f, **common)
    if cfg.solver == "last-layers":
        return ntk_solvers.last_layers(net, x_r, y_r, x_f, layers=cfg.layers, **common)
    if cfg.solver == "nystrom":
        x_r, y_r = check_data(net, x_r, y_r, x_name="x_r", y_name="y_r")
        n_r = len(y_r)
        if cfg.budget > n_r:
            raise ValueError(f"argument `budget`: expected the number of landmarks m <= N_r = {n_r} for "
                             f"solver='nystrom'; got {cfg.budget!r}")
        return ntk_solvers.nystrom(jax.random.key(cfg.landmark_seed), net, x_r, y_r, x_f, m=cfg.budget, **common)
    return ntk_solvers.cg(net, x_r, y_r, x_f, iterations=cfg.budget, tol=cfg.tol, **common)


def unlearn(key, net0: Net, net_p: Net, x, y, forget, cfg: NtkConfig, *,
            on_progress=None) -> tuple[Net, NtkInfo]:
    r"""MUSO with NTK relabeling; the signature of :func:`muso_jax.nn.muso.unlearn`.

    ``forget``: boolean mask over the rows of ``x`` or their indices (D_f). Returns
    ``(net_u, NtkInfo)``: the unlearned network and the wall clock (kernels included).

    D_f is relabeled with :math:`\arg\max f_r(X_f)` (:func:`linearized_retrain`; with ``soft``,
    the KL to :math:`\mathrm{softmax}(f_r / T)`) and ``net_p`` fine-tuned on D_r plus the
    relabeled D_f for ``cfg.epochs`` (MUSO, arXiv 2410.08557, with the tangent features at p_0
    as the random features).

    Parameters
    ----------
    key
        A JAX PRNG key (batch orders).
    net0, net_p : Net
        The initialization p_0 (the expansion point) and the original network.
    x : (N, ...) inputs
    y : (N,) int labels in [0, K)
    forget : (N,) bool mask or int indices
        D_f.
    cfg : NtkConfig
    on_progress : callable, optional
        Gets the optimizer steps of each epoch.

    Returns
    -------
    tuple
        ``(net_u, NtkInfo)``: the network, the wall clock, the relabel's share of it and the
        solve's :class:`~muso_jax.nn.ntk_solvers.Cost`.

    Raises
    ------
    ValueError
        On a bad field of ``cfg`` or bad data, named.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import muso_ntk
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> cfg = muso_ntk.NtkConfig(epochs=1, batch_size=8, optimizer="sgd")
    >>> from muso_jax.nn.train import TrainConfig, train
    >>> net_p = train(jax.random.key(0), net0, x, y, TrainConfig(epochs=1, batch_size=8))
    >>> net_u, info = muso_ntk.unlearn(jax.random.key(1), net0, net_p, x, y, np.arange(16) < 4, cfg)
    >>> type(net_u).__name__, info.seconds >= info.relabel_seconds >= 0, info.cost.solver
    ('Net', True, 'exact')
    """
    check_config(cfg)
    x, y, forget = check_unlearning(net0, net_p, x, y, forget, cfg)
    start = time.perf_counter()
    k = num_classes(net_p)
    is_forget = jnp.asarray(forget)
    x_r, y_r, x_f = x[~forget], y[~forget], x[forget]
    dtype = net_p.params["head"]["bias"][...].dtype
    f = np.flatnonzero(forget)
    total = cfg.epochs * steps_per_epoch(len(y), cfg.batch_size)
    outputs, cost = linearized_retrain(net0, x_r, y_r, x_f, cfg)
    relabel_seconds = time.perf_counter() - start
    net, state = net_p, None
    for epoch in range(cfg.epochs):
        if cfg.alternate and epoch > 0:
            outputs = linearized_retrain_outputs(net, x_r, y_r, x_f, cfg)
        if cfg.soft:  # KL(softmax(f_r / T) || softmax(logits)) on D_f: the teacher is pre-divided by T
            teacher = jnp.zeros((len(y), k), dtype).at[f].set(jnp.asarray(outputs / cfg.temperature, dtype))
            rows = engine.rows_for(y, distill=jnp.where(is_forget, 1.0, 0.0), reference=teacher, num_classes=k,
                                   dtype=dtype)
        else:
            labels = y.at[f].set(jnp.asarray(np.argmax(outputs, axis=1), y.dtype))
            rows = engine.rows_for(labels, num_classes=k, dtype=dtype)
        net, state, _ = run_epochs(key, net, x, rows, knobs_from_config(net_p, cfg, total), optimizer=cfg.optimizer,
                                   batch_size=cfg.batch_size, epochs=epoch + 1, state=state, first_epoch=epoch,
                                   on_progress=on_progress)
    jax.block_until_ready(net.params)
    return net, NtkInfo(time.perf_counter() - start, relabel_seconds, cost)

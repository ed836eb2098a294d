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

from muso_jax import _linalg
from muso_jax.nn import ntk
from muso_jax.nn.models import num_classes
from muso_jax.nn.state import Net, check_inputs, predict
from muso_jax.nn import engine
from muso_jax.nn.train import check_data, check_unlearning, knobs_from_config, run_epochs, steps_per_epoch
from muso_jax.nn.train import check_config as check_training_fields

KERNELS = ("logit", "mean", "full")
RIDGE_SCALES = ("mean_diagonal", "absolute")


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


class NtkInfo(NamedTuple):
    seconds: float  # wall clock of the unlearning alone (RTE), kernels included, after the input checks


def check_config(cfg: NtkConfig) -> None:
    """Refuse, naming the field, a value of ``cfg`` outside its domain."""
    if cfg.kernel not in KERNELS:
        raise ValueError(f"argument `kernel`: expected one of {list(KERNELS)}; got {cfg.kernel!r}")
    if cfg.ridge_scale not in RIDGE_SCALES:
        raise ValueError(f"argument `ridge_scale`: expected one of {list(RIDGE_SCALES)}; got {cfg.ridge_scale!r}")
    check_training_fields(cfg)


def linearized_retrain_outputs(net: Net, x_r, y_r, x_f, cfg: NtkConfig) -> np.ndarray:
    r"""``f_r(X_f)``: the forget points' outputs of the linearized ``net`` retrained on D_r, (N_f, K).

    .. math::
        f_r(X_f) = f_0(X_f) + \Theta_{fr} (\Theta_{rr} + \epsilon I)^{-1} (Y_r - f_0(X_r))

    The (N_r K or N_r)-sized solve runs in float64 whatever the x64 flag, so a float32 network
    still gets an accurate relabel. It is :func:`muso_jax._linalg.solve`: Cholesky, or the
    pseudo-inverse where the kernel is numerically singular (ridge 0 with duplicated inputs, or
    the full kernel of a network with fewer parameters than N_r K). Then ``f_r`` is the
    minimum-norm least-squares fit of D_r, the limit of gradient descent on the linearized
    network from p_0.
    """
    check_config(cfg)
    x_r, y_r = check_data(net, x_r, y_r, x_name="x_r", y_name="y_r")
    x_f = check_inputs("x_f", net, x_f)
    k = num_classes(net)
    if cfg.logit >= k:
        raise ValueError(f"argument `logit`: expected a logit index in [0, {k}); got {cfg.logit!r}")
    x = jnp.concatenate([x_r, x_f.astype(x_r.dtype)])
    n_r = len(y_r)
    f0 = np.asarray(predict(net, x), np.float64)
    target = np.eye(k)[np.asarray(y_r)] - f0[:n_r]
    if cfg.kernel == "full":
        theta = np.asarray(ntk.kernel(net, x, chunk=cfg.chunk), np.float64).reshape(len(x) * k, len(x) * k)
        rr, fr = theta[: n_r * k, : n_r * k], theta[n_r * k:, : n_r * k]
        alpha = _kernel_solve(rr, target.reshape(-1), cfg)
        return f0[n_r:] + (fr @ alpha).reshape(-1, k)
    logits = [cfg.logit] if cfg.kernel == "logit" else range(k)
    theta = sum(np.asarray(ntk.kernel(net, x, chunk=cfg.chunk, output=a), np.float64) for a in logits) / len(logits)
    alpha = _kernel_solve(theta[:n_r, :n_r], target, cfg)
    return f0[n_r:] + theta[n_r:, :n_r] @ alpha


def _kernel_solve(K, r, cfg: NtkConfig) -> np.ndarray:
    """``(K + epsilon I)^{-1} r`` in float64, with epsilon from ``cfg.ridge`` and ``cfg.ridge_scale``."""
    with jax.enable_x64(True):  # float64 even when the caller runs float32 (x64 off)
        K, r = jnp.asarray(K, jnp.float64), jnp.asarray(r, jnp.float64)
        eps = cfg.ridge * (jnp.mean(jnp.diagonal(K)) if cfg.ridge_scale == "mean_diagonal" else 1.0)
        return np.asarray(_linalg.solve(K + eps * jnp.eye(K.shape[0], dtype=K.dtype), r))


def unlearn(key, net0: Net, net_p: Net, x, y, forget, cfg: NtkConfig, *,
            on_progress=None) -> tuple[Net, NtkInfo]:
    """MUSO with NTK relabeling; the signature of :func:`muso_jax.nn.muso.unlearn`.

    ``forget``: boolean mask over the rows of ``x`` or their indices (D_f). Returns
    ``(net_u, NtkInfo)``: the unlearned network and the wall clock (kernels included).
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
    net, state, outputs = net_p, None, linearized_retrain_outputs(net0, x_r, y_r, x_f, cfg)
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
    return net, NtkInfo(time.perf_counter() - start)

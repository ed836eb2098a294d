r"""Ways to compute the linearized retrain's outputs ``f_r(X_f)``, the relabel of NTK-guided MUSO.

The linearized network at ``p0`` retrained on D_r (min-norm, ridge ``epsilon``) has, on the
forget points (Yang et al., arXiv 2410.08557; the linearization of Lee et al., arXiv 1902.06720),

.. math::
    f_r(X_f) = f_0(X_f) + \Theta_{fr} (\Theta_{rr} + \epsilon I)^{-1} (Y_r - f_0(X_r)),

``Theta`` the empirical NTK at ``p0`` (:mod:`muso_jax.nn.ntk`). The exact solve needs all
``N_r^2`` kernel entries, each about ``P`` products: out of reach at N_r ~ 10^4 and P ~ 4 10^5.
Each solver below converges to it as its budget grows:

* :func:`exact`: the kernel itself (the reference, small data).
* :func:`last_layers`: the tangent kernel of a subset of the parameters (default: the head).
  For the head alone ``Theta(x, x') = ([z, 1] . [z', 1]) I_K`` with ``z`` the penultimate
  features, so the solve runs in the primal, ``(F + 1) x (F + 1)``: one forward pass over D_r.
  With every parameter group it is :func:`exact`.
* :func:`nystrom`: subset of regressors on ``m`` landmarks drawn from D_r,
  ``beta = (Theta_mr Theta_rm + epsilon Theta_mm)^{-1} Theta_mr r``,
  ``f_r(X_f) ~ f_0(X_f) + Theta_fm beta``: ``(N_r + N_f) m`` kernel entries. At ``m = N_r`` it
  is exact (``Theta (Theta + epsilon I)`` commutes: ``beta = (Theta + epsilon I)^{-1} r``).
* :func:`cg`: conjugate gradients on ``(Theta_rr + epsilon I) alpha = r`` without the kernel,
  ``Theta_rr v = J_r (J_r^T v)`` by one reverse (vjp) and one forward (jvp) pass over D_r per
  vector, then ``f_r(X_f) = f_0(X_f) + J_f (J_r^T alpha)``. In exact arithmetic it reaches
  the exact solve in at most ``N_r`` (``N_r K``) iterations.

The kernel choices of :class:`muso_jax.nn.muso_ntk.NtkConfig` carry over: ``"full"`` (the
multi-output kernel), ``"logit"`` (one logit's kernel as ``Theta_bar (x) I_K``) and
``"mean"`` (the mean of the K logits' kernels, likewise). ``ridge_scale="mean_diagonal"``
scales ``ridge`` by the mean diagonal of ``Theta_rr``, computed exactly by every solver
(:func:`muso_jax.nn.ntk.diagonal`, linear in N_r), so all of them solve the same system.

Every solver returns ``(outputs, Cost)``: the (N_f, K) float64 outputs and what they cost.
"""

from __future__ import annotations

import functools
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from muso_jax import _checks, _linalg
from muso_jax.nn import ntk
from muso_jax.nn.models import head_matrix, num_classes, with_bias_column
from muso_jax.nn.state import Net, check_inputs, param_dtype, predict
from muso_jax.nn.train import check_data

SOLVERS = ("exact", "last-layers", "nystrom", "cg")
KERNELS = ("logit", "mean", "full")
RIDGE_SCALES = ("mean_diagonal", "absolute")


class Cost(NamedTuple):
    """What one solve cost.

    ``kernel_entries``: scalar entries ``Theta_{ia,jb}`` computed (each ~``P`` products),
    diagonals included (``N_1 N_2`` for the logit kernel, ``K N_1 N_2`` for the mean, ``K^2 N_1 N_2``
    for the full one; the head-only closed form computes none). ``passes``: sweeps over D_r of
    one vector each (a forward pass, a vjp with one (N_r, K) cotangent, a jvp with one
    parameter tangent); the kernel's own passes are in ``kernel_entries``. ``iterations`` and
    ``residual`` (the final relative residual ``||r - (Theta + eps I) alpha|| / ||r||``; nan where
    the solver does not form it): conjugate gradients, or the direct solve's check.
    ``seconds``: wall clock after the input checks, compilation included.
    """

    solver: str
    kernel_entries: int
    passes: int
    iterations: int
    residual: float
    seconds: float


class _Problem(NamedTuple):
    x_r: jax.Array
    x_f: jax.Array
    k: int
    f0_r: np.ndarray  # (N_r, K) float64
    f0_f: np.ndarray  # (N_f, K) float64
    target: np.ndarray  # Y_r - f_0(X_r), (N_r, K) float64


def _check_common(net0: Net, x_r, y_r, x_f, kernel, logit, ridge, ridge_scale, chunk):
    """The checks every solver shares, before any work; returns (x_r, y_r, x_f, K)."""
    if kernel not in KERNELS:
        raise ValueError(f"argument `kernel`: expected one of {list(KERNELS)}; got {kernel!r}")
    if ridge_scale not in RIDGE_SCALES:
        raise ValueError(f"argument `ridge_scale`: expected one of {list(RIDGE_SCALES)}; got {ridge_scale!r}")
    if isinstance(ridge, bool) or not isinstance(ridge, (int, float, np.integer, np.floating)) or not (
            np.isfinite(ridge) and ridge >= 0):
        raise ValueError(f"argument `ridge`: expected a finite number >= 0; got {ridge!r}")
    _checks.positive_int("chunk", chunk)
    x_r, y_r = check_data(net0, x_r, y_r, x_name="x_r", y_name="y_r")
    x_f = check_inputs("x_f", net0, x_f)
    k = num_classes(net0)
    if isinstance(logit, bool) or not isinstance(logit, (int, np.integer)) or not 0 <= logit < k:
        raise ValueError(f"argument `logit`: expected a logit index in [0, {k}); got {logit!r}")
    return x_r, y_r, x_f.astype(x_r.dtype), k


def _problem(net0: Net, x_r, y_r, x_f, k) -> _Problem:
    """``f_0`` on D_r and D_f (one forward pass) and the retrain's residual targets."""
    f0_r = np.asarray(predict(net0, x_r), np.float64)
    f0_f = np.asarray(predict(net0, x_f), np.float64)
    return _Problem(x_r, x_f, k, f0_r, f0_f, np.eye(k)[np.asarray(y_r)] - f0_r)


def _epsilon(ridge, ridge_scale, mean_diagonal) -> float:
    return float(ridge) * (float(mean_diagonal) if ridge_scale == "mean_diagonal" else 1.0)


def _logits_of(kernel, logit, k):
    return [int(logit)] if kernel == "logit" else list(range(k))


def _scalar_kernel(net, x1, x2, kernel, logit, k, chunk, layers=None):
    """``Theta_bar``: one logit's kernel or the mean of the K logits' kernels, float64."""
    logits = _logits_of(kernel, logit, k)
    return sum(np.asarray(ntk.kernel(net, x1, x2, chunk=chunk, output=a, layers=layers), np.float64)
               for a in logits) / len(logits)


def _entries_per_pair(kernel, k):
    return {"logit": 1, "mean": k, "full": k * k}[kernel]


def _kernel_solve(K, r, eps) -> tuple[np.ndarray, float]:
    """``(K + eps I)^{-1} r`` in float64 (Cholesky, or the pseudo-inverse where singular: the
    minimum-norm least-squares solution) and the relative residual of the solve."""
    with jax.enable_x64(True):  # float64 even when the caller runs float32 (x64 off)
        K, r = jnp.asarray(K, jnp.float64), jnp.asarray(r, jnp.float64)
        A = K + eps * jnp.eye(K.shape[0], dtype=K.dtype)
        x = _linalg.solve(A, r)
        residual = float(jnp.linalg.norm(r - A @ x) / jnp.maximum(jnp.linalg.norm(r), 1e-300))
        return np.asarray(x), residual


# --------------------------------------------------------------------------------------------- exact


def exact(net0: Net, x_r, y_r, x_f, *, kernel: str = "logit", logit: int = 0, ridge: float = 1e-6,
          ridge_scale: str = "mean_diagonal", chunk: int = 64, layers=None):
    r"""The exact solve: the kernel over D_r and D_f, then ``(Theta_rr + eps I)^{-1}`` in float64.

    .. math::
        f_r(X_f) = f_0(X_f) + \Theta_{fr} (\Theta_{rr} + \epsilon I)^{-1} (Y_r - f_0(X_r))

    ``(N_r + N_f)^2`` kernel entries (times K^2 for the full kernel; the Gram is computed on and
    above its block diagonal). The (N_r K or N_r)-sized solve is Cholesky, or the pseudo-inverse
    where the kernel is numerically singular (ridge 0 with duplicated inputs, or the full kernel of
    a network with fewer parameters than N_r K): then ``f_r`` is the minimum-norm least-squares
    fit of D_r, the limit of gradient descent on the linearized network from p_0. ``layers``:
    the kernel of those parameter groups alone (:func:`muso_jax.nn.ntk.kernel`), None for all.

    Parameters
    ----------
    net0 : Net
        The network at its initialization p_0 (the expansion point).
    x_r : (N_r, ...) inputs
        D_r.
    y_r : (N_r,) int labels in [0, K)
        The targets are their one-hot rows, Y_r.
    x_f : (N_f, ...) inputs
        D_f.
    kernel : str
        One of :data:`KERNELS`: ``"logit"`` (logit ``logit``'s kernel as ``Theta_bar (x) I_K``),
        ``"mean"`` (the mean of the K logits' kernels, likewise) or ``"full"`` (multi-output).
    logit : int
        The logit of the ``"logit"`` kernel, in [0, K).
    ridge : float
        >= 0; epsilon itself, or relative to the mean diagonal (``ridge_scale``).
    ridge_scale : str
        One of :data:`RIDGE_SCALES`.
    chunk : int
        Rows per block of the kernel (or of the passes).
    layers : tuple of str, optional
        Top-level parameter groups of the kernel; None: all.

    Returns
    -------
    tuple
        ``(outputs, Cost)``: the (N_f, K) float64 NumPy outputs ``f_r(X_f)`` and what they cost.

    Raises
    ------
    ValueError
        On a bad argument, named (before any work).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import ntk_solvers
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> x_r, y_r, x_f = x[4:], y[4:], x[:4]  # D_r: 12 rows, D_f: 4
    >>> out, cost = ntk_solvers.exact(net0, x_r, y_r, x_f)
    >>> out.shape, cost.solver, cost.kernel_entries  # 16 * 17 / 2 entries of the Gram
    ((4, 3), 'exact', 136)
    >>> cost.residual < 1e-8
    True
    >>> ntk_solvers.exact(net0, x_r, y_r, x_f, kernel="diag")
    Traceback (most recent call last):
        ...
    ValueError: argument `kernel`: expected one of ['logit', 'mean', 'full']; got 'diag'
    """
    x_r, y_r, x_f, k = _check_common(net0, x_r, y_r, x_f, kernel, logit, ridge, ridge_scale, chunk)
    layers = ntk.check_layers("layers", layers, net0)
    start = time.perf_counter()
    p = _problem(net0, x_r, y_r, x_f, k)
    x = jnp.concatenate([x_r, x_f])
    n_r, n = len(y_r), len(x)
    if kernel == "full":
        theta = np.asarray(ntk.kernel(net0, x, chunk=chunk, layers=layers), np.float64).reshape(n * k, n * k)
        rr, fr = theta[: n_r * k, : n_r * k], theta[n_r * k:, : n_r * k]
        alpha, res = _kernel_solve(rr, p.target.reshape(-1), _epsilon(ridge, ridge_scale, np.mean(np.diag(rr))))
        out = p.f0_f + (fr @ alpha).reshape(-1, k)
    else:
        theta = _scalar_kernel(net0, x, None, kernel, logit, k, chunk, layers)
        rr = theta[:n_r, :n_r]
        alpha, res = _kernel_solve(rr, p.target, _epsilon(ridge, ridge_scale, np.mean(np.diag(rr))))
        out = p.f0_f + theta[n_r:, :n_r] @ alpha
    entries = (n * (n + 1) // 2) * _entries_per_pair(kernel, k)  # the symmetric Gram's upper half
    return out, Cost("exact", int(entries), 1, 0, res, time.perf_counter() - start)


# --------------------------------------------------------------------------------------- last layers


def last_layers(net0: Net, x_r, y_r, x_f, *, layers=("head",), kernel: str = "logit", logit: int = 0,
                ridge: float = 1e-6, ridge_scale: str = "mean_diagonal", chunk: int = 64):
    r"""The linearized retrain in the parameters of ``layers`` alone, the others frozen at p_0.

    For the head alone (``layers=("head",)``, the default) the tangent kernel is exactly
    ``Theta(x, x') = ([z(x), 1] . [z(x'), 1]) I_K`` (z: the penultimate features at p_0; every
    kernel choice gives it), and the push-through identity moves the solve to the primal:

    .. math::
        f_r(X_f) = f_0(X_f) + \tilde Z_f (\tilde Z_r^\top \tilde Z_r + \epsilon I_{F+1})^{-1}
                   \tilde Z_r^\top (Y_r - f_0(X_r)), \qquad \tilde Z = [Z, 1],

    one forward pass over D_r and D_f and an (F + 1)-sized solve: the retrain of the last layer
    W of the MUSO paper (arXiv 2410.08557, nonlinear section) from its initial value. Any other
    subset (e.g. ``("dense", "head")``, or every group: :func:`exact`) takes the general path,
    the exact solve with the subset's kernel.

    Parameters
    ----------
    net0 : Net
        The network at its initialization p_0 (the expansion point).
    x_r : (N_r, ...) inputs
        D_r.
    y_r : (N_r,) int labels in [0, K)
        The targets are their one-hot rows, Y_r.
    x_f : (N_f, ...) inputs
        D_f.
    layers : tuple of str
        The parameter groups trained, the others frozen at p_0.
    kernel : str
        One of :data:`KERNELS`: ``"logit"`` (logit ``logit``'s kernel as ``Theta_bar (x) I_K``),
        ``"mean"`` (the mean of the K logits' kernels, likewise) or ``"full"`` (multi-output).
    logit : int
        The logit of the ``"logit"`` kernel, in [0, K).
    ridge : float
        >= 0; epsilon itself, or relative to the mean diagonal (``ridge_scale``).
    ridge_scale : str
        One of :data:`RIDGE_SCALES`.
    chunk : int
        Rows per block of the kernel (or of the passes).

    Returns
    -------
    tuple
        ``(outputs, Cost)``: the (N_f, K) float64 NumPy outputs ``f_r(X_f)`` and what they cost.

    Raises
    ------
    ValueError
        On a bad argument, named (before any work).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import ntk_solvers
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> x_r, y_r, x_f = x[4:], y[4:], x[:4]  # D_r: 12 rows, D_f: 4
    >>> out, cost = ntk_solvers.last_layers(net0, x_r, y_r, x_f)
    >>> out.shape, cost.kernel_entries, cost.passes  # the head's closed form: one forward pass, no kernel
    ((4, 3), 0, 1)
    """
    x_r, y_r, x_f, k = _check_common(net0, x_r, y_r, x_f, kernel, logit, ridge, ridge_scale, chunk)
    layers = ntk.check_layers("layers", layers, net0)
    if layers != ("head",):
        out, cost = exact(net0, x_r, y_r, x_f, kernel=kernel, logit=logit, ridge=ridge, ridge_scale=ridge_scale,
                          chunk=chunk, layers=layers)
        return out, cost._replace(solver="last-layers")
    start = time.perf_counter()
    z_r = np.asarray(with_bias_column(predict(net0, x_r, features=True)), np.float64)
    z_f = np.asarray(with_bias_column(predict(net0, x_f, features=True)), np.float64)
    w0 = np.asarray(head_matrix(net0.params["head"]), np.float64)  # f_0 = [z, 1] W_0: no second pass
    f0_f = z_f @ w0
    target = np.eye(k)[np.asarray(y_r)] - z_r @ w0
    eps = _epsilon(ridge, ridge_scale, np.mean(np.sum(z_r ** 2, axis=1)))
    w, _ = _kernel_solve(z_r.T @ z_r, z_r.T @ target, eps)
    return f0_f + z_f @ w, Cost("last-layers", 0, 1, 0, float("nan"), time.perf_counter() - start)


# -------------------------------------------------------------------------------------------- nystrom


def nystrom(key, net0: Net, x_r, y_r, x_f, *, m: int, kernel: str = "logit", logit: int = 0, ridge: float = 1e-6,
            ridge_scale: str = "mean_diagonal", chunk: int = 64):
    r"""Subset of regressors on ``m`` landmarks drawn uniformly without replacement from D_r.

    .. math::
        \beta = (\Theta_{mr} \Theta_{rm} + \epsilon \Theta_{mm})^{-1} \Theta_{mr} r, \qquad
        f_r(X_f) \approx f_0(X_f) + \Theta_{fm} \beta

    (Williams and Seeger 2001; the Nystrom approximation ``Theta_rm Theta_mm^+ Theta_mr`` of
    ``Theta_rr`` in the exact formula). Solved stably through the Nystrom features
    ``Phi = Theta_{.m} U S^{-1/2}`` of the eigendecomposition ``Theta_mm = U S U^T`` (eigenvalues
    under ``m eps_dtype s_max``, round-off of the kernel, dropped): ``f_r(X_f) ~ f_0(X_f) +
    Phi_f (Phi_r^T Phi_r + epsilon I)^{-1} Phi_r^T r``, whose matrix has the condition of
    ``Theta + epsilon I``, not its square. At ``m = N_r`` it is the exact solve.
    ``(N_r + N_f) m`` kernel entries (times K^2 for the full kernel) and the diagonal, ``N_r``.

    Parameters
    ----------
    key
        A JAX PRNG key (the landmarks).
    net0 : Net
        The network at its initialization p_0 (the expansion point).
    x_r : (N_r, ...) inputs
        D_r.
    y_r : (N_r,) int labels in [0, K)
        The targets are their one-hot rows, Y_r.
    x_f : (N_f, ...) inputs
        D_f.
    m : int
        Landmarks, in [1, N_r].
    kernel : str
        One of :data:`KERNELS`: ``"logit"`` (logit ``logit``'s kernel as ``Theta_bar (x) I_K``),
        ``"mean"`` (the mean of the K logits' kernels, likewise) or ``"full"`` (multi-output).
    logit : int
        The logit of the ``"logit"`` kernel, in [0, K).
    ridge : float
        >= 0; epsilon itself, or relative to the mean diagonal (``ridge_scale``).
    ridge_scale : str
        One of :data:`RIDGE_SCALES`.
    chunk : int
        Rows per block of the kernel (or of the passes).

    Returns
    -------
    tuple
        ``(outputs, Cost)``: the (N_f, K) float64 NumPy outputs ``f_r(X_f)`` and what they cost.

    Raises
    ------
    ValueError
        On a bad argument, named (before any work).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import ntk_solvers
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> x_r, y_r, x_f = x[4:], y[4:], x[:4]  # D_r: 12 rows, D_f: 4
    >>> out, cost = ntk_solvers.nystrom(jax.random.key(0), net0, x_r, y_r, x_f, m=12)
    >>> exact, _ = ntk_solvers.exact(net0, x_r, y_r, x_f)
    >>> out.shape, bool(np.allclose(out, exact, atol=1e-8))  # m = N_r: the exact solve
    ((4, 3), True)
    >>> ntk_solvers.nystrom(jax.random.key(0), net0, x_r, y_r, x_f, m=13)
    Traceback (most recent call last):
        ...
    ValueError: argument `m`: expected an integer in [1, N_r = 12] (landmarks drawn from D_r); got 13
    """
    x_r, y_r, x_f, k = _check_common(net0, x_r, y_r, x_f, kernel, logit, ridge, ridge_scale, chunk)
    n_r = len(y_r)
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 1 <= m <= n_r:
        raise ValueError(f"argument `m`: expected an integer in [1, N_r = {n_r}] (landmarks drawn from D_r); "
                         f"got {m!r}")
    try:
        idx = np.sort(np.asarray(jax.random.choice(key, n_r, (int(m),), replace=False)))
    except (TypeError, ValueError) as err:  # what jax.random refuses is a bad key
        raise ValueError(f"argument `key`: expected a JAX random key; got {key!r} ({err})") from err
    start = time.perf_counter()
    p = _problem(net0, x_r, y_r, x_f, k)
    x = jnp.concatenate([x_r, x_f])
    n = len(x)
    if kernel == "full":
        t = np.asarray(ntk.kernel(net0, x_r[idx], x, chunk=chunk), np.float64).reshape(m * k, n * k)
        rows = (idx[:, None] * k + np.arange(k)).reshape(-1)  # the landmarks' (point, logit) rows
        mean_diag = np.mean(np.asarray(ntk.diagonal(net0, x_r, chunk=chunk), np.float64))
        target = p.target.reshape(-1)
    else:
        t = _scalar_kernel(net0, x_r[idx], x, kernel, logit, k, chunk)
        rows = idx
        d = np.asarray(ntk.diagonal(net0, x_r, chunk=chunk, output=None if kernel == "mean" else int(logit)))
        mean_diag = np.mean(d)
        target = p.target
    eps = _epsilon(ridge, ridge_scale, mean_diag)
    split = n_r * (k if kernel == "full" else 1)
    with jax.enable_x64(True):
        t = jnp.asarray(t, jnp.float64)
        t_mm = t[:, rows]
        s, u = _linalg.eigh((t_mm + t_mm.T) / 2)
        keep = s > len(rows) * float(jnp.finfo(param_dtype(net0)).eps) * jnp.max(s)
        scale = jnp.where(keep, 1.0 / jnp.sqrt(jnp.where(keep, s, 1.0)), 0.0)
        phi = (t.T @ u) * scale[None, :]  # (N (K), m (K)) Nystrom features; dropped directions are zero columns
        phi_r, phi_f = phi[:split], phi[split:]
        w = _linalg.solve(phi_r.T @ phi_r + eps * jnp.eye(phi.shape[1], dtype=phi.dtype),
                          phi_r.T @ jnp.asarray(target, jnp.float64))
        delta = np.asarray(phi_f @ w)
    out = p.f0_f + (delta.reshape(-1, k) if kernel == "full" else delta)
    per = _entries_per_pair(kernel, k)
    entries = m * n * per + n_r * (k if kernel != "logit" else 1)
    return out, Cost("nystrom", int(entries), 1, 0, float("nan"), time.perf_counter() - start)


# ------------------------------------------------------------------------------- conjugate gradients


def _vectors_per_column(kernel, k):
    """Vectors per pass for one right-hand side column: the full kernel's one (N_r, K) cotangent,
    one logit's ``v e_a^T``, or the mean's K of them."""
    return {"logit": 1, "mean": k, "full": 1}[kernel]


def _pull(net, xs, cot):
    """``J^T v`` for a stack of cotangents ``cot`` (C, nb, c, K) over the blocks ``xs`` (nb, c, ...):
    the sum of per-block pullbacks, accumulated in float64. Returns leaves (C, *shape)."""
    dtype = param_dtype(net)
    zero = jax.tree.map(lambda a: jnp.zeros((cot.shape[0],) + a.shape, jnp.float64), net.params)

    def block(acc, args):
        xb, cb = args
        _, vjp = jax.vjp(lambda p: ntk.logits(net, p, xb), net.params)
        g = jax.vmap(lambda v: vjp(v.astype(dtype))[0])(cb)
        return jax.tree.map(lambda s, a: s + a.astype(jnp.float64), acc, g), None

    acc, _ = lax.scan(block, zero, (xs, jnp.moveaxis(cot, 1, 0)))
    return acc


def _push(net, xs, g):
    """``J u`` for a stack of parameter tangents ``g`` (leaves (C, *shape)) on the blocks ``xs``:
    (C, nb, c, K) float64."""
    dtype = param_dtype(net)
    tangents = jax.tree.map(lambda a: a.astype(dtype), g)

    def block(_, xb):
        _, push = jax.linearize(lambda p: ntk.logits(net, p, xb), net.params)
        return None, jax.vmap(push)(tangents).astype(jnp.float64)

    _, out = lax.scan(block, None, xs)  # (nb, C, c, K)
    return jnp.moveaxis(out, 0, 1)


def _apply(net, xs_r, xs_out, v, kernel, logit, k):
    """``Theta(X_out, X_r) v`` for right-hand-side columns ``v`` (C, nb_r, c, K_cols), matrix-free.

    full: ``v`` is one (N_r, K) block per column; logit a: column values ``v[..., j]`` ride on
    logit a (cotangent ``v e_a^T``), output ``[..., a]``; mean: the average over a of that.
    """
    if kernel == "full":
        return _push(net, xs_out, _pull(net, xs_r, v))

    def one_logit(a):
        e = jax.nn.one_hot(a, k, dtype=v.dtype)
        # (C, nb, c, K_cols) -> one cotangent per (column j): (C K_cols, nb, c, K) = v_j e_a^T
        cot = jnp.moveaxis(v, -1, 1)[..., None] * e.reshape((1,) * 4 + (k,))  # (C, K_cols, nb, c, K)
        shape = cot.shape
        out = _push(net, xs_out, _pull(net, xs_r, cot.reshape((-1,) + shape[2:])))  # (C K_cols, nb', c, K)
        out = out @ e  # component a
        return jnp.moveaxis(out.reshape(shape[:2] + out.shape[1:]), 1, -1)  # (C, nb', c, K_cols)

    if kernel == "logit":
        return one_logit(logit)
    return lax.fori_loop(0, k, lambda a, s: s + one_logit(a), jnp.zeros(v.shape[:1] + xs_out.shape[:2] + v.shape[-1:],
                                                                         jnp.float64)) / k


@functools.partial(jax.jit, static_argnames=("kernel", "logit", "k", "iterations", "keep"))
def _cg_run(net, xs_r, xs_f, mask, b, eps, tol, *, kernel, logit, k, iterations, keep):
    r"""Conjugate gradients on ``(Theta_rr + eps I) alpha = b``, one CG per column of ``b``.

    ``b``: (nb, c, W) blocked right-hand side (padding rows zero; ``mask`` (nb, c, 1) marks the
    real rows), W = K columns for the scalar kernels (independent systems with the same matrix,
    each its own step sizes) or the full kernel's one (N_r K)-vector as W = K with shared steps.
    Stops after ``iterations`` or when ``||r|| / ||b|| <= tol``. Returns the iterates at the
    iteration counts ``keep`` (the final one where it stopped earlier), the iteration count, the
    relative residual history (recursive residuals) and ``f`` deltas ``Theta_fr alpha`` at each kept iterate.
    """
    full = kernel == "full"
    # columns: the axis along which the systems are independent (sums over the others)
    axes = (0, 1, 2) if full else (0, 1)  # keepdims: (1, 1, 1) or (1, 1, W)

    def op(v):  # (nb, c, W) -> (nb, c, W)
        return _apply(net, xs_r, xs_r, v[None], kernel, logit, k)[0] * mask + eps * v

    dot = lambda a, c: jnp.sum(a * c, axis=axes, keepdims=True)
    bnorm = jnp.sqrt(jnp.sum(b * b))
    bnorm = jnp.where(bnorm > 0, bnorm, 1.0)
    keep_arr = jnp.asarray(keep)
    x0 = jnp.zeros_like(b)
    state = dict(i=0, x=x0, r=b, p=b, rs=dot(b, b), hist=jnp.full((iterations,), jnp.nan),
                 snaps=jnp.zeros((len(keep),) + b.shape, b.dtype))

    def cond(s):
        return (s["i"] < iterations) & (jnp.sqrt(jnp.sum(s["rs"])) / bnorm > tol)

    def body(s):
        ap = op(s["p"])
        pap = dot(s["p"], ap)
        alpha = jnp.where(pap > 0, s["rs"] / jnp.where(pap > 0, pap, 1.0), 0.0)
        x = s["x"] + alpha * s["p"]
        r = s["r"] - alpha * ap
        rs = dot(r, r)
        beta = jnp.where(s["rs"] > 0, rs / jnp.where(s["rs"] > 0, s["rs"], 1.0), 0.0)
        i = s["i"] + 1
        snaps = jnp.where((keep_arr == i)[:, None, None, None], x[None], s["snaps"])
        return dict(i=i, x=x, r=r, p=r + beta * s["p"], rs=rs, hist=s["hist"].at[s["i"]].set(jnp.sqrt(jnp.sum(rs)) / bnorm),
                    snaps=snaps)

    s = lax.while_loop(cond, body, state)
    snaps = jnp.where((keep_arr > s["i"])[:, None, None, None], s["x"][None], s["snaps"])
    deltas = _apply(net, xs_r, xs_f, snaps, kernel, logit, k)  # (S, nb_f, c, W)
    return deltas, s["i"], s["hist"]


def _blocks(x, chunk):
    n = x.shape[0]
    pad = -n % chunk
    x = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)]) if pad else x
    return x.reshape((-1, chunk) + x.shape[1:])


def cg_path(net0: Net, x_r, y_r, x_f, *, iterations=(2, 5, 10, 20, 40), tol: float = 0.0, kernel: str = "logit",
            logit: int = 0, ridge: float = 1e-6, ridge_scale: str = "mean_diagonal", chunk: int = 64):
    r"""Matrix-free conjugate gradients, the outputs at several iteration counts from one run.

    .. math::
        (\Theta_{rr} + \epsilon I)\,\alpha = Y_r - f_0(X_r), \qquad
        \Theta_{rr} v = J_r (J_r^\top v), \qquad f_r(X_f) = f_0(X_f) + J_f (J_r^\top \alpha)

    ``J_r^T v``: one vjp pass over D_r in blocks of ``chunk`` (the per-block pullbacks summed in
    float64); ``J_r u``: one jvp pass. The full kernel's cotangent is the (N_r, K) residual
    (one CG on N_r K unknowns); the logit kernel's is ``v e_a^T``, one CG per column of the
    K columns of ``Y_r - f_0(X_r)`` (the systems of ``Theta_bar (x) I_K``), K vectors a pass; the
    mean kernel's, K^2. CG vectors, step sizes and accumulations are float64; with a float32
    network each product ``Theta v`` carries float32 round-off (~1e-7 relative), so the residual
    stalls near ``1e-7 cond``: ask no tighter ``tol`` there. Stops after ``max(iterations)`` or at
    relative residual ``<= tol``. Returns ``[(outputs, Cost)]``, one per entry of ``iterations``.

    (Conjugate gradients: Hestenes and Stiefel 1952; the system of the exact formula of the
    module, MUSO arXiv 2410.08557 on the linearized network.)

    Parameters
    ----------
    net0 : Net
        The network at its initialization p_0 (the expansion point).
    x_r : (N_r, ...) inputs
        D_r.
    y_r : (N_r,) int labels in [0, K)
        The targets are their one-hot rows, Y_r.
    x_f : (N_f, ...) inputs
        D_f.
    iterations : int or tuple of int
        The iteration counts (>= 1) whose outputs are kept.
    tol : float
        >= 0: stop at this relative residual (0: run ``max(iterations)``).
    kernel : str
        One of :data:`KERNELS`: ``"logit"`` (logit ``logit``'s kernel as ``Theta_bar (x) I_K``),
        ``"mean"`` (the mean of the K logits' kernels, likewise) or ``"full"`` (multi-output).
    logit : int
        The logit of the ``"logit"`` kernel, in [0, K).
    ridge : float
        >= 0; epsilon itself, or relative to the mean diagonal (``ridge_scale``).
    ridge_scale : str
        One of :data:`RIDGE_SCALES`.
    chunk : int
        Rows per block of the kernel (or of the passes).

    Returns
    -------
    list of tuple
        ``[(outputs, Cost)]``, one per entry of ``iterations``: the (N_f, K) float64 outputs
        after that many iterations (or where CG stopped) and their cost.

    Raises
    ------
    ValueError
        On a bad argument, named (before any work).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import ntk_solvers
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> x_r, y_r, x_f = x[4:], y[4:], x[:4]  # D_r: 12 rows, D_f: 4
    >>> path = ntk_solvers.cg_path(net0, x_r, y_r, x_f, iterations=(2, 12))
    >>> [(out.shape, cost.iterations) for out, cost in path]
    [((4, 3), 2), ((4, 3), 12)]
    >>> path[1][1].residual < path[0][1].residual
    True
    """
    x_r, y_r, x_f, k = _check_common(net0, x_r, y_r, x_f, kernel, logit, ridge, ridge_scale, chunk)
    its = (iterations,) if isinstance(iterations, (int, np.integer)) and not isinstance(iterations, bool) else iterations
    if (not isinstance(its, (tuple, list)) or not its
            or any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 1 for i in its)):
        raise ValueError(f"argument `iterations`: expected an integer >= 1 (or a tuple of them); got {iterations!r}")
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)) or not (
            np.isfinite(tol) and tol >= 0):
        raise ValueError(f"argument `tol`: expected a finite number >= 0; got {tol!r}")
    keep = tuple(int(i) for i in its)
    start = time.perf_counter()
    p = _problem(net0, x_r, y_r, x_f, k)
    n_r, n_f = len(y_r), len(x_f)
    c = min(int(chunk), max(n_r, n_f))
    diag_entries = 0
    mean_diag = 1.0
    if ridge_scale == "mean_diagonal":
        d = ntk.diagonal(net0, x_r, chunk=c, output=int(logit) if kernel == "logit" else None)
        mean_diag, diag_entries = float(np.mean(np.asarray(d, np.float64))), int(np.size(d))
    eps = _epsilon(ridge, ridge_scale, mean_diag)
    with jax.enable_x64(True):
        xs_r, xs_f = _blocks(x_r, c), _blocks(x_f, c)
        b = _blocks(jnp.asarray(p.target, jnp.float64), c)
        mask = _blocks(jnp.ones((n_r, 1), jnp.float64), c)
        deltas, done, hist = _cg_run(net0, xs_r, xs_f, mask, b, jnp.float64(eps), jnp.float64(tol), kernel=kernel,
                                     logit=int(logit), k=k, iterations=max(keep), keep=keep)
        deltas = np.asarray(deltas).reshape(len(keep), -1, k)[:, :n_f]
        done, hist = int(done), np.asarray(hist)
    seconds = time.perf_counter() - start
    per = _vectors_per_column(kernel, k) * (1 if kernel == "full" else k)  # vectors per pass
    out = []
    for j, t in enumerate(keep):
        t_run = min(t, done)
        # 1 forward (f_0), 2 passes per iteration, 1 pull for the outputs (their push is over D_f).
        cost = Cost("cg", diag_entries, 1 + per * (2 * t_run + 1), t_run, float(hist[t_run - 1]) if t_run else 0.0,
                    seconds)
        out.append((p.f0_f + deltas[j], cost))
    return out


def cg(net0: Net, x_r, y_r, x_f, *, iterations: int, tol: float = 0.0, kernel: str = "logit", logit: int = 0,
       ridge: float = 1e-6, ridge_scale: str = "mean_diagonal", chunk: int = 64):
    r"""Matrix-free conjugate gradients for at most ``iterations`` steps (or relative residual
    ``<= tol``); see :func:`cg_path` for the formulas and the float32 behaviour.

    .. math::
        (\Theta_{rr} + \epsilon I)\,\alpha = Y_r - f_0(X_r), \qquad
        f_r(X_f) = f_0(X_f) + J_f (J_r^\top \alpha)

    Parameters
    ----------
    net0 : Net
        The network at its initialization p_0 (the expansion point).
    x_r : (N_r, ...) inputs
        D_r.
    y_r : (N_r,) int labels in [0, K)
        The targets are their one-hot rows, Y_r.
    x_f : (N_f, ...) inputs
        D_f.
    iterations : int
        At most this many CG iterations, >= 1.
    tol : float
        >= 0: stop at this relative residual.
    kernel : str
        One of :data:`KERNELS`: ``"logit"`` (logit ``logit``'s kernel as ``Theta_bar (x) I_K``),
        ``"mean"`` (the mean of the K logits' kernels, likewise) or ``"full"`` (multi-output).
    logit : int
        The logit of the ``"logit"`` kernel, in [0, K).
    ridge : float
        >= 0; epsilon itself, or relative to the mean diagonal (``ridge_scale``).
    ridge_scale : str
        One of :data:`RIDGE_SCALES`.
    chunk : int
        Rows per block of the kernel (or of the passes).

    Returns
    -------
    tuple
        ``(outputs, Cost)``: the (N_f, K) float64 NumPy outputs ``f_r(X_f)`` and what they cost.

    Raises
    ------
    ValueError
        On a bad argument, named (before any work).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import ntk_solvers
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> x_r, y_r, x_f = x[4:], y[4:], x[:4]  # D_r: 12 rows, D_f: 4
    >>> out, cost = ntk_solvers.cg(net0, x_r, y_r, x_f, iterations=12)
    >>> out.shape, cost.solver, cost.iterations
    ((4, 3), 'cg', 12)
    >>> ntk_solvers.cg(net0, x_r, y_r, x_f, iterations=0)
    Traceback (most recent call last):
        ...
    ValueError: argument `iterations`: expected an integer >= 1; got 0
    """
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ValueError(f"argument `iterations`: expected an integer >= 1; got {iterations!r}")
    return cg_path(net0, x_r, y_r, x_f, iterations=(int(iterations),), tol=tol, kernel=kernel, logit=logit,
                   ridge=ridge, ridge_scale=ridge_scale, chunk=chunk)[0]

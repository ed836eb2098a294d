r"""Exact unlearning of a stream of deletion requests with a cached inverse Gram.

After training on D the min-norm model is ``theta = theta0 + Phi^T alpha`` with
``alpha = H r0``, ``H = (Phi Phi^T + eps I)^{-1}`` and ``r0 = y - Phi theta0`` (MUSO,
arXiv 2410.08557, implicit-bias lemma). Deleting a set F of rows leaves the retained Gram
``G_rr``, a principal block of G, whose inverse follows from H by block elimination (the
Schur complement of ``H_FF``):

.. math::
    G_{rr}^{-1} = H_{rr} - H_{rF} H_{FF}^{-1} H_{Fr}, \qquad
    \alpha_r = \alpha_r^{old} - H_{rF} H_{FF}^{-1} \alpha_F^{old}

so the retrained parameters ``theta_r = theta0 + Phi_r^T alpha_r`` come in
O(N^2 k + N M K) for k deleted rows instead of O(N^2 M + N^3) from scratch. Deleted rows stay
in place with zero rows and columns in H and zero coefficients (fixed shapes: one compiled
program per power-of-two bucket of k).

Every request returns a certificate. ``theta - theta0`` lies in the row space of ``Phi_r`` by
construction, and the min-norm interpolant is the only such point that satisfies
``Phi_r theta + eps alpha_r = y_r``, so the residual of that equation certifies exactness:

.. math::
    \|\theta - \theta_r\| \le \|G_{rr}^{-1}\|_2^{1/2}\, \|\Phi_r\theta + \epsilon\alpha_r - y_r\|
                          \le \|H\|_F^{1/2}\, \|\text{residual}\|

(for eps = 0; ``H`` is the cached inverse, itself exact up to round-off).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from muso_jax import _checks, _linalg
from muso_jax.closed_form import _gram, _validate


class Factorization(NamedTuple):
    """What a deletion needs: the data, the cached inverse Gram and the current model."""

    phi: jax.Array  # (N, M) features of every row ever trained on
    y: jax.Array  # (N,) or (N, K)
    theta0: jax.Array  # (M,) or (M, K)
    ridge: jax.Array  # epsilon on the Gram diagonal
    H: jax.Array  # (N, N) inverse of the retained Gram; zero rows/columns at deleted rows
    alpha: jax.Array  # dual coefficients, zero at deleted rows
    active: jax.Array  # (N,) bool: rows still in the training set
    theta: jax.Array  # theta0 + Phi^T alpha: the exact model on the active rows


class DeletionCertificate(NamedTuple):
    """How exact the parameters after one request are."""

    deleted: jax.Array  # rows removed by this request
    remaining: jax.Array  # rows still trained on
    residual: jax.Array  # ||Phi_r theta + eps alpha_r - y_r|| (0 in exact arithmetic)
    gap_bound: jax.Array  # bound on ||theta - theta_r||: ||H||_F^{1/2} * residual
    pivot_ok: jax.Array  # the k x k block H_FF was safely positive definite


def fit(phi, y, theta0, *, ridge=0.0) -> Factorization:
    r"""Factor the Gram of the full training set and return the exact min-norm model.

    .. math:: H = (\Phi\Phi^\top + \epsilon I)^{-1}, \quad \alpha = H (y - \Phi\theta_0),
              \quad \theta = \theta_0 + \Phi^\top\alpha

    Raises ``ValueError`` unless ``Phi Phi^T + eps I`` is numerically positive definite
    (full row rank, N <= M for eps = 0): a rank-deficient system has no unique inverse to
    downdate. Costs one Gram (N^2 M), one Cholesky and one inverse (N^3).

    Parameters
    ----------
    phi : (N, M) array
        Features of every training row.
    y : (N,) or (N, K) array
        Targets.
    theta0 : (M,) or (M, K) array
        Start.
    ridge : float, optional
        :math:`\epsilon \ge 0` on the Gram diagonal.

    Returns
    -------
    Factorization
        The data, ``H`` (N, N), ``alpha`` shaped like ``y``, every row active, and ``theta``
        shaped like ``theta0``: :func:`muso_jax.min_norm_solution` of all rows.

    Raises
    ------
    ValueError
        For a bad shape or value (naming the argument), N > M with ``ridge = 0``, or a
        numerically singular Gram.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import closed_form, deletion
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> y = jax.random.normal(jax.random.key(1), (6,))
    >>> theta0 = jax.random.normal(jax.random.key(2), (10,))
    >>> fact = deletion.fit(phi, y, theta0)
    >>> fact.H.shape, int(fact.active.sum())
    ((6, 6), 6)
    >>> np.allclose(fact.theta, closed_form.min_norm_solution(phi, y, theta0), atol=1e-4)
    True
    >>> deletion.fit(phi.at[5].set(phi[0]), y, theta0)  # a repeated row: no inverse to downdate
    Traceback (most recent call last):
    ...
    ValueError: argument `phi`: expected full row rank (a positive definite Gram Phi Phi^T + ridge I); got a numerically singular Gram ...
    """
    phi, y, theta0 = _validate(phi, y, theta0, ridge)
    n, m = phi.shape
    if n > m and float(ridge) == 0.0:
        raise ValueError(
            f"argument `phi`: expected at most as many rows as features (N <= M) for exact deletion; "
            f"got N = {n} rows and M = {m} features (the Gram is singular)"
        )
    ridge = jnp.asarray(ridge, phi.dtype)
    H, alpha, theta, ok = _fit(phi, y, theta0, ridge)
    if not bool(ok):
        raise ValueError(
            "argument `phi`: expected full row rank (a positive definite Gram Phi Phi^T + ridge I); "
            "got a numerically singular Gram (duplicate or dependent rows). Add a ridge or remove them"
        )
    return Factorization(phi, y, theta0, ridge, H, alpha, jnp.ones(n, bool), theta)


@jax.jit
def _fit(phi, y, theta0, ridge):
    H, ok = _linalg.inverse(_gram(phi, ridge, None))
    alpha = H @ (y - phi @ theta0)
    theta = theta0 + (alpha.T @ phi).T
    return H, alpha, theta, ok  # not phi, y, theta0: outputs would be copies


def _bucket(k: int) -> int:
    """Next power of two: deletions of k rows share one compiled program per bucket."""
    return 1 << (k - 1).bit_length()


def delete(fact: Factorization, forget) -> tuple[Factorization, DeletionCertificate]:
    r"""Delete the rows ``forget`` (a forget set over the original training rows: a boolean
    mask or integer indices, see :func:`muso_jax._checks.forget_set`) and return the exact
    retrained model on what is left, with its certificate.

    Raises ``ValueError`` for the refusals of a forget set (empty, out of range, negative,
    repeated), for rows already deleted or a request that would delete every remaining row,
    and when the downdate would divide by a numerically singular block (the state is then
    unchanged).

    .. math::
        H' = H_{rr} - H_{rF} H_{FF}^{-1} H_{Fr}, \qquad
        \alpha' = \alpha_r - H_{rF} H_{FF}^{-1} \alpha_F, \qquad
        \theta' = \theta_0 + \Phi_r^\top \alpha'

    (block elimination on the cached inverse; see the module).

    Parameters
    ----------
    fact : Factorization
        From :func:`fit` or an earlier :func:`delete`.
    forget : (N,) bool array or int array
        The rows to delete, among the N original training rows still active.

    Returns
    -------
    fact : Factorization
        The downdated state: ``theta`` is the retrained model on the remaining rows.
    certificate : DeletionCertificate
        Rows deleted and remaining, the residual of the normal equations and the bound on
        :math:`\|\theta - \theta_r\|` it gives.

    Raises
    ------
    ValueError
        See above; the message names ``fact`` or ``forget``.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import closed_form, deletion
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> y = jax.random.normal(jax.random.key(1), (6,))
    >>> theta0 = jax.random.normal(jax.random.key(2), (10,))
    >>> fact, cert = deletion.delete(deletion.fit(phi, y, theta0), [4, 5])
    >>> int(cert.deleted), int(cert.remaining), bool(cert.gap_bound < 1e-4)
    (2, 4, True)
    >>> np.allclose(fact.theta, closed_form.min_norm_solution(phi[:4], y[:4], theta0), atol=1e-4)
    True
    >>> fact, cert = deletion.delete(fact, [0, 2])  # the next request, on the remaining rows
    >>> fact.active.tolist()
    [False, True, False, True, False, False]
    >>> theta_r = closed_form.min_norm_solution(phi, y, theta0, retain=fact.active)
    >>> np.allclose(fact.theta, theta_r, atol=1e-4)
    True
    >>> deletion.delete(fact, [5])
    Traceback (most recent call last):
    ...
    ValueError: argument `forget`: expected rows still in the training set; got already-deleted rows [5]
    """
    if not isinstance(fact, Factorization):
        raise ValueError(f"argument `fact`: expected a Factorization from deletion.fit; got {type(fact).__name__}")
    n = fact.phi.shape[0]
    forget = np.asarray(forget)
    mask = _checks.forget_set(forget.reshape(1) if forget.ndim == 0 else forget, n)
    active = np.asarray(fact.active)
    gone = np.flatnonzero(mask & ~active)
    if gone.size:
        raise ValueError(f"argument `forget`: expected rows still in the training set; "
                         f"got already-deleted rows {gone.tolist()[:10]}")
    if not np.any(active & ~mask):
        raise ValueError("argument `forget`: expected at least one row to remain; got every remaining row")
    idx = np.flatnonzero(mask)
    k = idx.size
    padded = np.zeros(_bucket(k), np.int64)
    padded[:k] = idx
    valid = np.arange(padded.size) < k
    H, alpha, active, theta, cert = _delete(fact, jnp.asarray(padded), jnp.asarray(valid))
    if not bool(cert.pivot_ok):
        raise ValueError(
            f"argument `forget`: deleting these {k} rows needs the inverse of a numerically singular "
            "block of the cached inverse Gram (the downdate would lose all precision); refit from "
            "scratch with deletion.fit on the remaining rows"
        )
    return fact._replace(H=H, alpha=alpha, active=active, theta=theta), cert


@jax.jit
def _delete(fact: Factorization, idx, valid):
    H, alpha = fact.H, fact.alpha
    v = valid.astype(H.dtype)
    H_F = H[idx, :] * v[:, None]  # (kb, N) rows of the symmetric H; padded rows are zero
    H_FF = H_F[:, idx] * v[None, :] + jnp.diag(1.0 - v)  # padded block is the identity
    # The k x k inverse explicitly: a triangular solve with N right-hand sides is several
    # times slower on XLA:CPU than this tiny inverse and two matmuls.
    H_FF_inv, ok = _linalg.inverse(H_FF)
    W = H_F.T @ H_FF_inv  # (N, kb)
    active = fact.active.at[jnp.where(valid, idx, H.shape[0])].set(False, mode="drop")
    a = active.astype(H.dtype)
    # Rows and columns of the eliminated block are zero in exact arithmetic; the mask makes
    # them exactly so, in the same pass as the rank-k downdate.
    H_new = (H - W @ H_F) * a[:, None] * a[None, :]
    a_k = a.reshape((-1,) + (1,) * (alpha.ndim - 1))
    alpha_new = (alpha - W @ (alpha[idx] * v.reshape(v.shape + (1,) * (alpha.ndim - 1)))) * a_k
    theta = fact.theta0 + (alpha_new.T @ fact.phi).T
    residual = jnp.linalg.norm((fact.phi @ theta + fact.ridge * alpha_new - fact.y) * a_k)
    cert = DeletionCertificate(
        deleted=jnp.sum(valid), remaining=jnp.sum(active), residual=residual,
        gap_bound=jnp.sqrt(jnp.linalg.norm(H_new)) * residual, pivot_ok=ok,
    )
    # Only what changed leaves the program: returning phi, y, theta0 too would copy them.
    return H_new, alpha_new, active, theta, cert

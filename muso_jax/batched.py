r"""Many forget sets at once: the retrain oracle and MUSO's labels for B forget masks in one
vmapped, compiled call (MUSO, arXiv 2410.08557, implicit-bias lemma and relabeling theorem).

For each mask ``f_b`` (True = forget) with retained rows ``r_b``:

.. math::
    \theta_{r,b} = \theta_0 + \Phi_{r_b}^\top (\Phi_{r_b}\Phi_{r_b}^\top + \epsilon I)^{-1}
                   (y_{r_b} - \Phi_{r_b}\theta_0), \qquad
    y'_b = \begin{cases} \Phi\,\theta_{r,b} & \text{forget rows} \\ y & \text{retained rows} \end{cases}

The masks keep every shape static (masked rows become identity rows of the Gram), so one
program serves every forget set of the same N.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from muso_jax import _checks, _linalg
from muso_jax.closed_form import _gram, _validate


def retrain_many(phi, y, theta0, forget, *, ridge=0.0):
    """The retrained parameters for each forget mask: shape (B,) + theta0.shape."""
    phi, y, theta0 = _validate(phi, y, theta0, ridge)
    forget = _checks.forget_sets(forget, phi.shape[0])
    return _retrain_many(phi, y, theta0, forget, ridge)


def _duals(phi, y, theta0, forget, ridge):
    """Dual coefficients of every retrain, (B, N[, K]), zero on forgotten rows.

    A vmap of the one Gram solve: its LAPACK calls run one matrix at a time, each with its
    own Cholesky-or-pseudo-inverse decision (``muso_jax._linalg``).
    """
    keep = (~forget).astype(phi.dtype)
    G = jax.vmap(lambda w: _gram(phi, ridge, w > 0))(keep)
    r = (y - phi @ theta0)[None] * keep.reshape(keep.shape + (1,) * (y.ndim - 1))
    return jax.vmap(_linalg.solve)(G, r)


def min_norm_many(phi, y, theta0, *, ridge=0.0):
    """:func:`muso_jax.min_norm_solution` for B independent problems (leading axis B on every
    argument: seeds, feature draws), in one program."""
    phi = _checks.array("phi", phi, ndim=(3,), what="(B, N, M) batch of feature matrices")
    y = _checks.array("y", y, ndim=(2, 3), what="(B, N) or (B, N, K) batch of targets")
    theta0 = _checks.array("theta0", theta0, ndim=(2, 3), what="(B, M) or (B, M, K) batch of starts")
    if y.shape[:2] != phi.shape[:2] or theta0.shape[:2] != (phi.shape[0], phi.shape[2]) or y.shape[2:] != theta0.shape[2:]:
        raise ValueError(f"argument `y`/`theta0`: expected shapes (B, N[, K]) and (B, M[, K]) matching `phi` "
                         f"{tuple(phi.shape)}; got {tuple(y.shape)} and {tuple(theta0.shape)}")
    _checks.nonnegative("ridge", ridge)
    return _min_norm_many(phi, y, theta0, ridge)


@jax.jit
def _min_norm_many(phi, y, theta0, ridge):
    G = jax.vmap(lambda p: _gram(p, ridge, None))(phi)
    alpha = jax.vmap(_linalg.solve)(G, y - jnp.einsum("bnm,bm...->bn...", phi, theta0))
    return theta0 + jnp.einsum("bn...,bnm->bm...", alpha, phi)


def _theta(phi, theta0, alpha):
    return theta0[None] + jnp.einsum("bn...,nm->bm...", alpha, phi)


@jax.jit
def _retrain_many(phi, y, theta0, forget, ridge):
    return _theta(phi, theta0, _duals(phi, y, theta0, forget, ridge))


def relabel_many(phi, y, theta0, forget, *, ridge=0.0):
    """MUSO's relabeled targets for each forget mask, and the retrained parameters.

    Returns ``(y_relabeled, theta_r)`` of shapes (B,) + y.shape and (B,) + theta0.shape:
    forget rows carry ``Phi theta_r``, retained rows their own targets.
    """
    phi, y, theta0 = _validate(phi, y, theta0, ridge)
    forget = _checks.forget_sets(forget, phi.shape[0])
    return _relabel_many(phi, y, theta0, forget, ridge)


@jax.jit
def _relabel_many(phi, y, theta0, forget, ridge):
    theta_r = _theta(phi, theta0, _duals(phi, y, theta0, forget, ridge))
    outputs = jnp.einsum("nm,bm...->bn...", phi, theta_r)
    return jnp.where(forget.reshape(forget.shape + (1,) * (y.ndim - 1)), outputs, y[None]), theta_r

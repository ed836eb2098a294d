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
import numpy as np

from muso_jax import _checks
from muso_jax.closed_form import _min_norm, _validate


def _masks(forget, n: int):
    f = forget if hasattr(forget, "shape") else np.asarray(forget)
    if f.ndim != 2 or f.shape[1] != n or f.dtype != bool:
        raise ValueError(
            f"argument `forget`: expected a boolean (B, N = {n}) array of forget masks; got {_checks._describe(f)}"
        )
    return jnp.asarray(f)


def retrain_many(phi, y, theta0, forget, *, ridge=0.0):
    """The retrained parameters for each forget mask: shape (B,) + theta0.shape."""
    phi, y, theta0 = _validate(phi, y, theta0, ridge)
    forget = _masks(forget, phi.shape[0])
    return _retrain_many(phi, y, theta0, forget, ridge)


@jax.jit
def _retrain_many(phi, y, theta0, forget, ridge):
    # One Cholesky-or-SVD decision for the whole batch (closed_form._solve_gram's vmap rule).
    return jax.vmap(lambda f: _min_norm(phi, y, theta0, ridge, ~f))(forget)


def relabel_many(phi, y, theta0, forget, *, ridge=0.0):
    """MUSO's relabeled targets for each forget mask, and the retrained parameters.

    Returns ``(y_relabeled, theta_r)`` of shapes (B,) + y.shape and (B,) + theta0.shape:
    forget rows carry ``Phi theta_r``, retained rows their own targets.
    """
    phi, y, theta0 = _validate(phi, y, theta0, ridge)
    forget = _masks(forget, phi.shape[0])
    return _relabel_many(phi, y, theta0, forget, ridge)


@jax.jit
def _relabel_many(phi, y, theta0, forget, ridge):
    def one(f):
        theta_r = _min_norm(phi, y, theta0, ridge, ~f)
        return jnp.where(f.reshape((-1,) + (1,) * (y.ndim - 1)), phi @ theta_r, y), theta_r

    return jax.vmap(one)(forget)

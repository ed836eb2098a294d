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
    r"""The retrained parameters for each forget mask: shape (B,) + theta0.shape.

    .. math::
        \theta_{r,b} = \theta_0 + \Phi_{r_b}^\top (\Phi_{r_b}\Phi_{r_b}^\top + \epsilon I)^{-1}
                       (y_{r_b} - \Phi_{r_b}\theta_0)

    (MUSO, arXiv 2410.08557, implicit-bias lemma), one vmapped Gram solve per mask.

    Parameters
    ----------
    phi : (N, M) array
        Features.
    y : (N,) or (N, K) array
        Targets.
    theta0 : (M,) or (M, K) array
        Start.
    forget : (B, N) bool array
        One forget mask per row (True = forget); each must forget a row and keep a row.
    ridge : float, optional
        :math:`\epsilon \ge 0` of the solves.

    Returns
    -------
    jax.Array
        Shape (B, M) or (B, M, K).

    Raises
    ------
    ValueError
        For a bad shape (naming the argument), or a mask that is not boolean (B, N), empty or
        total.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import batched, closed_form
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> y = jax.random.normal(jax.random.key(1), (6,))
    >>> theta0 = jax.random.normal(jax.random.key(2), (10,))
    >>> forget = jnp.stack([jnp.arange(6) >= 4, jnp.arange(6) == 0])  # B = 2 forget sets
    >>> theta_r = batched.retrain_many(phi, y, theta0, forget)
    >>> theta_r.shape
    (2, 10)
    >>> [np.allclose(theta_r[b], closed_form.min_norm_solution(phi, y, theta0, retain=~forget[b]),
    ...                    atol=1e-4) for b in range(2)]
    [True, True]
    """
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
    r""":func:`muso_jax.min_norm_solution` for B independent problems (leading axis B on every
    argument: seeds, feature draws), in one program.

    .. math::
        \theta_b = \theta_{0,b} + \Phi_b^\top (\Phi_b\Phi_b^\top + \epsilon I)^{-1}
                   (y_b - \Phi_b\theta_{0,b})

    Parameters
    ----------
    phi : (B, N, M) array
        A batch of feature matrices.
    y : (B, N) or (B, N, K) array
        Their targets.
    theta0 : (B, M) or (B, M, K) array
        Their starts.
    ridge : float, optional
        :math:`\epsilon \ge 0` of every solve.

    Returns
    -------
    jax.Array
        Shaped like ``theta0``.

    Raises
    ------
    ValueError
        If the shapes do not match or ``ridge`` is negative.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import batched, closed_form
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> y = jax.random.normal(jax.random.key(1), (6,))
    >>> theta0 = jax.random.normal(jax.random.key(2), (10,))
    >>> phis = jnp.stack([phi, phi[::-1]])  # B = 2 problems
    >>> ys, theta0s = jnp.stack([y, y]), jnp.stack([theta0, jnp.zeros(10)])
    >>> thetas = batched.min_norm_many(phis, ys, theta0s)
    >>> thetas.shape
    (2, 10)
    >>> np.allclose(thetas[1], closed_form.min_norm_solution(phi[::-1], y, jnp.zeros(10)), atol=1e-4)
    True
    >>> batched.min_norm_many(phis, ys[:, :5], theta0s)
    Traceback (most recent call last):
    ...
    ValueError: argument `y`/`theta0`: expected shapes (B, N[, K]) and (B, M[, K]) matching `phi` (2, 6, 10); got (2, 5) and (2, 10)
    """
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
    r"""MUSO's relabeled targets for each forget mask, and the retrained parameters.

    Returns ``(y_relabeled, theta_r)`` of shapes (B,) + y.shape and (B,) + theta0.shape:
    forget rows carry ``Phi theta_r``, retained rows their own targets.

    .. math::
        y'_b = \begin{cases} \Phi\,\theta_{r,b} & \text{forget rows} \\ y & \text{retained rows} \end{cases}

    (MUSO, arXiv 2410.08557, relabeling theorem: fine-tuning on :math:`(\Phi, y'_b)` from the
    original model converges to :math:`\theta_{r,b}`.)

    Parameters
    ----------
    phi : (N, M) array
        Features.
    y : (N,) or (N, K) array
        Targets.
    theta0 : (M,) or (M, K) array
        Start.
    forget : (B, N) bool array
        One forget mask per row (True = forget).
    ridge : float, optional
        :math:`\epsilon \ge 0` of the solves.

    Returns
    -------
    y_relabeled : jax.Array
        Shape (B,) + y.shape.
    theta_r : jax.Array
        Shape (B,) + theta0.shape, as :func:`retrain_many`.

    Raises
    ------
    ValueError
        As :func:`retrain_many`.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import batched, closed_form
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> y = jax.random.normal(jax.random.key(1), (6,))
    >>> theta0 = jax.random.normal(jax.random.key(2), (10,))
    >>> forget = jnp.stack([jnp.arange(6) >= 4, jnp.arange(6) == 0])  # B = 2 forget sets
    >>> y_relabeled, theta_r = batched.relabel_many(phi, y, theta0, forget)
    >>> y_relabeled.shape, theta_r.shape
    ((2, 6), (2, 10))
    >>> np.allclose(y_relabeled[0, :4], y[:4])  # retained rows keep their targets
    True
    >>> theta_p = closed_form.min_norm_solution(phi, y, theta0)  # fine-tuning's limit from theta_p:
    >>> theta_u = closed_form.min_norm_solution(phi, y_relabeled[0], theta_p)
    >>> np.allclose(theta_u, theta_r[0], atol=1e-4)
    True
    """
    phi, y, theta0 = _validate(phi, y, theta0, ridge)
    forget = _checks.forget_sets(forget, phi.shape[0])
    return _relabel_many(phi, y, theta0, forget, ridge)


@jax.jit
def _relabel_many(phi, y, theta0, forget, ridge):
    theta_r = _theta(phi, theta0, _duals(phi, y, theta0, forget, ridge))
    outputs = jnp.einsum("nm,bm...->bn...", phi, theta_r)
    return jnp.where(forget.reshape(forget.shape + (1,) * (y.ndim - 1)), outputs, y[None]), theta_r

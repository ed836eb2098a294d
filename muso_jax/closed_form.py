r"""Closed forms of the linear theory: the SGD limit, the retrain oracle, the projector and
MUSO's optimal labels (Yang et al., "MUSO: Achieving Exact Machine Unlearning in
Over-Parameterized Regimes", arXiv 2410.08557, lemma on SGD's implicit bias and the
relabeling theorem).

Every solve is the library's one Gram solve, :func:`muso_jax._linalg.solve`, on
``G = Phi Phi^T + ridge I`` (N x N, the small side when M > N), never an explicit inverse:
a Cholesky factorization, and where it fails or a pivot shows G to be numerically singular
(more rows than features, duplicate rows, ridge = 0 on a rank-deficient Phi) the SVD
pseudo-inverse, which yields the least-squares solution closest to ``theta0``: the limit of
gradient descent in that case.

Functions accept NumPy or JAX arrays, targets of shape (N,) or (N, K) and parameters of shape
(M,) or (M, K). They are pure and can be jitted and vmapped.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
from muso_jax import _checks, _linalg


class UnderParameterizedWarning(UserWarning):
    """More rows than features: no interpolant exists and exactness by relabeling is lost."""


def _gram(phi, ridge, retain):
    """``Phi Phi^T + ridge I`` with the rows outside ``retain`` replaced by identity rows."""
    return _regularize(phi @ phi.T, ridge, retain)


def _regularize(G, ridge, retain):
    """A Gram ``G`` plus ``ridge I``, with the rows outside ``retain`` replaced by identity rows."""
    n = G.shape[0]
    if retain is not None:
        m = retain.astype(G.dtype)
        G = G * m[:, None] * m[None, :] + jnp.diag(1.0 - m)
    return G + ridge * jnp.eye(n, dtype=G.dtype)


def full_row_rank(phi):
    r"""Whether ``Phi`` (N x M) has numerically full row rank: N <= M and a Cholesky of the Gram
    with every pivot above round-off. The premise of MUSO's exactness theorem.

    .. math::
        \operatorname{rank} \Phi = N \iff \Phi\Phi^\top \succ 0

    tested as a Cholesky factorization ``Phi Phi^T = L L^T`` whose pivots :math:`L_{ii}^2` all
    exceed :math:`N \varepsilon \max_i (\Phi\Phi^\top)_{ii}`.
    (MUSO, arXiv 2410.08557: with full row rank every labeling of the N rows is interpolable,
    so fine-tuning on MUSO's labels reaches the retrained model exactly.)

    Parameters
    ----------
    phi : (N, M) array
        Feature matrix.

    Returns
    -------
    jax.Array
        A boolean scalar; False whenever N > M.

    Raises
    ------
    ValueError
        If ``phi`` is not a non-empty, finite, real 2-D array.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from muso_jax import closed_form
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> bool(closed_form.full_row_rank(phi))
    True
    >>> bool(closed_form.full_row_rank(phi.at[5].set(phi[0])))  # a repeated row
    False
    >>> bool(closed_form.full_row_rank(phi.T))  # N = 10 rows > M = 6 features
    False
    """
    phi = _checks.array("phi", phi, ndim=(2,), what="(N, M) feature matrix")
    if phi.shape[0] > phi.shape[1]:
        return jnp.asarray(False)
    return _full_row_rank(phi)


@jax.jit
def _full_row_rank(phi):
    return _linalg.is_positive_definite(_gram(phi, 0.0, None))


@jax.jit
def _min_norm(phi, y, theta0, ridge, retain):
    r = y - phi @ theta0
    if retain is not None:
        r = r * retain.astype(r.dtype).reshape((-1,) + (1,) * (r.ndim - 1))
    alpha = _linalg.solve(_gram(phi, ridge, retain), r)
    # alpha^T Phi rather than Phi^T alpha: the latter is many times slower on XLA:CPU.
    return theta0 + (alpha.T @ phi).T


def _validate(phi, y, theta0, ridge, phi_name="phi", y_name="y"):
    phi = _checks.array(phi_name, phi, ndim=(2,), what="(N, M) feature matrix")
    y = _checks.targets(y_name, y, phi.shape[0], phi_name)
    theta0 = _checks.theta("theta0", theta0, phi.shape[1], y, phi_name)
    _checks.nonnegative("ridge", ridge)
    dtype = jnp.result_type(phi, y, theta0)
    return phi.astype(dtype), y.astype(dtype), theta0.astype(dtype)


def _warn_if_underparameterized(phi, ridge, what):
    n, m = phi.shape
    if n > m and _checks.is_concrete(ridge) and float(ridge) == 0.0:
        warnings.warn(
            f"{what}: N = {n} rows > M = {m} features, so no interpolant exists; returning the "
            "least-squares solution closest to theta0 (the gradient-descent limit). The exactness "
            "theorem of MUSO assumes M > N.",
            UnderParameterizedWarning,
            stacklevel=3,
        )


def min_norm_solution(phi, y, theta0, *, ridge=0.0, retain=None):
    r"""The interpolant of ``(Phi, y)`` closest to ``theta0``: the SGD limit and retrain oracle.

    .. math::
        \theta_\infty = \theta_0 + \Phi^\top (\Phi\Phi^\top + \epsilon I)^{-1} (y - \Phi\theta_0)
                      = \arg\min \{ \|\theta - \theta_0\| : \Phi\theta = y \}\ (\epsilon = 0)

    (MUSO, arXiv 2410.08557, implicit-bias lemma.) Given the retained rows ``(Phi_r, y_r)`` it is
    the retrained model ``theta_r``, computed without SGD.

    Parameters
    ----------
    phi : (N, M) array
        Features.
    y : (N,) or (N, K) array
        Targets.
    theta0 : (M,) or (M, K) array
        The start (trailing shape that of ``y``).
    ridge : float, optional
        :math:`\epsilon \ge 0` added to the Gram diagonal (0 = exact interpolation).
    retain : (N,) bool array, optional
        The rows to use; the others are ignored. Keeps shapes static so forget sets can be
        vmapped.

    Returns
    -------
    jax.Array
        :math:`\theta_\infty`, shaped like ``theta0``.

    Raises
    ------
    ValueError
        If a shape does not match (naming the argument), a value is not finite, ``ridge`` is
        negative or ``retain`` is not a boolean (N,) mask.

    Warns
    -----
    UnderParameterizedWarning
        When N > M with ``ridge = 0`` and no ``retain``: no interpolant exists, and the result
        is the least-squares solution closest to ``theta0``.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import closed_form
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> y = jax.random.normal(jax.random.key(1), (6,))
    >>> theta0 = jax.random.normal(jax.random.key(2), (10,))
    >>> theta = closed_form.min_norm_solution(phi, y, theta0)
    >>> theta.shape
    (10,)
    >>> np.allclose(phi @ theta, y, atol=1e-4)  # it interpolates
    True
    >>> step = theta - theta0  # and moves from theta0 inside the row space of Phi only
    >>> np.allclose(closed_form.projector(phi) @ step, step, atol=1e-4)
    True

    The retrain oracle on the first four rows, by a mask (static shapes) or by slicing:

    >>> theta_r = closed_form.min_norm_solution(phi, y, theta0, retain=jnp.arange(6) < 4)
    >>> np.allclose(theta_r, closed_form.min_norm_solution(phi[:4], y[:4], theta0), atol=1e-4)
    True
    >>> closed_form.min_norm_solution(phi, y[:5], theta0)
    Traceback (most recent call last):
    ...
    ValueError: argument `y`: expected number of rows 6 to match `phi`; got 5
    """
    phi, y, theta0 = _validate(phi, y, theta0, ridge)
    if retain is not None:
        retain = _checks.retain_mask(retain, phi.shape[0])
    else:
        _warn_if_underparameterized(phi, ridge, "min_norm_solution")
    return _min_norm(phi, y, theta0, ridge, retain)


def muso_labels(phi_r, y_r, phi_f, theta0, *, ridge=0.0):
    r"""MUSO's optimal labels for the forgetting data: the retrained model's outputs on it.

    .. math::
        \hat y_f = \Phi_f \theta_r
                 = \Phi_f\theta_0 + \Phi_f\Phi_r^\top(\Phi_r\Phi_r^\top + \epsilon I)^{-1}(y_r - \Phi_r\theta_0)

    (MUSO, arXiv 2410.08557, relabeling theorem.) Fine-tuning from ``theta_p`` on D_r plus
    ``(x_f, y_f_hat)`` then converges to ``theta_r`` exactly when M > N. Real-valued even for
    classification targets.

    Parameters
    ----------
    phi_r : (N_r, M) array
        Features of the retained rows D_r.
    y_r : (N_r,) or (N_r, K) array
        Their targets.
    phi_f : (N_f, M) array
        Features of the forgetting rows D_f.
    theta0 : (M,) or (M, K) array
        The initialization of the original training.
    ridge : float, optional
        :math:`\epsilon \ge 0` of the solve.

    Returns
    -------
    jax.Array
        :math:`\hat y_f`, of shape (N_f,) or (N_f, K).

    Raises
    ------
    ValueError
        If a shape does not match (naming the argument), a value is not finite or ``ridge`` is
        negative.

    Warns
    -----
    UnderParameterizedWarning
        When N_r > M with ``ridge = 0``.

    Examples
    --------
    Relabel D_f (the last two rows), then fine-tune the original model on all rows: the limit
    of fine-tuning (the interpolant closest to ``theta_p``) is the retrained model.

    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import closed_form
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> y = jax.random.normal(jax.random.key(1), (6,))
    >>> theta0 = jax.random.normal(jax.random.key(2), (10,))
    >>> y_f_hat = closed_form.muso_labels(phi[:4], y[:4], phi[4:], theta0)
    >>> y_f_hat.shape
    (2,)
    >>> theta_p = closed_form.min_norm_solution(phi, y, theta0)  # the original model
    >>> theta_r = closed_form.min_norm_solution(phi[:4], y[:4], theta0)  # retrained on D_r
    >>> theta_u = closed_form.min_norm_solution(phi, y.at[4:].set(y_f_hat), theta_p)
    >>> np.allclose(theta_u, theta_r, atol=1e-4)
    True
    >>> np.allclose(theta_p, theta_r, atol=1e-4)  # the original model was not
    False
    """
    phi_r, y_r, theta0 = _validate(phi_r, y_r, theta0, ridge, "phi_r", "y_r")
    phi_f = _checks.array("phi_f", phi_f, ndim=(2,), what="(N_f, M) feature matrix")
    _checks.same("phi_r", phi_r.shape[1], "phi_f", phi_f.shape[1], "feature width M =")
    _warn_if_underparameterized(phi_r, ridge, "muso_labels")
    return phi_f.astype(theta0.dtype) @ _min_norm(phi_r, y_r, theta0, ridge, None)


def projector(phi_r, *, ridge=0.0):
    r"""Orthogonal projector onto the row space of ``Phi_r`` (M x M).

    .. math::
        P_r = \Phi_r^\top (\Phi_r\Phi_r^\top + \epsilon I)^{-1} \Phi_r

    Solved on the smaller side: for N_r <= M as ``X^T X`` with ``X = L^{-1} Phi_r`` (``L`` the
    Cholesky factor of the N_r x N_r Gram); for N_r > M as ``A (A + eps I)^{-1}`` with
    ``A = Phi_r^T Phi_r`` (M x M), the same matrix. It is
    symmetric (up to matmul round-off) and positive semi-definite by construction. With ``ridge = 0`` it is idempotent
    with eigenvalues in {0, 1}; with ``ridge > 0`` its eigenvalues are ``s / (s + ridge)`` in
    [0, 1). (MUSO, arXiv 2410.08557, projector form of the labels.)

    Parameters
    ----------
    phi_r : (N_r, M) array
        Features of the retained rows.
    ridge : float, optional
        :math:`\epsilon \ge 0` of the solve.

    Returns
    -------
    jax.Array
        :math:`P_r`, of shape (M, M).

    Raises
    ------
    ValueError
        If ``phi_r`` is not a finite 2-D array or ``ridge`` is negative.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import closed_form
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> P = closed_form.projector(phi)
    >>> P.shape
    (10, 10)
    >>> np.allclose(P @ P, P, atol=1e-4), round(float(jnp.trace(P)), 4)  # rank 6
    (True, 6.0)
    >>> np.allclose(P @ phi.T, phi.T, atol=1e-4)  # it fixes the rows
    True
    """
    phi_r = _checks.array("phi_r", phi_r, ndim=(2,), what="(N_r, M) feature matrix")
    _checks.nonnegative("ridge", ridge)
    return _projector(phi_r, ridge)


@jax.jit
def _projector(phi_r, ridge):
    n, m = phi_r.shape
    if n > m:  # the feature side is smaller: P = (A + eps I)^+ A, A = Phi_r^T Phi_r (M x M)
        A = phi_r.T @ phi_r
        S = _linalg.solve(A + ridge * jnp.eye(m, dtype=A.dtype), A)
    else:  # P = Phi_r^T (Phi_r Phi_r^T + eps I)^+ Phi_r
        S = phi_r.T @ _linalg.solve(_gram(phi_r, ridge, None), phi_r)
    return (S + S.T) / 2  # symmetric in exact arithmetic; averaging removes round-off asymmetry


def projector_labels(phi_r, phi_f, theta0, theta_p, *, ridge=0.0):
    r"""MUSO's labels in projector form, valid when ``theta_p`` interpolates D_r.

    .. math::
        \hat y_f = \Phi_f [\theta_0 + P_r (\theta_p - \theta_0)]

    Equal to :func:`muso_labels` because ``Phi_r theta_p = y_r``; needs only the original and
    initial parameters, not ``y_r`` (MUSO, arXiv 2410.08557). ``P_r`` is applied as
    ``Phi_r^T G^{-1} Phi_r v`` without forming the M x M matrix.

    Parameters
    ----------
    phi_r : (N_r, M) array
        Features of the retained rows.
    phi_f : (N_f, M) array
        Features of the forgetting rows.
    theta0 : (M,) or (M, K) array
        The initialization of the original training.
    theta_p : (M,) or (M, K) array
        The original trained parameters (shaped like ``theta0``).
    ridge : float, optional
        :math:`\epsilon \ge 0` of the solve.

    Returns
    -------
    jax.Array
        :math:`\hat y_f`, of shape (N_f,) or (N_f, K).

    Raises
    ------
    ValueError
        If a shape does not match (naming the argument), a value is not finite or ``ridge`` is
        negative.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import closed_form
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> y = jax.random.normal(jax.random.key(1), (6,))
    >>> theta0 = jax.random.normal(jax.random.key(2), (10,))
    >>> theta_p = closed_form.min_norm_solution(phi, y, theta0)  # interpolates all of D
    >>> labels = closed_form.projector_labels(phi[:4], phi[4:], theta0, theta_p)  # no y_r
    >>> np.allclose(labels, closed_form.muso_labels(phi[:4], y[:4], phi[4:], theta0), atol=1e-4)
    True
    """
    phi_r = _checks.array("phi_r", phi_r, ndim=(2,), what="(N_r, M) feature matrix")
    phi_f = _checks.array("phi_f", phi_f, ndim=(2,), what="(N_f, M) feature matrix")
    _checks.same("phi_r", phi_r.shape[1], "phi_f", phi_f.shape[1], "feature width M =")
    theta_p = _checks.array("theta_p", theta_p, ndim=(1, 2), what="(M,) or (M, K) parameter array")
    _checks.same("phi_r", phi_r.shape[1], "theta_p", theta_p.shape[0], "feature width M =")
    theta0 = _checks.theta("theta0", theta0, phi_r.shape[1], theta_p, "phi_r")
    _checks.nonnegative("ridge", ridge)
    dtype = jnp.result_type(phi_r, phi_f, theta0, theta_p)
    phi_r, phi_f = phi_r.astype(dtype), phi_f.astype(dtype)
    # theta0 + P_r (theta_p - theta0) is the min-norm step from theta0 towards Phi_r theta_p.
    return phi_f @ _min_norm(phi_r, phi_r @ theta_p, theta0.astype(dtype), ridge, None)

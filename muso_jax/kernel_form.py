r"""The linear core in kernel (dual) form: retraining and MUSO's labels from Gram matrices alone.

For the model ``f(x) = f0(x) + phi(x)^T (theta - theta0)`` (random features when ``f0 = 0``
at ``theta0 = 0``, a linearized network when ``phi`` is its tangent feature map at ``theta0``),
every parameter vector that gradient descent reaches from ``theta0`` has the form
``theta0 + Phi^T alpha`` (implicit-bias lemma of MUSO, Yang et al., arXiv 2410.08557). So
retraining, the retrained model's outputs and MUSO's labels need only the kernel
``K = Phi Phi^T`` and the start's outputs ``f0``, never the M-dimensional features:

.. math::
    \theta_r = \theta_0 + \Phi_r^\top \alpha_r, \qquad
    \alpha_r = (K_{rr} + \epsilon I)^{-1} (y_r - f_{0,r}).

The solve is the library's one Gram solve (:func:`muso_jax._linalg.solve`: Cholesky,
falling back to the SVD pseudo-inverse when the Gram is numerically singular). Kernels must be
symmetric positive semi-definite (checked on concrete inputs: a non-symmetric or indefinite
matrix is not a Gram matrix and would give meaningless, even zero, gaps). Functions are
pure, accept targets of shape (N,) or (N, K) (K target columns sharing one kernel) and can be
jitted and vmapped; inputs are validated at the boundary.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import numpy as np

from muso_jax import _checks, _linalg, gaps


def _gram(name, K, n=None, n_name=None):
    """A square kernel matrix; when concrete, also symmetric and positive semi-definite.

    Tolerances: asymmetry up to sqrt(eps) of the largest entry and eigenvalues down to
    -sqrt(eps) times the largest diagonal entry, far above the round-off of a computed ``Phi Phi^T``
    (about N eps) and far below any real asymmetry or indefiniteness.
    """
    K = _checks.array(name, K, ndim=(2,), what="(N, N) kernel matrix")
    if K.shape[0] != K.shape[1]:
        raise ValueError(f"argument `{name}`: expected a square (N, N) kernel matrix; got shape {tuple(K.shape)}")
    if n is not None:
        _checks.same(n_name, n, name, K.shape[0], "number of rows")
    if _checks.is_concrete(K):
        k = np.asarray(K, np.float64)
        tol = np.sqrt(np.finfo(np.asarray(K).dtype).eps)
        scale = np.max(np.abs(k))
        asym = np.max(np.abs(k - k.T))
        if asym > tol * scale:
            raise ValueError(f"argument `{name}`: expected a symmetric kernel matrix; got max |K - K^T| = {asym:.3g} "
                             f"(max |K| = {scale:.3g})")
        # The largest eigenvalue of a PSD matrix is at least its largest diagonal entry, so
        # tol * max(diag) is a bound no larger than tol * lambda_max.
        low = _linalg.smallest_eigenvalue_below_host(k, tol * max(float(np.max(np.diag(k))), 0.0))
        if low is not None:
            raise ValueError(f"argument `{name}`: expected a positive semi-definite kernel matrix; got eigenvalue "
                             f"{low:.3g} (largest |K| = {scale:.3g})")
    return K


def _like(name, a, ref, ref_name):
    """An array of exactly the shape of ``ref`` (outputs or coefficients matching targets)."""
    a = _checks.array(name, a, ndim=(ref.ndim,), what=f"array of shape {tuple(ref.shape)} like `{ref_name}`")
    if a.shape != ref.shape:
        raise ValueError(
            f"argument `{name}`: expected shape {tuple(ref.shape)} to match `{ref_name}`; got shape {tuple(a.shape)}"
        )
    return a


def _cast(*arrays):
    dtype = jnp.result_type(*arrays)
    return tuple(a.astype(dtype) for a in arrays)


@jax.jit
def _dual(K_rr, r, ridge):
    return _linalg.solve(K_rr + ridge * jnp.eye(K_rr.shape[0], dtype=K_rr.dtype), r)


def dual_coefficients(K_rr, y_r, f0_r, *, ridge=0.0):
    r"""Coefficients of the retrained model, ``theta_r = theta0 + Phi_r^T alpha_r``.

    .. math::
        \alpha_r = (K_{rr} + \epsilon I)^{-1} (y_r - f_{0,r}), \qquad K_{rr} = \Phi_r \Phi_r^\top

    (MUSO, arXiv 2410.08557, implicit-bias lemma, in dual form.) With ``ridge = 0`` and
    ``K_rr`` nonsingular, ``theta_r`` interpolates ``y_r``; when ``K_rr`` is numerically
    singular the pseudo-inverse gives the least-squares coefficients of minimum norm.

    Parameters
    ----------
    K_rr : (N_r, N_r) array
        Kernel of the retained rows, symmetric positive semi-definite.
    y_r : (N_r,) or (N_r, K) array
        Targets.
    f0_r : array shaped like ``y_r``
        Outputs of the starting model ``theta0`` on the retained rows.
    ridge : float, optional
        :math:`\epsilon \ge 0` added to the kernel's diagonal (a numerical aid).

    Returns
    -------
    jax.Array
        ``alpha_r``, shaped like ``y_r``.

    Raises
    ------
    ValueError
        If ``K_rr`` is not square, symmetric and positive semi-definite, a shape does not
        match (naming the argument), a value is not finite or ``ridge`` is negative.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import closed_form, kernel_form
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> y = jax.random.normal(jax.random.key(1), (6,))
    >>> theta0 = jax.random.normal(jax.random.key(2), (10,))
    >>> K, f0 = phi @ phi.T, phi @ theta0  # the kernel and the start's outputs: all it needs
    >>> alpha_r = kernel_form.dual_coefficients(K[:4, :4], y[:4], f0[:4])  # retain rows 0..3
    >>> alpha_r.shape
    (4,)
    >>> theta_r = theta0 + phi[:4].T @ alpha_r  # the retrained model, with no M-sized solve
    >>> np.allclose(theta_r, closed_form.min_norm_solution(phi[:4], y[:4], theta0), atol=1e-4)
    True
    >>> kernel_form.dual_coefficients(phi[:4, :4], y[:4], f0[:4])  # not a Gram matrix
    Traceback (most recent call last):
    ...
    ValueError: argument `K_rr`: expected a symmetric kernel matrix; got max |K - K^T| = ...
    """
    K_rr = _gram("K_rr", K_rr)
    y_r = _checks.targets("y_r", y_r, K_rr.shape[0], "K_rr")
    f0_r = _like("f0_r", f0_r, y_r, "y_r")
    _checks.nonnegative("ridge", ridge)
    K_rr, y_r, f0_r = _cast(K_rr, y_r, f0_r)
    return _dual(K_rr, y_r - f0_r, ridge)


def retrain_outputs(K_xr, f0_x, alpha_r):
    r"""Outputs of the retrained model ``theta0 + Phi_r^T alpha_r`` at any points x.

    .. math::
        f_r(x) = f_0(x) + K_{xr} \alpha_r, \qquad K_{xr} = \Phi_x \Phi_r^\top

    Parameters
    ----------
    K_xr : (N_x, N_r) array
        Kernel between the query points and the retained rows.
    f0_x : (N_x,) or (N_x, K) array
        Outputs of the starting model at the query points.
    alpha_r : (N_r,) or (N_r, K) array
        Coefficients from :func:`dual_coefficients`.

    Returns
    -------
    jax.Array
        :math:`f_r(x)`, shaped like ``f0_x``.

    Raises
    ------
    ValueError
        If a shape does not match (naming the argument) or a value is not finite.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import closed_form, kernel_form
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> y = jax.random.normal(jax.random.key(1), (6,))
    >>> theta0 = jax.random.normal(jax.random.key(2), (10,))
    >>> K, f0 = phi @ phi.T, phi @ theta0  # the kernel and the start's outputs: all it needs
    >>> alpha_r = kernel_form.dual_coefficients(K[:4, :4], y[:4], f0[:4])
    >>> f_r = kernel_form.retrain_outputs(K[:, :4], f0, alpha_r)  # at all six rows
    >>> np.allclose(f_r[:4], y[:4], atol=1e-4)  # the retrained model fits D_r
    True
    >>> theta_r = closed_form.min_norm_solution(phi[:4], y[:4], theta0)
    >>> np.allclose(f_r, phi @ theta_r, atol=1e-4)
    True
    """
    K_xr = _checks.array("K_xr", K_xr, ndim=(2,), what="(N_x, N_r) kernel matrix")
    alpha_r = _checks.targets("alpha_r", alpha_r, K_xr.shape[1], "K_xr columns")
    f0_x = _checks.array("f0_x", f0_x, ndim=(alpha_r.ndim,), what="(N_x,) or (N_x, K) output array")
    _checks.same("K_xr", K_xr.shape[0], "f0_x", f0_x.shape[0], "number of rows")
    if f0_x.shape[1:] != alpha_r.shape[1:]:
        raise ValueError(
            f"argument `f0_x`: expected trailing shape {tuple(alpha_r.shape[1:])} to match `alpha_r`; "
            f"got shape {tuple(f0_x.shape)}"
        )
    K_xr, f0_x, alpha_r = _cast(K_xr, f0_x, alpha_r)
    return f0_x + K_xr @ alpha_r


def muso_labels_from_kernel(K_rr, K_fr, y_r, f0_r, f0_f, *, ridge=0.0):
    r"""MUSO's optimal labels for the forgetting data, in kernel form.

    .. math::
        \hat y_f = \Phi_f \theta_r
                 = f_{0,f} + K_{fr} (K_{rr} + \epsilon I)^{-1} (y_r - f_{0,r})

    (MUSO, arXiv 2410.08557, relabeling theorem.) Fine-tuning from the original model on D_r
    plus ``(x_f, y_f_hat)`` converges to the retrained model when the full kernel is
    nonsingular. Real-valued even for classification targets.

    Parameters
    ----------
    K_rr : (N_r, N_r) array
        Kernel of the retained rows, symmetric positive semi-definite.
    K_fr : (N_f, N_r) array
        Forget-retain kernel.
    y_r : (N_r,) or (N_r, K) array
        Targets.
    f0_r : array shaped like ``y_r``
        The starting model's outputs on D_r.
    f0_f : (N_f,) or (N_f, K) array
        The starting model's outputs on D_f.
    ridge : float, optional
        :math:`\epsilon \ge 0` of the solve.

    Returns
    -------
    jax.Array
        :math:`\hat y_f`, shaped like ``f0_f``.

    Raises
    ------
    ValueError
        If ``K_rr`` is not a Gram matrix, a shape does not match (naming the argument), a
        value is not finite or ``ridge`` is negative.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import closed_form, kernel_form
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> y = jax.random.normal(jax.random.key(1), (6,))
    >>> theta0 = jax.random.normal(jax.random.key(2), (10,))
    >>> K, f0 = phi @ phi.T, phi @ theta0  # the kernel and the start's outputs: all it needs
    >>> labels = kernel_form.muso_labels_from_kernel(K[:4, :4], K[4:, :4], y[:4], f0[:4], f0[4:])
    >>> labels.shape
    (2,)
    >>> np.allclose(labels, closed_form.muso_labels(phi[:4], y[:4], phi[4:], theta0), atol=1e-4)
    True
    """
    K_rr = _gram("K_rr", K_rr)
    y_r = _checks.targets("y_r", y_r, K_rr.shape[0], "K_rr")
    f0_r = _like("f0_r", f0_r, y_r, "y_r")
    K_fr = _checks.array("K_fr", K_fr, ndim=(2,), what="(N_f, N_r) kernel matrix")
    _checks.same("K_rr", K_rr.shape[0], "K_fr", K_fr.shape[1], "number of columns (retained rows)")
    f0_f = _checks.array("f0_f", f0_f, ndim=(y_r.ndim,), what="(N_f,) or (N_f, K) output array")
    _checks.same("K_fr", K_fr.shape[0], "f0_f", f0_f.shape[0], "number of rows")
    if f0_f.shape[1:] != y_r.shape[1:]:
        raise ValueError(
            f"argument `f0_f`: expected trailing shape {tuple(y_r.shape[1:])} to match `y_r`; got shape {tuple(f0_f.shape)}"
        )
    _checks.nonnegative("ridge", ridge)
    K_rr, K_fr, y_r, f0_r, f0_f = _cast(K_rr, K_fr, y_r, f0_r, f0_f)
    return f0_f + K_fr @ _dual(K_rr, y_r - f0_r, ridge)


@jax.jit
def _gap(K, d):
    Kd = K @ d
    return jnp.sqrt(jnp.maximum(jnp.sum(d * Kd), 0.0))


def _coefficient_pair(K, alpha_a, alpha_b, names):
    K = _gram("K", K)
    alpha_a = _checks.targets(names[0], alpha_a, K.shape[0], "K")
    alpha_b = _like(names[1], alpha_b, alpha_a, names[0])
    return _cast(K, alpha_a, alpha_b)


def parameter_gap(K, alpha_a, alpha_b):
    r"""Distance between two models ``theta0 + Phi^T alpha`` over the same rows, from K alone.

    .. math::
        \|\theta_a - \theta_b\| = \|\Phi^\top (\alpha_a - \alpha_b)\|
            = \sqrt{\operatorname{tr}(d^\top K d)}, \qquad d = \alpha_a - \alpha_b

    (Frobenius norm for (N, K) coefficients; the quadratic form is clipped at 0 before the
    square root, since round-off can leave it slightly negative.) A model with coefficients on
    fewer rows, e.g. ``theta_r`` on D_r, enters with zeros on the rows it does not use. This is
    the certificate of exact unlearning in parameter space (MUSO, arXiv 2410.08557) without
    forming the parameters.

    Parameters
    ----------
    K : (N, N) array
        Kernel of all rows, symmetric positive semi-definite.
    alpha_a, alpha_b : (N,) or (N, K) arrays
        Coefficients of the two models, of one shape.

    Returns
    -------
    jax.Array
        A non-negative scalar, :math:`\|\theta_a - \theta_b\|`.

    Raises
    ------
    ValueError
        If ``K`` is not a Gram matrix or the shapes do not match (naming the argument).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import closed_form, kernel_form
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> y = jax.random.normal(jax.random.key(1), (6,))
    >>> theta0 = jax.random.normal(jax.random.key(2), (10,))
    >>> K, f0 = phi @ phi.T, phi @ theta0  # the kernel and the start's outputs: all it needs
    >>> alpha_p = kernel_form.dual_coefficients(K, y, f0)  # the original model, on all rows
    >>> alpha_r = jnp.zeros(6).at[:4].set(kernel_form.dual_coefficients(K[:4, :4], y[:4], f0[:4]))
    >>> gap = kernel_form.parameter_gap(K, alpha_p, alpha_r)
    >>> theta_p, theta_r = theta0 + phi.T @ alpha_p, theta0 + phi.T @ alpha_r
    >>> bool(np.isclose(gap, jnp.linalg.norm(theta_p - theta_r), rtol=1e-4))
    True
    """
    K, alpha_a, alpha_b = _coefficient_pair(K, alpha_a, alpha_b, ("alpha_a", "alpha_b"))
    return _gap(K, alpha_a - alpha_b)


def relative_gap_from_kernel(K, alpha_u, alpha_r, alpha_p):
    r"""The share of the way still to go: ``||theta_u - theta_r|| / ||theta_p - theta_r||``.

    .. math::
        \frac{\sqrt{\operatorname{tr}((\alpha_u-\alpha_r)^\top K (\alpha_u-\alpha_r))}}
             {\sqrt{\operatorname{tr}((\alpha_p-\alpha_r)^\top K (\alpha_p-\alpha_r))}}

    ``alpha_u``: the unlearned model, ``alpha_r``: the retrained one (zero on D_f),
    ``alpha_p``: the original one; all over the same N rows (MUSO, arXiv 2410.08557). Guarded
    as :func:`muso_jax.gaps.ratio`: 0 or inf, never NaN, when ``alpha_p`` gives ``theta_r``.

    Parameters
    ----------
    K : (N, N) array
        Kernel of all rows, symmetric positive semi-definite.
    alpha_u, alpha_r, alpha_p : (N,) or (N, K) arrays
        Coefficients of the unlearned, retrained and original models, of one shape.

    Returns
    -------
    jax.Array
        A non-negative scalar: 0 for exact unlearning, 1 for no progress.

    Raises
    ------
    ValueError
        If ``K`` is not a Gram matrix or the shapes do not match (naming the argument).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from muso_jax import closed_form, kernel_form
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> y = jax.random.normal(jax.random.key(1), (6,))
    >>> theta0 = jax.random.normal(jax.random.key(2), (10,))
    >>> K, f0 = phi @ phi.T, phi @ theta0  # the kernel and the start's outputs: all it needs
    >>> alpha_p = kernel_form.dual_coefficients(K, y, f0)
    >>> alpha_r = jnp.zeros(6).at[:4].set(kernel_form.dual_coefficients(K[:4, :4], y[:4], f0[:4]))
    >>> [round(float(kernel_form.relative_gap_from_kernel(K, a, alpha_r, alpha_p)), 6)
    ...  for a in (alpha_p, alpha_r, (alpha_p + alpha_r) / 2)]
    [1.0, 0.0, 0.5]
    """
    K, alpha_u, alpha_r = _coefficient_pair(K, alpha_u, alpha_r, ("alpha_u", "alpha_r"))
    alpha_p = _like("alpha_p", alpha_p, alpha_u, "alpha_u").astype(K.dtype)
    return gaps.ratio(_gap(K, alpha_u - alpha_r), _gap(K, alpha_p - alpha_r))

r"""Unlearning a linear random-feature model by relabeling and fine-tuning, with a certificate.

MUSO (Yang et al., arXiv 2410.08557): relabel the forgetting data with the retrained model's
outputs, ``y_f_hat = Phi_f theta_r``, and fine-tune from ``theta_p`` on D_r plus the relabeled
D_f. In the over-parameterized regime (M > N, Phi of full row rank) SGD then converges to
``theta_r`` exactly. The other relabelings are the baselines the paper compares against; they
provably miss ``theta_r`` (necessity of the MUSO labels).

The certificate compares the result with the closed-form retrain oracle
``theta_r = min_norm_solution(Phi_r, y_r, theta0)`` (ridge 0: what SGD retraining reaches).
"""

from __future__ import annotations

import warnings
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp

from muso_jax import _checks, gaps
from muso_jax.closed_form import UnderParameterizedWarning, _min_norm, full_row_rank
from muso_jax.dynamics import SGDInfo, sgd

METHODS = ("muso", "random_labels", "bad_teacher", "true_labels", "finetune_retain")


class Certificate(NamedTuple):
    """How far an unlearned ``theta_u`` is from the exact retrained ``theta_r``."""

    gap: jax.Array  # ||theta_u - theta_r|| (Frobenius for (M, K) parameters)
    relative_gap: jax.Array  # gap / ||theta_p - theta_r||: the share of the way still to go (gaps.ratio)
    delta: jax.Array  # ||theta_u - theta_r||^2 / M, the paper's Delta
    residual_r: jax.Array  # ||Phi_r theta_u - y_r||
    residual_f: jax.Array  # ||Phi_f theta_u - y_f_hat|| on the relabeled D_f (NaN: no D_f used)
    steps: jax.Array
    epochs: jax.Array
    converged: jax.Array
    labels_f: Optional[jax.Array]  # the labels D_f was trained on (None: D_f dropped)
    theta_r: jax.Array  # the closed-form retrain oracle
    sgd: SGDInfo


def relabel(key, method: str, phi_r, y_r, phi_f, y_f, theta0, *, ridge=0.0):
    r"""Labels for the forgetting data under one relabeling strategy (None: drop D_f).

    * ``"muso"``: ``Phi_f theta_r`` with ``theta_r`` the (ridge-epsilon) retrain oracle
      (MUSO, arXiv 2410.08557);
    * ``"random_labels"``: random targets, the authors' "Am" baseline (amnesiac unlearning,
      Graves et al. 2021): uniform +-1 for scalar targets, a uniform random one-hot row for
      (N, K) targets;
    * ``"bad_teacher"``: ``Phi_f w_bd`` with ``w_bd ~ N(0, I)``, the authors' "BT" (a randomly
      drawn linear teacher, after Chundawat et al. 2023);
    * ``"true_labels"``: ``y_f`` unchanged; ``"finetune_retain"``: None (train on D_r alone).

    Shapes: ``phi_r`` (N_r, M), ``y_r`` (N_r[, K]), ``phi_f`` (N_f, M), ``y_f`` (N_f[, K]),
    ``theta0`` (M[, K]); a mismatch is a ``ValueError`` naming the argument.

    .. math::
        \hat y_f^{\mathrm{MUSO}} = \Phi_f \theta_r, \qquad
        \theta_r = \theta_0 + \Phi_r^\top (\Phi_r\Phi_r^\top + \epsilon I)^{-1} (y_r - \Phi_r\theta_0),
        \qquad \hat y_f^{\mathrm{BT}} = \Phi_f w_{bd},\ w_{bd} \sim N(0, I)

    Parameters
    ----------
    key : PRNG key
        For ``"random_labels"`` and ``"bad_teacher"`` (unused by the others).
    method : str
        One of :data:`METHODS`.
    phi_r : (N_r, M) array
        Features of the retained rows.
    y_r : (N_r,) or (N_r, K) array
        Their targets.
    phi_f : (N_f, M) array
        Features of the forgetting rows.
    y_f : (N_f,) or (N_f, K) array
        Their true targets.
    theta0 : (M,) or (M, K) array
        The initialization of the original training.
    ridge : float, optional
        :math:`\epsilon \ge 0` of the MUSO solve.

    Returns
    -------
    jax.Array or None
        The labels of D_f, shaped like ``y_f``; None for ``"finetune_retain"``.

    Raises
    ------
    ValueError
        If ``method`` is unknown, a shape does not match (naming the argument), a value is not
        finite or ``ridge`` is negative.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import closed_form, unlearn
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> phi = phi / jnp.linalg.norm(phi, axis=1, keepdims=True)  # unit rows, as random Fourier features
    >>> y = jnp.sign(jax.random.normal(jax.random.key(1), (6,)))  # +-1 labels
    >>> theta0 = jax.random.normal(jax.random.key(2), (10,))
    >>> key = jax.random.key(3)
    >>> muso = unlearn.relabel(key, "muso", phi[:4], y[:4], phi[4:], y[4:], theta0)
    >>> np.allclose(muso, closed_form.muso_labels(phi[:4], y[:4], phi[4:], theta0))
    True
    >>> unlearn.relabel(key, "random_labels", phi[:4], y[:4], phi[4:], y[4:], theta0).shape
    (2,)
    >>> unlearn.relabel(key, "finetune_retain", phi[:4], y[:4], phi[4:], y[4:], theta0) is None
    True
    >>> unlearn.relabel(key, "muso", phi[:4], y[:4], phi[4:], y[4:], theta0[:9])
    Traceback (most recent call last):
    ...
    ValueError: argument `theta0`: expected feature width M = 10 to match `phi_r`; got 9
    """
    _checks.choice("method", method, set(METHODS))
    phi_r = _checks.array("phi_r", phi_r, ndim=(2,), what="(N_r, M) feature matrix")
    y_r = _checks.targets("y_r", y_r, phi_r.shape[0], "phi_r")
    phi_f = _checks.array("phi_f", phi_f, ndim=(2,), what="(N_f, M) feature matrix")
    _checks.same("phi_r", phi_r.shape[1], "phi_f", phi_f.shape[1], "feature width M =")
    y_f = _checks.targets("y_f", y_f, phi_f.shape[0], "phi_f")
    if y_f.shape[1:] != y_r.shape[1:]:
        raise ValueError(f"argument `y_f`: expected trailing shape {tuple(y_r.shape[1:])} to match `y_r`; "
                         f"got {_checks._describe(y_f)}")
    theta0 = _checks.theta("theta0", theta0, phi_r.shape[1], y_r, "phi_r")
    _checks.nonnegative("ridge", ridge)
    if method == "muso":
        return phi_f @ _min_norm(phi_r, y_r, theta0, ridge, None)
    if method == "random_labels":
        if y_f.ndim == 1:
            return jax.random.rademacher(key, y_f.shape, y_f.dtype)
        k = y_f.shape[1]
        return jax.nn.one_hot(jax.random.randint(key, (y_f.shape[0],), 0, k), k, dtype=y_f.dtype)
    if method == "bad_teacher":
        return phi_f @ jax.random.normal(key, theta0.shape, theta0.dtype)
    if method == "true_labels":
        return y_f
    return None


def unlearn_linear(
    key,
    phi,
    y,
    theta0,
    theta_p,
    forget,
    *,
    method: str = "muso",
    ridge=0.0,
    lr=1.0,
    decay=0.0,
    batch_size: Optional[int] = 1,
    order: str = "shuffle",
    tol=1e-10,
    max_epochs: int = 1500,
    checks_per_epoch: int = 1,
    trace: bool = False,
    monitor=None,
    stop=None,
    form: str = "auto",
    gram=None,
) -> tuple[jax.Array, Certificate]:
    r"""Relabel D_f by ``method``, fine-tune from ``theta_p`` by SGD, certify against ``theta_r``.

    .. math::
        \theta_u = \lim \mathrm{SGD}\big(\theta_p;\ (\Phi_r, y_r) \cup (\Phi_f, \hat y_f)\big),
        \qquad \mathrm{gap} = \|\theta_u - \theta_r\|, \qquad
        \Delta = \|\theta_u - \theta_r\|^2 / M

    With MUSO's labels and M > N (full row rank) the gap is 0 up to the tolerance of SGD
    (MUSO, arXiv 2410.08557, relabeling theorem); the baselines stop at a positive gap.

    Parameters
    ----------
    key : PRNG key
        For random labels, the bad teacher and the sample order.
    phi : (N, M) array
        Features of all training rows.
    y : (N,) or (N, K) array
        Targets.
    theta0 : (M,) or (M, K) array
        The initial parameters of the original training (MUSO needs them).
    theta_p : (M,) or (M, K) array
        The original trained parameters, where fine-tuning starts.
    forget : (N,) bool array or int array
        Boolean mask of length N or integer indices of D_f. Must be concrete.
    method : str, optional
        One of ``METHODS``.
    ridge : float, optional
        :math:`\epsilon` of the relabel solve (a numerical aid).
    lr, decay, batch_size, order, tol, max_epochs, checks_per_epoch, trace, monitor, stop, form, gram
        Passed to :func:`muso_jax.sgd` (``gram``: :math:`\Phi\Phi^\top` of all N rows, for the
        dual form, when the caller has it). ``tol`` defaults tighter than the authors' 1e-6 so the
        certificate shows the float64 floor.

    Returns
    -------
    theta_u : jax.Array
        The unlearned parameters, shaped like ``theta_p``.
    certificate : Certificate
        Its gap to the closed-form ``theta_r``, the residuals and the SGD run.

    Raises
    ------
    ValueError
        For a bad forget set (see :func:`muso_jax._checks.forget_set`), an unknown ``method``,
        a shape mismatch (naming the argument), or a divergent SGD run.

    Warns
    -----
    UnderParameterizedWarning
        When ``phi`` does not have full row rank: relabeling is then not exact.

    Examples
    --------
    Forget rows 4 and 5 of a model trained on all six: MUSO lands on the retrained model, a
    fine-tuning on D_r alone does not move at all (``theta_p`` already fits D_r).

    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import closed_form, unlearn
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> phi = phi / jnp.linalg.norm(phi, axis=1, keepdims=True)  # unit rows, as random Fourier features
    >>> y = jnp.sign(jax.random.normal(jax.random.key(1), (6,)))  # +-1 labels
    >>> theta0 = jax.random.normal(jax.random.key(2), (10,))
    >>> theta_p = closed_form.min_norm_solution(phi, y, theta0)  # what SGD on D reaches
    >>> key = jax.random.key(3)
    >>> theta_u, cert = unlearn.unlearn_linear(key, phi, y, theta0, theta_p, [4, 5], tol=1e-5)
    >>> bool(cert.converged), bool(cert.relative_gap < 1e-3)
    (True, True)
    >>> np.allclose(theta_u, cert.theta_r, atol=1e-3)
    True
    >>> _, cert = unlearn.unlearn_linear(key, phi, y, theta0, theta_p, [4, 5], method="finetune_retain",
    ...                                  tol=1e-5)
    >>> round(float(cert.relative_gap), 6), int(cert.steps)
    (1.0, 0)
    >>> unlearn.unlearn_linear(key, phi, y, theta0, theta_p, [4, 6])
    Traceback (most recent call last):
    ...
    ValueError: argument `forget`: expected indices in [0, 6) (no negative indices); got min 4, max 6
    """
    phi = _checks.array("phi", phi, ndim=(2,), what="(N, M) feature matrix")
    y = _checks.targets("y", y, phi.shape[0], "phi")
    theta0 = _checks.theta("theta0", theta0, phi.shape[1], y, "phi")
    theta_p = _checks.theta("theta_p", theta_p, phi.shape[1], y, "phi")
    _checks.choice("method", method, set(METHODS))
    _checks.nonnegative("ridge", ridge)
    mask = _checks.forget_set(forget, phi.shape[0])
    n, m = phi.shape
    rank_ok = full_row_rank(phi)
    if n > m or (_checks.is_concrete(rank_ok) and not bool(rank_ok)):
        warnings.warn(
            f"unlearn_linear: Phi ({n} x {m}) does not have full row rank (under-parameterized "
            "or repeated rows): SGD cannot interpolate every labeling, the implicit-bias argument "
            "fails and relabeling is not exact; the certificate reports the remaining gap.",
            UnderParameterizedWarning,
            stacklevel=2,
        )
    dtype = jnp.result_type(phi, y, theta0, theta_p)
    phi, y, theta0, theta_p = (a.astype(dtype) for a in (phi, y, theta0, theta_p))
    retain_idx, forget_idx = jnp.asarray((~mask).nonzero()[0]), jnp.asarray(mask.nonzero()[0])
    phi_r, y_r, phi_f, y_f = phi[retain_idx], y[retain_idx], phi[forget_idx], y[forget_idx]

    key_labels, key_sgd = jax.random.split(key)
    labels_f = relabel(key_labels, method, phi_r, y_r, phi_f, y_f, theta0, ridge=ridge)
    theta_r = _min_norm(phi_r, y_r, theta0, 0.0, None)
    retain = None if labels_f is not None else jnp.asarray(~mask)
    y_train = y if labels_f is None else y.at[forget_idx].set(labels_f)
    theta_u, info = sgd(
        key_sgd, phi, y_train, theta_p, lr=lr, decay=decay, batch_size=batch_size, order=order,
        tol=tol, max_epochs=max_epochs, checks_per_epoch=checks_per_epoch, retain=retain,
        trace=trace, monitor=monitor, stop=stop, form=form, gram=gram,
    )
    gap = jnp.linalg.norm(theta_u - theta_r)
    residual_f = jnp.nan if labels_f is None else jnp.linalg.norm(phi_f @ theta_u - labels_f)
    cert = Certificate(
        gap=gap,
        relative_gap=gaps.ratio(gap, jnp.linalg.norm(theta_p - theta_r)),
        delta=gap**2 / m,
        residual_r=jnp.linalg.norm(phi_r @ theta_u - y_r),
        residual_f=jnp.asarray(residual_f, dtype),
        steps=info.steps,
        epochs=info.epochs,
        converged=info.converged,
        labels_f=labels_f,
        theta_r=theta_r,
        sgd=info,
    )
    return theta_u, cert

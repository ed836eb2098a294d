r"""The linearized network as a model of its own: retraining in kernel form and exact unlearning.

Gradient descent on the squared loss (sum convention) of the linearized network
``f_lin(x; p) = f(x; p0) + J(x) (p - p0)`` from ``p0`` is the linear model of MUSO's theory
(Yang et al., arXiv 2410.08557) with the tangent features ``J(x)`` as ``Phi``: one feature row
per (input i, logit a), flattened in that order, and the empirical NTK as the kernel. So

* retraining on D_r has the closed form ``p_r = p0 + J_r^T alpha_r`` with
  ``alpha_r = Theta_rr^{-1} (y_r - f0_r)`` (:mod:`muso_jax.kernel_form` on the
  (N K) x (N K) kernel);
* fine-tuning from the original ``p_p`` on D_r plus D_f relabeled with the retrained model's
  outputs (MUSO's labels) lands on ``p_r``, exactly when the kernel is nonsingular (as it is
  when the parameter count P exceeds N K and the inputs are distinct).

:func:`unlearn_linearized` runs that fine-tuning twice, in parameter space (JVP / VJP steps) and as the
same iteration on the dual coefficients, and certifies the result against ``p_r`` in both.
Targets are (N, K): one-hot or soft labels, or any real outputs.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from muso_jax import _checks, _linalg, gaps, kernel_form
from muso_jax.nn import ntk
from muso_jax.nn.models import num_classes
from muso_jax.nn.state import Net, check_inputs


class LinearizedInfo(NamedTuple):
    """How the linearized network fine-tuned from ``p_p`` (``params_u``) relates to the retrained ``p_r``."""

    seconds: float  # wall clock of the unlearning (kernel, solves, both fine-tunings)
    params_r: Any  # p_r = p0 + J_r^T alpha_r, the closed-form retrain
    labels_f: jax.Array  # (N_f, K) the labels D_f was fine-tuned on
    alpha_u: jax.Array  # (N, K) the same fine-tuning on dual coefficients: p_u = p0 + J^T alpha_u
    alpha_r: jax.Array  # (N, K) alpha_r on D_r, zero on D_f
    alpha_p: jax.Array  # (N, K) the original model's coefficients
    relative_gap: jax.Array  # ||p_u - p_r|| / ||p_p - p_r|| in parameter space (muso_jax.gaps: 0 or inf at p_p = p_r)
    relative_gap_kernel: jax.Array  # the same from the kernel: sqrt(d^T Theta d) ratios
    residual: jax.Array  # ||f_lin(x; p_u) - targets|| when fine-tuning stopped
    steps: jax.Array


def flatten(theta):
    """(N1, K, N2, K) multi-output kernel -> (N1 K, N2 K), rows and columns ordered (i, a).

    Parameters
    ----------
    theta : (N1, K, N2, K)
        A multi-output kernel (:func:`muso_jax.nn.ntk.kernel`).

    Returns
    -------
    jax.Array
        (N1 K, N2 K): entry ``(i K + a, j K + b)`` is ``theta[i, a, j, b]``.

    Raises
    ------
    ValueError
        Unless ``theta`` is a real 4-D array.

    Examples
    --------
    >>> import jax.numpy as jnp
    >>> from muso_jax.nn.linearized import flatten
    >>> theta = jnp.arange(2 * 3 * 4 * 3.0).reshape(2, 3, 4, 3)
    >>> flatten(theta).shape, float(flatten(theta)[1 * 3 + 2, 3 * 3 + 1]) == float(theta[1, 2, 3, 1])
    ((6, 12), True)
    """
    theta = _checks.array("theta", theta, ndim=(4,), what="(N1, K, N2, K) multi-output kernel")
    n1, k1, n2, k2 = theta.shape
    return theta.reshape(n1 * k1, n2 * k2)


def _targets(name, y, n, k):
    y = _checks.array(name, y, ndim=(2,), what=f"({n}, {k}) target array")
    if y.shape != (n, k):
        raise ValueError(f"argument `{name}`: expected shape ({n}, {k}) (rows, logits); got shape {tuple(y.shape)}")
    return y


def _outputs(net0: Net, x):
    return ntk.logits(net0, net0.params, x)


def retrain(net0: Net, x_r, y_r, *, ridge=0.0, chunk: int = 32):
    r"""Dual coefficients of the linearized network retrained on D_r from ``p0``, (N_r, K).

    .. math::
        \alpha_r = (\Theta_{rr} + \epsilon I)^{-1} (y_r - f_0(x_r)), \qquad
        p_r = p_0 + J_r^\top \alpha_r

    (MUSO, arXiv 2410.08557, implicit-bias lemma, with the tangent features at ``p0``.)

    Parameters
    ----------
    net0 : Net
        The network at its initialization p_0.
    x_r : (N_r, ...) inputs
        D_r.
    y_r : (N_r, K) targets
        One-hot or soft labels, or any real outputs.
    ridge : float
        epsilon, >= 0 (0: the minimum-norm interpolant).
    chunk : int
        Block size of the kernel computation.

    Returns
    -------
    jax.Array
        (N_r, K) dual coefficients alpha_r.

    Raises
    ------
    ValueError
        On bad inputs or ``y_r`` not of shape (N_r, K).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import linearized, ntk
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x = np.random.default_rng(0).normal(size=(8, 4))
    >>> targets = jax.nn.one_hot(np.arange(8) % 3, 3, dtype=jnp.float64)
    >>> alpha = linearized.retrain(net0, x, targets)
    >>> alpha.shape
    (8, 3)
    >>> fitted = linearized.predict_linearized(net0, x, alpha, x)  # min-norm: interpolates D_r
    >>> bool(jnp.allclose(fitted, targets, atol=1e-8))
    True
    """
    x_r = check_inputs("x_r", net0, x_r)
    theta = ntk.kernel(net0, x_r, chunk=chunk)
    y_r = _targets("y_r", y_r, theta.shape[0], theta.shape[1])
    f0 = _outputs(net0, x_r)
    alpha = kernel_form.dual_coefficients(flatten(theta), y_r.ravel(), f0.ravel(), ridge=ridge)
    return alpha.reshape(y_r.shape)


def predict_linearized(net0: Net, x_r, alpha_r, x, *, chunk: int = 32):
    r"""Outputs ``f0(x) + Theta(x, x_r) alpha_r`` of the linearized model ``p0 + J_r^T alpha_r``, (B, K).

    .. math::
        f_{\rm lin}(x) = f_0(x) + \Theta(x, X_r)\, \alpha_r

    Parameters
    ----------
    net0 : Net
        The expansion point p_0.
    x_r : (N_r, ...) inputs
        The rows of the coefficients.
    alpha_r : (N_r, K)
        Dual coefficients (:func:`retrain`).
    x : (B, ...) inputs
        Where to evaluate.
    chunk : int
        Block size of the kernel computation.

    Returns
    -------
    jax.Array
        (B, K).

    Raises
    ------
    ValueError
        On bad inputs or ``alpha_r`` not of shape (N_r, K).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import linearized, ntk
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x = np.random.default_rng(0).normal(size=(8, 4))
    >>> targets = jax.nn.one_hot(np.arange(8) % 3, 3, dtype=jnp.float64)
    >>> alpha = linearized.retrain(net0, x, targets)
    >>> out = linearized.predict_linearized(net0, x, alpha, x)
    >>> out.shape, bool(jnp.allclose(out, targets, atol=1e-8))  # the retrained model fits its rows
    ((8, 3), True)
    """
    x_r, x = check_inputs("x_r", net0, x_r), check_inputs("x", net0, x)
    theta = ntk.kernel(net0, x, x_r, chunk=chunk)
    alpha_r = _targets("alpha_r", alpha_r, theta.shape[2], theta.shape[3])
    out = kernel_form.retrain_outputs(flatten(theta), _outputs(net0, x).ravel(), alpha_r.ravel())
    return out.reshape(theta.shape[:2])


def parameters(net0: Net, x_r, alpha_r):
    r"""The parameters ``p0 + J_r^T alpha_r`` of a model given by its dual coefficients (N_r, K).

    .. math::
        p = p_0 + J(X_r)^\top \alpha_r

    Parameters
    ----------
    net0 : Net
        The expansion point p_0.
    x_r : (N_r, ...) inputs
    alpha_r : (N_r, K)

    Returns
    -------
    pytree
        Like ``net0.params``.

    Raises
    ------
    ValueError
        On bad inputs or ``alpha_r`` not of shape (N_r, K).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import linearized, ntk
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x = np.random.default_rng(0).normal(size=(8, 4))
    >>> targets = jax.nn.one_hot(np.arange(8) % 3, 3, dtype=jnp.float64)
    >>> params = linearized.parameters(net0, x, linearized.retrain(net0, x, targets))
    >>> float(linearized.distance(params, net0.params)) > 0
    True
    >>> float(linearized.distance(linearized.parameters(net0, x, jnp.zeros((8, 3))), net0.params))  # alpha = 0: p_0
    0.0
    """
    x_r = check_inputs("x_r", net0, x_r)
    _targets("alpha_r", alpha_r, x_r.shape[0], num_classes(net0))
    return _parameters(net0, x_r, alpha_r)


@jax.jit
def _parameters(net0: Net, x_r, alpha_r):
    step = ntk.pullback(net0, x_r, alpha_r)
    return jax.tree.map(jnp.add, net0.params, step)


def distance(params_a, params_b):
    r"""Euclidean distance between two parameter pytrees of one structure.

    .. math::
        d(a, b) = \Big(\sum_{\rm leaves} \lVert a - b \rVert_F^2\Big)^{1/2}

    Parameters
    ----------
    params_a, params_b
        Pytrees of one structure and leaf shapes.

    Returns
    -------
    jax.Array
        A scalar >= 0.

    Raises
    ------
    ValueError
        On pytrees of different structures or shapes (naming ``params_b``).

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import linearized, ntk
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x = np.random.default_rng(0).normal(size=(8, 4))
    >>> targets = jax.nn.one_hot(np.arange(8) % 3, 3, dtype=jnp.float64)
    >>> shifted = jax.tree.map(lambda a: a + 1.0, net0.params)  # 67 parameters, each + 1
    >>> round(float(linearized.distance(net0.params, shifted)) ** 2, 6), float(linearized.distance(shifted, shifted))
    (67.0, 0.0)
    """
    ntk.check_params("params_b", params_b, params_a, "params_a")
    return _distance(params_a, params_b)


@jax.jit
def _distance(params_a, params_b):
    squares = jax.tree.map(lambda a, b: jnp.sum((a - b) ** 2), params_a, params_b)
    return jnp.sqrt(sum(jax.tree.leaves(squares)))


def gradient_descent(net0: Net, params, x, targets, lr, tol, max_steps):
    r"""Gradient descent of the linearized network in parameter space until the residual is small.

    .. math::
        p \leftarrow p - \eta\, J^\top (f_{\rm lin}(x; p) - y)

    Stops when ``||f_lin(x; p) - y|| <= tol * ||y||`` or after ``max_steps`` steps. Returns
    ``(params, steps, residual_norm)``. ``params``: the start, a pytree like ``net0.params``;
    ``x``: (N, ...) inputs; ``targets``: (N, K).

    Parameters
    ----------
    net0 : Net
        The expansion point p_0.
    params
        The start, like ``net0.params``.
    x : (N, ...) inputs
    targets : (N, K)
    lr : float
        eta, > 0 (stable below ``2 / lambda_max(Theta)``).
    tol : float
        > 0, relative to ``||targets||``.
    max_steps : int
        >= 1.

    Returns
    -------
    tuple
        ``(params, steps, residual_norm)``.

    Raises
    ------
    ValueError
        On a bad argument, named.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import linearized, ntk
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x = np.random.default_rng(0).normal(size=(8, 4))
    >>> targets = jax.nn.one_hot(np.arange(8) % 3, 3, dtype=jnp.float64)
    >>> lr = 1.0 / float(jnp.trace(linearized.flatten(ntk.kernel(net0, x))))  # trace >= lambda_max: stable
    >>> params, steps, residual = linearized.gradient_descent(net0, net0.params, x, targets, lr, 1e-4, 20_000)
    >>> bool(residual <= 1e-4 * jnp.linalg.norm(targets)), int(steps) < 20_000
    (True, True)
    """
    ntk.check_params("params", params, net0.params)
    x = check_inputs("x", net0, x)
    targets = _targets("targets", targets, x.shape[0], num_classes(net0))
    _checks.positive("lr", lr)
    _checks.positive("tol", tol)
    max_steps = _checks.positive_int("max_steps", max_steps)
    return _gradient_descent(net0, params, x, targets, lr, tol, max_steps)


@jax.jit
def _gradient_descent(net0: Net, params, x, targets, lr, tol, max_steps):
    scale = tol * jnp.linalg.norm(targets)
    residual = lambda p: ntk.linearized_apply(net0, p, x) - targets

    def go_on(carry):
        _, step, r = carry
        return (jnp.linalg.norm(r) > scale) & (step < max_steps)

    def body(carry):
        # One JVP and one VJP a step: the residual of the new point is carried to the next.
        p, step, r = carry
        p = jax.tree.map(lambda a, g: a - lr * g, p, ntk.pullback(net0, x, r))
        return p, step + 1, residual(p)

    p, steps, r = jax.lax.while_loop(go_on, body, (params, jnp.asarray(0), residual(params)))
    return p, steps, jnp.linalg.norm(r)


@jax.jit
def _dual_descent(theta, f0, alpha, targets, lr, steps):
    """The same iteration on coefficients: ``alpha <- alpha - lr (f0 + Theta alpha - y)``."""
    body = lambda _, a: a - lr * (f0 + theta @ a - targets)
    return jax.lax.fori_loop(0, steps, body, alpha)


def unlearn_linearized(net0: Net, x, y, forget, *, labels_f=None, alpha_p=None, ridge=0.0, lr=None, tol=1e-13,
                       max_steps: int = 200_000, chunk: int = 32) -> tuple[Any, LinearizedInfo]:
    r"""Exact unlearning of a linearized network by relabeling, with its certificate.

    The original model is ``p_p = p0 + J^T alpha_p`` (by default the linearized network trained
    on all of D: ``alpha_p = Theta^{-1}(y - f0)``). D_f is relabeled with MUSO's labels

    .. math::
        \hat y_f = f_0(x_f) + \Theta_{fr} (\Theta_{rr} + \epsilon I)^{-1} (y_r - f_0(x_r))

    (or with ``labels_f`` when given, e.g. the true labels for comparison) and the linearized
    network is fine-tuned from ``p_p`` by gradient descent on D_r plus the relabeled D_f. With
    MUSO's labels it converges to ``p_r`` (MUSO, arXiv 2410.08557, relabeling theorem).

    Parameters
    ----------
    net0 : Net
        The network at its initialization p_0.
    x : (N, ...) inputs
    y : (N, K) targets
    forget : (N,) bool mask or int indices
        D_f (concrete).
    labels_f : (N_f, K), optional
        Labels for D_f; None for MUSO's labels.
    alpha_p : (N, K), optional
        Coefficients of the original model; None to train it in closed form.
    ridge : float
        epsilon of the relabel / retrain solves.
    lr : float, optional
        Step size (stable below ``2 / lambda_max(Theta)``); None for
        ``2 / (lambda_max + lambda_min)``.
    tol, max_steps
        Stop when ``||residual|| <= tol ||targets||``, or after ``max_steps`` steps.
    chunk : int
        Block size of the kernel computation.

    Returns
    -------
    tuple
        ``(params_u, LinearizedInfo)``: the fine-tuned parameters and their certificate
        (relative gaps to ``p_r`` in parameter space and from the kernel, the labels used, the
        coefficients, the final residual and the steps).

    Raises
    ------
    ValueError
        On a bad argument, named.

    Examples
    --------
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax.nn import linearized, ntk
    >>> from muso_jax.nn.models import make_model
    >>> from muso_jax.nn.state import split
    >>> net0 = split(make_model("mlp", (4,), 3, seed=0, hidden=(8,), param_dtype=jnp.float64))
    >>> x = np.random.default_rng(0).normal(size=(8, 4))
    >>> targets = jax.nn.one_hot(np.arange(8) % 3, 3, dtype=jnp.float64)
    >>> forget = np.arange(8) < 2
    >>> params_u, info = linearized.unlearn_linearized(net0, x, targets, forget, tol=1e-10)
    >>> info.labels_f.shape, float(info.relative_gap) < 1e-6, float(info.relative_gap_kernel) < 1e-6
    ((2, 3), True, True)
    """
    x = check_inputs("x", net0, x)
    n, k = x.shape[0], num_classes(net0)
    y = _targets("y", y, n, k)
    mask = _checks.forget_set(forget, n)
    if labels_f is not None:
        labels_f = _targets("labels_f", labels_f, int(mask.sum()), k)
    if alpha_p is not None:
        alpha_p = _targets("alpha_p", alpha_p, n, k)
    if lr is not None:
        _checks.positive("lr", lr)
    _checks.positive("tol", tol)
    _checks.nonnegative("ridge", ridge)
    max_steps = _checks.positive_int("max_steps", max_steps)
    start = time.perf_counter()
    theta4 = ntk.kernel(net0, x, chunk=chunk)
    x = x.astype(theta4.dtype)
    r, f = jnp.asarray(np.flatnonzero(~mask)), jnp.asarray(np.flatnonzero(mask))
    params_u, info = jax.block_until_ready(
        _unlearn(net0, theta4, x, y.astype(theta4.dtype), r, f, labels_f, alpha_p, ridge, lr, tol, max_steps))
    return params_u, info._replace(seconds=time.perf_counter() - start)


@jax.jit
def _unlearn(net0, theta4, x, y, r, f, labels_f, alpha_p, ridge, lr, tol, max_steps):
    n, k = theta4.shape[:2]
    theta = flatten(theta4)
    block = lambda a, b: flatten(theta4[a][:, :, b])
    f0 = _outputs(net0, x)
    if labels_f is None:
        labels_f = kernel_form.muso_labels_from_kernel(block(r, r), block(f, r), y[r].ravel(), f0[r].ravel(), f0[f].ravel(),
                                           ridge=ridge).reshape(f.shape[0], k)
    if alpha_p is None:
        alpha_p = kernel_form.dual_coefficients(theta, y.ravel(), f0.ravel(), ridge=ridge).reshape(n, k)
    alpha_r = kernel_form.dual_coefficients(block(r, r), y[r].ravel(), f0[r].ravel(), ridge=ridge)
    alpha_r = jnp.zeros((n, k), theta.dtype).at[r].set(alpha_r.reshape(r.shape[0], k))
    if lr is None:
        # The constant step with the fastest worst-case rate, (cond - 1) / (cond + 1) a step.
        spectrum = _linalg.eigvalsh(theta)
        lr = 2.0 / (spectrum[-1] + jnp.maximum(spectrum[0], 0.0))
    targets = y.at[f].set(labels_f)
    params_p = _parameters(net0, x, alpha_p)
    params_r = _parameters(net0, x, alpha_r)
    params_u, steps, residual = _gradient_descent(net0, params_p, x, targets, lr, tol, max_steps)
    alpha_u = _dual_descent(theta, f0.ravel(), alpha_p.ravel(), targets.ravel(), lr, steps).reshape(n, k)
    kernel_gap = lambda a, b: kernel_form.parameter_gap(theta, a.ravel(), b.ravel())
    return params_u, LinearizedInfo(
        seconds=0.0,  # set by unlearn_linearized, outside the trace
        params_r=params_r,
        labels_f=labels_f,
        alpha_u=alpha_u,
        alpha_r=alpha_r,
        alpha_p=alpha_p,
        relative_gap=gaps.ratio(_distance(params_u, params_r), _distance(params_p, params_r)),
        relative_gap_kernel=gaps.ratio(kernel_gap(alpha_u, alpha_r), kernel_gap(alpha_p, alpha_r)),
        residual=residual,
        steps=steps,
    )

r"""Stochastic gradient descent on the squared loss of a linear model on fixed features.

One update on a batch ``B`` of rows (per-sample SGD: :math:`|B| = 1`; full-batch GD: ``B`` = all rows):

.. math::
    \theta \leftarrow \theta - \eta_t\, \Phi_B^\top (\Phi_B \theta - y_B), \qquad
    \eta_t = \eta\, (t + 1)^{-\text{decay}}

i.e. the gradient of ``(1/2) ||Phi_B theta - y_B||^2`` (a SUM over the batch, so that full-batch
GD is exactly ``theta - eta Phi^T (Phi theta - y)``). ``t`` counts batches inside the current
epoch and restarts at 0 every epoch; ``decay = 0`` is a constant step and ``decay = 0.2`` is the
schedule of the MUSO authors' linear script (arXiv 2410.08557). Their gradient carries a factor
2, so their step ``eta`` equals ``2 eta`` here. Per-sample SGD with a constant step converges on
an interpolable problem when ``eta < 2 / max_i ||phi_i||^2`` (Kaczmarz's method at
``eta = 1 / ||phi_i||^2``; random Fourier features have ``||phi_i|| = 1``).

Every update adds a combination of training rows, so ``theta - theta0`` stays in the row space
of ``Phi`` and a converged run lands on :func:`muso_jax.min_norm_solution` whatever the order,
batch size or schedule (MUSO's implicit-bias lemma). :func:`gd_iterate` gives the exact iterate
of full-batch GD after any number of steps, the oracle for finite-step tests.

The same fact gives the dual form (``sgd(..., form="dual")``): write
:math:`\theta_t = \theta_0 + \Phi^\top \alpha_t`, with :math:`G = \Phi\Phi^\top` and
:math:`c = \Phi\theta_0 - y`; then the update above is

.. math::
    \alpha_B \leftarrow \alpha_B - \eta_t\, (c_B + G_{B\cdot}\, \alpha), \qquad
    \Phi\theta_t - y = c + G \alpha_t,

the identical sequence of iterates in exact arithmetic, at O(N) per sample instead of O(M).
Over-parameterized problems (M > 2N) take it by default.
"""

from __future__ import annotations

import functools
import math
import types
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from muso_jax import _checks, _linalg
from muso_jax.closed_form import min_norm_solution

# A run is declared divergent when its residual is non-finite or has grown by this factor.
DIVERGENCE_FACTOR = 1e8
# sgd(form="auto") takes the dual form when M > DUAL_RATIO * N (see uses_dual).
DUAL_RATIO = 2


class SGDInfo(NamedTuple):
    """What a run did. Traces hold one entry per check (entry 0 = before training), NaN after stop."""

    steps: jax.Array  # parameter updates taken (batches that held at least one row)
    epochs: jax.Array  # epochs run (fractional when checks_per_epoch > 1)
    residual: jax.Array  # ||Phi theta - y|| over the training rows at the end
    converged: jax.Array  # residual <= tol
    diverged: jax.Array  # residual blew up; theta is then NaN
    stopped: jax.Array  # the caller's `stop(theta)` criterion fired
    residual_trace: Optional[jax.Array]  # (max_epochs * checks_per_epoch + 1,) when trace=True
    monitor_trace: Any  # pytree of (max_checks + 1, ...) arrays of `monitor(theta)`, or None
    alpha: Optional[jax.Array] = None  # dual form: theta = theta0 + Phi^T alpha, (N,) or (N, K); primal: None


class _Callable:
    """The static part of a Python callable: its code, with the arrays it closes over removed.

    ``jit`` keys a static callable by identity, so ``sgd(..., monitor=lambda t: gap(t, ref))``
    would compile anew on every call. ``split(fn)`` returns this hashable key (the code object,
    defaults, globals and the non-array closure values, recursively through closed-over
    functions) and the closed-over arrays as a list of data; ``join(data)`` rebuilds the
    function around the (traced) arrays. Callables it cannot take apart (objects with
    ``__call__``, unhashable closure values) are keyed by identity, as jit would.
    """

    def __init__(self, fn, key, template):
        self.fn, self.key, self.template = fn, key, template

    def __hash__(self):
        return hash(self.key)

    def __eq__(self, other):
        return isinstance(other, _Callable) and self.key == other.key

    @staticmethod
    def split(fn):
        if fn is None:
            return None, []
        data = []
        try:
            key, template = _Callable._take_apart(fn, data)
            hash(key)
        except TypeError:
            return _Callable(fn, ("identity", id(fn)), None), []
        return _Callable(fn, key, template), data

    @staticmethod
    def _take_apart(fn, data):
        if not isinstance(fn, types.FunctionType):
            raise TypeError("not a plain function")
        cells = []
        for cell in fn.__closure__ or ():
            v = cell.cell_contents
            if isinstance(v, (jax.Array, np.ndarray)):
                cells.append(("array", len(data)))
                data.append(v)
            elif isinstance(v, types.FunctionType):
                cells.append(("function",) + _Callable._take_apart(v, data))
            else:
                hash(v)
                cells.append(("value", v))
        key = (fn.__code__, id(fn.__globals__), fn.__defaults__, tuple(c if c[0] != "function" else c[:2] for c in cells))
        return key, (fn, tuple(cells))

    def join(self, data):
        if self.template is None:
            return self.fn
        return _Callable._rebuild(self.template, data)

    @staticmethod
    def _rebuild(template, data):
        fn, cells = template
        values = []
        for c in cells:
            if c[0] == "array":
                values.append(data[c[1]])
            elif c[0] == "function":
                values.append(_Callable._rebuild(c[2], data))
            else:
                values.append(c[1])
        closure = tuple(types.CellType(v) for v in values) or None
        return types.FunctionType(fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, closure)


def sgd(
    key,
    phi,
    y,
    theta0,
    *,
    lr=1.0,
    decay=0.0,
    batch_size: Optional[int] = 1,
    order: str = "shuffle",
    tol=1e-6,
    max_epochs: int = 1500,
    checks_per_epoch: int = 1,
    retain=None,
    trace: bool = False,
    monitor: Optional[Callable[[jax.Array], Any]] = None,
    stop: Optional[Callable[[jax.Array], jax.Array]] = None,
    form: str = "auto",
    gram=None,
):
    r"""Train ``theta`` from ``theta0`` by (minibatch) SGD until ``||Phi theta - y|| <= tol``.

    .. math::
        \theta \leftarrow \theta - \eta\, (t + 1)^{-\text{decay}}\, \Phi_B^\top (\Phi_B \theta - y_B)

    on batches B of rows (see the module). A converged run lands on
    :func:`muso_jax.min_norm_solution` from ``theta0`` (MUSO, arXiv 2410.08557, implicit-bias
    lemma).

    Parameters
    ----------
    key : PRNG key or None
        For the sample order (epoch e uses ``fold_in(key, e)``); may be None when the order is
        deterministic (``order="cyclic"`` or full batch).
    phi : (N, M) array
        Features.
    y : (N,) or (N, K) array
        Targets.
    theta0 : (M,) or (M, K) array
        Start.
    lr, decay : float, optional
        Step ``lr * (t + 1) ** -decay``, t the batch index inside the epoch.
    batch_size : int or None, optional
        Rows per update; 1 is per-sample SGD, None (or >= N) full-batch GD.
    order : {"shuffle", "cyclic"}, optional
        "shuffle" (a fresh permutation every epoch) or "cyclic" (rows in index order).
    tol : float, optional
        Stop once the residual norm over the training rows is at most this.
    max_epochs : int, optional
        Stop after this many epochs (full-batch GD: epoch = one step).
    checks_per_epoch : int, optional
        How often per epoch the residual, ``stop`` and ``monitor`` are evaluated (each check
        costs one pass over Phi; the authors checked after every sample).
    retain : (N,) bool array, optional
        Only these rows are trained on (others are skipped, and do not advance t).
    trace : bool, optional
        Record the residual at every check.
    monitor : callable, optional
        ``theta -> pytree of arrays`` recorded at every check (e.g. the gap to a reference).
    stop : callable, optional
        ``theta -> bool``; the run ends when it is True. A fresh lambda per call does not
        recompile: programs are keyed by the callable's code and the arrays it closes over are
        passed as data (see :class:`_Callable`).
    form : {"auto", "primal", "dual"}, optional
        How the iterates are stored. "primal" updates theta (O(M) per sample); "dual" updates
        the dual coefficients alpha, :math:`\theta = \theta_0 + \Phi^\top \alpha`, with the
        Gram matrix (O(N) per sample, O(N^2) per check, plus the Gram once): the same iterates
        in exact arithmetic, equal to float64 round-off in practice. "auto" takes the dual form
        when ``gram`` is given or :math:`M > 2N` (:func:`uses_dual`).
    gram : (N, N) array, optional
        :math:`\Phi\Phi^\top`, when the caller has it (dual form); computed once otherwise.

    Returns
    -------
    theta : jax.Array
        The trained parameters, shaped like ``theta0``.
    info : SGDInfo
        Steps, epochs, final residual, the flags, the traces and (dual form) ``alpha``.

    Raises
    ------
    ValueError
        For a bad argument (naming it) and for a divergent run. Under jit/vmap, where it
        cannot raise, a divergent run's theta is NaN and ``info.diverged`` is True.

    Examples
    --------
    Per-sample SGD in a shuffled order reaches the min-norm interpolant from ``theta0``:

    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import closed_form, dynamics
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> phi = phi / jnp.linalg.norm(phi, axis=1, keepdims=True)  # unit rows: lr = 1 is stable
    >>> y = jnp.sign(jax.random.normal(jax.random.key(1), (6,)))
    >>> theta0 = jax.random.normal(jax.random.key(2), (10,))
    >>> theta, info = dynamics.sgd(jax.random.key(3), phi, y, theta0, tol=1e-5)
    >>> bool(info.converged), bool(info.residual <= 1e-5)
    (True, True)
    >>> np.allclose(theta, closed_form.min_norm_solution(phi, y, theta0), atol=1e-3)
    True

    The dual form gives the same iterates (here M = 10 < 2N, so "auto" took the primal form):

    >>> theta_d, info_d = dynamics.sgd(jax.random.key(3), phi, y, theta0, tol=1e-5, form="dual")
    >>> np.allclose(theta_d, theta, atol=1e-6), np.allclose(theta_d, theta0 + phi.T @ info_d.alpha)
    (True, True)
    >>> dynamics.sgd(jax.random.key(3), phi, y, theta0, lr=10.0)
    Traceback (most recent call last):
    ...
    ValueError: argument `lr`: the run diverged with lr = 10 ...
    """
    phi = _checks.array("phi", phi, ndim=(2,), what="(N, M) feature matrix")
    y = _checks.targets("y", y, phi.shape[0], "phi")
    theta0 = _checks.theta("theta0", theta0, phi.shape[1], y, "phi")
    _checks.positive("lr", lr)
    _checks.nonnegative("decay", decay)
    _checks.nonnegative("tol", tol)
    _checks.choice("order", order, {"shuffle", "cyclic"})
    max_epochs = _checks.positive_int("max_epochs", max_epochs)
    checks_per_epoch = _checks.positive_int("checks_per_epoch", checks_per_epoch)
    n = phi.shape[0]
    full_batch = batch_size is None or _checks.positive_int("batch_size", batch_size) >= n
    if full_batch and checks_per_epoch != 1:
        raise ValueError(
            f"argument `checks_per_epoch`: expected 1 for full-batch GD (one step per epoch); "
            f"got {checks_per_epoch}"
        )
    if key is None and order == "shuffle" and not full_batch:
        raise ValueError("argument `key`: expected a PRNG key for order='shuffle'; got None")
    if retain is not None:
        retain = _checks.retain_mask(retain, n)
    _checks.choice("form", form, {"auto", "primal", "dual"})
    if gram is not None:
        gram = _check_gram(gram, phi)
        if form == "primal":
            raise ValueError("argument `gram`: the primal form does not use a Gram matrix; pass form='dual' or 'auto'")
    dual = form == "dual" or (form == "auto" and (gram is not None or uses_dual(*phi.shape)))
    monitor_fn, monitor_data = _Callable.split(monitor)
    stop_fn, stop_data = _Callable.split(stop)
    dtype = jnp.result_type(phi, y, theta0)
    theta, info = _sgd(
        key if key is not None else jax.random.key(0),
        phi.astype(dtype),
        y.astype(dtype),
        theta0.astype(dtype),
        jnp.asarray(lr, dtype),
        jnp.asarray(decay, dtype),
        jnp.asarray(tol, dtype),
        jnp.ones(n, bool) if retain is None else retain,
        monitor_data,
        stop_data,
        None if gram is None else gram.astype(dtype),
        batch_size=n if full_batch else int(batch_size),
        order="cyclic" if full_batch else order,
        max_epochs=max_epochs,
        checks_per_epoch=checks_per_epoch,
        trace=trace,
        monitor=monitor_fn,
        stop=stop_fn,
        form="dual" if dual else "primal",
    )
    if _checks.is_concrete(info.diverged) and bool(jnp.any(info.diverged)):
        bound = 2.0 / float(jnp.max(jnp.sum(phi**2, axis=1))) if batch_size == 1 else None
        hint = f"; per-sample SGD needs lr < 2 / max_i ||phi_i||^2 = {bound:.4g}" if bound else ""
        raise ValueError(
            f"argument `lr`: the run diverged with lr = {float(lr):.4g} (residual reached "
            f"{float(jnp.max(info.residual)):.3g} after {float(jnp.max(info.epochs)):.3g} epochs){hint}"
        )
    return theta, info


def uses_dual(n: int, m: int) -> bool:
    r"""The rule of ``sgd(form="auto")``: the dual form when :math:`M > 2N`.

    Measured in ``benchmarks/per_sample_sgd.py``: a per-sample step streams one feature row
    (M numbers) in the primal form and one Gram row (N numbers) in the dual form, and a check
    costs a pass over Phi (N M) against one over G (N^2); the dual form pays the Gram (2 N^2 M
    flops, at matmul speed) once.

    Parameters
    ----------
    n, m : int
        Rows and features of Phi.

    Returns
    -------
    bool

    Examples
    --------
    >>> from muso_jax import dynamics
    >>> dynamics.uses_dual(300, 5000), dynamics.uses_dual(2000, 64)
    (True, False)
    """
    return m > DUAL_RATIO * n


def _check_gram(gram, phi):
    """``gram`` as an (N, N) array; when concrete, its diagonal must be the rows' squared norms."""
    n = phi.shape[0]
    gram = _checks.array("gram", gram, ndim=(2,), what="(N, N) Gram matrix Phi Phi^T")
    if gram.shape != (n, n):
        raise ValueError(f"argument `gram`: expected shape ({n}, {n}) = Phi Phi^T of `phi` {tuple(phi.shape)}; "
                         f"got {tuple(gram.shape)}")
    concrete = _checks.is_concrete(gram) and _checks.is_concrete(phi)
    # (not for arrays across processes: they cannot be fetched)
    if concrete and getattr(gram, "is_fully_addressable", True) and getattr(phi, "is_fully_addressable", True):
        diag, norms = np.diag(np.asarray(gram, float)), np.sum(np.asarray(phi, float) ** 2, axis=1)
        # Round-off of a float32 Gram is ~1e-7 relative; anything beyond 1e-4 is another matrix.
        worst = float(np.max(np.abs(diag - norms) / np.maximum(norms, np.finfo(float).tiny)))
        if not worst <= 1e-4:
            raise ValueError(f"argument `gram`: expected Phi Phi^T of `phi` (its diagonal the squared row norms); "
                             f"got a diagonal off by {worst:.3g} relative")
    return gram


def _lrs(lr, decay, c, batches_per_check):
    """The steps of check ``c`` of an epoch: ``lr (t + 1)^-decay`` for its batch indices t."""
    ts = c * batches_per_check + jnp.arange(batches_per_check)
    return lr * (ts.astype(lr.dtype) + 1.0) ** (-decay)


def _check_batches(key, epoch, c, retain, *, order, batch_size, batches_per_check, padded_len):
    """Row indices (batches_per_check, B) and validity of check ``c`` of ``epoch``.

    Epoch e visits the trained rows in the order of ``permutation(fold_in(key, e), N)`` (or
    index order), skipped rows last and masked; the tail of the last batch is padding, masked.
    """
    n = retain.shape[0]
    perm = jax.random.permutation(jax.random.fold_in(key, epoch), n) if order == "shuffle" else jnp.arange(n)
    perm = perm[jnp.argsort(~retain[perm], stable=True)]
    perm = jnp.concatenate([perm, jnp.full(padded_len - n, n, perm.dtype)])
    start = c * batches_per_check * batch_size
    idx = lax.dynamic_slice(perm, (start,), (batches_per_check * batch_size,))
    valid = start + jnp.arange(batches_per_check * batch_size) < jnp.sum(retain)
    idx = jnp.where(valid, idx, 0).reshape(batches_per_check, batch_size)
    return idx, valid.reshape(batches_per_check, batch_size)


@functools.partial(
    jax.jit,
    static_argnames=("batch_size", "order", "max_epochs", "checks_per_epoch", "trace", "monitor", "stop", "form"),
)
def _sgd(key, phi, y, theta0, lr, decay, tol, retain, monitor_data, stop_data, gram, *, batch_size, order,
         max_epochs, checks_per_epoch, trace, monitor, stop, form):
    monitor = None if monitor is None else monitor.join(monitor_data)
    stop = None if stop is None else stop.join(stop_data)
    n = phi.shape[0]
    B, C = batch_size, checks_per_epoch
    batches_per_check = math.ceil(math.ceil(n / B) / C)
    padded_len = C * batches_per_check * B
    full_batch = B == n
    n_active = jnp.sum(retain)
    row_weight = retain.astype(phi.dtype).reshape((n,) + (1,) * (y.ndim - 1))
    dual = form == "dual"
    # The state is theta (primal) or alpha with theta = theta0 + Phi^T alpha (dual); the dual
    # residual is c + G alpha, c = Phi theta0 - y, and a step on rows I moves only alpha_I.
    if dual:
        G = phi @ phi.T if gram is None else gram
        c0 = phi @ theta0 - y

    def theta_of(state):
        return theta0 + jnp.tensordot(phi, state, axes=(0, 0)) if dual else state

    def residual(state):
        r = c0 + G @ state if dual else phi @ state - y
        return jnp.linalg.norm(r * row_weight)

    def run_check(state, check):
        epoch, c = check // C, check % C
        lrs = _lrs(lr, decay, c, batches_per_check)
        if full_batch:
            def gd_step(state, lr_t):
                if dual:
                    return state - lr_t * (c0 + G @ state) * row_weight, n_active > 0
                r = (phi @ state - y) * row_weight
                return state - lr_t * (r.T @ phi).T, n_active > 0

            state, took = lax.scan(gd_step, state, lrs)
            return state, jnp.sum(took)
        # Everything that does not depend on the state is computed for the whole check up
        # front, so the scanned step is only the update: on XLA:CPU a per-sample step is
        # dominated by per-op overhead, not arithmetic.
        idx, valid = _check_batches(key, epoch, c, retain, order=order, batch_size=B,
                                    batches_per_check=batches_per_check, padded_len=padded_len)

        def step(state, xs):
            lr_t, idx, valid = xs
            if B == 1:  # one dynamic row slice instead of a gather: 3-8x faster per step
                i, v = idx[0], valid[0].astype(phi.dtype)
                if dual:  # one row of the Gram (contiguous: G is symmetric), O(N) per step
                    g_i = lax.dynamic_index_in_dim(G, i, keepdims=False)
                    r = (lax.dynamic_index_in_dim(c0, i, keepdims=False) + g_i @ state) * v
                    a_i = lax.dynamic_index_in_dim(state, i, keepdims=False)
                    return lax.dynamic_update_index_in_dim(state, a_i - lr_t * r, i, 0), valid[0]
                phi_i = lax.dynamic_index_in_dim(phi, i, keepdims=False)
                y_i = lax.dynamic_index_in_dim(y, i, keepdims=False)
                r = (phi_i @ state - y_i) * v
                return state - lr_t * jnp.multiply.outer(phi_i, r), valid[0]
            w = valid.astype(phi.dtype).reshape((B,) + (1,) * (y.ndim - 1))
            if dual:
                r = (c0[idx] + G[idx] @ state) * w
                return state.at[idx].add(-lr_t * r), valid[0]
            phi_b = phi[idx]
            r = (phi_b @ state - y[idx]) * w
            return state - lr_t * (r.T @ phi_b).T, valid[0]

        state, took = lax.scan(step, state, (lrs, idx, valid))
        return state, jnp.sum(took)

    state0 = jnp.zeros_like(y) if dual else theta0
    max_checks = max_epochs * C
    res0 = residual(state0)
    buffers = {}
    if trace:
        buffers["residual"] = jnp.full((max_checks + 1,), jnp.nan, res0.dtype).at[0].set(res0)
    if monitor is not None:
        m0 = monitor(theta0)
        buffers["monitor"] = jax.tree.map(
            lambda v: jnp.full((max_checks + 1,) + jnp.shape(v), jnp.nan, jnp.result_type(v, float)).at[0].set(v), m0
        )

    def status(theta, res):
        converged = res <= tol
        diverged = ~jnp.isfinite(res) | (res > DIVERGENCE_FACTOR * jnp.maximum(res0, tol))
        stopped = jnp.asarray(False) if stop is None else jnp.asarray(stop(theta), bool)
        return converged, diverged, stopped

    init = dict(state=state0, check=jnp.asarray(0), steps=jnp.asarray(0), res=res0,
                flags=status(theta0, res0)[:2] + (jnp.asarray(False),), buffers=buffers)

    def cond(s):
        converged, diverged, stopped = s["flags"]
        return (s["check"] < max_checks) & ~converged & ~diverged & ~stopped

    def body(s):
        state, took = run_check(s["state"], s["check"])
        res = residual(state)
        check = s["check"] + 1
        # theta itself is formed at a check only when a callback needs it (dual form: O(N M)).
        theta = theta_of(state) if (monitor is not None or stop is not None) else None
        buffers = dict(s["buffers"])
        if trace:
            buffers["residual"] = buffers["residual"].at[check].set(res)
        if monitor is not None:
            buffers["monitor"] = jax.tree.map(lambda buf, v: buf.at[check].set(v), buffers["monitor"], monitor(theta))
        return dict(state=state, check=check, steps=s["steps"] + took, res=res,
                    flags=status(theta, res), buffers=buffers)

    s = lax.while_loop(cond, body, init)
    converged, diverged, stopped = s["flags"]
    theta = jnp.where(diverged, jnp.nan, theta_of(s["state"]))
    info = SGDInfo(
        steps=s["steps"],
        epochs=s["check"] / C,
        residual=s["res"],
        converged=converged,
        diverged=diverged,
        stopped=stopped,
        residual_trace=s["buffers"].get("residual"),
        monitor_trace=s["buffers"].get("monitor"),
        alpha=jnp.where(diverged, jnp.nan, s["state"]) if dual else None,
    )
    return theta, info


def gd_iterate(phi, y, theta0, lr, steps):
    r"""Exact iterate of full-batch GD after ``steps`` constant steps (the finite-step oracle).

    .. math::
        \theta_t = \theta_\infty + (I - \eta \Phi^\top\Phi)^t (\theta_0 - \theta_\infty)

    with ``theta_inf`` the min-norm (least-squares) solution from ``theta0``. Evaluated through
    the thin SVD ``Phi = U S V^T``: the part of ``theta0 - theta_inf`` in the row space decays as
    ``(1 - eta s_i^2)^t``, the rest never moves. ``steps`` may be traced (vmap over it).

    Parameters
    ----------
    phi : (N, M) array
        Features.
    y : (N,) or (N, K) array
        Targets.
    theta0 : (M,) or (M, K) array
        Start.
    lr : float
        Constant step :math:`\eta`, below :math:`2 / s_{\max}(\Phi)^2`.
    steps : int or int array
        Number of full-batch steps t >= 0.

    Returns
    -------
    jax.Array
        :math:`\theta_t`, shaped like ``theta0``.

    Raises
    ------
    ValueError
        For a bad shape, a negative ``steps`` or an unstable ``lr`` (naming it).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import closed_form, dynamics
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> phi = phi / jnp.linalg.norm(phi, axis=1, keepdims=True)  # unit rows: lr = 1 is stable
    >>> y = jnp.sign(jax.random.normal(jax.random.key(1), (6,)))
    >>> theta0 = jax.random.normal(jax.random.key(2), (10,))
    >>> theta = theta0
    >>> for _ in range(3):  # three steps of full-batch GD by hand
    ...     theta = theta - 0.5 * phi.T @ (phi @ theta - y)
    >>> np.allclose(dynamics.gd_iterate(phi, y, theta0, 0.5, 3), theta, atol=1e-5)
    True
    >>> far = dynamics.gd_iterate(phi, y, theta0, 0.5, 10_000)  # t -> infinity
    >>> np.allclose(far, closed_form.min_norm_solution(phi, y, theta0), atol=1e-4)
    True
    >>> dynamics.gd_iterate(phi, y, theta0, 1.0, 3)
    Traceback (most recent call last):
    ...
    ValueError: argument `lr`: expected a stable step lr < 2 / s_max(Phi)^2 = ... (full-batch GD diverges above it); got 1.0
    """
    phi = _checks.array("phi", phi, ndim=(2,), what="(N, M) feature matrix")
    y = _checks.targets("y", y, phi.shape[0], "phi")
    theta0 = _checks.theta("theta0", theta0, phi.shape[1], y, "phi")
    _checks.positive("lr", lr)
    if _checks.is_concrete(steps) and not float(steps) >= 0:
        raise ValueError(f"argument `steps`: expected an integer >= 0; got {steps!r}")
    theta_inf = min_norm_solution(phi, y, theta0)
    _, s, Vt = _linalg.svd(phi)
    if _checks.is_concrete(lr) and _checks.is_concrete(s):
        bound = 2.0 / float(jnp.max(s) ** 2)
        if not float(lr) < bound:
            raise ValueError(
                f"argument `lr`: expected a stable step lr < 2 / s_max(Phi)^2 = {bound:.6g} (full-batch GD "
                f"diverges above it); got {float(lr)!r}"
            )
    e = theta0 - theta_inf
    coef = Vt @ e
    contraction = 1.0 - lr * s**2
    # jnp.power checks the promotion of a traced integer exponent that it then passes to lax.pow
    # unpromoted; strict dtype promotion refuses that check, so traced steps go to lax.pow directly.
    factor = contraction**steps if _checks.is_concrete(steps) else lax.pow(contraction, steps)
    e_row = Vt.T @ coef
    return theta_inf + (e - e_row) + Vt.T @ (factor.reshape(factor.shape + (1,) * (coef.ndim - 1)) * coef)

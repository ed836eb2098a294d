r"""Many forget sets at once: the retrain oracle and MUSO's labels for B forget masks in one
vmapped, compiled call (MUSO, arXiv 2410.08557, implicit-bias lemma and relabeling theorem).

For each mask ``f_b`` (True = forget) with retained rows ``r_b``:

.. math::
    \theta_{r,b} = \theta_0 + \Phi_{r_b}^\top (\Phi_{r_b}\Phi_{r_b}^\top + \epsilon I)^{-1}
                   (y_{r_b} - \Phi_{r_b}\theta_0), \qquad
    y'_b = \begin{cases} \Phi\,\theta_{r,b} & \text{forget rows} \\ y & \text{retained rows} \end{cases}

The masks keep every shape static (masked rows become identity rows of the Gram), so one
program serves every forget set of the same N.

:func:`sgd_many` runs B SGD trainings (seeds, forget sets, problems) as one program, each
stopping on its own. Unlike a plain ``jax.vmap`` of :func:`muso_jax.sgd`, which lets every run go
on until the slowest one stops, a run that has converged is frozen by a mask, so every run's
steps, epochs and theta are those of its separate run.
"""

from __future__ import annotations

import functools
import math
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from muso_jax import _checks, _linalg
from muso_jax.closed_form import _gram, _validate
from muso_jax.dynamics import DIVERGENCE_FACTOR, SGDInfo, _check_batches, _lrs, uses_dual


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



def sgd_many(
    key,
    phi,
    y,
    theta0,
    *,
    retain=None,
    lr=1.0,
    decay=0.0,
    batch_size: Optional[int] = 1,
    order: str = "shuffle",
    tol=1e-6,
    max_epochs: int = 1500,
    checks_per_epoch: int = 1,
    form: str = "auto",
):
    r""":func:`muso_jax.sgd` for B runs in one program, each stopping on its own.

    .. math::
        \theta_b \leftarrow \theta_b - \eta_t\, \Phi_{b,B}^\top (\Phi_{b,B} \theta_b - y_{b,B})

    Run b is ``sgd(key[b], phi_b, y_b, theta0_b, retain=retain_b, **options)``: its own sample
    order, its own steps, its own stop. All runs step together, check by check; a run that has
    converged (or diverged) is frozen by a mask from then on, so its theta, steps and epochs are
    those of its separate run (to float64 round-off: the batched products sum in another order).
    A per-sample step reads one row per run (of Phi, or of the Gram in the dual form) and, in
    the dual form, updates one coefficient per run. Converged runs
    land on :func:`muso_jax.min_norm_solution` (MUSO, arXiv 2410.08557, implicit-bias lemma).

    Parameters
    ----------
    key : (B,) array of PRNG keys, or None
        One key per run (None for ``order="cyclic"`` or full batch).
    phi : (N, M) or (B, N, M) array
        Features, shared by the runs or one matrix per run.
    y : (N,) or (B, N) array
        Targets (one output), shared or per run.
    theta0 : (M,) or (B, M) array
        Start, shared or per run.
    retain : (N,) or (B, N) bool array, optional
        Rows each run trains on (e.g. B forget sets of one problem).
    lr, decay, batch_size, order, tol, max_epochs, checks_per_epoch
        As :func:`muso_jax.sgd`, the same for every run.
    form : {"auto", "primal", "dual"}, optional
        As :func:`muso_jax.sgd`; a shared ``phi`` has one Gram for all runs.

    Returns
    -------
    theta : jax.Array
        (B, M).
    info : SGDInfo
        Each field with a leading B axis (traces None).

    Raises
    ------
    ValueError
        For a bad argument (naming it), batch sizes that disagree, nothing to batch, and for
        a divergent run.

    Examples
    --------
    Four seeds of per-sample SGD on one problem, each equal to its own run:

    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import batched, dynamics
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> phi = phi / jnp.linalg.norm(phi, axis=1, keepdims=True)  # unit rows: lr = 1 is stable
    >>> y = jnp.sign(jax.random.normal(jax.random.key(1), (6,)))
    >>> theta0 = jax.random.normal(jax.random.key(2), (10,))
    >>> keys = jax.random.split(jax.random.key(3), 4)
    >>> thetas, info = batched.sgd_many(keys, phi, y, theta0, tol=1e-8)
    >>> thetas.shape, info.steps.shape
    ((4, 10), (4,))
    >>> one, one_info = dynamics.sgd(keys[2], phi, y, theta0, tol=1e-8)
    >>> np.allclose(thetas[2], one, atol=1e-12), int(info.steps[2]) == int(one_info.steps)
    (True, True)
    >>> batched.sgd_many(keys[:3], phi, jnp.stack([y] * 4), theta0)
    Traceback (most recent call last):
    ...
    ValueError: argument `y`: expected the batch size 3 of `key`; got 4 runs (shape (4, 6))
    """
    phi = _checks.array("phi", phi, ndim=(2, 3), what="(N, M) or (B, N, M) feature matrix")
    n, m = phi.shape[-2:]
    y = _checks.array("y", y, ndim=(1, 2), what=f"(N,) or (B, N) target array with N = {n}")
    if y.shape[-1] != n:
        raise ValueError(f"argument `y`: expected {n} targets per run (the rows of `phi`); got shape {y.shape}")
    theta0 = _checks.array("theta0", theta0, ndim=(1, 2), what=f"(M,) or (B, M) start with M = {m}")
    if theta0.shape[-1] != m:
        raise ValueError(f"argument `theta0`: expected {m} entries per run (the columns of `phi`); "
                         f"got shape {theta0.shape}")
    if retain is not None:
        r = retain if hasattr(retain, "shape") else np.asarray(retain)
        if r.ndim not in (1, 2) or r.shape[-1] != n or r.dtype != bool:
            raise ValueError(f"argument `retain`: expected a boolean mask of shape ({n},) or (B, {n}); "
                             f"got {r.dtype} of shape {r.shape}")
        retain = jnp.asarray(r)
    if key is not None:
        key = key if hasattr(key, "dtype") else np.asarray(key)
        if not (jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) and key.ndim == 1):
            raise ValueError(f"argument `key`: expected a (B,) array of PRNG keys (jax.random.split); "
                             f"got {key.dtype} of shape {key.shape}")
    runs = {}
    for name, x, unbatched in (("key", key, 0), ("phi", phi, 2), ("y", y, 1), ("theta0", theta0, 1),
                               ("retain", retain, 1)):
        if x is not None and x.ndim > unbatched:
            first = next(iter(runs.items()), None)
            if first is not None and x.shape[0] != first[1]:
                raise ValueError(f"argument `{name}`: expected the batch size {first[1]} of `{first[0]}`; "
                                 f"got {x.shape[0]} runs (shape {tuple(x.shape)})")
            runs[name] = x.shape[0]
    if not runs:
        raise ValueError("argument `key`: expected a (B,) array of keys or some argument with a leading "
                         "batch axis (phi, y, theta0, retain); got none, so there is nothing to batch "
                         "(use muso_jax.sgd for one run)")
    b = next(iter(runs.values()))
    _checks.positive("lr", lr)
    _checks.nonnegative("decay", decay)
    _checks.nonnegative("tol", tol)
    _checks.choice("order", order, {"shuffle", "cyclic"})
    _checks.choice("form", form, {"auto", "primal", "dual"})
    max_epochs = _checks.positive_int("max_epochs", max_epochs)
    checks_per_epoch = _checks.positive_int("checks_per_epoch", checks_per_epoch)
    full_batch = batch_size is None or _checks.positive_int("batch_size", batch_size) >= n
    if full_batch and checks_per_epoch != 1:
        raise ValueError(f"argument `checks_per_epoch`: expected 1 for full-batch GD (one step per epoch); "
                         f"got {checks_per_epoch}")
    if key is None and order == "shuffle" and not full_batch:
        raise ValueError("argument `key`: expected (B,) PRNG keys for order='shuffle'; got None")
    dtype = jnp.result_type(phi, y, theta0)
    theta, info = _sgd_many(
        jax.random.split(jax.random.key(0), b) if key is None else key,
        phi.astype(dtype),
        jnp.broadcast_to(y.astype(dtype), (b, n)),
        jnp.broadcast_to(theta0.astype(dtype), (b, m)),
        jnp.asarray(lr, dtype),
        jnp.asarray(decay, dtype),
        jnp.asarray(tol, dtype),
        jnp.ones((b, n), bool) if retain is None else jnp.broadcast_to(retain, (b, n)),
        batch_size=n if full_batch else int(batch_size),
        order="cyclic" if full_batch else order,
        max_epochs=max_epochs,
        checks_per_epoch=checks_per_epoch,
        form="dual" if form == "dual" or (form == "auto" and uses_dual(n, m)) else "primal",
    )
    if _checks.is_concrete(info.diverged) and bool(jnp.any(info.diverged)):
        bad = np.flatnonzero(np.asarray(info.diverged))
        raise ValueError(f"argument `lr`: runs {bad.tolist()} diverged with lr = {float(lr):.4g} (see muso_jax.sgd "
                         f"for the stable range)")
    return theta, info


@functools.partial(jax.jit, static_argnames=("batch_size", "order", "max_epochs", "checks_per_epoch", "form"))
def _sgd_many(key, phi, y, theta0, lr, decay, tol, retain, *, batch_size, order, max_epochs, checks_per_epoch,
              form):
    b, n = y.shape
    shared = phi.ndim == 2
    bs, C = batch_size, checks_per_epoch
    batches_per_check = math.ceil(math.ceil(n / bs) / C)
    padded_len = C * batches_per_check * bs
    w = retain.astype(phi.dtype)
    dual = form == "dual"
    runs = jnp.arange(b)[:, None]

    def rows_of(a, idx):  # a: shared (N, D) or per run (B, N, D); idx (B, ...) -> (B, ..., D)
        return a[idx] if a.ndim == 2 and shared else jax.vmap(lambda a_b, i: a_b[i])(a, idx)

    def times(a, v):  # a (N, D) shared or (B, N, D), v (B, D) -> (B, N): each run's a_b v_b
        return v @ a.T if a.ndim == 2 else jnp.einsum("bnd,bd->bn", a, v)

    if dual:  # state alpha (B, N), theta = theta0 + Phi^T alpha; residual c + G alpha
        G = phi @ phi.T if shared else jnp.einsum("bnm,bkm->bnk", phi, phi)
        c0 = times(phi, theta0) - y
        table, consts = G, c0
    else:  # state theta (B, M); residual Phi theta - y
        table, consts = phi, -y

    def residual_vector(state):
        return (times(table, state) + consts) * w

    def run_check(state, check):
        epoch, c = check // C, check % C
        lrs = _lrs(lr, decay, c, batches_per_check)
        if bs == n:  # full batch: one step on all rows
            def gd_step(state, lr_t):
                r = residual_vector(state)
                grad = r if dual else (r @ phi if shared else jnp.einsum("bn,bnm->bm", r, phi))
                return state - lr_t * grad, None

            state, _ = lax.scan(gd_step, state, lrs)
            return state, jnp.where(jnp.sum(retain, axis=1) > 0, batches_per_check, 0)
        idx, valid = jax.vmap(lambda k, r: _check_batches(k, epoch, c, r, order=order, batch_size=bs,
                                                          batches_per_check=batches_per_check,
                                                          padded_len=padded_len))(key, retain)
        weights = valid.astype(phi.dtype)  # (B, batches, bs)
        k_rows = jnp.take_along_axis(consts, idx.reshape(b, -1), axis=1).reshape(idx.shape)
        # Scanned over the check's batches. Each step gathers its B rows: measured faster than
        # gathering the whole check's rows before the scan (benchmarks/vmap_seeds.py).
        xs = dict(lr=lrs, idx=idx.swapaxes(0, 1), w=weights.swapaxes(0, 1), k=k_rows.swapaxes(0, 1))

        def step(state, x):
            rows = rows_of(table, x["idx"])  # (B, bs, D)
            if bs == 1:  # elementwise products, no batched dot
                r = (jnp.sum(rows[:, 0] * state, axis=1, keepdims=True) + x["k"]) * x["w"]  # (B, 1)
            else:
                r = (jnp.einsum("bsd,bd->bs", rows, state) + x["k"]) * x["w"]  # (B, bs)
            if dual:  # alpha_i -= lr r_i on each run's batch rows (padding has r = 0)
                return state.at[runs, x["idx"]].add(-x["lr"] * r), None
            return state - x["lr"] * jnp.einsum("bs,bsd->bd", r, rows), None

        state, _ = lax.scan(step, state, xs)
        return state, jnp.sum(valid[:, :, 0], axis=1)

    state0 = jnp.zeros_like(y) if dual else theta0
    max_checks = max_epochs * C
    res0 = jnp.linalg.norm(residual_vector(state0), axis=1)

    def status(res):
        converged = res <= tol
        diverged = ~jnp.isfinite(res) | (res > DIVERGENCE_FACTOR * jnp.maximum(res0, tol))
        return converged, diverged

    converged0, diverged0 = status(res0)
    zeros = jnp.zeros(b, jnp.asarray(0).dtype)  # the integer type of sgd's counts
    init = dict(state=state0, check=jnp.asarray(0), checks=zeros, steps=zeros, res=res0, converged=converged0,
                diverged=diverged0)

    def running(s):
        return ~s["converged"] & ~s["diverged"]

    def cond(s):
        return (s["check"] < max_checks) & jnp.any(running(s))

    def body(s):
        active = running(s)  # the runs still going; the others are frozen as they are
        counts = active.astype(zeros.dtype)
        state, took = run_check(s["state"], s["check"])
        state = jnp.where(active[:, None], state, s["state"])
        res = jnp.where(active, jnp.linalg.norm(residual_vector(state), axis=1), s["res"])
        converged, diverged = status(res)
        return dict(state=state, check=s["check"] + 1, checks=s["checks"] + counts,
                    steps=s["steps"] + counts * took.astype(zeros.dtype),
                    res=res, converged=jnp.where(active, converged, s["converged"]),
                    diverged=jnp.where(active, diverged, s["diverged"]))

    s = lax.while_loop(cond, body, init)
    bad = s["diverged"][:, None]
    if dual:
        theta = theta0 + (s["state"] @ phi if shared else jnp.einsum("bn,bnm->bm", s["state"], phi))
    else:
        theta = s["state"]
    info = SGDInfo(steps=s["steps"], epochs=s["checks"] / C, residual=s["res"], converged=s["converged"],
                   diverged=s["diverged"], stopped=jnp.zeros(b, bool), residual_trace=None, monitor_trace=None,
                   alpha=jnp.where(bad, jnp.nan, s["state"]) if dual else None)
    return jnp.where(bad, jnp.nan, theta), info

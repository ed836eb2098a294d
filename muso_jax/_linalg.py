r"""The library's one place for dense linear algebra: Gram solves, SVDs and eigenvalues.

Every Cholesky, triangular solve, SVD and symmetric eigendecomposition of ``muso_jax`` goes
through this module, for two reasons.

**No batched LAPACK call, ever.** On jaxlib 0.10.2 (CPU) a LAPACK custom call with a batch
dimension splits its batch over XLA's intra-op thread pool and blocks its own pool thread
until the pieces finish (``jax::ParallelBatchMap``). Two such calls in flight at once (the two
branches of a vmapped ``lax.cond``, two independent solves of one program) can take every
thread of a small pool and wait forever for work queued behind them: a deadlock, measured in
``muso linear`` (see ``docs/deadlock.md``). Here every LAPACK call has batch size one: under
``vmap`` the solve runs as a sequential ``lax.map`` over the batch (a ``custom_vmap`` rule), and
a call with batch one runs inline on its thread. Inside the loop each matrix takes its own
Cholesky-or-SVD branch by a real ``lax.cond``, so an SVD is paid only where it is needed.

**One decision rule.** ``well_posed`` chooses the factorization, as in lineax:

* ``True``: Cholesky only. A matrix that is not numerically positive definite gives NaN.
* ``False``: the SVD pseudo-inverse only (the least-squares, minimum-norm solution).
* ``None`` (default): Cholesky, falling back to the pseudo-inverse where the factorization
  fails or a pivot is at round-off level (``n eps max diag G``).

Solves are differentiable (forward and reverse mode) through ``lax.custom_linear_solve``,
which differentiates ``G^{-1} r`` implicitly: ``d(G^{-1} r) = G^{-1}(dr - dG G^{-1} r)``. On a
singular G (the pseudo-inverse branch) that is the derivative restricted to G's range, not the
full derivative of the pseudo-inverse.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.scipy.linalg import cho_solve

WELL_POSED = (True, False, None)


def cholesky_ok(G, L):
    """Cholesky of ``G`` succeeded and its smallest pivot is above the round-off level of G."""
    pivots = jnp.diagonal(L) ** 2
    floor = G.shape[0] * jnp.finfo(G.dtype).eps * jnp.max(jnp.diagonal(G))
    return jnp.all(jnp.isfinite(L)) & (jnp.min(pivots) > floor)


def _expand(v, ndim):
    return v.reshape(v.shape + (1,) * (ndim - 1))


def _pinv_solve(G, r):
    """``G^+ r`` for a symmetric PSD G, by its SVD (eigenvalues below round-off dropped)."""
    U, s, _ = jnp.linalg.svd(G)
    cutoff = G.shape[0] * jnp.finfo(G.dtype).eps * jnp.max(jnp.abs(s))
    inv = jnp.where(s > cutoff, 1.0 / jnp.where(s > cutoff, s, 1.0), 0.0)
    return U @ (_expand(inv, r.ndim) * (U.T @ r))


def _solve_one(G, r, well_posed):
    if well_posed is False:
        return _pinv_solve(G, r)
    L = jnp.linalg.cholesky(G)
    if well_posed is True:
        return cho_solve((L, True), r)
    return lax.cond(cholesky_ok(G, L), lambda: cho_solve((L, True), r), lambda: _pinv_solve(G, r))


def _sequential(one):
    """``one`` with a vmap rule that loops over the batch: its LAPACK calls stay unbatched."""
    fn = jax.custom_batching.custom_vmap(one)

    @fn.def_vmap
    def rule(axis_size, in_batched, *args):
        args = [a if b else jnp.broadcast_to(a, (axis_size,) + a.shape) for a, b in zip(args, in_batched)]
        out = lax.map(lambda a: fn(*a), tuple(args))
        return out, jax.tree.map(lambda _: True, out)

    return fn


def _solver(well_posed):
    return _sequential(lambda G, r: _solve_one(G, r, well_posed))


_SOLVERS = {wp: _solver(wp) for wp in WELL_POSED}


def solve(G, r, *, well_posed=None):
    r"""``x = G^{-1} r`` for a symmetric positive (semi-)definite ``G`` (n, n); ``r`` (n,) or (n, k).

    ``well_posed`` chooses Cholesky (True), the pseudo-inverse (False) or Cholesky with the
    pseudo-inverse where needed (None); see the module docstring. Differentiable; safe to vmap.
    """
    if well_posed not in WELL_POSED:
        raise ValueError(f"argument `well_posed`: expected True, False or None; got {well_posed!r}")
    inner = _SOLVERS[well_posed]
    return lax.custom_linear_solve(lambda x: G @ x, r, solve=lambda _, b: inner(G, b), symmetric=True)


def _inverse_one(G):
    L = jnp.linalg.cholesky(G)
    H = cho_solve((L, True), jnp.eye(G.shape[0], dtype=G.dtype))
    return (H + H.T) / 2, cholesky_ok(G, L)


_INVERSE = _sequential(_inverse_one)


def inverse(G):
    """``(G^{-1}, ok)`` for a symmetric positive definite ``G`` by Cholesky (well-posed only);
    ``ok`` says every pivot was above round-off. For the cached inverse of exact deletion,
    which must downdate an inverse; every other caller wants :func:`solve`."""
    return _INVERSE(G)


def is_positive_definite(G):
    """Whether the symmetric ``G`` has a Cholesky factor with every pivot above round-off."""
    return _SPD(G)


_SPD = _sequential(lambda G: cholesky_ok(G, jnp.linalg.cholesky(G)))


def _svd_one(a):
    return tuple(jnp.linalg.svd(a, full_matrices=False))


_SVD = _sequential(_svd_one)


def svd(a):
    """Thin SVD ``(U, s, Vt)`` of a matrix; under vmap a loop of unbatched LAPACK calls.

    Not differentiable in reverse mode (the library differentiates only through :func:`solve`).
    """
    return _SVD(a)


_EIGVALSH = _sequential(lambda a: jnp.linalg.eigvalsh(a))


def eigvalsh(a):
    """Eigenvalues of a symmetric matrix, ascending; under vmap a loop of unbatched calls."""
    return _EIGVALSH(a)


_EIGH = _sequential(lambda a: tuple(jnp.linalg.eigh(a)))


def eigh(a):
    """Eigenvalues (ascending) and eigenvectors ``(s, U)`` of a symmetric matrix; under vmap a
    loop of unbatched calls."""
    return _EIGH(a)


def smallest_eigenvalue_below_host(a, bound):
    """For a concrete symmetric matrix on the host (NumPy; no XLA program, no thread pool):
    None when every eigenvalue is >= -bound, else the smallest eigenvalue.

    The fast path is one Cholesky of ``a + bound I`` (it exists exactly when the smallest
    eigenvalue exceeds -bound), about a third of the cost of an eigendecomposition; the
    eigenvalues are computed only to report a failure. Used for input validation.
    """
    a = np.asarray(a, np.float64)
    a = (a + a.T) / 2
    try:
        np.linalg.cholesky(a + bound * np.eye(a.shape[0]))
        return None
    except np.linalg.LinAlgError:  # also at the boundary (e.g. bound = 0 on a singular a)
        low = float(np.linalg.eigvalsh(a)[0])
        return low if low < -bound else None

"""Input validation at the library boundary.

Every public function validates its arguments here, before any tracing, so that a bad
input fails with a ``ValueError`` that names the argument, what was expected and what came
in. Value checks (NaN/inf, index ranges) run only on concrete arrays: under ``jit`` or
``vmap`` the values are unknown and only shapes are checked.
"""

from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp


def is_concrete(x) -> bool:
    """True when ``x`` holds values now (not a tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def _describe(x) -> str:
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is None:
        return f"{type(x).__name__} {x!r}"[:120]
    return f"array of shape {tuple(shape)} and dtype {dtype}"


def array(name: str, x, *, ndim: tuple[int, ...], what: str):
    """Return ``x`` as a floating jax array, checking rank and (if concrete) finiteness.

    ``what`` describes the expected shape in words, e.g. ``"(N, M) feature matrix"``.
    """
    if not hasattr(x, "shape"):
        try:
            x = np.asarray(x)
        except Exception as err:  # noqa: BLE001 - anything unconvertible is a bad input
            raise ValueError(f"argument `{name}`: expected a {what}; got {_describe(x)}") from err
    if x.ndim not in ndim:
        raise ValueError(
            f"argument `{name}`: expected a {what} ({' or '.join(f'{d}-D' for d in ndim)}); "
            f"got {_describe(x)}"
        )
    if not (jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.integer)):
        raise ValueError(f"argument `{name}`: expected a real-valued {what}; got {_describe(x)}")
    if 0 in x.shape:
        raise ValueError(f"argument `{name}`: expected a non-empty {what}; got {_describe(x)}")
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if is_concrete(x):
        if getattr(x, "is_fully_addressable", True):
            # NumPy, not jnp: inside a jit trace even a concrete array's jnp ops would be staged.
            bad = int(np.sum(~np.isfinite(np.asarray(x))))
        else:
            # Spread over several processes (jax.distributed): np.asarray cannot fetch it, so
            # count on the devices and fetch only the count.
            with jax.ensure_compile_time_eval():
                bad = int(jnp.sum(~jnp.isfinite(x)))
        if bad:
            raise ValueError(
                f"argument `{name}`: expected finite values; got {bad} NaN/inf entries in {_describe(x)}"
            )
    return x


def same(name_a: str, size_a: int, name_b: str, size_b: int, what: str) -> None:
    """Raise unless two sizes that must agree do."""
    if size_a != size_b:
        raise ValueError(
            f"argument `{name_b}`: expected {what} {size_a} to match `{name_a}`; got {size_b}"
        )


def targets(name: str, y, n: int, phi_name: str):
    """Targets of shape (N,) or (N, K) whose N matches the feature rows."""
    y = array(name, y, ndim=(1, 2), what="(N,) or (N, K) target array")
    same(phi_name, n, name, y.shape[0], "number of rows")
    return y


def theta(name: str, t, m: int, y, phi_name: str):
    """Parameters of shape (M,) or (M, K), matching the feature width and the targets."""
    t = array(name, t, ndim=(1, 2), what="(M,) or (M, K) parameter array")
    same(phi_name, m, name, t.shape[0], "feature width M =")
    if t.shape[1:] != y.shape[1:]:
        raise ValueError(
            f"argument `{name}`: expected trailing shape {tuple(y.shape[1:])} to match the "
            f"targets; got {_describe(t)}"
        )
    return t


def nonnegative(name: str, value) -> None:
    if is_concrete(value) and not (np.isfinite(float(value)) and float(value) >= 0.0):
        raise ValueError(f"argument `{name}`: expected a finite number >= 0; got {value!r}")


def positive(name: str, value) -> None:
    if is_concrete(value) and not (np.isfinite(float(value)) and float(value) > 0.0):
        raise ValueError(f"argument `{name}`: expected a finite number > 0; got {value!r}")


def positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"argument `{name}`: expected an integer >= 1; got {value!r}")
    return int(value)


def choice(name: str, value, options) -> None:
    if value not in options:
        raise ValueError(f"argument `{name}`: expected one of {sorted(options)}; got {value!r}")


def forget_set(forget, n: int, *, name: str = "forget") -> np.ndarray:
    """The one validator of a forget set: a boolean mask of length N or an index array.

    Returns the boolean NumPy mask (True = forget). The forget set fixes the shapes of D_r and
    D_f, so it must be concrete. Refused, naming the argument: a traced value, a wrong rank or
    dtype, a mask of the wrong length, indices outside [0, N) (negative ones included: no
    wrap-around), repeated indices, an empty set and a total one (nothing retained).
    """
    if isinstance(forget, jax.core.Tracer):
        raise ValueError(
            f"argument `{name}`: expected a concrete mask or index array (it fixes the shapes of "
            "D_r and D_f); got a traced value. Close over it instead of passing it through jit/vmap"
        )
    f = np.asarray(forget)
    if f.ndim != 1:
        raise ValueError(f"argument `{name}`: expected a 1-D boolean mask or index array; got {_describe(f)}")
    if f.dtype == bool:
        if f.shape[0] != n:
            raise ValueError(
                f"argument `{name}`: expected a boolean mask of length N = {n}; got length {f.shape[0]}"
            )
        mask = f.copy()
    elif np.issubdtype(f.dtype, np.integer) or f.size == 0:
        f = f.astype(np.int64)
        if f.size and (f.min() < 0 or f.max() >= n):
            raise ValueError(
                f"argument `{name}`: expected indices in [0, {n}) (no negative indices); "
                f"got min {f.min()}, max {f.max()}"
            )
        uniq, counts = np.unique(f, return_counts=True)
        if np.any(counts > 1):
            raise ValueError(
                f"argument `{name}`: expected unique indices; got repeats {uniq[counts > 1].tolist()[:10]}"
            )
        mask = np.zeros(n, dtype=bool)
        mask[f] = True
    else:
        raise ValueError(f"argument `{name}`: expected a boolean mask or integer indices; got {_describe(f)}")
    if not mask.any():
        raise ValueError(f"argument `{name}`: expected a non-empty forget set; got no rows to forget")
    if mask.all():
        raise ValueError(
            f"argument `{name}`: expected at least one retained row; got all {n} rows forgotten"
        )
    return mask


def forget_sets(forget, n: int, *, name: str = "forget"):
    """A batch of forget sets: a boolean (B, N) array of masks (traced values allowed, so that
    batches of forget sets can be vmapped); each row must be non-empty and not total when
    concrete."""
    f = forget if hasattr(forget, "shape") else np.asarray(forget)
    if f.ndim != 2 or f.shape[1] != n or f.dtype != bool:
        raise ValueError(
            f"argument `{name}`: expected a boolean (B, N = {n}) array of forget masks; got {_describe(f)}"
        )
    if is_concrete(f):
        counts = np.asarray(f).sum(axis=1)
        if np.any(counts == 0) or np.any(counts == n):
            bad = np.flatnonzero((counts == 0) | (counts == n)).tolist()[:10]
            raise ValueError(
                f"argument `{name}`: expected every mask to forget at least one row and retain at "
                f"least one; got empty or total masks at rows {bad}"
            )
    return jnp.asarray(f)


def retain_mask(retain, n: int, *, name: str = "retain"):
    """A boolean (N,) mask of the rows to use (traced values allowed)."""
    r = retain if hasattr(retain, "shape") else np.asarray(retain)
    if r.shape != (n,) or r.dtype != bool:
        raise ValueError(f"argument `{name}`: expected a boolean mask of shape ({n},); got {_describe(r)}")
    return jnp.asarray(r)

r"""Row sharding of feature matrices over several devices (``jax.sharding``).

The closed forms (:func:`muso_jax.min_norm_solution`, :func:`muso_jax.muso_labels`,
:func:`muso_jax.projector`) and :func:`muso_jax.sgd` take row-sharded inputs as they are: place
``Phi`` and ``y`` with :func:`shard_rows`, ``theta0`` with :func:`replicate`, and XLA's SPMD
partitioner splits the work over the devices. Results match one device up to the order of the
sums that the split spreads across devices (measured in float64: below 1e-15 relative at
N = 64, 2e-14 at N = 2000, M = 8000; ``tests/_sharded_checks.py``); not bit-identical.

Per-device memory for ``Phi`` is not divided: the compiled programs gather the whole ``Phi``
on every device (the closed forms to form the Gram, :func:`muso_jax.sgd` once per check). What
the split divides is the Gram's arithmetic. See ``docs/multi_device.md``.

Two decisions:

* The mesh axis ``"rows"`` is of type ``Auto``. ``jax.make_mesh`` defaults to ``Explicit``
  axes in jax 0.10.2, where sharding is part of the array type and ``Phi @ Phi.T`` on a
  row-sharded ``Phi`` is a ``ShardingTypeError`` (the result would be sharded twice over
  ``"rows"``); the library's kernels carry no ``out_sharding`` annotations, so they need ``Auto``.
* A row count that the devices do not divide is an error, not padded. Zero rows plus a
  ``retain=`` mask would give the same :func:`min_norm_solution`, but :func:`muso_labels` and
  :func:`projector` have no mask (with ridge 0, zero rows make the Gram singular and send them
  to their slower SVD fallback), and :func:`sgd` would draw its per-epoch permutation over the padded count, a
  different sample order from the one-device run. Padding stays the caller's explicit choice.
"""

from __future__ import annotations

import functools

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

ROWS = "rows"


def row_mesh(devices=None) -> Mesh:
    """A 1-D mesh with one ``Auto`` axis ``"rows"`` over ``devices`` (default ``jax.devices()``,
    all devices of all processes)."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("argument `devices`: expected at least one device; got an empty sequence")
    return jax.make_mesh((len(devices),), (ROWS,), axis_types=(AxisType.Auto,), devices=devices)


def _row_shards(mesh, name: str = "mesh") -> int:
    """Number of shards along ``"rows"``, after checking that ``mesh`` can carry them."""
    if not isinstance(mesh, Mesh):
        raise ValueError(f"argument `{name}`: expected a jax.sharding.Mesh; got {type(mesh).__name__}")
    if ROWS not in mesh.axis_names:
        raise ValueError(
            f"argument `{name}`: expected a mesh axis named {ROWS!r} (see row_mesh); "
            f"got axes {tuple(mesh.axis_names)}"
        )
    kind = mesh.axis_types[mesh.axis_names.index(ROWS)]
    if kind != AxisType.Auto:
        raise ValueError(
            f"argument `{name}`: expected axis {ROWS!r} of type Auto (the closed forms and sgd carry "
            f"no explicit output shardings); got {kind}. Build the mesh with row_mesh() or "
            f"jax.make_mesh(..., axis_types=(jax.sharding.AxisType.Auto,))"
        )
    return mesh.shape[ROWS]


def _check_rows(name: str, x, shards: int, where: str) -> None:
    if np.ndim(x) < 1:
        raise ValueError(f"argument `{name}`: expected an array with a leading row axis; got a scalar")
    n = np.shape(x)[0]
    if n % shards:
        raise ValueError(
            f"argument `{name}`: expected a row count divisible by the {shards} {where}; got {n} "
            f"rows. Drop rows down to {n - n % shards}, or pad zero rows up to {n - n % shards + shards} "
            f"and pass a `retain=` mask to min_norm_solution / sgd"
        )


def shard_rows(x, mesh: Mesh, *, name: str = "x") -> jax.Array:
    """``x`` (rows first: ``Phi``, ``y``) split by rows over the ``"rows"`` axis of ``mesh``.

    ``name`` is the argument named in errors. Every process must pass the same full ``x``; for
    data that each process loads itself, use :func:`from_local_rows`.
    """
    shards = _row_shards(mesh)
    _check_rows(name, x, shards, f"devices of mesh axis {ROWS!r}")
    return jax.device_put(x, NamedSharding(mesh, P(ROWS)))


def replicate(x, mesh: Mesh) -> jax.Array:
    """``x`` (or a pytree of arrays, e.g. ``theta0``) copied whole to every device of ``mesh``."""
    _row_shards(mesh)
    return jax.device_put(x, NamedSharding(mesh, P()))


def from_local_rows(x_local, mesh: Mesh, *, name: str = "x") -> jax.Array:
    """The global row-sharded array whose rows on this process's devices are ``x_local``.

    For several processes (``jax.distributed.initialize``): each process loads its own block
    of rows and passes it here (``jax.make_array_from_process_local_data``). The global row
    count is ``len(x_local)`` times the number of processes that hold row shards. Where a
    block lands follows the mesh's device order (process 0 first when the devices are listed
    by process, as ``jax.devices()`` lists them on CPU); check it with
    ``[s.index for s in out.addressable_shards]``. With one process it equals :func:`shard_rows`.
    """
    shards = _row_shards(mesh)
    axis = mesh.axis_names.index(ROWS)
    here = {d.id for d in mesh.local_devices}
    local_shards = len({idx[axis] for idx, d in np.ndenumerate(mesh.devices) if d.id in here})
    if local_shards == 0:
        raise ValueError(f"argument `mesh`: expected some devices of process {jax.process_index()}; got none")
    _check_rows(name, x_local, local_shards, f"row shards on this process's devices")
    global_shape = (np.shape(x_local)[0] * shards // local_shards,) + tuple(np.shape(x_local)[1:])
    return jax.make_array_from_process_local_data(NamedSharding(mesh, P(ROWS)), x_local, global_shape)


def gram(phi, mesh: Mesh) -> jax.Array:
    r"""The Gram matrix ``G = Phi Phi^T`` (N x N) of a row-sharded ``Phi`` (N, M), row-sharded.

    .. math::
        G_{[i]} = \Phi_{[i]} \Phi^\top \quad \text{on the device holding row block } i

    One all-gather of ``Phi`` (every device then holds all of it, N x M), no reduction across
    devices, so each entry is one device's dot product. XLA's own partitioning of
    ``phi @ phi.T`` also returns ``G`` sharded by rows; this states it, via ``jax.shard_map``.
    The Gram of MUSO's closed forms (arXiv 2410.08557) without the ridge.
    """
    # Shape checks only: the finiteness check of _checks.array fetches Phi to the host, which
    # fails for an array spread over several processes (and a NaN simply propagates into G).
    phi = phi if hasattr(phi, "shape") else np.asarray(phi)
    if phi.ndim != 2:
        raise ValueError(f"argument `phi`: expected a (N, M) feature matrix (2-D); got shape {np.shape(phi)}")
    _check_rows("phi", phi, _row_shards(mesh), f"devices of mesh axis {ROWS!r}")
    return _gram(phi, mesh)


@functools.partial(jax.jit, static_argnames="mesh")
def _gram(phi, mesh):
    def block(phi_i):
        return phi_i @ jax.lax.all_gather(phi_i, ROWS, tiled=True).T

    return jax.shard_map(block, mesh=mesh, in_specs=P(ROWS), out_specs=P(ROWS))(phi)

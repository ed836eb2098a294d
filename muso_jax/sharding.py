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
    all devices of all processes).

    Parameters
    ----------
    devices : sequence of jax.Device, optional
        The devices, in the order row blocks are laid out on them.

    Returns
    -------
    jax.sharding.Mesh
        Of shape ``{"rows": len(devices)}``.

    Raises
    ------
    ValueError
        If ``devices`` is empty.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from muso_jax import sharding
    >>> mesh = sharding.row_mesh(jax.devices()[:2])  # two devices where there are two
    >>> mesh.axis_names, mesh.shape["rows"] == len(jax.devices()[:2])
    (('rows',), True)
    >>> sharding.row_mesh([])
    Traceback (most recent call last):
    ...
    ValueError: argument `devices`: expected at least one device; got an empty sequence
    """
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

    Parameters
    ----------
    x : (N, ...) array
        Rows first; N divisible by the number of devices of ``mesh``.
    mesh : jax.sharding.Mesh
        With an ``Auto`` axis ``"rows"`` (:func:`row_mesh`).
    name : str, optional
        The argument named in errors.

    Returns
    -------
    jax.Array
        ``x``, with sharding ``NamedSharding(mesh, P("rows"))``.

    Raises
    ------
    ValueError
        If ``mesh`` has no ``Auto`` axis ``"rows"`` or the devices do not divide N.

    Examples
    --------
    The closed forms take sharded inputs as they are:

    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import sharding
    >>> mesh = sharding.row_mesh(jax.devices()[:2])  # two devices where there are two
    >>> from muso_jax import closed_form
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> y = jax.random.normal(jax.random.key(1), (6,))
    >>> theta0 = jnp.zeros(10)
    >>> phi_s, y_s = sharding.shard_rows(phi, mesh, name="phi"), sharding.shard_rows(y, mesh, name="y")
    >>> phi_s.sharding.spec == jax.sharding.PartitionSpec("rows")
    True
    >>> theta = closed_form.min_norm_solution(phi_s, y_s, sharding.replicate(theta0, mesh))
    >>> np.allclose(theta, closed_form.min_norm_solution(phi, y, theta0), atol=1e-4)
    True
    >>> explicit = jax.make_mesh((1,), ("rows",), axis_types=(jax.sharding.AxisType.Explicit,),
    ...                          devices=jax.devices()[:1])
    >>> sharding.shard_rows(phi, explicit)
    Traceback (most recent call last):
    ...
    ValueError: argument `mesh`: expected axis 'rows' of type Auto ...
    """
    shards = _row_shards(mesh)
    _check_rows(name, x, shards, f"devices of mesh axis {ROWS!r}")
    return jax.device_put(x, NamedSharding(mesh, P(ROWS)))


def replicate(x, mesh: Mesh) -> jax.Array:
    """``x`` (or a pytree of arrays, e.g. ``theta0``) copied whole to every device of ``mesh``.

    Parameters
    ----------
    x : array or pytree of arrays
        What to copy.
    mesh : jax.sharding.Mesh
        With an ``Auto`` axis ``"rows"`` (:func:`row_mesh`).

    Returns
    -------
    jax.Array or pytree
        ``x`` with sharding ``NamedSharding(mesh, P())``.

    Raises
    ------
    ValueError
        If ``mesh`` has no ``Auto`` axis ``"rows"``.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from muso_jax import sharding
    >>> mesh = sharding.row_mesh(jax.devices()[:2])  # two devices where there are two
    >>> theta0 = sharding.replicate(jnp.zeros(10), mesh)
    >>> theta0.sharding.is_fully_replicated, len(theta0.sharding.device_set) == len(mesh.devices)
    (True, True)
    """
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

    Parameters
    ----------
    x_local : (n, ...) array
        This process's rows; n divisible by the number of row shards on its devices.
    mesh : jax.sharding.Mesh
        With an ``Auto`` axis ``"rows"`` (:func:`row_mesh`).
    name : str, optional
        The argument named in errors.

    Returns
    -------
    jax.Array
        The global array, of shape (n * shards / local shards, ...), sharded by rows.

    Raises
    ------
    ValueError
        If ``mesh`` has no ``Auto`` axis ``"rows"`` or none of this process's devices, or the
        local shards do not divide n.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from muso_jax import sharding
    >>> mesh = sharding.row_mesh(jax.devices()[:2])  # two devices where there are two
    >>> x = jnp.arange(8.0).reshape(4, 2)
    >>> out = sharding.from_local_rows(x, mesh)  # one process: all rows are local
    >>> out.shape, bool((out == sharding.shard_rows(x, mesh)).all())
    ((4, 2), True)
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

    Parameters
    ----------
    phi : (N, M) array
        Features, N divisible by the devices of ``mesh`` (ideally already :func:`shard_rows`).
    mesh : jax.sharding.Mesh
        With an ``Auto`` axis ``"rows"`` (:func:`row_mesh`).

    Returns
    -------
    jax.Array
        ``G``, of shape (N, N), sharded by rows.

    Raises
    ------
    ValueError
        If ``phi`` is not 2-D, ``mesh`` has no ``Auto`` axis ``"rows"`` or the devices do not
        divide N.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> from muso_jax import sharding
    >>> mesh = sharding.row_mesh(jax.devices()[:2])  # two devices where there are two
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> G = sharding.gram(sharding.shard_rows(phi, mesh), mesh)
    >>> G.shape, G.sharding.spec == jax.sharding.PartitionSpec("rows")
    ((6, 6), True)
    >>> np.allclose(G, phi @ phi.T)
    True
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

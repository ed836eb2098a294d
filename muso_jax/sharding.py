r"""Row sharding of feature matrices over several devices (``jax.sharding``).

Two ways to use a row-sharded ``Phi`` (placed with :func:`shard_rows`, ``theta0`` with
:func:`replicate`):

* **Phi never whole on one device**: :func:`gram` (a ring of ``lax.ppermute`` inside
  ``jax.shard_map``), :func:`sharded_min_norm_solution`, :func:`sharded_muso_labels` and
  :func:`sharded_sgd` (the dual form on the ring Gram). Per device they hold a quarter of Phi on
  four devices (its row block, plus column chunks of another block in flight) and N x N
  matrices: the N x N solve runs replicated on every device. Measured with XLA's memory
  analysis at N = 256, M = 8192 on four devices: 0.31-0.35 of the one-device footprint
  (``tests/test_sharding.py``). This is the way for a Phi that does not fit on one device.
* **The library's own functions on sharded inputs**: :func:`muso_jax.min_norm_solution`,
  :func:`muso_jax.muso_labels`, :func:`muso_jax.projector` and :func:`muso_jax.sgd` take
  row-sharded inputs as they are and XLA's SPMD partitioner splits them; but their compiled
  programs gather the whole Phi on every device (the closed forms to form the Gram, the primal
  :func:`muso_jax.sgd` at every check), so per-device memory for Phi is not divided.

Both match one device up to the order of the sums that the split spreads across devices
(measured in float64: below 1e-15 relative at N = 64; 2e-14 at N = 2000, M = 8000;
``tests/_sharded_checks.py``); not bit-identical. See ``docs/multi_device.md``.

Two decisions:

* The mesh axis ``"rows"`` is of type ``Auto``. ``jax.make_mesh`` defaults to ``Explicit``
  axes in jax 0.10.2, where sharding is part of the array type and ``Phi @ Phi.T`` on a
  row-sharded ``Phi`` is a ``ShardingTypeError`` (the result would be sharded twice over
  ``"rows"``); the library's kernels carry no ``out_sharding`` annotations, so they need ``Auto``.
* A row count that the devices do not divide is an error, not padded. Zero rows plus a
  ``retain=`` mask would give the same :func:`muso_jax.min_norm_solution`, but
  :func:`muso_jax.muso_labels` and :func:`muso_jax.projector` have no mask (with ridge 0, zero
  rows make the Gram singular and send them to their slower SVD fallback), and
  :func:`muso_jax.sgd` would draw its per-epoch permutation over the padded count, a
  different sample order from the one-device run. Padding stays the caller's explicit choice.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from muso_jax import _checks

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


def _check_sharded_phi(name, phi, mesh):
    """Shape checks only: the finiteness check of _checks.array fetches Phi to the host, which
    fails for an array spread over several processes (and a NaN simply propagates)."""
    phi = phi if hasattr(phi, "shape") else np.asarray(phi)
    if phi.ndim != 2:
        raise ValueError(f"argument `{name}`: expected a (N, M) feature matrix (2-D); got shape {np.shape(phi)}")
    _check_rows(name, phi, _row_shards(mesh), f"devices of mesh axis {ROWS!r}")
    return phi


def gram(phi, mesh: Mesh) -> jax.Array:
    r"""The Gram matrix ``G = Phi Phi^T`` (N x N) of a row-sharded ``Phi`` (N, M), row-sharded,
    without Phi ever being whole on one device.

    .. math::
        G_{[i][j]} = \Phi_{[i]} \Phi_{[j]}^\top, \qquad j = i, i - 1, \dots \ (\mathrm{mod}\ D)

    A ring: device i keeps its row block :math:`\Phi_{[i]}` and a travelling block that moves one
    device along at each of the D - 1 steps (``lax.ppermute``), so it holds two row blocks
    (2 N M / D numbers) and its block row of G (N^2 / D), never all of Phi. Each entry is one
    device's dot product of two rows, as on one device. The Gram of MUSO's closed forms
    (arXiv 2410.08557) without the ridge.

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
    phi = _check_sharded_phi("phi", phi, mesh)
    return _gram(phi, mesh)


# The ring of gram() passes column chunks of a row block, so that a device holds its own block
# plus two chunks in flight (send and receive), not two whole blocks.
RING_CHUNKS = 8


def _ring_gram(phi, mesh):
    """The ring of :func:`gram`, for use inside a jitted program."""
    d = mesh.shape[ROWS]
    m = phi.shape[1]
    chunks = max(c for c in range(1, RING_CHUNKS + 1) if m % c == 0)  # equal widths, for a scan
    width = m // chunks
    ring = [(a, (a + 1) % d) for a in range(d)]

    def block(phi_i):
        i = jax.lax.axis_index(ROWS)
        nb = phi_i.shape[0]

        def chunk(blocks, q):  # a scan over the chunks: one chunk in flight at a time
            own = jax.lax.dynamic_slice_in_dim(phi_i, q * width, width, axis=1)
            travelling, out = own, []
            for k in range(d):  # travelling holds these columns of row block (i - k) mod d
                out.append(blocks[k] + own @ travelling.T)
                if k < d - 1:
                    travelling = jax.lax.ppermute(travelling, ROWS, ring)
            return out, None

        # zeros that vary over the devices, as the carry they become (shard_map's type check)
        zeros = [jax.lax.pcast(jnp.zeros((nb, nb), phi_i.dtype), (ROWS,), to="varying") for _ in range(d)]
        blocks, _ = jax.lax.scan(chunk, zeros, jnp.arange(chunks))  # blocks[k]: G_[i][(i - k) mod d]
        # Column block q of the reversed concatenation holds k = d - 1 - q, i.e. row block
        # (q + i + 1) mod d: rolling by (i + 1) blocks puts every block in its place.
        return jnp.roll(jnp.concatenate(blocks[::-1], axis=1), (i + 1) * nb, axis=1)

    return jax.shard_map(block, mesh=mesh, in_specs=P(ROWS), out_specs=P(ROWS))(phi)


def _transpose_times(alpha, phi, mesh):
    """``Phi^T alpha`` (M[, K]) replicated, as a sum over devices of their blocks' products."""
    def block(alpha_i, phi_i):
        return jax.lax.psum((alpha_i.T @ phi_i).T, ROWS)

    return jax.shard_map(block, mesh=mesh, in_specs=(P(ROWS), P(ROWS)), out_specs=P())(alpha, phi)


@functools.partial(jax.jit, static_argnames="mesh")
def _gram(phi, mesh):
    return _ring_gram(phi, mesh)


@functools.partial(jax.jit, static_argnames="mesh")
def _min_norm(phi, y, theta0, ridge, retain, mesh):
    from muso_jax import _linalg
    from muso_jax.closed_form import _regularize

    G = _regularize(_ring_gram(phi, mesh), ridge, retain)
    r = y - phi @ theta0  # row-sharded: each device its rows
    if retain is not None:
        r = r * retain.astype(r.dtype).reshape((-1,) + (1,) * (r.ndim - 1))
    # The N x N solve on every device (G is small next to Phi; one LAPACK call, no vmap).
    replicated = NamedSharding(mesh, P())
    alpha = _linalg.solve(jax.lax.with_sharding_constraint(G, replicated),
                          jax.lax.with_sharding_constraint(r, replicated))
    alpha = jax.lax.with_sharding_constraint(alpha, NamedSharding(mesh, P(ROWS)))
    return theta0 + _transpose_times(alpha, phi, mesh)


def sharded_min_norm_solution(phi, y, theta0, mesh: Mesh, *, ridge=0.0, retain=None) -> jax.Array:
    r""":func:`muso_jax.min_norm_solution` of a row-sharded ``Phi`` that is never gathered.

    .. math::
        \theta = \theta_0 + \Phi^\top (\Phi\Phi^\top + \epsilon I)^{-1} (y - \Phi\theta_0)

    (MUSO, arXiv 2410.08557, implicit-bias lemma). The Gram by :func:`gram`'s ring; the N x N
    solve on the replicated Gram (N^2 numbers per device: the price of not splitting the
    factorization); :math:`\Phi^\top\alpha` as each device's block product summed over the
    devices (``psum``). Per device, Phi costs N M / D, not N M.

    Parameters
    ----------
    phi : (N, M) array
        Features, row-sharded (:func:`shard_rows`), N divisible by the devices of ``mesh``.
    y : (N,) or (N, K) array
        Targets, row-sharded like ``phi``.
    theta0 : (M,) or (M, K) array
        Start (:func:`replicate`).
    mesh : jax.sharding.Mesh
        With an ``Auto`` axis ``"rows"`` (:func:`row_mesh`).
    ridge : float, optional
        :math:`\epsilon \ge 0`.
    retain : (N,) bool array, optional
        Rows to use, as in :func:`muso_jax.min_norm_solution`.

    Returns
    -------
    jax.Array
        Shaped like ``theta0``, replicated.

    Raises
    ------
    ValueError
        For a bad shape (naming the argument), a negative ridge, or a mesh or row count that
        does not fit.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> import muso_jax as mj
    >>> from muso_jax import sharding
    >>> mesh = sharding.row_mesh(jax.devices()[:2])  # two devices where there are two
    >>> phi = jax.random.normal(jax.random.key(0), (6, 10))
    >>> y = jax.random.normal(jax.random.key(1), (6,))
    >>> theta0 = jax.random.normal(jax.random.key(2), (10,))
    >>> theta = sharding.sharded_min_norm_solution(sharding.shard_rows(phi, mesh), sharding.shard_rows(y, mesh),
    ...                                    sharding.replicate(theta0, mesh), mesh)
    >>> np.allclose(theta, mj.min_norm_solution(phi, y, theta0), atol=1e-6)
    True
    >>> sharding.sharded_min_norm_solution(phi, y[:4], theta0, mesh)
    Traceback (most recent call last):
    ...
    ValueError: argument `y`: expected 6 rows (the rows of `phi`); got shape (4,)
    """
    phi = _check_sharded_phi("phi", phi, mesh)
    y, theta0 = _targets_and_start(phi, y, theta0)
    _nonnegative_ridge(ridge)
    if retain is not None:
        retain = _checks.retain_mask(retain, phi.shape[0])
    dtype = jnp.result_type(phi, y, theta0)
    return _min_norm(phi.astype(dtype), y.astype(dtype), theta0.astype(dtype), jnp.asarray(ridge, dtype), retain,
                     mesh)


def _targets_and_start(phi, y, theta0, phi_name="phi", y_name="y"):
    n, m = phi.shape
    if np.ndim(y) not in (1, 2) or np.shape(y)[0] != n:
        raise ValueError(f"argument `{y_name}`: expected {n} rows (the rows of `{phi_name}`); got shape {np.shape(y)}")
    if np.shape(theta0)[:1] != (m,) or np.shape(theta0)[1:] != np.shape(y)[1:]:
        raise ValueError(f"argument `theta0`: expected shape {(m,) + tuple(np.shape(y)[1:])} (M of `{phi_name}`, "
                         f"K of `{y_name}`); got {np.shape(theta0)}")
    return jnp.asarray(y), jnp.asarray(theta0)


def _nonnegative_ridge(ridge):
    if not (np.ndim(ridge) == 0 and float(ridge) >= 0):
        raise ValueError(f"argument `ridge`: expected a number >= 0; got {ridge!r}")


def sharded_muso_labels(phi_r, y_r, phi_f, theta0, mesh: Mesh, *, ridge=0.0) -> jax.Array:
    r""":func:`muso_jax.muso_labels` of row-sharded ``Phi_r`` and ``Phi_f``, neither gathered.

    .. math::
        \hat y_f = \Phi_f \theta_r, \qquad
        \theta_r = \theta_0 + \Phi_r^\top (\Phi_r\Phi_r^\top + \epsilon I)^{-1}(y_r - \Phi_r\theta_0)

    (MUSO, arXiv 2410.08557, relabeling theorem), with :math:`\theta_r` by
    :func:`sharded_min_norm_solution` (replicated) and each device's rows of :math:`\Phi_f` times it.

    Parameters
    ----------
    phi_r : (N_r, M) array
        Retained features, row-sharded.
    y_r : (N_r,) or (N_r, K) array
        Their targets, row-sharded.
    phi_f : (N_f, M) array
        Forget features, row-sharded (N_f divisible by the devices too).
    theta0 : (M,) or (M, K) array
        Start, replicated.
    mesh : jax.sharding.Mesh
        With an ``Auto`` axis ``"rows"``.
    ridge : float, optional
        :math:`\epsilon \ge 0` of the solve.

    Returns
    -------
    jax.Array
        (N_f,) or (N_f, K), sharded like the rows of ``phi_f``.

    Raises
    ------
    ValueError
        For a bad shape (naming the argument) or a mesh or row count that does not fit.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> import muso_jax as mj
    >>> from muso_jax import sharding
    >>> mesh = sharding.row_mesh(jax.devices()[:2])  # two devices where there are two
    >>> phi = jax.random.normal(jax.random.key(0), (8, 12))
    >>> y = jax.random.normal(jax.random.key(1), (8,))
    >>> theta0 = jax.random.normal(jax.random.key(2), (12,))
    >>> s = lambda a: sharding.shard_rows(a, mesh)
    >>> labels = sharding.sharded_muso_labels(s(phi[:6]), s(y[:6]), s(phi[6:]), sharding.replicate(theta0, mesh), mesh)
    >>> np.allclose(labels, mj.muso_labels(phi[:6], y[:6], phi[6:], theta0), atol=1e-6)
    True
    """
    phi_r = _check_sharded_phi("phi_r", phi_r, mesh)
    phi_f = _check_sharded_phi("phi_f", phi_f, mesh)
    if phi_f.shape[1] != phi_r.shape[1]:
        raise ValueError(f"argument `phi_f`: expected {phi_r.shape[1]} columns (the feature width M of `phi_r`); "
                         f"got shape {tuple(phi_f.shape)}")
    theta_r = sharded_min_norm_solution(phi_r, y_r, theta0, mesh, ridge=ridge)
    return _labels(phi_f.astype(theta_r.dtype), theta_r)


@jax.jit
def _labels(phi_f, theta_r):
    return phi_f @ theta_r


def sharded_sgd(key, phi, y, theta0, mesh: Mesh, **kwargs):
    r""":func:`muso_jax.sgd` on a row-sharded ``Phi`` in the dual form, Phi never gathered.

    .. math::
        \theta_t = \theta_0 + \Phi^\top \alpha_t, \qquad
        \alpha_B \leftarrow \alpha_B - \eta_t (c_B + G_{B\cdot}\, \alpha), \quad c = \Phi\theta_0 - y

    The Gram by :func:`gram`'s ring, replicated (N^2 per device); the steps then touch only G
    and alpha, and Phi is read, block by block on its own device, for c, for theta at the
    checks that need it (``monitor``, ``stop``) and at the end (a ``psum`` of the blocks'
    products). The primal form would slice rows of Phi at every step, which XLA serves by
    gathering Phi on every device. The iterates equal the one-device run's to round-off.

    Parameters
    ----------
    key : PRNG key or None
        As :func:`muso_jax.sgd`.
    phi : (N, M) array
        Features, row-sharded.
    y : (N,) or (N, K) array
        Targets, row-sharded.
    theta0 : (M,) or (M, K) array
        Start, replicated.
    mesh : jax.sharding.Mesh
        With an ``Auto`` axis ``"rows"``.
    **kwargs
        The options of :func:`muso_jax.sgd` (``form`` and ``gram`` are set here).

    Returns
    -------
    theta : jax.Array
        Replicated.
    info : SGDInfo
        As :func:`muso_jax.sgd`, with ``alpha``.

    Raises
    ------
    ValueError
        As :func:`muso_jax.sgd`, and for ``form="primal"`` or a ``gram`` passed in.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> import numpy as np
    >>> import muso_jax as mj
    >>> from muso_jax import sharding
    >>> mesh = sharding.row_mesh(jax.devices()[:2])  # two devices where there are two
    >>> phi = jax.random.normal(jax.random.key(0), (6, 16))
    >>> phi = phi / jnp.linalg.norm(phi, axis=1, keepdims=True)  # unit rows: lr = 1 is stable
    >>> y = jnp.sign(jax.random.normal(jax.random.key(1), (6,)))
    >>> theta0 = jax.random.normal(jax.random.key(2), (16,))
    >>> theta, info = sharding.sharded_sgd(jax.random.key(3), sharding.shard_rows(phi, mesh), sharding.shard_rows(y, mesh),
    ...                            sharding.replicate(theta0, mesh), mesh, tol=1e-8)
    >>> one, _ = mj.sgd(jax.random.key(3), phi, y, theta0, tol=1e-8, form="dual")
    >>> bool(info.converged), np.allclose(theta, one, atol=1e-12)
    (True, True)
    """
    for name in ("form", "gram"):
        if name in kwargs and not (name == "form" and kwargs[name] in ("dual", "auto")):
            raise ValueError(f"argument `{name}`: sharding.sharded_sgd runs the dual form with the ring Gram; got "
                             f"{name}={kwargs[name]!r}")
    kwargs.pop("form", None)
    phi = _check_sharded_phi("phi", phi, mesh)
    G = jax.device_put(gram(phi, mesh), NamedSharding(mesh, P()))
    from muso_jax.dynamics import sgd as _sgd

    return _sgd(key, phi, y, theta0, form="dual", gram=G, **kwargs)

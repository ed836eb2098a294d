"""Trained networks cached on disk, keyed by what they are trained from, with resumable training.

An entry is a folder named by the SHA-256 of its key: the caller's ``description`` (a JSON-able
dict), the training configuration, and fingerprints (:func:`fingerprint`: SHA-256 of the shape,
dtype and bytes) of the training arrays, the initial parameters and the PRNG key. A data file
replaced at the same path therefore gives a new entry, trained afresh; a path never enters the key.

Files of an entry, each written atomically (:mod:`muso_jax.io.files`):

* ``config.json``: the key, written first;
* ``checkpoint.npz`` (net, optimizer state, epoch) and ``checkpoint.json`` (its SHA-256, the
  epoch, the training seconds so far), after every epoch while training runs, so an
  interrupted run resumes there;
* ``final.npz``: the trained network, then ``manifest.json`` (the SHA-256 of ``final.npz``
  and the training seconds). An entry is complete when its manifest exists.

Damage is a miss, never an error: a ``config.json`` that is missing, unreadable or holds
another key, a ``manifest.json`` that is unreadable, a ``final.npz`` missing or not matching its
SHA-256 or its model, all raise a :class:`CacheWarning` naming the file, and the network is
trained again (the entry's files are replaced). A checkpoint that fails the same checks is
dropped with a warning and training restarts from epoch 0. Opening a :class:`NetworkCache`
removes the temporary files that killed writers left (:func:`muso_jax.io.files.clean_stale_temps`).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import warnings
from pathlib import Path

import jax
import numpy as np

from muso_jax.io.files import check_writable, clean_stale_temps, write_bytes
from muso_jax.io.reports import plain, write_json

FORMAT = 3  # bumped when an entry's layout or the engine's batch order changes: older entries become misses


class CacheWarning(UserWarning):
    """A cache entry was damaged and is being trained again."""


def fingerprint(*arrays) -> str:
    """SHA-256 (hex) over the dtype, shape and bytes of each array, in order.

    Parameters
    ----------
    *arrays : array_like
        NumPy or JAX arrays (or anything ``np.asarray`` takes).

    Returns
    -------
    str
        64 hex digits.

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax.io import cache
    >>> a = np.zeros(3)
    >>> len(cache.fingerprint(a)), cache.fingerprint(a) == cache.fingerprint(np.zeros(3))
    (64, True)
    >>> cache.fingerprint(a) == cache.fingerprint(a.astype(np.float32))  # the dtype counts
    False
    >>> cache.fingerprint(a) == cache.fingerprint(a.reshape(1, 3))  # and the shape
    False
    """
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype.str}{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def file_sha256(path) -> str:
    """SHA-256 (hex) of a file's bytes, read in blocks of 1 MiB.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    str
        64 hex digits.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from muso_jax.io import cache, files
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     digest = cache.file_sha256(files.write_bytes(Path(folder, "abc.txt"), b"abc"))
    >>> digest
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save(path, tree) -> str:
    """Write the leaves of a pytree (a Net, an optimizer state, ...) atomically to ``path``
    as an ``.npz``; returns the SHA-256 of the file written.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file.
    tree : pytree of arrays
        What to save (its leaves, in ``jax.tree.leaves`` order).

    Returns
    -------
    str
        The SHA-256 (hex) of the bytes written.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import jax.numpy as jnp
    >>> from muso_jax.io import cache
    >>> tree = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     sha = cache.save(Path(folder, "net.npz"), tree)
    ...     same = sha == cache.file_sha256(Path(folder, "net.npz"))
    >>> len(sha), same
    (64, True)
    """
    buffer = io.BytesIO()
    np.savez(buffer, *[np.asarray(leaf) for leaf in jax.tree.leaves(tree)])
    data = buffer.getvalue()
    write_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def load(path, like):
    """Read leaves saved by :func:`save` into the structure of ``like``; refuse any mismatch
    with a ``ValueError`` naming the file.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by :func:`save`.
    like : pytree of arrays
        A template of the structure, leaf shapes and dtypes.

    Returns
    -------
    pytree of jax.Array
        The saved leaves in the structure of ``like``.

    Raises
    ------
    ValueError
        If the file cannot be read or does not match ``like``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import jax.numpy as jnp
    >>> from muso_jax.io import cache
    >>> tree = {"w": jnp.ones((2, 3)), "b": jnp.zeros(3)}
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = cache.save(Path(folder, "net.npz"), tree)
    ...     back = cache.load(Path(folder, "net.npz"), tree)
    ...     cache.load(Path(folder, "net.npz"), {"w": jnp.ones((2, 3))})
    Traceback (most recent call last):
    ...
    ValueError: argument `cache`: ...net.npz does not match the model it is loaded into (2 arrays saved, 1 expected); delete it to retrain
    >>> sorted(back), bool((back["w"] == tree["w"]).all())
    (['b', 'w'], True)
    """
    path = Path(path)
    try:
        with np.load(path) as data:
            leaves = [data[f"arr_{i}"] for i in range(len(data.files))]
    except Exception as err:  # noqa: BLE001 - unreadable or truncated file
        raise ValueError(f"argument `cache`: cannot read {path}: {err}") from err
    template, treedef = jax.tree.flatten(like)
    shapes_ok = len(leaves) == len(template) and all(
        np.shape(a) == np.shape(b) and np.asarray(a).dtype == np.asarray(b).dtype for a, b in zip(leaves, template))
    if not shapes_ok:
        raise ValueError(f"argument `cache`: {path} does not match the model it is loaded into "
                         f"({len(leaves)} arrays saved, {len(template)} expected); delete it to retrain")
    return jax.tree.unflatten(treedef, [jax.numpy.asarray(a) for a in leaves])


class _Damaged(Exception):
    """A file of an entry failed a check; the message names it."""


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _Damaged(f"{path} cannot be read ({type(err).__name__}: {err})") from err


def _verified(path: Path, sha256, like):
    """``load(path, like)`` after checking the file's SHA-256 against ``sha256``."""
    if not path.is_file():
        raise _Damaged(f"{path} is missing")
    if file_sha256(path) != sha256:
        raise _Damaged(f"{path} does not match the SHA-256 stored for it (replaced or corrupted)")
    try:
        return load(path, like)
    except ValueError as err:
        raise _Damaged(str(err)) from err


def _warn(folder: Path, reason: str, action: str) -> None:
    warnings.warn(f"cache entry {folder}: {reason}; {action}", CacheWarning, stacklevel=3)


class NetworkCache:
    """The trained networks under ``folder`` (created if needed; stale temporary files removed)."""

    def __init__(self, folder):
        self.folder = check_writable(folder, name="cache", folder=True)
        self.folder.mkdir(parents=True, exist_ok=True)
        for sub in [self.folder, *[p for p in self.folder.iterdir() if p.is_dir()]]:
            clean_stale_temps(sub)

    def entry_key(self, key, net0, x, y, cfg, *, description: dict, retain=None) -> dict:
        """The entry key of a training run (what :meth:`trained` stores as ``config.json``)."""
        data = fingerprint(x, y) if retain is None else fingerprint(x, y, np.asarray(retain))
        return plain(dict(format=FORMAT, description=description, train=cfg._asdict(), data=data,
                          init=fingerprint(*jax.tree.leaves(net0)), key=fingerprint(jax.random.key_data(key))))

    def entry(self, key, net0, x, y, cfg, *, description: dict, retain=None) -> Path:
        """The folder of the entry of a training run (it may not exist yet)."""
        return self._folder(self.entry_key(key, net0, x, y, cfg, description=description, retain=retain))

    def _folder(self, key: dict) -> Path:
        return self.folder / hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]

    def trained(self, key, net0, x, y, cfg, *, description: dict, retain=None, on_epoch=None, on_progress=None):
        """The network trained from ``net0`` on the rows ``retain`` of ``(x, y)`` (all when None)
        with ``nn.train.train(key, ...)``, from the cache when a complete, intact entry is there.

        Returns ``(net, seconds)``, ``seconds`` the wall clock of the training (summed over
        resumed runs). ``on_epoch``/``on_progress`` are passed to the training (not called on a hit).
        """
        from muso_jax.nn.train import init_state, train

        wanted = self.entry_key(key, net0, x, y, cfg, description=description, retain=retain)  # hashes: once
        folder = self._folder(wanted)
        folder.mkdir(exist_ok=True)
        config, manifest = folder / "config.json", folder / "manifest.json"
        final, ckpt, ckpt_info = folder / "final.npz", folder / "checkpoint.npz", folder / "checkpoint.json"
        entry_files = (manifest, final, ckpt, ckpt_info)
        try:
            if not config.exists():
                if any(p.exists() for p in entry_files):
                    raise _Damaged(f"{config} is missing")
            elif _read_json(config) != wanted:
                raise _Damaged(f"{config} holds a different key than its folder name")
        except _Damaged as damage:
            _warn(folder, str(damage), "training again")
            for p in (config, *entry_files):
                p.unlink(missing_ok=True)
        if not config.exists():
            write_json(config, wanted)

        if manifest.exists():
            try:
                stored = _read_json(manifest)
                net = _verified(final, stored.get("final.npz"), net0)
                return net, float(stored.get("seconds", float("nan")))
            except (_Damaged, AttributeError) as damage:
                _warn(folder, str(damage), "training again")
                for p in (manifest, final):
                    p.unlink(missing_ok=True)

        start, before = None, 0.0
        if ckpt_info.exists():
            try:
                info = _read_json(ckpt_info)
                template = ((net0, init_state(net0, cfg.optimizer).opt_state), 0)
                (net, opt_state), epoch = _verified(ckpt, info.get("sha256"), template)
                start, before = (net, opt_state, int(epoch) + 1), float(info["seconds"])
            except (_Damaged, AttributeError, KeyError, TypeError, ValueError) as damage:
                _warn(folder, f"checkpoint: {damage}", "training from epoch 0")
                for p in (ckpt, ckpt_info):
                    p.unlink(missing_ok=True)
        started = time.perf_counter()

        def checkpoint(epoch, net, opt_state, loss):
            sha = save(ckpt, ((net, opt_state), np.asarray(epoch)))
            write_json(ckpt_info, dict(sha256=sha, epoch=epoch, seconds=before + time.perf_counter() - started))
            if on_epoch is not None:
                on_epoch(epoch, net, opt_state, loss)

        net = jax.block_until_ready(train(key, net0, x, y, cfg, retain=retain, start=start, on_epoch=checkpoint,
                                             on_progress=on_progress))
        seconds = before + time.perf_counter() - started
        write_json(manifest, {"final.npz": save(final, net), "seconds": seconds})
        for p in (ckpt, ckpt_info):
            p.unlink(missing_ok=True)
        return net, seconds

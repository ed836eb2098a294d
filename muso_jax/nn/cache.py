"""Trained networks cached on disk, keyed by their full configuration, with resumable training.

An entry is a folder named by the SHA-256 of the configuration's canonical JSON. It holds
``config.json`` (checked on every load: a mismatch is an error, never a silent reuse),
``init.npz`` (p_0), ``final.npz`` and, while training runs, ``checkpoint.npz`` (net, optimizer
state and epoch, rewritten atomically after every epoch so an interrupted run resumes there).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jax
import numpy as np

from muso_jax import report


def entry(cache_dir, config: dict) -> Path:
    text = json.dumps(config, sort_keys=True, default=str)
    folder = Path(cache_dir) / hashlib.sha256(text.encode()).hexdigest()[:24]
    if (folder / "config.json").exists():
        stored = json.loads((folder / "config.json").read_text())
        if stored != json.loads(text):
            raise ValueError(f"argument `cache`: entry {folder} holds a different configuration than requested; "
                             "delete the folder to retrain")
    else:
        report.write_json(folder / "config.json", json.loads(text))
    return folder


def save(path, tree) -> None:
    """Write the leaves of a pytree (a Net, an optimizer state, ...) atomically to ``path``."""
    leaves = [np.asarray(leaf) for leaf in jax.tree.leaves(tree)]

    def write(tmp):
        with open(tmp, "wb") as fh:
            np.savez(fh, *leaves)

    report.atomic(path, write, ".npz")


def load(path, like):
    """Read leaves saved by :func:`save` into the structure of ``like``; refuse any mismatch."""
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


def trained(folder, key, net0, x, y, cfg, *, on_epoch=None, on_batch=None):
    """The network trained from ``net0`` on (x, y), from the cache entry ``folder`` if there.

    Saves ``init.npz`` (p_0) first, a checkpoint after every epoch, then ``final.npz``; an
    interrupted run resumes from its checkpoint and replays the same batches (epoch e uses
    ``fold_in(key, e)``). Returns ``(net0, net, seconds)``, seconds the wall clock of the
    training (summed over resumed runs; stored with the entry).
    """
    import time

    from muso_jax.nn.train import make_optimizer, steps_per_epoch, train

    folder = Path(folder)
    seconds_file = folder / "seconds.json"
    if (folder / "final.npz").exists():
        seconds = float(json.loads(seconds_file.read_text())) if seconds_file.exists() else float("nan")
        return load(folder / "init.npz", net0), load(folder / "final.npz", net0), seconds
    if (folder / "init.npz").exists():
        net0 = load(folder / "init.npz", net0)
    else:
        save(folder / "init.npz", net0)
    tx = make_optimizer(cfg, steps_per_epoch(len(y), cfg.batch_size))
    start = None
    if (folder / "checkpoint.npz").exists():
        (net, opt_state), epoch = load(folder / "checkpoint.npz", ((net0, tx.init(net0.params)), 0))
        start = (net, opt_state, int(epoch) + 1)

    before = float(json.loads(seconds_file.read_text())) if seconds_file.exists() else 0.0
    started = time.perf_counter()

    def checkpoint(epoch, net, opt_state, loss):
        save(folder / "checkpoint.npz", ((net, opt_state), np.asarray(epoch)))
        report.write_json(seconds_file, before + time.perf_counter() - started)
        if on_epoch is not None:
            on_epoch(epoch, net, opt_state, loss)

    net = train(key, net0, x, y, cfg, start=start, on_epoch=checkpoint, on_batch=on_batch)
    seconds = before + time.perf_counter() - started
    report.write_json(seconds_file, seconds)
    save(folder / "final.npz", net)
    (folder / "checkpoint.npz").unlink(missing_ok=True)
    return net0, net, seconds

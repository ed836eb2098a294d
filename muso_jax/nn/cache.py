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

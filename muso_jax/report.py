"""Result files and figures: written to a temporary file in the target folder, then renamed,
so an interrupted run never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np


def atomic(path, write, suffix: str) -> Path:
    """Call ``write(tmp)`` on a temporary file next to ``path``, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _plain(obj):
    """NumPy scalars and arrays to plain Python, NaN/inf to None (valid JSON)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    return obj


def write_json(path, obj) -> Path:
    def write(tmp):
        with open(tmp, "w") as fh:
            json.dump(_plain(obj), fh, indent=2)
            fh.write("\n")

    return atomic(path, write, ".json")


def save_figure(fig, path, dpi: int = 130) -> Path:
    return atomic(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png"), ".png")


def write_text(path, text: str) -> Path:
    return atomic(path, lambda tmp: Path(tmp).write_text(text), ".txt")

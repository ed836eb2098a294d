"""Result files: JSON, CSV and text, each written atomically (:func:`muso_jax.io.files.atomic_write`).

JSON gets plain Python values: NumPy scalars and arrays become numbers and lists, and NaN or
infinity becomes ``null`` (JSON has no such numbers).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from muso_jax.io.files import write_bytes


def plain(obj):
    """``obj`` with NumPy values turned into JSON-able Python ones, NaN/inf into ``None``."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    return obj


def write_json(path, obj) -> Path:
    """``obj`` (see :func:`plain`) as indented JSON with a final newline."""
    return write_bytes(path, (json.dumps(plain(obj), indent=2) + "\n").encode())


def write_text(path, text: str) -> Path:
    return write_bytes(path, text.encode())


def write_csv(path, header: list[str], rows: list[list]) -> Path:
    """A comma-separated table: ``header``, then one line per row; floats with 6 significant
    digits. Cells must not contain commas (the names of this package's methods and metrics)."""
    def cell(v):
        return f"{v:.6g}" if isinstance(v, (float, np.floating)) else str(v)

    for line in [header, *rows]:
        bad = [str(v) for v in line if "," in cell(v)]
        if bad:
            raise ValueError(f"argument `rows`: expected cells without commas; got {bad}")
    lines = [",".join(cell(v) for v in line) for line in [header, *rows]]
    return write_bytes(path, ("\n".join(lines) + "\n").encode())

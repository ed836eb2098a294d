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
    """``obj`` with NumPy values turned into JSON-able Python ones, NaN/inf into ``None``.

    Parameters
    ----------
    obj
        Dicts, lists, tuples, NumPy arrays and scalars, Python values, nested.

    Returns
    -------
    object
        The same structure of Python values: dict keys as strings, tuples and arrays as
        lists, non-finite floats as None.

    Examples
    --------
    >>> import numpy as np
    >>> from muso_jax.io import reports
    >>> reports.plain({"gap": np.float32(0.5), "ranks": np.arange(3), 1: (np.bool_(True), float("nan"))})
    {'gap': 0.5, 'ranks': [0, 1, 2], '1': [True, None]}
    """
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
    r"""``obj`` (see :func:`plain`) as indented JSON with a final newline.

    Parameters
    ----------
    path : str or os.PathLike
        The file, written atomically.
    obj
        Anything :func:`plain` turns into JSON.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from muso_jax.io import reports
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = reports.write_json(Path(folder, "result.json"), {"delta": np.array([1e-30, np.inf])})
    ...     text = path.read_text()
    >>> json.loads(text), text.endswith("}\n")
    ({'delta': [1e-30, None]}, True)
    """
    return write_bytes(path, (json.dumps(plain(obj), indent=2) + "\n").encode())


def write_text(path, text: str) -> Path:
    r"""``text`` as UTF-8, written atomically (:func:`muso_jax.io.files.atomic_write`).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    text : str
        Its content.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from muso_jax.io import reports
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = reports.write_text(Path(folder, "table.md"), "| method | gap |\n")
    ...     content = path.read_bytes()
    >>> content
    b'| method | gap |\n'
    """
    return write_bytes(path, text.encode())


def write_csv(path, header: list[str], rows: list[list]) -> Path:
    r"""A comma-separated table: ``header``, then one line per row; floats with 6 significant
    digits. Cells must not contain commas (the names of this package's methods and metrics).

    Parameters
    ----------
    path : str or os.PathLike
        The file, written atomically.
    header : list of str
        Column names.
    rows : list of list
        One list of cells per line.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If a cell contains a comma.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from muso_jax.io import reports
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = reports.write_csv(Path(folder, "t.csv"), ["method", "delta"], [["muso", 1.234567891e-12]])
    ...     text = path.read_text()
    ...     reports.write_csv(Path(folder, "u.csv"), ["method"], [["a,b"]])
    Traceback (most recent call last):
    ...
    ValueError: argument `rows`: expected cells without commas; got ['a,b']
    >>> text
    'method,delta\nmuso,1.23457e-12\n'
    """
    def cell(v):
        return f"{v:.6g}" if isinstance(v, (float, np.floating)) else str(v)

    for line in [header, *rows]:
        bad = [str(v) for v in line if "," in cell(v)]
        if bad:
            raise ValueError(f"argument `rows`: expected cells without commas; got {bad}")
    lines = [",".join(cell(v) for v in line) for line in [header, *rows]]
    return write_bytes(path, ("\n".join(lines) + "\n").encode())

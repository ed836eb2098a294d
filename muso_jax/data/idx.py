"""Reader of the idx file format, the one MNIST, Fashion-MNIST, KMNIST and EMNIST ship in.

The format is described on the MNIST database page of Y. LeCun, C. Cortes and C. J. C. Burges
(http://yann.lecun.com/exdb/mnist/, section "The IDX file format"). A file is a big-endian
header followed by the data:

* two zero bytes;
* one type byte: ``0x08`` unsigned byte, ``0x09`` signed byte, ``0x0B`` int16, ``0x0C`` int32,
  ``0x0D`` float32, ``0x0E`` float64;
* one byte with the number of dimensions ``d``;
* ``d`` big-endian uint32 sizes, one per dimension;
* the values, big-endian, in C (row-major) order: exactly the product of the sizes, each of the
  type's size.

Every published copy is gzip-compressed (``*.gz``); a file is read as gzip when it starts with
the gzip magic bytes ``1f 8b`` (RFC 1952), whatever its name, and as raw idx otherwise.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np

# The idx type byte -> the big-endian NumPy dtype of the values it announces.
IDX_TYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike, *, ndim: int | None = None) -> np.ndarray:
    r"""The array stored in the idx file ``path`` (gzip or raw), in native byte order.

    ``ndim``, when given, is the number of dimensions the file must declare (3 for an
    ``idx3-ubyte`` image file, 1 for labels). Every check names the file and says what was
    expected and what was found: the two zero magic bytes, a known type byte, at least one
    dimension (and ``ndim`` when given), a header of ``4 + 4 * d`` bytes, and a payload of
    exactly the product of the sizes times the item size (a truncated file and trailing bytes
    are both refused). A damaged gzip stream is refused with a ``ValueError`` too.

    .. math::
        \text{size} = 4 + 4d + \mathrm{itemsize} \cdot \textstyle\prod_{k=1}^{d} n_k \ \text{bytes}

    Parameters
    ----------
    path : str or os.PathLike
        The idx file, raw or gzip-compressed.
    ndim : int, optional
        The number of dimensions the header must declare.

    Returns
    -------
    numpy.ndarray
        Of shape ``(n_1, ..., n_d)`` and the type byte's dtype, in native byte order.

    Raises
    ------
    ValueError
        For a missing or unreadable file and every malformed header or payload (see above).

    Examples
    --------
    A two-image, 2 x 3 pixel idx3 file, raw and then gzip-compressed:

    >>> import gzip, os, struct, tempfile
    >>> from muso_jax.data import idx
    >>> header = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2, 2, 3)  # ubyte, 3 dims: 2 x 2 x 3
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     raw, packed = os.path.join(folder, "images-idx3-ubyte"), os.path.join(folder, "x.gz")
    ...     with open(raw, "wb") as fh:
    ...         _ = fh.write(header + bytes(range(12)))
    ...     with open(packed, "wb") as fh:
    ...         _ = fh.write(gzip.compress(header + bytes(range(12))))
    ...     images, again = idx.read_idx(raw, ndim=3), idx.read_idx(packed)
    >>> images.shape, images.dtype, images[1].tolist()
    ((2, 2, 3), dtype('uint8'), [[6, 7, 8], [9, 10, 11]])
    >>> bool((again == images).all())
    True
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     short = os.path.join(folder, "short-idx3-ubyte")
    ...     with open(short, "wb") as fh:
    ...         _ = fh.write(header + bytes(range(10)))  # two bytes missing
    ...     idx.read_idx(short)
    Traceback (most recent call last):
    ...
    ValueError: argument `path`: expected 12 bytes of data after the 16-byte header of '...short-idx3-ubyte' (shape 2x2x3 of uint8, 1 byte(s) each); got 10 (2 missing: truncated)
    """
    file = Path(path)
    where = repr(str(file))
    data = _read_bytes(file, where)
    if len(data) < 4:
        raise ValueError(f"argument `path`: expected an idx file of at least 4 header bytes in {where}; "
                         f"got {len(data)} bytes")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"argument `path`: expected the idx magic number (two zero bytes, then the type and "
                         f"the number of dimensions) at the start of {where}; got bytes {data[:4].hex(' ')}")
    type_byte, dims = data[2], data[3]
    if type_byte not in IDX_TYPES:
        known = ", ".join(f"0x{t:02X} {d.name}" for t, d in IDX_TYPES.items())
        raise ValueError(f"argument `path`: expected an idx type byte ({known}) in {where}; "
                         f"got 0x{type_byte:02X}")
    if dims == 0 or (ndim is not None and dims != ndim):
        wanted = "at least 1" if ndim is None else str(ndim)
        raise ValueError(f"argument `path`: expected {wanted} dimension(s) in the idx header of {where}; "
                         f"got {dims}")
    header = 4 + 4 * dims
    if len(data) < header:
        raise ValueError(f"argument `path`: expected a {header}-byte idx header ({dims} dimension sizes) in "
                         f"{where}; got a file of {len(data)} bytes")
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=dims, offset=4))
    dtype = IDX_TYPES[type_byte]
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        what = f"{expected - found} missing: truncated" if found < expected else f"{found - expected} trailing"
        raise ValueError(f"argument `path`: expected {expected} bytes of data after the {header}-byte header of "
                         f"{where} (shape {'x'.join(map(str, shape))} of {dtype.name}, {dtype.itemsize} byte(s) "
                         f"each); got {found} ({what})")
    values = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header)
    # One copy: writable, in native byte order, detached from the file's bytes.
    return values.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def _read_bytes(file: Path, where: str) -> bytes:
    """The file's bytes, decompressed when it starts with the gzip magic bytes."""
    if not file.is_file():
        raise ValueError(f"argument `path`: expected an existing idx file; got {where}")
    try:
        with open(file, "rb") as fh:
            raw = fh.read()
    except OSError as err:
        raise ValueError(f"argument `path`: cannot read {where}: {type(err).__name__}: {err}") from err
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"argument `path`: expected a complete gzip stream in {where} (it starts with the "
                         f"gzip magic bytes 1f 8b); got a damaged one: {type(err).__name__}: {err}") from err

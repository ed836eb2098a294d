"""Writing files safely: atomic replacement with normal permissions, cleanup of the temporary
files of killed writers, and a check that an output path is writable before any long work.

Every file of the package is written by :func:`atomic_write`: the bytes go to a temporary file
in the target's folder, are flushed to disk (``fsync``), and ``os.replace`` puts them in place,
so a reader sees the old file or the new one, never a part. The temporary file is created with
mode ``0o666`` filtered by the umask (0o644 under the usual umask 0o022), like any file that
``open(path, "w")`` creates, and its name starts with :data:`TEMP_PREFIX` followed by the
writer's process id, so that :func:`clean_stale_temps` can tell a killed writer's leftovers
from a running writer's work.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import BinaryIO, Callable

TEMP_PREFIX = ".muso-tmp-"
_NAME_TAIL = 80  # characters of the target's name kept in a temporary name (255 is the usual limit)


def atomic_write(path, write: Callable[[BinaryIO], object]) -> Path:
    """Create or replace ``path`` with what ``write(fh)`` writes to a binary file object.

    Parent folders are created. If ``write`` raises (or the process is interrupted), ``path``
    keeps its old content and the temporary file is removed; a SIGKILL leaves the temporary
    file, which :func:`clean_stale_temps` removes later. Returns ``path`` as a :class:`Path`.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace.
    write : callable
        ``write(fh)`` writes the content to the binary file object ``fh``.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    Exception
        Whatever ``write`` or the file system raises; ``path`` is then unchanged.

    Examples
    --------
    A writer that fails half-way leaves the old file and no temporary file behind:

    >>> import tempfile
    >>> from pathlib import Path
    >>> from muso_jax.io import files
    >>> def fail(fh):
    ...     _ = fh.write(b"half")
    ...     raise OSError("disk full")
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = files.atomic_write(Path(folder, "out", "a.txt"), lambda fh: fh.write(b"old"))
    ...     try:
    ...         _ = files.atomic_write(path, fail)
    ...     except OSError as err:
    ...         error = str(err)
    ...     kept, left = path.read_bytes(), sorted(p.name for p in path.parent.iterdir())
    >>> error, kept, left
    ('disk full', b'old', ['a.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def write_bytes(path, data: bytes) -> Path:
    r""":func:`atomic_write` of a byte string.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace (parent folders are created).
    data : bytes
        Its new content.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from muso_jax.io import files
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = files.write_bytes(Path(folder, "a", "b.bin"), b"\x00\x01")
    ...     content = path.read_bytes()
    >>> path.name, content
    ('b.bin', b'\x00\x01')
    """
    return atomic_write(path, lambda fh: fh.write(data))


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new, empty temporary file next to ``path``: ``(descriptor, path)``.

    ``os.open`` with ``O_EXCL`` and mode 0o666 lets the kernel apply the umask, as for any new
    file (``tempfile.mkstemp`` would force 0o600 whatever the umask).
    """
    while True:
        name = f"{TEMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{path.name[-_NAME_TAIL:]}"
        tmp = path.parent / name
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:  # a random-name collision: draw again
            continue


def _fsync_folder(folder: Path) -> None:
    """Flush the folder entry of a rename to disk where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders; the rename itself is done
        pass
    finally:
        os.close(fd)


def clean_stale_temps(folder) -> list[Path]:
    """Remove the temporary files that killed writers left in ``folder`` (not its sub-folders).

    A file named ``TEMP_PREFIX<pid>-...`` is stale when process ``pid`` no longer runs, or when
    the process that now holds ``pid`` started after the file was last written (the id was
    reused; start times come from ``/proc`` where it exists). Files of running writers, and files
    without the prefix, are kept. Returns the removed paths.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder to clean (nothing happens if it does not exist).

    Returns
    -------
    list of pathlib.Path
        The removed files.

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from muso_jax.io import files
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     dead = Path(folder, f"{files.TEMP_PREFIX}999999999-0-a.txt")  # no such process
    ...     mine = Path(folder, f"{files.TEMP_PREFIX}{os.getpid()}-0-b.txt")  # a running writer
    ...     for p in (dead, mine, Path(folder, "c.txt")):
    ...         _ = p.write_bytes(b"")
    ...     removed = [p.name for p in files.clean_stale_temps(folder)]
    ...     left = sorted(p.name.replace(str(os.getpid()), "PID") for p in Path(folder).iterdir())
    >>> removed, left
    (['.muso-tmp-999999999-0-a.txt'], ['.muso-tmp-PID-0-b.txt', 'c.txt'])
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        if not entry.name.startswith(TEMP_PREFIX) or not entry.is_file():
            continue
        pid = entry.name[len(TEMP_PREFIX):].split("-", 1)[0]
        if not pid.isdigit():
            continue
        try:
            modified = entry.stat().st_mtime
        except FileNotFoundError:  # its writer finished meanwhile
            continue
        if _writer_gone(int(pid), modified):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _writer_gone(pid: int, modified: float) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # runs, under another user
        pass
    started = _process_start_time(pid)
    # /proc start times have a resolution of one clock tick and boot time one second: a margin.
    return started is not None and modified < started - 2.0


def _process_start_time(pid: int) -> float | None:
    """Start of process ``pid`` in seconds since the epoch, from ``/proc`` (None elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, counted after the "(name)" field
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def check_writable(path, *, name: str, folder: bool = False) -> Path:
    """Raise a ``ValueError`` naming ``name`` unless a file (``folder=False``) or a folder can be
    written at ``path``; create nothing.

    Checks that ``path`` is not an existing entry of the other kind, that its nearest existing
    ancestor is a folder (not a regular file), and that this folder is writable and searchable
    by this process (``os.access``, which also reports read-only file systems).

    Parameters
    ----------
    path : str or os.PathLike
        Where the file or folder would be written.
    name : str
        The argument (or CLI flag) named in the error.
    folder : bool, optional
        Check for a folder instead of a file.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If nothing of that kind can be written there.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from muso_jax.io import files
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     target = files.check_writable(Path(folder, "new", "report.json"), name="out")
    ...     created = target.parent.exists()  # nothing is created
    ...     _ = Path(folder, "notes.txt").write_bytes(b"")
    ...     files.check_writable(Path(folder, "notes.txt", "report.json"), name="out")
    Traceback (most recent call last):
    ...
    ValueError: argument `out`: expected a path where a file can be written; got '...report.json': '...notes.txt' is a file, not a folder
    >>> created
    False
    """
    p = Path(path)
    kind = "folder" if folder else "file"

    def refuse(reason):
        raise ValueError(f"argument `{name}`: expected a path where a {kind} can be written; "
                         f"got {str(p)!r}: {reason}")

    if p.exists() and p.is_dir() != folder:
        refuse(f"it is an existing {'file' if folder else 'folder'}")
    ancestor = p if folder else p.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        refuse(f"{str(ancestor)!r} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        refuse(f"folder {str(ancestor)!r} is not writable")
    return p

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
    """:func:`atomic_write` of a byte string."""
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

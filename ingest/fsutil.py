"""Durable file writes: the one atomic-write helper (temporary sibling, fsync, rename, fsync of the folder)."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """Make a rename inside `directory` durable."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextmanager
def atomic_path(path: Path, mode: int | None = None, unique: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path to write; on success it is fsync'd and renamed over `path`.

    A crash at any moment leaves either the old file or the new one, never a mix; on an exception the
    temporary file is removed and `path` is untouched. `mode` sets the file's permission bits.
    """
    path = Path(path)
    # The index has one writer at a time (its lock); `unique` names the temporary file per process for the files
    # several processes may write at once (an assembled model, uploads).
    suffix = f".{os.getpid()}.{secrets.token_hex(4)}.tmp" if unique else ".tmp"
    tmp = path.with_name(path.name + suffix)
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes | str, mode: int | None = None) -> None:
    """Replace `path` with `data` (text is written as UTF-8) atomically and durably."""
    with atomic_path(path, mode) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)


def private_file(path: Path) -> Path:
    """Create `path` readable and writable by its owner only (0600) if missing; tighten it, and the SQLite
    journal files beside it, if an older version left them readable by others (they inherit the file's mode).

    An existing file is never opened here: closing any descriptor of a SQLite database drops every POSIX lock
    this process holds on it, and other connections of the process would then go on without their locks.
    """
    path = Path(path)
    with contextlib.suppress(FileExistsError):  # created here: no connection can hold it yet
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = p.stat().st_mode & 0o777
            if mode & 0o077:
                os.chmod(p, mode & 0o700)
        except (FileNotFoundError, PermissionError):  # not there, or not ours to change
            pass
    return path

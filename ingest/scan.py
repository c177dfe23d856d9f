"""Finding the files of an ingest run and reading their bytes, refusing what must not be read.

A folder is walked with its symbolic links followed only while they stay inside it: a link to a file or folder
outside the folder given is refused (it would publish a file the user did not ask for). Names that cannot be
shown on one line or stored as text are refused with a message saying so.
"""

from __future__ import annotations

import errno
import os
import stat
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from ingest.errors import IngestError, LoaderError
from ingest.loaders import kind_of

READ_BLOCK = 1 << 20


@dataclass(frozen=True)
class Failure:
    source: str
    error: str


@dataclass(frozen=True)
class Found:
    """A file to ingest, or (with `refused`) one to report as failed without reading it."""

    path: Path
    root: Path
    source: str
    refused: str = ""
    folder: bool = False  # a refused folder (or link to one): reported whatever its name


def scan(paths: list[Path], extensions: tuple[str, ...]) -> tuple[list[Found], list[Failure]]:
    """Files to ingest under the given paths (links followed while they stay inside, loops cut), and what was
    skipped (unsupported types)."""
    found: list[Found] = []
    skipped: list[Failure] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists() and not p.is_symlink():
            raise IngestError(f"{p}: no such file or directory")
        if not p.is_dir():  # a file named on the command line is read even through a link: the user chose it
            found.append(_named(p.absolute(), p.absolute().parent, p.name))
            continue
        root = p.absolute()
        walk = _Walk(root, Path(os.path.realpath(root)), set(), found)
        walk.directory(root)
    files: list[Found] = []
    for f in found:
        if not f.folder and (f.path.suffix.lower() not in extensions or kind_of(f.path) is None):
            skipped.append(Failure(f.source, f"skipped: unsupported file type {printable(f.path.suffix) or '(none)'!r}"))
        else:
            files.append(f)
    return files, skipped


@dataclass
class _Walk:
    root: Path
    real_root: Path
    seen: set[tuple[int, int]]
    found: list[Found]

    def directory(self, directory: Path) -> None:
        try:
            st = directory.stat()
        except OSError as e:
            self.found.append(self._refuse(directory, f"cannot open directory: {e.strerror}", folder=True))
            return
        if (st.st_dev, st.st_ino) in self.seen:
            return  # a link back into a folder already walked
        self.seen.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as e:
            self.found.append(self._refuse(directory, f"cannot list directory: {e.strerror}", folder=True))
            return
        for entry in entries:
            if not entry.name.startswith("."):
                self.entry(entry)

    def entry(self, entry: os.DirEntry[str]) -> None:
        path = Path(entry.path)
        if entry.is_symlink():
            try:
                is_dir = stat.S_ISDIR(path.stat().st_mode)
            except OSError as e:
                reason = ("symbolic link loop" if e.errno == errno.ELOOP
                          else "broken symbolic link (its target does not exist)" if e.errno == errno.ENOENT
                          else f"cannot follow symbolic link: {e.strerror}")
                self.found.append(self._refuse(path, reason))
                return
            if not self._inside(path):
                what = "a folder" if is_dir else "a file"
                self.found.append(self._refuse(path, f"symbolic link to {what} outside the folder being ingested; "
                                                     "not followed", folder=is_dir))
                return
        else:
            try:
                is_dir = entry.is_dir(follow_symlinks=False)
            except OSError:
                is_dir = False
        if is_dir:
            self.directory(path)
        else:
            self.found.append(_named(path, self.root, path.relative_to(self.root).as_posix()))

    def _inside(self, path: Path) -> bool:
        real = os.path.realpath(path)
        base = str(self.real_root)
        return real == base or real.startswith(base.rstrip(os.sep) + os.sep)

    def _refuse(self, path: Path, reason: str, folder: bool = False) -> Found:
        source = path.relative_to(self.root).as_posix() if path != self.root else path.name
        return Found(path, self.root, printable(source), reason, folder)


def _named(path: Path, root: Path, source: str) -> Found:
    """A found file, refused when its name cannot be stored as text or shown on one line."""
    if any(0xDC80 <= ord(c) <= 0xDCFF for c in source):  # bytes that were not UTF-8, kept by surrogateescape
        return Found(path, root, printable(source), "file name is not valid UTF-8; rename the file")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in source):
        return Found(path, root, printable(source),
                     "file name contains a line break or another control character; rename the file")
    return Found(path, root, source)


def printable(text: str) -> str:
    """`text` on one line: control characters and undecodable bytes shown as escapes (\\n, \\x0b, \\xff)."""
    out: list[str] = []
    for c in text:
        code = ord(c)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif unicodedata.category(c) in ("Cc", "Cs"):
            out.append(c.encode("unicode_escape").decode("ascii"))
        else:
            out.append(c)
    return "".join(out)


def read_file(path: Path, source: str, max_bytes: int) -> bytes:
    """A regular file's bytes; refused before reading when it is over `max_bytes`, failed when it changes while
    it is read. A FIFO, socket or device is refused without waiting on it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise LoaderError(source, _open_error(e)) from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LoaderError(source, "not a regular file (a FIFO, socket or device)")
        if st.st_size > max_bytes:
            raise LoaderError(source, f"file is {st.st_size / 2**20:.0f} MiB, over ingest.max_file_mb="
                                      f"{max_bytes / 2**20:g}")
        blocks: list[bytes] = []
        total = 0
        while True:
            try:
                block = os.read(fd, READ_BLOCK)
            except OSError as e:
                raise LoaderError(source, f"cannot read file: {e.strerror}") from e
            if not block:
                break
            blocks.append(block)
            total += len(block)
            if total > max_bytes:
                raise LoaderError(source, f"file grew past ingest.max_file_mb={max_bytes / 2**20:g} while it was read")
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if total != st.st_size or after.st_size != st.st_size or after.st_mtime_ns != st.st_mtime_ns:
        raise LoaderError(source, f"file changed while it was read ({st.st_size} bytes when opened, {total} read, "
                                  f"{after.st_size} now); ingest it again once it is complete")
    return b"".join(blocks)


def _open_error(e: OSError) -> str:
    if e.errno == errno.ELOOP:
        return "symbolic link loop"
    if e.errno == errno.ENOENT:
        return "file vanished before it could be read (or is a broken link)"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if e.errno == errno.EISDIR:
        return "is a directory"
    return f"cannot open file: {e.strerror}"


"""A parser worker process: what it is sent (a file's bytes), what it answers (a Document and its chunks, or why
not), how it lives (limits, logging, dying with the ingest) and how it is started (forked from a forkserver that
has the parsers imported, without re-running the caller's __main__).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import resource
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing import forkserver, get_context, parent_process, popen_forkserver, reduction, spawn, util
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerProcess, set_spawning_popen
from pathlib import Path
from typing import Any, Literal

from ingest.chunking import Chunker
from ingest.config import IngestConfig
from ingest.errors import LoaderError
from ingest.loaders import load
from ingest.loaders.base import Part
from ingest.records import Chunk, Document

# Imported once by the forkserver, so that every worker forked from it starts with the parsers loaded. Not this
# package: Python 3.11's forkserver imports these with its own default sys.path, and a worker must import `ingest`
# from wherever its parent did (a checkout on sys.path, a test run); it does, after it has taken the parent's path.
PRELOAD = ["bs4", "lxml.etree", "lxml.html", "pypdf", "pypdfium2", "markdown_it", "charset_normalizer", "tokenizers",
           "langchain_text_splitters", "pydantic", "numpy", "filelock", "sqlite3"]
_MAX_LOGS = 20  # log records of one file sent back to the main process
_MAX_REASON = 300  # characters of an exception message kept in a failure reason


@dataclass(frozen=True)
class LoadTask:
    """One file to parse: its bytes (read by the main process) and what its chunks carry."""

    key: int  # the caller's handle for the file
    source: str
    name: str  # the file name; its extension picks the loader
    data: bytes
    tenant: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class EarlyTexts:
    """Chunk texts of a file still being chunked, sent ahead of its result so that embedding can start (the result
    still carries every chunk)."""

    key: int
    texts: tuple[str, ...]


@dataclass(frozen=True)
class LoadResult:
    """What became of one file: loaded (a document and its chunks), unchanged, or failed (with the reason)."""

    key: int
    source: str
    status: Literal["loaded", "unchanged", "failed"]
    document: Document | None = None
    chunks: tuple[Chunk, ...] | None = None  # None when the worker had no tokenizer to chunk with
    error: str = ""
    seconds: float = 0.0
    logs: tuple[tuple[int, str, str], ...] = ()  # (level, logger, message) the parsers logged in the worker

    @classmethod
    def failed(cls, key: int, source: str, reason: str, seconds: float = 0.0) -> LoadResult:
        return cls(key, source, "failed", error=reason, seconds=seconds)


@dataclass(frozen=True)
class WorkerSettings:
    """What a worker needs: the chunking settings, the embedder's tokenizer (serialised) and its memory limit."""

    config: IngestConfig
    tokenizer_json: str | None  # None: workers only parse, the caller chunks
    max_tokens: int
    memory_mb: int
    log_level: int = logging.WARNING  # the main process's: records at or above it are sent back with the result
    early_texts: int = 0  # send chunk texts ahead (EarlyTexts) in groups of this many; 0: only with the result


def tokenizer_json(tokenizer: Any) -> str | None:
    """A fast (Rust) tokenizer as JSON, so a worker can rebuild it; None for any other tokenizer."""
    from tokenizers import Tokenizer

    backend = tokenizer if isinstance(tokenizer, Tokenizer) else getattr(tokenizer, "backend_tokenizer", None)
    return backend.to_str() if backend is not None else None


def load_one(task: LoadTask, chunker: Chunker | None, memory_mb: int,
             ahead: Callable[[list[str]], None] | None = None, every: int = 256) -> tuple[LoadResult, bool]:
    """Parse and chunk one file; every failure becomes a result. The flag says the worker should retire
    (after running out of memory its heap is not worth keeping). `ahead`: called with each `every` chunk texts
    while the rest are chunked."""
    t = time.perf_counter()

    def failed(reason: str) -> LoadResult:
        return LoadResult.failed(task.key, task.source, reason, time.perf_counter() - t)

    streamed = _Streamed(chunker, ahead, every) if chunker is not None and ahead is not None else None
    try:
        doc = load(Path(task.name), task.source, task.data, streamed)
        chunks = (tuple(chunker.split(doc, task.tenant, task.tags, ahead, every, streamed.sent if streamed else 0))
                  if chunker is not None else None)
    except LoaderError as e:
        return failed(one_line(e.reason)), False
    except MemoryError:
        return failed(f"needed more than {memory_mb} MiB of memory (ingest.load_memory_mb)"), True
    except RecursionError as e:
        return failed(f"crashed: RecursionError: {one_line(str(e))} (structure nested too deeply)"), False
    except Exception as e:  # a parser bug on hostile input: this file fails, nothing else does
        return failed(f"crashed: {type(e).__name__}: {one_line(str(e))}"), False
    return LoadResult(task.key, task.source, "loaded", doc, chunks, seconds=time.perf_counter() - t), False


class _Streamed:
    """Chunks the leading parts a loader hands on while it reads the rest (a big PDF's first pages), and sends their
    texts ahead each `every`: embedding starts before the whole file is read. split() later makes the same chunks
    (the memoised token counts make that cheap) and sends only what follows the `sent` texts."""

    def __init__(self, chunker: Chunker, ahead: Callable[[list[str]], None], every: int) -> None:
        self._chunker, self._ahead, self._every = chunker, ahead, every
        self._pending: list[str] = []
        self.sent = 0

    def __call__(self, part: Part) -> None:
        self._pending.extend(self._chunker.texts(part[0]))
        if len(self._pending) >= self._every:
            self._ahead(self._pending)
            self.sent += len(self._pending)
            self._pending = []


def one_line(text: str) -> str:
    """An exception message fit for a one-line report."""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[:_MAX_REASON] + "..."


def serve(conn: Connection, settings: WorkerSettings) -> None:
    """A worker's life: limits first, then one task at a time until told to stop or the main process is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle; it stops us
    _die_with_parent()
    logging.getLogger().handlers[:] = []  # records go back to the main process with each result
    logging.getLogger().setLevel(settings.log_level)
    try:
        chunker = None
        if settings.tokenizer_json is not None:
            from tokenizers import Tokenizer

            chunker = Chunker(Tokenizer.from_str(settings.tokenizer_json), settings.config, settings.max_tokens)
        _limit_memory(settings.memory_mb)
    except Exception as e:
        conn.send(("error", f"{type(e).__name__}: {one_line(str(e))}"))
        return
    conn.send(("ready", ""))
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return  # the main process is gone
        if task is None:
            return
        def ahead(texts: list[str], key: int = task.key) -> None:
            conn.send(EarlyTexts(key, tuple(texts)))

        with _captured_logs() as records:
            result, retire = load_one(task, chunker, settings.memory_mb, ahead if settings.early_texts else None,
                                      settings.early_texts)
        if records:
            result = dataclasses.replace(result, logs=tuple(records))
        try:
            conn.send((result, retire))
        except MemoryError:  # the result itself did not fit in the limit
            reason = f"needed more than {settings.memory_mb} MiB of memory (ingest.load_memory_mb)"
            conn.send((LoadResult.failed(task.key, task.source, reason), True))
            return
        if retire:
            return


class _Collect(logging.Handler):
    def __init__(self, records: list[tuple[int, str, str]]) -> None:
        super().__init__()
        self.records = records
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.records) < _MAX_LOGS:
            self.records.append((record.levelno, record.name, one_line(record.getMessage())))
        else:
            self.dropped += 1


@contextlib.contextmanager
def _captured_logs() -> Iterator[list[tuple[int, str, str]]]:
    """Collect what the parsers log while one file is parsed (a hostile file may log thousands of warnings: the
    first few are kept), to be logged again by the main process under its own logging set-up."""
    records: list[tuple[int, str, str]] = []
    handler = _Collect(records)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        if handler.dropped:
            records.append((logging.WARNING, __name__, f"... and {handler.dropped} more log records"))


def _limit_memory(memory_mb: int) -> None:
    """Cap the address space at what the worker holds now plus `memory_mb`: allocations past it fail."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            baseline = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        baseline = 0
    limit = baseline + memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _die_with_parent() -> None:
    """Make sure this worker dies with the main process, even in the middle of a parse (a kill -9 of an ingest
    must not leave a parser running): Linux SIGKILLs it when its parent, the forkserver, exits, and the
    forkserver exits when no process holds its "alive" pipe any more. A forked worker inherits a copy of that
    pipe, which would keep the forkserver (and so itself) alive: close it (a worker never starts processes)."""
    with contextlib.suppress(AttributeError, OSError, TypeError):
        fd = forkserver._forkserver._forkserver_alive_fd
        if fd is not None:
            os.close(fd)
            forkserver._forkserver._forkserver_alive_fd = None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:
        os._exit(0)
    # The forkserver may take seconds to exit on a loaded machine: also watch the main process itself (its end of
    # our start-up pipe closes when it dies), from a thread that gets its turn between the parser's bytecodes.
    parent = parent_process()
    if parent is not None:
        threading.Thread(target=lambda: (parent.join(), os._exit(1)), name="watch-main-process", daemon=True).start()


_preload_lock = threading.Lock()


def ensure_preload() -> None:
    """Name the modules the forkserver imports before it forks any worker (the first pool of the process decides)."""
    with _preload_lock:
        get_context("forkserver").set_forkserver_preload(PRELOAD)


def _forget_the_parents_forkserver() -> None:
    """In a child made by os.fork (a pre-forking server, a test harness): the forkserver belongs to the parent, and
    multiprocessing would try to reuse it (and fail: it is not this process's child). Start afresh."""
    fs = forkserver._forkserver
    with contextlib.suppress(AttributeError, OSError, TypeError):
        if fs._forkserver_alive_fd is not None:
            os.close(fs._forkserver_alive_fd)
    with contextlib.suppress(AttributeError):
        fs._forkserver_alive_fd = fs._forkserver_address = fs._forkserver_pid = None
        fs._lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_the_parents_forkserver)


class _Popen(popen_forkserver.Popen):
    """The forkserver's Popen, except that the worker does not run the parent's __main__ again: it needs only this
    module, and a caller's script without an `if __name__ == "__main__"` guard must not run twice."""

    def _launch(self, process_obj: Any) -> None:  # popen_forkserver.Popen._launch (3.11-3.13), minus the main module
        prep_data = {k: v for k, v in spawn.get_preparation_data(process_obj._name).items()
                     if k not in ("init_main_from_path", "init_main_from_name")}
        buf = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)
        _parent_w = os.dup(w)
        self.finalizer = util.Finalize(self, util.close_fds, (_parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class WorkerProcess(ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> _Popen:
        return _Popen(process_obj)

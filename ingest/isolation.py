"""Untrusted files are parsed in worker processes, each file under a wall-time and a memory limit.

The main process reads a file's bytes and decides whether it needs loading; a worker turns the bytes into a
Document and its chunks. A worker that overruns its time is killed, one that dies (a parser crash, the memory
limit) is replaced: either way that one file is reported failed with the reason and the run goes on.

Workers are forked from multiprocessing's forkserver with the parsers already imported, so starting one costs
milliseconds: once per run, and again only after a worker was killed. A supervisor thread feeds the workers and
watches the clock while the caller's thread consumes results (and embeds them), so parsing overlaps embedding.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import multiprocessing
import os
import queue
import resource
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkServerProcess, set_spawning_popen
from pathlib import Path
from typing import Any, Literal

from ingest.chunking import Chunker
from ingest.config import IngestConfig
from ingest.errors import IngestError, LoaderError
from ingest.loaders import load
from ingest.records import Chunk, Document

log = logging.getLogger(__name__)

# Imported once by the forkserver, so that every worker forked from it starts with the parsers loaded.
PRELOAD = ["ingest.isolation", "bs4", "lxml.etree", "lxml.html", "pypdf", "pypdfium2", "markdown_it",
           "charset_normalizer", "tokenizers", "langchain_text_splitters"]
_MAX_LOGS = 20  # log records of one file sent back to the main process
_MAX_REASON = 300  # characters of an exception message kept in a failure reason
_START_TIMEOUT_S = 120  # the first worker of a process also waits for the forkserver to import the parsers
_POLL_S = 0.05  # how often the supervisor looks at the clock and at the caller's stop request


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


def tokenizer_json(tokenizer: Any) -> str | None:
    """A fast (Rust) tokenizer as JSON, so a worker can rebuild it; None for any other tokenizer."""
    from tokenizers import Tokenizer

    backend = tokenizer if isinstance(tokenizer, Tokenizer) else getattr(tokenizer, "backend_tokenizer", None)
    return backend.to_str() if backend is not None else None


# --- the worker side -----------------------------------------------------------------------------


def load_one(task: LoadTask, chunker: Chunker | None, memory_mb: int) -> tuple[LoadResult, bool]:
    """Parse and chunk one file; every failure becomes a result. The flag says the worker should retire
    (after running out of memory its heap is not worth keeping)."""
    t = time.perf_counter()

    def failed(reason: str) -> LoadResult:
        return LoadResult.failed(task.key, task.source, reason, time.perf_counter() - t)

    try:
        doc = load(Path(task.name), task.source, task.data)
        chunks = tuple(chunker.split(doc, task.tenant, task.tags)) if chunker is not None else None
    except LoaderError as e:
        return failed(one_line(e.reason)), False
    except MemoryError:
        return failed(f"needed more than {memory_mb} MiB of memory (ingest.load_memory_mb)"), True
    except RecursionError as e:
        return failed(f"crashed: RecursionError: {one_line(str(e))} (structure nested too deeply)"), False
    except Exception as e:  # a parser bug on hostile input: this file fails, nothing else does
        return failed(f"crashed: {type(e).__name__}: {one_line(str(e))}"), False
    return LoadResult(task.key, task.source, "loaded", doc, chunks, seconds=time.perf_counter() - t), False


def one_line(text: str) -> str:
    """An exception message fit for a one-line report."""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_REASON else text[:_MAX_REASON] + "..."


def _serve(conn: Connection, settings: WorkerSettings) -> None:
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
        with _captured_logs() as records:
            result, retire = load_one(task, chunker, settings.memory_mb)
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


# --- the main-process side ---------------------------------------------------------------------


@dataclass
class _Worker:
    process: Any  # multiprocessing.Process (forkserver context)
    conn: Connection
    task: LoadTask | None = None
    started: float = 0.0


@dataclass
class _Run:
    items: Iterator[LoadTask | LoadResult]
    out: queue.Queue[Any] = field(default_factory=queue.Queue)
    stop: threading.Event = field(default_factory=threading.Event)
    slots: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(16))
    exhausted: bool = False


_DONE = object()


class LoaderPool:
    """Worker processes that parse files under limits; `map` yields results while the caller does other work."""

    def __init__(self, settings: Callable[[], WorkerSettings], workers: int, timeout_s: float,
                 ahead: int = 16) -> None:
        self._settings_factory = settings
        self._settings: WorkerSettings | None = None
        self.workers = workers
        self.timeout_s = timeout_s
        self.ahead = max(ahead, workers)  # results parsed but not yet taken by the caller, at most
        self._pool: list[_Worker] = []
        self.started = 0  # worker processes started (for reports and tests)

    def __enter__(self) -> LoaderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def map(self, items: Iterable[LoadTask | LoadResult]) -> Iterator[LoadResult]:
        """Results in completion order. Tasks go to the workers; results among `items` pass straight through.

        `items` is consumed lazily by the supervisor thread (so reading the next files overlaps the caller's
        work); an exception raised by it, or by the pool, is re-raised here.
        """
        run = _Run(iter(items), slots=threading.Semaphore(self.ahead))
        thread = threading.Thread(target=self._supervise, args=(run,), name="ingest-loader-supervisor", daemon=True)
        thread.start()
        try:
            while True:
                item = run.out.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                run.slots.release()
                yield item
        finally:
            run.stop.set()
            thread.join()

    def close(self) -> None:
        """Stop every worker (politely when idle, by force otherwise)."""
        workers, self._pool = self._pool, []
        for w in workers:
            if w.task is None:
                with contextlib.suppress(OSError):
                    w.conn.send(None)
        deadline = time.monotonic() + 2.0
        for w in workers:
            w.process.join(timeout=max(0.0, deadline - time.monotonic()))
            self._discard(w)

    # --- the supervisor thread ----------------------------------------------------------------
    def _supervise(self, run: _Run) -> None:
        try:
            while not run.stop.is_set():
                self._dispatch(run)
                busy = [w for w in self._pool if w.task is not None]
                if run.exhausted and not busy:
                    break
                if busy:
                    self._collect(run, busy)
                else:
                    run.stop.wait(_POLL_S)  # every slot holds an untaken result: wait for the caller
        except BaseException as e:  # handed to the caller's thread, which re-raises it
            run.out.put(e)
        finally:
            for w in [w for w in self._pool if w.task is not None]:  # stopped early: abandon what is in flight
                self._discard(w)
            run.out.put(_DONE)

    def _dispatch(self, run: _Run) -> None:
        """Pull items while a worker is free (or can be started) and the caller is not too far behind."""
        while not run.exhausted and not run.stop.is_set():
            idle = next((w for w in self._pool if w.task is None), None)
            if idle is None and len(self._pool) >= self.workers:
                return
            if not run.slots.acquire(blocking=False):
                return
            item = next(run.items, None)
            if item is None:
                run.exhausted = True
                run.slots.release()
                return
            if isinstance(item, LoadResult):
                run.out.put(item)
                continue
            worker = idle or self._start()
            worker.task, worker.started = item, time.monotonic()
            with contextlib.suppress(OSError):  # one that died before taking it is noticed by _collect
                worker.conn.send(item)

    def _collect(self, run: _Run, busy: list[_Worker]) -> None:
        now = time.monotonic()
        wait_s = min(_POLL_S, *(max(0.0, w.started + self.timeout_s - now) for w in busy))
        ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=wait_s))
        now = time.monotonic()
        for w in busy:
            task = w.task
            assert task is not None
            if w.conn in ready or w.process.sentinel in ready:
                try:
                    result, retiring = w.conn.recv()
                except (EOFError, OSError):
                    run.out.put(LoadResult.failed(task.key, task.source, self._death(w), now - w.started))
                    self._discard(w)
                    continue
                w.task = None
                run.out.put(result)
                if retiring:  # it ran out of memory and exits; a fresh worker takes the next file
                    self._discard(w)
            elif now - w.started > self.timeout_s:
                log.warning("%s: parsing took longer than %g s; its worker is killed and replaced", task.source,
                            self.timeout_s)
                self._discard(w)
                run.out.put(LoadResult.failed(task.key, task.source, f"took longer than {self.timeout_s:g} s "
                                              "(ingest.load_timeout_s)", now - w.started))

    def _death(self, w: _Worker) -> str:
        w.process.join(timeout=1.0)
        code = w.process.exitcode
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            hint = (f"; it may have run out of its {self.settings.memory_mb} MiB (ingest.load_memory_mb)"
                    if -code in (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS) else "")
            return f"crashed: the parser process was killed by {name}{hint}"
        return f"crashed: the parser process exited with status {code}"

    @property
    def settings(self) -> WorkerSettings:
        if self._settings is None:
            self._settings = self._settings_factory()
        return self._settings

    def _start(self) -> _Worker:
        settings = self.settings
        _ensure_preload()
        parent, child = multiprocessing.Pipe(duplex=True)
        process = _WorkerProcess(target=_serve, args=(child, settings), daemon=True, name="ingest-loader")
        try:
            process.start()
        except OSError as e:
            raise IngestError(f"cannot start a file-parsing worker process: {e}") from e
        finally:
            child.close()
        worker = _Worker(process, parent)
        try:
            if not parent.poll(_START_TIMEOUT_S):
                raise IngestError(f"a file-parsing worker process did not start within {_START_TIMEOUT_S} s")
            status, detail = parent.recv()
        except (EOFError, OSError) as e:
            why = self._death(worker)
            self._discard(worker)
            raise IngestError(f"a file-parsing worker process died while starting ({why})") from e
        except IngestError:
            self._discard(worker)
            raise
        if status != "ready":
            self._discard(worker)
            raise IngestError(f"a file-parsing worker process could not start: {detail}")
        self.started += 1
        self._pool.append(worker)
        return worker

    def _discard(self, w: _Worker) -> None:
        if w in self._pool:
            self._pool.remove(w)
        if w.process.is_alive():
            w.process.kill()
        w.process.join(timeout=5.0)
        w.conn.close()


_preload_lock = threading.Lock()


def _ensure_preload() -> None:
    """Name the modules the forkserver imports before it forks any worker (the first pool of the process decides)."""
    with _preload_lock:
        multiprocessing.get_context("forkserver").set_forkserver_preload(PRELOAD)


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


class _WorkerProcess(ForkServerProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> _Popen:
        return _Popen(process_obj)

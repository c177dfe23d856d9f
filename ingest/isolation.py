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
import logging
import multiprocessing
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from ingest.errors import IngestError
from ingest.worker import EarlyTexts, LoadResult, LoadTask, WorkerProcess, WorkerSettings, ensure_preload, serve

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 120  # the first worker of a process also waits for the forkserver to import the parsers
_POLL_S = 0.05  # how often the supervisor looks at the clock and at the caller's stop request


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
        self._run: _Run | None = None

    def __enter__(self) -> LoaderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def map(self, items: Iterable[LoadTask | LoadResult]) -> Iterator[LoadResult | EarlyTexts]:
        """Results in completion order, each preceded by its file's EarlyTexts when the settings ask for them.
        Tasks go to the workers; results among `items` pass straight through.

        `items` is consumed lazily by the supervisor thread (so reading the next files overlaps the caller's
        work); an exception raised by it, or by the pool, is re-raised here.
        """
        run = self._run = _Run(iter(items), slots=threading.Semaphore(self.ahead))
        thread = threading.Thread(target=self._supervise, args=(run,), name="ingest-loader-supervisor", daemon=True)
        thread.start()
        try:
            while True:
                item = run.out.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                if not isinstance(item, EarlyTexts):  # a file's texts sent ahead hold no slot: its result will
                    run.slots.release()
                yield item
        finally:
            run.stop.set()
            thread.join()

    def ready(self) -> bool:
        """Whether the current `map` has a result waiting to be taken (the caller can tell whether it would wait)."""
        return self._run is not None and not self._run.out.empty()

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
                    message = w.conn.recv()
                except (EOFError, OSError):
                    run.out.put(LoadResult.failed(task.key, task.source, self._death(w), now - w.started))
                    self._discard(w)
                    continue
                if not isinstance(message, EarlyTexts):
                    result, retiring = message
                    w.task = None
                    run.out.put(result)
                    if retiring:  # it ran out of memory and exits; a fresh worker takes the next file
                        self._discard(w)
                    continue
                run.out.put(message)  # the file is still being chunked: its clock runs on
            if now - w.started > self.timeout_s:
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
        ensure_preload()
        parent, child = multiprocessing.Pipe(duplex=True)
        process = WorkerProcess(target=serve, args=(child, settings), daemon=True, name="ingest-loader")
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

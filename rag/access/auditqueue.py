"""Audit rows through a queue to one background writer, so that a request never waits on the database. Both
access stores (SQLite: rag.access.store, PostgreSQL: rag.access.postgres) write their audit log through it."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class AuditQueue:
    """`put` queues a row (starting the writer thread when none runs); the writer opens its own connection with
    `connect` and hands rows that arrived together to `insert(db, batch)` as one batch. A batch that fails is
    logged and the writer goes on."""

    def __init__(self, connect: Callable[[], Any], insert: Callable[[Any, list[tuple[Any, ...]]], None]) -> None:
        self._connect, self._insert = connect, insert
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._writer_lock = threading.Lock()

    def put(self, row: tuple[Any, ...]) -> None:
        with self._writer_lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(target=self._write_loop, name="rag-audit", daemon=True)
                self._writer.start()
        self._queue.put(row)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued row is written; False when that took longer than `timeout`."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline or self._writer is None or not self._writer.is_alive():
                return not self._queue.unfinished_tasks
            time.sleep(0.005)
        return True

    def close(self) -> None:
        """Write what is queued, then end the writer thread."""
        self.flush()
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join(timeout=10)

    def _write_loop(self) -> None:
        db = self._connect()
        try:
            while True:
                row = self._queue.get()
                if row is None:
                    self._queue.task_done()
                    return
                batch = [row]
                while not self._queue.empty():  # rows that arrived together go in one transaction
                    nxt = self._queue.get_nowait()
                    if nxt is None:
                        self._queue.put(None)
                        self._queue.task_done()
                        break
                    batch.append(nxt)
                try:
                    self._insert(db, batch)
                except Exception as e:  # the rows are lost, the writer goes on
                    log.error("%d audit row(s) could not be written: %s", len(batch), e)
                finally:
                    for _ in batch:
                        self._queue.task_done()
        finally:
            db.close()

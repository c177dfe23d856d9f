"""Rate limits: a sliding one-minute window of events per key (requests per API key, failed logins per address),
in this process or (SqliteRateLimiter) in the index directory's server file, shared by every server process."""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from pathlib import Path

from rag.access import serverdb

PRUNE_AT = 10_000  # keys held before the expired ones are dropped (many client addresses must not grow memory)
PRUNE_CHANCE = 0.001  # share of counted events that also drop every key's expired events from the server file


class RateLimiter:
    """A sliding one-minute window of events per key.

    `check(key)` counts a request and says whether it may go ahead; `blocked(key)` only asks, and `hit(key)`
    only counts (for events, such as failed authentication, that are known to count after the fact).
    """

    def __init__(self, per_minute: int, window: float = 60.0) -> None:
        self.per_minute = per_minute
        self.window = window
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key_id: str) -> float:
        """0 when the request may go ahead (and counts it), else the seconds until it may be retried."""
        with self._lock:
            wait = self._wait(key_id, time.monotonic())
            if not wait:
                self._add(key_id, time.monotonic())
            return wait

    def blocked(self, key_id: str) -> float:
        """The seconds until `key_id` is under its limit again (0 when it is under it now); counts nothing."""
        with self._lock:
            return self._wait(key_id, time.monotonic())

    def hit(self, key_id: str) -> None:
        """Count one event of `key_id`."""
        with self._lock:
            self._add(key_id, time.monotonic())

    def _wait(self, key_id: str, now: float) -> float:
        if self.per_minute <= 0:
            return 0.0
        q = self._seen.get(key_id)
        if q is None:
            return 0.0
        while q and q[0] <= now - self.window:
            q.popleft()
        if len(q) >= self.per_minute:
            return max(0.001, q[0] + self.window - now)
        return 0.0

    def _add(self, key_id: str, now: float) -> None:
        if self.per_minute <= 0:
            return
        if key_id not in self._seen and len(self._seen) >= PRUNE_AT:
            for k in [k for k, q in self._seen.items() if not q or q[-1] <= now - self.window]:
                del self._seen[k]
        q = self._seen.setdefault(key_id, deque())
        q.append(now)
        if len(q) > self.per_minute:  # only the latest per_minute events decide
            q.popleft()


class SharedRateLimiter:
    """The RateLimiter interface over a store that several processes share (SqliteRateLimiter here,
    rag.access.postgres.PgRateLimiter): subclasses implement `_run`, one counted or asked-only decision."""

    per_minute: int

    def check(self, key_id: str) -> float:
        """0 when the request may go ahead (and counts it), else the seconds until it may be retried."""
        return self._run(key_id, count=True, only_if_under=True)

    def blocked(self, key_id: str) -> float:
        return self._run(key_id, count=False, only_if_under=False)

    def hit(self, key_id: str) -> None:
        self._run(key_id, count=True, only_if_under=False)

    def _run(self, key_id: str, count: bool, only_if_under: bool) -> float:
        raise NotImplementedError


class SqliteRateLimiter(SharedRateLimiter):
    """The RateLimiter interface over the index directory's server file (rag.access.serverdb): one sliding window
    per (scope, key) that every server process of the folder counts in. A check is one short write transaction
    (BEGIN IMMEDIATE: processes take turns); wall-clock time, since processes share no monotonic clock."""

    def __init__(self, index_dir: str | Path, per_minute: int, scope: str, window: float = 60.0) -> None:
        self.per_minute, self.scope, self.window = per_minute, scope, window
        self._db = serverdb.connect(index_dir) if per_minute > 0 else None
        self._lock = threading.Lock()  # this process's threads take turns on the one connection

    def close(self) -> None:
        if self._db is not None:
            with self._lock:
                self._db.close()
                self._db = None

    def _run(self, key_id: str, count: bool, only_if_under: bool) -> float:
        with self._lock:
            db = self._db
            if db is None:  # no limit (or closed, as the server stops)
                return 0.0
            if not count:  # only asking (every request asks about its address): a read, no write lock
                return self._wait(time.time(), key_id)
            db.execute("BEGIN IMMEDIATE")
            try:
                now = time.time()
                db.execute("DELETE FROM rate_events WHERE scope = ? AND key = ? AND at <= ?",
                           (self.scope, key_id, now - self.window))
                wait = self._wait(now, key_id)
                if not (only_if_under and wait):
                    db.execute("INSERT INTO rate_events(scope, key, at) VALUES (?, ?, ?)", (self.scope, key_id, now))
                    if random.random() < PRUNE_CHANCE:  # keys and addresses that stopped sending
                        db.execute("DELETE FROM rate_events WHERE at <= ?", (now - self.window,))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back already (a full disk, an I/O error)
                    db.execute("ROLLBACK")
                raise
            return wait

    def _wait(self, now: float, key_id: str) -> float:
        assert self._db is not None  # callers hold the lock and checked
        row = self._db.execute("SELECT at FROM rate_events WHERE scope = ? AND key = ? AND at > ? ORDER BY at DESC "
                               "LIMIT 1 OFFSET ?", (self.scope, key_id, now - self.window, self.per_minute - 1)).fetchone()
        return max(0.001, row[0] + self.window - now) if row else 0.0

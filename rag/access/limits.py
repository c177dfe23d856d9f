"""Rate limits: a sliding one-minute window of events per key (requests per API key, failed logins per address)."""

from __future__ import annotations

import threading
import time
from collections import deque

PRUNE_AT = 10_000  # keys held before the expired ones are dropped (many client addresses must not grow memory)


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

"""Rate limits: a sliding one-minute window of requests per key."""

from __future__ import annotations

import threading
import time
from collections import deque


class RateLimiter:
    """A sliding one-minute window of requests per key."""

    def __init__(self, per_minute: int, window: float = 60.0) -> None:
        self.per_minute = per_minute
        self.window = window
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def check(self, key_id: str) -> float:
        """0 when the request may go ahead (and counts it), else the seconds until it may be retried."""
        if self.per_minute <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            q = self._seen.setdefault(key_id, deque())
            while q and q[0] <= now - self.window:
                q.popleft()
            if len(q) >= self.per_minute:
                return max(0.001, q[0] + self.window - now)
            q.append(now)
            return 0.0

"""What every server process of an embedded index shares besides keys and audit: rate-limit windows and upload jobs.

They live in their own SQLite file in the index directory (`server.sqlite`, WAL mode, owner-only), not in the
index's store: a request's rate-limit check writes, and must never wait behind an ingest holding the store's write
lock. Several `rag serve` processes over one folder (`[server] workers`, or servers started apart) count one
window per key and see each other's upload jobs, as replicas do through PostgreSQL.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from ingest.fsutil import private_file
from rag.errors import RagError

SERVER_FILE = "server.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS rate_events (scope TEXT NOT NULL, key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS rate_events_key ON rate_events (scope, key, at);
CREATE TABLE IF NOT EXISTS upload_jobs (
    id TEXT PRIMARY KEY,
    tenant TEXT,
    files TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    finished REAL,
    report TEXT,
    error TEXT NOT NULL DEFAULT '',
    owner TEXT NOT NULL DEFAULT ''
);
"""
BUSY_TIMEOUT_S = 30.0  # another process's write transaction lasts microseconds; this only bounds a stuck one


def connect(index_dir: str | Path) -> sqlite3.Connection:
    """A connection to the index directory's server file, made (0600, in a 0700 folder) with its tables if missing.
    One connection per object; callers serialise their own threads on it."""
    path = Path(index_dir) / SERVER_FILE
    db: sqlite3.Connection | None = None
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        private_file(path)
        db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")  # a lost last window after a power cut is harmless
        db.executescript(SCHEMA)
    except (OSError, sqlite3.Error) as e:
        if db is not None:
            db.close()
        raise RagError(f"{path}: cannot open the server's shared state (rate limits, upload jobs): {e}") from None
    return db


def process_key(pid: int) -> str:
    """"PID:START" for a live process (its start time in clock ticks since boot, so a reused pid differs), "" when
    no such process runs. Where /proc is missing, "PID" while the pid exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return f"{pid}:{stat.rsplit(')', 1)[1].split()[19]}"
    except FileNotFoundError:
        if Path("/proc/self/stat").exists():
            return ""
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return ""
    except PermissionError:
        pass
    return str(pid)

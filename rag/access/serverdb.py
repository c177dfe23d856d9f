"""What every server process of an embedded index shares besides keys and audit: rate-limit windows and upload jobs.

They live in their own SQLite file in the index directory (`server.sqlite`, WAL mode, owner-only), not in the
index's store: a request's rate-limit check writes, and must never wait behind an ingest holding the store's write
lock. Several `rag serve` processes over one folder (`[server] workers`, or servers started apart) count one
window per key and see each other's upload jobs, as replicas do through PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ingest.fsutil import private_file

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
    error TEXT NOT NULL DEFAULT ''
);
"""
BUSY_TIMEOUT_S = 30.0  # another process's write transaction lasts microseconds; this only bounds a stuck one


def connect(index_dir: str | Path) -> sqlite3.Connection:
    """A connection to the index directory's server file, made (0600, in a 0700 folder) with its tables if missing.
    One connection per object; callers serialise their own threads on it."""
    directory = Path(index_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = private_file(directory / SERVER_FILE)
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # a lost last window after a power cut is harmless
    db.executescript(SCHEMA)
    return db

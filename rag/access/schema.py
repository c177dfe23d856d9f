"""The access-control tables (API keys, audit log), owned here and versioned apart from the index schema.

They live in the index directory's SQLite file. Step 1 adopts the tables an earlier version created through
the index store's migrations (CREATE ... IF NOT EXISTS).
"""

from __future__ import annotations

import sqlite3

from ingest.schema import apply_migrations

M1_KEYS_AND_AUDIT = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    tenants TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    key_id TEXT,
    route TEXT NOT NULL,
    question TEXT,
    sources TEXT NOT NULL DEFAULT '[]',
    refused INTEGER,
    status INTEGER
);
"""

STEPS: tuple[str, ...] = (M1_KEYS_AND_AUDIT,)


def migrate(db: sqlite3.Connection) -> int:
    """Bring the access tables up to date; returns their schema version."""
    db.execute("CREATE TABLE IF NOT EXISTS access_schema (version INTEGER NOT NULL)")
    if db.execute("SELECT count(*) FROM access_schema").fetchone()[0] == 0:
        db.execute("INSERT INTO access_schema(version) VALUES (0)")
        db.commit()
    return apply_migrations(db, STEPS, "SELECT version FROM access_schema", "UPDATE access_schema SET version={v}")

"""The index store's schema, as ordered SQL steps, and the runner that applies pending steps atomically."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

_CHUNKS = """
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY{autoincrement},  -- the FAISS id
    chunk_id TEXT NOT NULL UNIQUE,
    doc_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    section TEXT NOT NULL DEFAULT '',
    page INTEGER,
    page_label TEXT,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL,
    text_hash TEXT NOT NULL
);
CREATE INDEX chunks_doc ON chunks(doc_id);
CREATE INDEX chunks_hash ON chunks(text_hash);
"""
_CHUNK_TRIGGERS = """
CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text, section) VALUES (new.id, new.text, new.section);
END;
CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, section) VALUES ('delete', old.id, old.text, old.section);
END;
"""
_DOCUMENTS = """
CREATE TABLE {name} (
    id INTEGER PRIMARY KEY{autoincrement},
    source TEXT NOT NULL{unique},
    path TEXT NOT NULL,
    root TEXT NOT NULL,
    kind TEXT NOT NULL,
    doc_hash TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL DEFAULT 0,
    tenant TEXT,
    tags TEXT NOT NULL DEFAULT '[]',
    n_chunks INTEGER NOT NULL DEFAULT 0,
    ingested_at REAL NOT NULL
);
"""

# 1: the core tables. Ids could be reused and a source was unique across tenants (both fixed by step 3).
M1_CORE = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    + _DOCUMENTS.format(name="documents", autoincrement="", unique=" UNIQUE")
    + _CHUNKS.format(autoincrement="")
    + """
CREATE TABLE vectors (text_hash TEXT PRIMARY KEY, vector BLOB NOT NULL);
CREATE VIRTUAL TABLE chunks_fts USING fts5(
    text, section, content='chunks', content_rowid='id', tokenize='porter unicode61'
);
"""
    + _CHUNK_TRIGGERS
)

# 2: once created the server's key and audit tables; rag.access owns those now (its own steps adopt tables an
# older version made here), so the step is empty.
M2_RETIRED = ""

# 3: ids are never reused (a reader holding the id of a deleted chunk can never fetch another tenant's text in
# its place), and a document is identified by (tenant, source), so two tenants may both have `notes.md`.
# SQLite cannot add AUTOINCREMENT to a table: both are rebuilt with their rows and ids; the FTS index is keyed
# by chunk id and stays valid, so rows are copied before the insert trigger exists.
M3_TENANT_IDENTITY = (
    _DOCUMENTS.format(name="documents_v3", autoincrement=" AUTOINCREMENT", unique="")
    + """
INSERT INTO documents_v3 SELECT id, source, path, root, kind, doc_hash, title, size, tenant, tags, n_chunks,
    ingested_at FROM documents;
DROP TABLE documents;
ALTER TABLE documents_v3 RENAME TO documents;
CREATE UNIQUE INDEX documents_tenant_source ON documents(ifnull(tenant, ''), source);
DROP TRIGGER chunks_ai;
DROP TRIGGER chunks_ad;
ALTER TABLE chunks RENAME TO chunks_v2;
DROP INDEX chunks_doc;
DROP INDEX chunks_hash;
"""
    + _CHUNKS.format(autoincrement=" AUTOINCREMENT")
    + """
INSERT INTO chunks SELECT id, chunk_id, doc_id, ordinal, text, section, page, page_label, start, "end", text_hash
    FROM chunks_v2;
DROP TABLE chunks_v2;
"""
    + _CHUNK_TRIGGERS
)

MIGRATIONS: tuple[str, ...] = (M1_CORE, M2_RETIRED, M3_TENANT_IDENTITY)
SCHEMA_VERSION = len(MIGRATIONS)


def apply_migrations(db: sqlite3.Connection, steps: Sequence[str], read_version: str, write_version: str) -> int:
    """Run the steps after the stored version, each with its version bump in one transaction; returns the version.

    `read_version` is a query returning the version, `write_version` a statement with `{v}`. Foreign keys are off
    while steps run (rebuilding a table must not cascade) and checked afterwards.
    """
    def version() -> int:
        row = db.execute(read_version).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    if version() >= len(steps):
        return version()
    db.execute("PRAGMA foreign_keys=OFF")
    try:
        for number, sql in enumerate(steps, start=1):
            if version() >= number:
                continue
            # executescript commits a pending transaction first, so the step brings its own BEGIN and COMMIT.
            try:
                db.executescript(f"BEGIN IMMEDIATE;\n{sql}\n{write_version.format(v=number)};\nCOMMIT;")
            except BaseException:
                if db.in_transaction:
                    db.rollback()
                raise
        problems = db.execute("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise sqlite3.IntegrityError(f"foreign key check failed after migrating: {problems[:5]}")
    finally:
        db.execute("PRAGMA foreign_keys=ON")
    return version()

"""Copy an embedded index (an index directory) into an empty PostgreSQL schema: documents, chunks with their ids
and provenance, their vectors (no re-embedding) and the cached vectors, in one transaction, by binary COPY."""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ingest.backend import PostgresTarget
from ingest.collection import Collection
from ingest.errors import IngestError
from ingest.manifest import Manifest
from ingest.pg.query import clean_text
from ingest.pg.schema import hnsw_statements
from ingest.pg.writer import INDEX_TYPE, PgWriter

log = logging.getLogger(__name__)
BATCH = 5000
Progress = Callable[[str, int, int], None]

DOCS = ("SELECT id, source, path, root, kind, doc_hash, title, size, tenant, tags, n_chunks, ingested_at "
        "FROM documents ORDER BY id")
CHUNKS = ('SELECT c.id, c.chunk_id, c.doc_id, d.tenant, c.ordinal, c.text, c.section, c.page, c.page_label, c.start, '
          'c."end", c.text_hash, v.vector FROM chunks c JOIN documents d ON d.id = c.doc_id '
          "LEFT JOIN vectors v ON v.text_hash = c.text_hash ORDER BY c.id")


@dataclass(frozen=True)
class Copied:
    documents: int
    chunks: int
    vectors: int
    generation: int


def copy_embedded(source: Path, target: PostgresTarget, hnsw_m: int = 32, progress: Progress | None = None) -> Copied:
    """Copy the committed generation of the index directory `source` into `target`, which must be empty."""
    progress = progress or (lambda stage, done, total: None)
    coll = Collection(Path(source))
    writer = PgWriter(target)
    try:
        m = coll.manifest
        if m is None:
            raise IngestError(f"{source} holds no committed index generation: nothing to migrate")
        if writer.manifest is not None or writer.count("documents"):
            raise IngestError(f"index {target} is not empty ({writer.count('documents')} documents): migrate into an "
                              "empty schema (index.pg_schema, or --schema)")
        db, pg = coll.store.db, writer.conn
        with coll.store.snapshot(), pg.transaction():  # one read snapshot; one transaction: all or nothing
            for statement in hnsw_statements(target, m.dim, m=hnsw_m):
                pg.execute(statement)
            n_docs = _copy(pg, "documents(id, source, path, root, kind, doc_hash, title, size, tenant, tags, n_chunks, "
                               "ingested_at)", db.execute(DOCS), _doc_row,
                           ["int8", "text", "text", "text", "text", "text", "text", "int8", "text", "text[]", "int4",
                            "float8"])
            total = coll.store.count("chunks")
            n_chunks = _copy(pg, 'chunks(id, chunk_id, doc_id, tenant, ordinal, text, section, page, page_label, start, '
                                 '"end", text_hash, embedding)', db.execute(CHUNKS), _chunk_row,
                             ["int8", "text", "int8", "text", "int4", "text", "text", "int4", "text", "int4", "int4",
                              "text", "vector"], lambda n: progress("chunks", n, total))
            n_vecs = _copy(pg, "vectors(text_hash, embedding)", db.execute("SELECT text_hash, vector FROM vectors"),
                           lambda r: (r[0], np.frombuffer(r[1], dtype=np.float32)), ["text", "vector"])
            for table in ("documents", "chunks"):  # identities continue past the copied ids (never reused)
                pg.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                           f"(SELECT coalesce(max(id), 0) + 1 FROM {table}), false)")
            now = time.time()
            manifest = Manifest(**{**asdict(m), "index_type": INDEX_TYPE, "generation": 1, "updated": now,
                                   "documents": n_docs, "chunks": n_chunks})
            with pg.cursor() as cur:
                cur.executemany("INSERT INTO meta(key, value) VALUES (%s, %s)",
                                [("manifest", manifest.to_json()), ("generation", "1"),
                                 ("migrated_from", json.dumps({"directory": str(source), "generation": m.generation,
                                                               "index_type": m.index_type, "at": now}))])
        progress("chunks", total, total)
        return Copied(n_docs, n_chunks, n_vecs, 1)
    finally:
        writer.close()
        coll.close()


def _copy(pg: Any, into: str, rows: sqlite3.Cursor, convert: Callable[[tuple[Any, ...]], tuple[Any, ...]],
          types: list[str], report: Callable[[int], None] | None = None) -> int:
    """Binary COPY into a staging table, then one INSERT ... SELECT: COPY FROM is refused on a table under row-level
    security, and the INSERT passes the policy like any write of the writer."""
    table, columns = into.split("(", 1)
    columns = columns.rstrip(")")
    stage = f"stage_{table}"
    pg.execute(f"CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA")
    n = 0
    with pg.cursor() as cur, cur.copy(f"COPY {stage} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        while True:
            batch = rows.fetchmany(BATCH)
            if not batch:
                break
            for r in batch:
                copy.write_row(convert(tuple(r)))
            n += len(batch)
            if report:
                report(n)
    pg.execute(f"INSERT INTO {table}({columns}) SELECT {columns} FROM {stage}")
    return n


def _doc_row(r: tuple[Any, ...]) -> tuple[Any, ...]:
    (doc_id, source, path, root, kind, doc_hash, title, size, tenant, tags, n_chunks, at) = r
    return (doc_id, clean_text(source), clean_text(path), clean_text(root), kind, doc_hash, clean_text(title), size,
            tenant, list(json.loads(tags or "[]")), n_chunks, at)


def _chunk_row(r: tuple[Any, ...]) -> tuple[Any, ...]:
    vector = np.frombuffer(r[12], dtype=np.float32) if r[12] is not None else None
    if vector is None:
        raise IngestError(f"chunk {r[1]} has no stored vector in the source index (run rag stats on it)")
    return (r[0], r[1], r[2], r[3], r[4], clean_text(r[5]), clean_text(r[6]), r[7], clean_text(r[8]), r[9], r[10],
            r[11], vector)

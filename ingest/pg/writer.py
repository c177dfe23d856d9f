"""An index in PostgreSQL, write side: PgWriter (IndexWriter) and PgChanges (IndexChanges).

One writer at a time: a session advisory lock, released by PostgreSQL when the writer's connection ends (a killed
process included). Vectors are cached by text hash as they are embedded, each batch committed at once; the
documents, chunks and the next generation's manifest go in ONE transaction, so a crash at any moment leaves the
previous generation and the next run completes without embedding again what was cached.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from types import EllipsisType
from typing import Any

import numpy as np

from ingest.backend import PostgresTarget
from ingest.config import IngestConfig
from ingest.errors import IndexLockedError, IndexMismatchError
from ingest.manifest import Manifest, check_manifest_compatible, check_manifest_embedder, next_manifest, package_version
from ingest.pg.connect import connect, migrate
from ingest.pg.index import PgReads, read_meta
from ingest.pg.query import clean_text
from ingest.pg.schema import hnsw_statements, index_steps
from ingest.pg.vectors import register_vector
from ingest.records import Chunk, Document
from ingest.store import StoredDocument

INDEX_TYPE = "hnsw"  # pgvector's HNSW (cosine); the embedded backend's flat | hnsw | ivf does not apply


def writer_lock_key(target: PostgresTarget) -> str:
    return f"rag-writer:{target.schema}"


class PgChanges:
    """The writes of one run, inside the writer's transaction."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.removed: list[int] = []
        self.deleted_documents = 0

    def delete_document(self, source: str, tenant: str | None) -> list[int]:
        """Delete one tenant's document and its chunks; returns the removed chunk ids."""
        ids = [r[0] for r in self.conn.execute(
            "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.doc_id "
            "WHERE coalesce(d.tenant, '') = %s AND d.source = %s", (tenant or "", source)).fetchall()]
        self.conn.execute("DELETE FROM documents WHERE coalesce(tenant, '') = %s AND source = %s", (tenant or "", source))
        self.removed.extend(ids)
        self.deleted_documents += 1
        return ids

    def add_document(self, doc: Document, path: str, root: str, chunks: list[Chunk], tenant: str | None,
                     tags: tuple[str, ...]) -> list[int]:
        """Insert a document and its chunks, each with its cached vector; returns the chunk ids in chunk order."""
        doc_id = self.conn.execute(
            "INSERT INTO documents(source, path, root, kind, doc_hash, title, size, tenant, tags, n_chunks, ingested_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (clean_text(doc.source), clean_text(path), clean_text(root), doc.kind, doc.doc_hash, clean_text(doc.title),
             doc.size, tenant, list(tags), len(chunks), time.time())).fetchone()[0]
        if not chunks:
            return []
        rows = [(c.chunk_id, doc_id, tenant, c.ordinal, clean_text(c.text), clean_text(c.section), c.page,
                 clean_text(c.page_label), c.start, c.end, c.text_hash, c.text_hash) for c in chunks]
        with self.conn.cursor() as cur:
            cur.executemany(
                'INSERT INTO chunks(chunk_id, doc_id, tenant, ordinal, text, section, page, page_label, start, "end", '
                "text_hash, embedding) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                "(SELECT embedding FROM vectors WHERE text_hash = %s)) RETURNING id", rows, returning=True)
            ids: list[int] = []
            while True:
                ids.append(int(cur.fetchone()[0]))
                if not cur.nextset():
                    break
        return ids

    def set_tags(self, source: str, tenant: str | None, tags: tuple[str, ...]) -> None:
        self.conn.execute("UPDATE documents SET tags = %s WHERE coalesce(tenant, '') = %s AND source = %s",
                          (list(tags), tenant or "", source))


class PgWriter(PgReads):
    """The single writer of an index in PostgreSQL; sees every tenant's rows (rag.tenants = '*')."""

    def __init__(self, target: PostgresTarget, lock_timeout: float = 0.0) -> None:
        self.target = target
        self.location = str(target)
        conn = connect(target, "rag-ingest")
        super().__init__(conn)
        try:
            migrate(conn, target, "index", index_steps(target))
            register_vector(conn)
            conn.execute("SELECT set_config('rag.tenants', '*', false)")
            self._lock(lock_timeout)
            self.generation, self.manifest = read_meta(conn)
        except BaseException:
            conn.close()
            raise

    def _lock(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))",
                                    (writer_lock_key(self.target),)).fetchone()[0]:
            if time.monotonic() >= deadline:
                raise IndexLockedError(
                    f"index {self.target} is being written by another ingest; wait for it to finish and retry")
            time.sleep(0.1)

    def check_compatible(self, config: IngestConfig) -> None:
        check_manifest_compatible(self.manifest, self.location, config, index_type=False)

    def check_embedder(self, model_id: str, dim: int, embedder: Any = None) -> None:
        check_manifest_embedder(self.manifest, self.location, model_id, dim, embedder)

    def prepare(self) -> None:
        """Nothing to repair: an interrupted run's transaction was rolled back by PostgreSQL."""

    def documents(self, tenant: str | None | EllipsisType = ...) -> list[StoredDocument]:
        return super().documents(tenant)

    def cached_vectors(self, text_hashes: Iterable[str]) -> set[str]:
        return super().cached_vectors(text_hashes)

    def put_vectors(self, hashes: list[str], vectors: np.ndarray) -> None:
        rows = [(h, np.asarray(v, dtype=np.float32)) for h, v in zip(hashes, vectors, strict=True)]
        with self.conn.transaction(), self.conn.cursor() as cur:
            cur.executemany("INSERT INTO vectors(text_hash, embedding) VALUES (%s, %s) ON CONFLICT DO NOTHING", rows)

    @contextmanager
    def changes(self, config: IngestConfig, embedder: Any, dim: int) -> Iterator[PgChanges]:
        """One transaction; on a normal exit it commits as the next generation."""
        if self.manifest is not None and self.manifest.dim != dim:
            raise IndexMismatchError(f"index {self.target} holds vectors of dimension {self.manifest.dim}; "
                                     f"this run's are of dimension {dim}")
        with self.conn.transaction():
            if self.manifest is None:  # the first commit types the vector column and builds its HNSW index
                for statement in hnsw_statements(self.target, dim, m=config.hnsw_m):
                    self.conn.execute(statement)
            tx = PgChanges(self.conn)
            yield tx
            if tx.deleted_documents or tx.removed:  # vectors of replaced texts, or the cache grows with every edit
                self.conn.execute("DELETE FROM vectors v WHERE NOT EXISTS "
                                  "(SELECT 1 FROM chunks c WHERE c.text_hash = v.text_hash)")
            generation = self.generation + 1
            now = time.time()
            m = next_manifest(config, dim, self.manifest, embedder, self.count("documents"), self.count("chunks"),
                              index_type=INDEX_TYPE)
            manifest = Manifest(**{**asdict(m), "generation": generation, "updated": now, "created": m.created or now,
                                   "rag_version": m.rag_version or package_version()})
            with self.conn.cursor() as cur:
                cur.executemany("INSERT INTO meta(key, value) VALUES (%s, %s) "
                                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                                [("manifest", manifest.to_json()), ("generation", str(generation))])
        self.generation, self.manifest = generation, manifest

    def close(self) -> None:
        try:
            if not self.conn.closed:
                self.conn.execute("SELECT pg_advisory_unlock_all()")
        finally:
            self.conn.close()

    def __enter__(self) -> PgWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

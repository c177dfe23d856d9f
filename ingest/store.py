"""The SQLite metadata store: documents, chunks, text, provenance, cached vectors, FTS5 keyword index."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import EllipsisType

import numpy as np

from ingest.fsutil import private_file
from ingest.records import Chunk, Document
from ingest.schema import MIGRATIONS, apply_migrations


@dataclass(frozen=True)
class ChunkFilter:
    """Restrictions applied inside retrieval; an empty field does not restrict."""

    sources: tuple[str, ...] = ()  # glob patterns over source paths (any matches)
    kinds: tuple[str, ...] = ()  # pdf | markdown | html | text
    sections: tuple[str, ...] = ()  # glob patterns over the section heading path
    tags: tuple[str, ...] = ()  # the document carries at least one of these tags
    tenants: tuple[str, ...] | None = None  # None = every tenant; () = none at all

    def with_tenants(self, tenants: tuple[str, ...] | None) -> ChunkFilter:
        return replace(self, tenants=tenants)

    @property
    def empty(self) -> bool:
        return not (self.sources or self.kinds or self.sections or self.tags) and self.tenants is None

    def sql(self) -> tuple[str, list[object]]:
        """A WHERE clause over `c` (chunks) and `d` (documents), with its parameters."""
        clauses: list[str] = []
        params: list[object] = []

        def any_of(template: str, values: tuple[str, ...]) -> None:
            clauses.append("(" + " OR ".join([template] * len(values)) + ")")
            params.extend(values)

        if self.sources:
            any_of("d.source GLOB ?", self.sources)
        if self.kinds:
            any_of("d.kind = ?", self.kinds)
        if self.sections:
            any_of("c.section GLOB ?", self.sections)
        if self.tags:
            any_of("EXISTS (SELECT 1 FROM json_each(d.tags) WHERE json_each.value = ?)", self.tags)
        if self.tenants is not None:
            if self.tenants:
                any_of("d.tenant = ?", self.tenants)
            else:
                clauses.append("0")
        return (" AND ".join(clauses) or "1"), params


@dataclass(frozen=True)
class StoredDocument:
    id: int
    source: str
    path: str
    root: str
    kind: str
    doc_hash: str
    title: str
    size: int
    tenant: str | None
    tags: tuple[str, ...]
    n_chunks: int
    ingested_at: float


class Store:
    """One SQLite database in WAL mode: readers never block on the single writer."""

    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        if readonly:
            uri = f"file:{path}?mode=ro"
            self.db = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
        else:
            private_file(path)  # documents, keys and the audit log: not for other users of the machine
            self.db = sqlite3.connect(path, timeout=30, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.row_factory = sqlite3.Row
        if not readonly:
            self.migrate()

    def close(self) -> None:
        self.db.close()

    # --- schema ---------------------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Apply pending schema steps in order, each in its own transaction."""
        apply_migrations(self.db, MIGRATIONS, "PRAGMA user_version", "PRAGMA user_version={v}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.rollback()
            raise
        self.db.commit()

    # --- meta -----------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                        (key, value))

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation", "0") or 0)

    # --- documents ------------------------------------------------------------------------------
    def documents(self, tenant: str | None | EllipsisType = ...) -> list[StoredDocument]:
        """Every document, or only those of one tenant (None = documents ingested without a tenant)."""
        if tenant is ...:
            rows = self.db.execute("SELECT * FROM documents ORDER BY source")
        else:
            rows = self.db.execute("SELECT * FROM documents WHERE tenant IS ? ORDER BY source", (tenant,))
        return [_doc(r) for r in rows]

    def document(self, source: str, tenant: str | None) -> StoredDocument | None:
        row = self.db.execute("SELECT * FROM documents WHERE source=? AND tenant IS ?", (source, tenant)).fetchone()
        return _doc(row) if row else None

    def delete_document(self, source: str, tenant: str | None) -> list[int]:
        """Delete one tenant's document and its chunks; returns the removed chunk ids (FAISS ids)."""
        ids = [r[0] for r in self.db.execute(
            "SELECT c.id FROM chunks c JOIN documents d ON c.doc_id=d.id WHERE d.source=? AND d.tenant IS ?",
            (source, tenant))]
        self.db.execute("DELETE FROM documents WHERE source=? AND tenant IS ?", (source, tenant))
        return ids

    def add_document(self, doc: Document, path: str, root: str, chunks: list[Chunk],
                     tenant: str | None, tags: tuple[str, ...]) -> list[int]:
        """Insert a document and its chunks; returns the new chunk ids in chunk order."""
        cur = self.db.execute(
            "INSERT INTO documents(source, path, root, kind, doc_hash, title, size, tenant, tags, n_chunks, ingested_at)"
            " VALUES(?,?,?,?,?,?,?,?,?,?,?)",
            (doc.source, path, root, doc.kind, doc.doc_hash, doc.title, doc.size, tenant, json.dumps(list(tags)),
             len(chunks), time.time()),
        )
        doc_id = cur.lastrowid
        ids: list[int] = []
        for c in chunks:
            cur = self.db.execute(
                'INSERT INTO chunks(chunk_id, doc_id, ordinal, text, section, page, page_label, start, "end", text_hash)'
                " VALUES(?,?,?,?,?,?,?,?,?,?)",
                (c.chunk_id, doc_id, c.ordinal, c.text, c.section, c.page, c.page_label, c.start, c.end, c.text_hash),
            )
            ids.append(int(cur.lastrowid or 0))
        return ids

    def set_tags(self, source: str, tenant: str | None, tags: tuple[str, ...]) -> None:
        self.db.execute("UPDATE documents SET tags=? WHERE source=? AND tenant IS ?",
                        (json.dumps(list(tags)), source, tenant))

    # --- chunks ---------------------------------------------------------------------------------
    def chunk_ids(self) -> set[int]:
        return {r[0] for r in self.db.execute("SELECT id FROM chunks")}

    def count(self, table: str) -> int:
        if table not in ("documents", "chunks", "vectors"):
            raise ValueError(f"unknown table {table!r}")
        return int(self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def chunks(self, ids: Iterable[int], flt: ChunkFilter | None = None) -> dict[int, Chunk]:
        """Chunks by FAISS id (missing ids, and chunks the filter does not admit, are left out).

        Retrieval passes its filter again here: the tenant check is made on the very rows whose text is returned.
        """
        ids = list(ids)
        where, params = (flt or ChunkFilter()).sql()
        out: dict[int, Chunk] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            q = ",".join("?" * len(part))
            for r in self.db.execute(f"{_CHUNK_SELECT} WHERE c.id IN ({q}) AND {where}", [*part, *params]):
                out[int(r["id"])] = _chunk(r)
        return out

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction: every query inside sees the same committed state (WAL snapshot isolation)."""
        if self.db.in_transaction:  # already inside one (or inside the writer's transaction)
            yield
            return
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.rollback()  # nothing was written; ends the read transaction

    def chunk_by_chunk_id(self, chunk_id: str) -> Chunk | None:
        row = self.db.execute(f"{_CHUNK_SELECT} WHERE c.chunk_id=?", (chunk_id,)).fetchone()
        return _chunk(row) if row else None

    def chunk_ids_where(self, flt: ChunkFilter) -> np.ndarray:
        """Ids of the chunks a filter admits."""
        where, params = flt.sql()
        rows = self.db.execute(f"SELECT c.id FROM chunks c JOIN documents d ON c.doc_id=d.id WHERE {where}", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64)

    def keyword_search(self, match: str, k: int, flt: ChunkFilter | None = None) -> list[tuple[int, float]]:
        """BM25 over the FTS5 index: (chunk id, score) best first; higher is better.

        The filter is applied inside the ranked query (never after the top-k cut); with no filter the query does
        not join chunks and documents for every matching row.
        """
        flt = flt or ChunkFilter()
        if flt.empty:
            sql = ("SELECT rowid, -bm25(chunks_fts, 1.0, 0.5) AS s FROM chunks_fts WHERE chunks_fts MATCH ?"
                   " ORDER BY s DESC LIMIT ?")
            return [(int(r[0]), float(r[1])) for r in self.db.execute(sql, [match, k])]
        where, params = flt.sql()
        sql = (
            "SELECT c.id, -bm25(chunks_fts, 1.0, 0.5) AS s FROM chunks_fts"
            " JOIN chunks c ON c.id = chunks_fts.rowid JOIN documents d ON d.id = c.doc_id"
            f" WHERE chunks_fts MATCH ? AND {where} ORDER BY s DESC LIMIT ?"
        )
        return [(int(r[0]), float(r[1])) for r in self.db.execute(sql, [match, *params, k])]

    def keyword_postings(self, term: str, cap: int) -> int:
        """How many chunks an FTS5 term (a quoted word) matches, counted up to `cap` (cost bounded by the cap)."""
        sql = "SELECT count(*) FROM (SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT ?)"
        return int(self.db.execute(sql, (term, cap)).fetchone()[0])

    # --- vectors --------------------------------------------------------------------------------
    def cached_vectors(self, text_hashes: Iterable[str]) -> set[str]:
        hashes = list(set(text_hashes))
        have: set[str] = set()
        for start in range(0, len(hashes), 500):
            part = hashes[start:start + 500]
            q = ",".join("?" * len(part))
            have.update(r[0] for r in self.db.execute(f"SELECT text_hash FROM vectors WHERE text_hash IN ({q})", part))
        return have

    def put_vectors(self, hashes: list[str], vectors: np.ndarray) -> None:
        self.db.executemany("INSERT OR IGNORE INTO vectors(text_hash, vector) VALUES(?, ?)",
                            [(h, v.astype(np.float32).tobytes()) for h, v in zip(hashes, vectors, strict=True)])

    def vectors_for_chunks(self, ids: list[int], dim: int) -> np.ndarray:
        """Vectors of the given chunk ids, in order."""
        by_id: dict[int, bytes] = {}
        for start in range(0, len(ids), 500):
            part = ids[start:start + 500]
            q = ",".join("?" * len(part))
            for cid, blob in self.db.execute(
                    f"SELECT c.id, v.vector FROM chunks c JOIN vectors v ON v.text_hash=c.text_hash WHERE c.id IN ({q})",
                    part):
                by_id[cid] = blob
        out = np.zeros((len(ids), dim), dtype=np.float32)
        for i, cid in enumerate(ids):
            out[i] = np.frombuffer(by_id[cid], dtype=np.float32)
        return out

    def prune_vectors(self) -> int:
        """Drop cached vectors no chunk uses; returns how many."""
        cur = self.db.execute("DELETE FROM vectors WHERE text_hash NOT IN (SELECT text_hash FROM chunks)")
        return cur.rowcount

    def all_chunk_vectors(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of every chunk: enough to rebuild the FAISS index without re-embedding."""
        ids: list[int] = []
        vecs: list[np.ndarray] = []
        for cid, blob in self.db.execute(
                "SELECT c.id, v.vector FROM chunks c JOIN vectors v ON v.text_hash=c.text_hash ORDER BY c.id"):
            ids.append(cid)
            vecs.append(np.frombuffer(blob, dtype=np.float32))
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32)
        return np.asarray(ids, dtype=np.int64), np.vstack(vecs)


_CHUNK_SELECT = (
    'SELECT c.id, c.chunk_id, c.ordinal, c.text, c.section, c.page, c.page_label, c.start, c."end", c.text_hash,'
    " d.source, d.doc_hash, d.kind, d.title, d.tenant, d.tags FROM chunks c JOIN documents d ON c.doc_id=d.id"
)


def _chunk(r: sqlite3.Row) -> Chunk:
    return Chunk(
        chunk_id=r["chunk_id"], source=r["source"], text=r["text"], start=r["start"], end=r["end"],
        text_hash=r["text_hash"], doc_hash=r["doc_hash"], kind=r["kind"], section=r["section"], page=r["page"],
        page_label=r["page_label"], title=r["title"], tenant=r["tenant"], tags=tuple(json.loads(r["tags"])),
        ordinal=r["ordinal"],
    )


def _doc(r: sqlite3.Row) -> StoredDocument:
    return StoredDocument(
        id=r["id"], source=r["source"], path=r["path"], root=r["root"], kind=r["kind"], doc_hash=r["doc_hash"],
        title=r["title"], size=r["size"], tenant=r["tenant"], tags=tuple(json.loads(r["tags"])),
        n_chunks=r["n_chunks"], ingested_at=r["ingested_at"],
    )

"""An index in PostgreSQL, read side: PgIndex (IndexBackend) and PgView (IndexView, one read snapshot).

A snapshot is one REPEATABLE READ, READ ONLY transaction run as the index's read-only role with `rag.tenants` set
to the tenants of the request: row-level security hides every other tenant's documents and chunks even from a
query that forgot its filter; each query applies the filter too. Each thread reads through its own connection.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import EllipsisType
from typing import Any

import numpy as np

from ingest.backend import PostgresTarget, tenants_setting
from ingest.config import DEFAULT_EF_SEARCH, EF_SEARCH_MAX, check_ef_search
from ingest.errors import IndexUnavailableError
from ingest.manifest import Manifest, check_manifest_embedder
from ingest.pg.connect import PostgresError, connect, migrate, psycopg_module, reader_role, schema_version
from ingest.pg.query import TS_CONFIG, filter_sql, match_terms, term_of
from ingest.pg.schema import TABLES, index_steps
from ingest.pg.vectors import register_vector
from ingest.records import Chunk
from ingest.store import ChunkFilter, StoredDocument

log = logging.getLogger(__name__)

EXACT_MAX = 20_000  # a filter admitting at most this many chunks is searched exactly (no index)
OVERSAMPLE = 2.0  # candidates the HNSW scan keeps per admitted hit wanted, over the filter's selectivity
IDF_CAP = 100_000  # postings counted per term for its idf

DOC_COLUMNS = "id, source, path, root, kind, doc_hash, title, size, tenant, tags, n_chunks, ingested_at"
CHUNK_SELECT = ('SELECT c.id, c.chunk_id, c.ordinal, c.text, c.section, c.page, c.page_label, c.start, c."end", '
                "c.text_hash, d.source, d.doc_hash, d.kind, d.title, d.tenant, d.tags "
                "FROM chunks c JOIN documents d ON d.id = c.doc_id")


def read_meta(conn: Any) -> tuple[int, Manifest | None]:
    rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('generation', 'manifest')").fetchall())
    manifest = Manifest(**json.loads(rows["manifest"])) if rows.get("manifest") else None
    return int(rows.get("generation") or 0), manifest


def doc_of(r: tuple[Any, ...]) -> StoredDocument:
    return StoredDocument(id=r[0], source=r[1], path=r[2], root=r[3], kind=r[4], doc_hash=r[5], title=r[6], size=r[7],
                          tenant=r[8], tags=tuple(r[9] or ()), n_chunks=r[10], ingested_at=r[11])


def chunk_of(r: tuple[Any, ...]) -> Chunk:
    return Chunk(chunk_id=r[1], ordinal=r[2], text=r[3], section=r[4], page=r[5], page_label=r[6], start=r[7],
                 end=r[8], text_hash=r[9], source=r[10], doc_hash=r[11], kind=r[12], title=r[13], tenant=r[14],
                 tags=tuple(r[15] or ()))


class PgReads:
    """Queries shared by a read snapshot and the writer (both see every row their transaction may see)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def documents(self, tenant: str | None | EllipsisType = ...) -> list[StoredDocument]:
        """Every document, or only those of one tenant (None = documents ingested without a tenant)."""
        if tenant is ...:
            rows = self.conn.execute(f'SELECT {DOC_COLUMNS} FROM documents ORDER BY source COLLATE "C"')
        else:
            rows = self.conn.execute(f"SELECT {DOC_COLUMNS} FROM documents WHERE coalesce(tenant, '') = %s "
                                     'ORDER BY source COLLATE "C"', (tenant or "",))
        return [doc_of(r) for r in rows.fetchall()]

    def document(self, source: str, tenant: str | None) -> StoredDocument | None:
        row = self.conn.execute(f"SELECT {DOC_COLUMNS} FROM documents WHERE coalesce(tenant, '') = %s AND source = %s",
                                (tenant or "", source)).fetchone()
        return doc_of(row) if row else None

    def cached_vectors(self, text_hashes: Iterable[str]) -> set[str]:
        hashes = list(set(text_hashes))
        rows = self.conn.execute("SELECT text_hash FROM vectors WHERE text_hash = ANY(%s)", (hashes,)).fetchall()
        return {r[0] for r in rows}

    def count(self, table: str) -> int:
        if table not in ("documents", "chunks", "vectors"):
            raise ValueError(f"unknown table {table!r}")
        return int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


class PgView(PgReads):
    """One read snapshot (IndexView)."""

    def __init__(self, conn: Any, index: PgIndex, generation: int, manifest: Manifest | None, tenants: str) -> None:
        super().__init__(conn)
        self.index, self.generation, self.manifest, self.tenants = index, generation, manifest, tenants

    def chunks(self, ids: Iterable[int], flt: ChunkFilter | None = None) -> dict[int, Chunk]:
        """Chunks by id, the filter re-applied on the very rows whose text is returned."""
        f = filter_sql(flt)
        rows = self.conn.execute(f"{CHUNK_SELECT} WHERE c.id = ANY(%s) AND {f.where}",
                                 ([int(i) for i in ids], *f.params)).fetchall()
        return {int(r[0]): chunk_of(r) for r in rows}

    def chunk_ids_where(self, flt: ChunkFilter) -> np.ndarray:
        f = filter_sql(flt)
        rows = self.conn.execute(f"SELECT c.id FROM {f.source()} WHERE {f.where}", f.params).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def admits(self, flt: ChunkFilter) -> bool:
        return self.admitted(flt) > 0

    def admitted(self, flt: ChunkFilter) -> int:
        """How many chunks the filter admits (cached per generation, tenants and filter)."""
        key = (self.generation, self.tenants, flt)
        n = self.index.counts.get(key)
        if n is None:
            f = filter_sql(flt)
            n = int(self.conn.execute(f"SELECT count(*) FROM {f.source()} WHERE {f.where}", f.params).fetchone()[0])
            self.index.remember(key, n)
        return n

    def dense_search(self, qvec: np.ndarray, n: int, flt: ChunkFilter) -> list[tuple[int, float]]:
        """The n chunks nearest by cosine that the filter admits. The HNSW scan runs with the filter in its WHERE
        clause and enough candidates for the filter's selectivity; a selective filter, or a scan that came back
        short, is answered by an exact search over the admitted rows: a filter never cuts a top-n short."""
        m = self.manifest
        if m is None or not m.chunks:
            return []
        q = np.asarray(qvec, dtype=np.float32).reshape(-1)
        f = filter_sql(flt)
        ef, want = max(self.index.ef_search, n), n
        if not flt.empty or self.tenants != "*":
            admitted = self.admitted(flt)
            if admitted == 0:
                return []
            want = min(n, admitted)
            ef = max(self.index.ef_search, math.ceil(n * max(1.0, m.chunks / admitted) * OVERSAMPLE))
            if admitted <= EXACT_MAX or ef > EF_SEARCH_MAX:
                return self._exact(q, n, f.source(), f.where, f.params)
        self.conn.execute(f"SET LOCAL hnsw.ef_search = {min(EF_SEARCH_MAX, max(ef, n))}")
        rows = self.conn.execute(
            f"SELECT c.id, 1 - (c.embedding <=> %s) FROM {f.source()} WHERE c.embedding IS NOT NULL AND {f.where} "
            "ORDER BY c.embedding <=> %s LIMIT %s", (q, *f.params, q, n)).fetchall()
        if len(rows) < want:
            return self._exact(q, n, f.source(), f.where, f.params)
        return [(int(i), float(s)) for i, s in rows]

    def _exact(self, q: np.ndarray, n: int, source: str, where: str, params: tuple[object, ...]) -> list[tuple[int, float]]:
        # Ordered by the similarity (not by the distance operator), so the planner cannot use the HNSW index.
        rows = self.conn.execute(
            f"SELECT c.id, 1 - (c.embedding <=> %s) AS s FROM {source} WHERE c.embedding IS NOT NULL AND {where} "
            "ORDER BY s DESC, c.id LIMIT %s", (q, *params, n)).fetchall()
        return [(int(i), float(s)) for i, s in rows]

    def keyword_search(self, match: str, k: int, flt: ChunkFilter | None = None) -> list[tuple[int, float]]:
        """Full-text search, the filter inside the ranked query. The score sums, per term, its idf (over the rows
        this snapshot may read) times ts_rank with length normalisation: a BM25-like ranking the fusion can use."""
        terms = list(dict.fromkeys(match_terms(match)))
        if not terms:
            return []
        total = max(1, self.count_chunks())
        weights = []
        for t in terms:
            n_t = self.postings(t, IDF_CAP)
            weights.append(math.log(1.0 + (total - n_t + 0.5) / (n_t + 0.5)))
        f = filter_sql(flt)
        queries = ", ".join(f"plainto_tsquery('{TS_CONFIG}', %s) AS q{i}" for i in range(len(terms)))
        score = " + ".join(f"%s * ts_rank(c.tsv, q.q{i}, 1)" for i in range(len(terms)))
        any_term = " || ".join(f"q.q{i}" for i in range(len(terms)))
        rows = self.conn.execute(
            f"SELECT c.id, {score} AS s FROM {f.source()}, (SELECT {queries}) q "
            f"WHERE c.tsv @@ ({any_term}) AND {f.where} ORDER BY s DESC, c.id LIMIT %s",
            (*weights, *terms, *f.params, k)).fetchall()
        return [(int(i), float(s)) for i, s in rows]

    def count_chunks(self) -> int:
        key = (self.generation, self.tenants, "chunks")
        n = self.index.counts.get(key)
        if n is None:
            n = self.count("chunks")
            self.index.remember(key, n)
        return n

    def postings(self, word: str, cap: int) -> int:
        key = (self.generation, self.tenants, "term", word, cap)
        n = self.index.counts.get(key)
        if n is None:
            n = int(self.conn.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM chunks WHERE tsv @@ plainto_tsquery('{TS_CONFIG}', %s) "
                "LIMIT %s) t", (word, cap)).fetchone()[0])
            self.index.remember(key, n)
        return n

    def keyword_postings(self, term: str, cap: int) -> int:
        """How many chunks a quoted term matches, counted up to `cap`."""
        return self.postings(term_of(term), cap)

    def vectors_for_chunks(self, ids: list[int], dim: int) -> np.ndarray:
        rows = dict(self.conn.execute("SELECT id, embedding FROM chunks WHERE id = ANY(%s)",
                                      ([int(i) for i in ids],), binary=True).fetchall())
        out = np.zeros((len(ids), dim), dtype=np.float32)
        for i, cid in enumerate(ids):
            out[i] = rows[cid]
        return out


class PgIndex:
    """An index in a PostgreSQL schema (IndexBackend); safe to share between threads."""

    def __init__(self, target: PostgresTarget, ef_search: int = DEFAULT_EF_SEARCH) -> None:
        self.target = target
        self.ef_search = check_ef_search(ef_search)  # hnsw.ef_search of an unfiltered search, raised to n hits
        self.location = str(target)
        self._reader = reader_role(target)
        self._local = threading.local()
        self._conns: list[Any] = []
        self._lock = threading.Lock()
        self.counts: dict[tuple[Any, ...], int] = {}
        self._manifests: dict[int, tuple[Manifest | None]] = {}
        conn = connect(target)
        try:
            migrate(conn, target, "index", index_steps(target))
        finally:
            conn.close()
        self.generation = -1
        self.manifest: Manifest | None = None
        self.refresh()

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = connect(self.target, "rag-read")
            register_vector(conn)
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def remember(self, key: tuple[Any, ...], n: int) -> None:
        with self._lock:
            if len(self.counts) > 4096:
                self.counts.clear()
            self.counts[key] = n

    @contextmanager
    def snapshot(self, tenants: tuple[str, ...] | None = None) -> Iterator[PgView]:
        """One REPEATABLE READ, READ ONLY transaction as the read-only role, restricted to `tenants` (None: all)."""
        current = getattr(self._local, "view", None)
        if current is not None:  # already inside a snapshot of this thread
            yield current
            return
        setting = tenants_setting(tenants)
        conn = self._conn()
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            conn.execute(f'SET LOCAL ROLE "{self._reader}"')
            conn.execute("SELECT set_config('rag.tenants', %s, true)", (setting,))
            generation, manifest = self._meta(conn)
            view = PgView(conn, self, generation, manifest, setting)
            self._local.view = view
            try:
                yield view
            finally:
                self._local.view = None

    def _meta(self, conn: Any) -> tuple[int, Manifest | None]:
        """The generation and manifest this snapshot sees (the manifest is parsed once per generation)."""
        row = conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        generation = int(row[0]) if row else 0
        known = self._manifests.get(generation)
        manifest = known[0] if known else read_meta(conn)[1]
        with self._lock:
            if known is None:
                self._manifests = {generation: (manifest,)}
            if generation >= self.generation:
                self.generation, self.manifest = generation, manifest
        return generation, manifest

    def refresh(self) -> bool:
        before = self.generation
        with self.snapshot():
            pass
        return self.generation != before

    def check_embedder(self, model_id: str, dim: int, embedder: Any = None) -> None:
        check_manifest_embedder(self.manifest, self.location, model_id, dim, embedder)

    @property
    def schema_version(self) -> int:
        with self.snapshot() as view:
            return schema_version(view.conn, self.target, "index")

    def consistency(self) -> list[str]:
        """Problems found: chunks without a vector, counts that disagree, row-level security switched off."""
        problems: list[str] = []
        with self.snapshot() as view:
            c = view.conn
            missing = c.execute("SELECT count(*) FROM chunks WHERE embedding IS NULL").fetchone()[0]
            if missing:
                problems.append(f"{missing} chunk(s) missing from the vector index")
            uncached = c.execute("SELECT count(*) FROM chunks c LEFT JOIN vectors v ON v.text_hash = c.text_hash "
                                 "WHERE v.text_hash IS NULL").fetchone()[0]
            if uncached:
                problems.append(f"{uncached} chunk(s) without a stored vector")
            wrong = c.execute("SELECT count(*) FROM documents d WHERE n_chunks <> (SELECT count(*) FROM chunks c "
                              "WHERE c.doc_id = d.id)").fetchone()[0]
            if wrong:
                problems.append(f"{wrong} document(s) whose chunk count disagrees with their chunks")
            astray = c.execute("SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.doc_id "
                               "WHERE c.tenant IS DISTINCT FROM d.tenant").fetchone()[0]
            if astray:
                problems.append(f"{astray} chunk(s) whose tenant is not their document's")
            m = view.manifest
            if m is not None and (m.documents, m.chunks) != (view.count("documents"), view.count("chunks")):
                problems.append(f"the manifest of generation {m.generation} counts {m.documents} documents and "
                                f"{m.chunks} chunks; the tables hold {view.count('documents')} and {view.count('chunks')}")
            unsafe = c.execute(
                "SELECT relname FROM pg_class WHERE relnamespace = %s::regnamespace AND relname IN ('documents', "
                "'chunks') AND NOT (relrowsecurity AND relforcerowsecurity)", (self.target.schema,)).fetchall()
            if unsafe:
                problems.append("row-level security is off on " + ", ".join(r[0] for r in unsafe))
        return problems

    def probe(self) -> int:
        """The committed generation's chunk count (its manifest), read in a snapshot through this thread's
        connection, as a search would (a new connection when the database dropped the old one)."""
        pg = psycopg_module()
        try:
            with self.snapshot() as view:
                return view.manifest.chunks if view.manifest is not None else 0
        except PostgresError as e:  # cannot connect (the message is scrubbed of the connection string)
            raise IndexUnavailableError("the database is unreachable", str(e)) from e
        except pg.OperationalError as e:  # e.g. the server went away under an open connection
            raise IndexUnavailableError("the database is unreachable", f"index {self.target}: {e}") from e
        except pg.Error as e:
            raise IndexUnavailableError("the database cannot be read", f"index {self.target}: {e}") from e

    def size_bytes(self) -> int:
        with self.snapshot() as view:
            row = view.conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(format('%%I.%%I', %s::text, t)::regclass)), 0) "
                "FROM unnest(%s::text[]) t", (self.target.schema, list(TABLES))).fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(Exception):  # a connection the server already dropped
                conn.close()

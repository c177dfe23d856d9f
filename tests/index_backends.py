"""Both index backends in tests: names, a fresh PostgreSQL schema per index, the `rag` command pointed at one."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

BACKENDS = ("embedded", "postgres")
PG_DSN_ENV = "RAG_PG_DSN"  # the variable the postgres tests' configs name (index.dsn_env)

_schemas = itertools.count(1)


def in_ci() -> bool:
    """CI is set (to anything but '', 0, false or no) where the suite runs unattended."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@dataclass(frozen=True)
class PgServer:
    """A PostgreSQL 16 server with pgvector (PyPI's pgserver) on a Unix socket, for this test session."""

    admin_dsn: str  # the superuser, on the tests' database (for what only an administrator may do)
    dsn: str  # the application's role: not a superuser, owner of the database it ingests into


def pg_target(name: str = "index"):  # noqa: ANN201 - ingest.backend.PostgresTarget
    """A fresh schema (an empty index) in the session's database."""
    from ingest.backend import PostgresTarget

    clean = "".join(c if c.isalnum() else "_" for c in name.lower())[:20]
    return PostgresTarget(dsn_env=PG_DSN_ENV, schema=f"t{next(_schemas)}_{clean}_{os.getpid() % 10000}")


def backend_env(target: object) -> dict[str, str]:
    """RAG_* variables that point the `rag` command at a postgres index (none for an index directory)."""
    from ingest.backend import PostgresTarget

    if not isinstance(target, PostgresTarget):
        return {}
    return {"RAG_INDEX__BACKEND": "postgres", "RAG_INDEX__DSN_ENV": target.dsn_env,
            "RAG_INDEX__PG_SCHEMA": target.schema}


def index_args(target: object) -> list[str]:
    """`--index DIR` for an index directory; nothing for a postgres index (backend_env names it)."""
    from ingest.backend import PostgresTarget

    return [] if isinstance(target, PostgresTarget) else ["--index", str(target)]


def access_store(target: object):  # noqa: ANN201 - rag.access.AccessStore or rag.access.postgres.PgAccessStore
    """The API keys and audit log of an index: in its directory, or beside its tables in PostgreSQL."""
    from ingest.backend import PostgresTarget

    if isinstance(target, PostgresTarget):
        from rag.access.postgres import PgAccessStore

        return PgAccessStore(target)
    from rag.access import AccessStore

    return AccessStore(target)  # type: ignore[arg-type]


# --- reading an index of either backend, the way the tests of the index look at it --------------------------------

CHUNK_ROWS = ('SELECT c.id, d.source, c.text, c.page, c.section, c.start, c."end", c.text_hash FROM chunks c '
              "JOIN documents d ON d.id = c.doc_id")
UNUSED_VECTORS = "SELECT count(*) FROM vectors WHERE text_hash NOT IN (SELECT text_hash FROM chunks)"


def _sql(target: object, query: str) -> list[tuple]:
    """Rows of a query over the index's tables (every tenant's), on either backend."""
    from ingest.backend import open_index

    index = open_index(target)  # type: ignore[arg-type]
    try:
        with index.snapshot() as view:
            db = view.conn if hasattr(view, "conn") else view.store.db  # type: ignore[attr-defined]
            return [tuple(r) for r in db.execute(query).fetchall()]
    finally:
        index.close()


def chunk_rows(target: object) -> dict[int, tuple]:
    """{chunk id: (source, text, page, section, start, end, text_hash)} of every chunk."""
    return {r[0]: tuple(r[1:]) for r in _sql(target, CHUNK_ROWS)}


def unused_vectors(target: object) -> int:
    """Cached vectors that no chunk uses."""
    return int(_sql(target, UNUSED_VECTORS)[0][0])


def vector_ids(target: object) -> set[int]:
    """Ids of the chunks the vector index holds (FAISS ids; on PostgreSQL, chunks with an embedding)."""
    from ingest.backend import PostgresTarget, open_index

    if isinstance(target, PostgresTarget):
        return {r[0] for r in _sql(target, "SELECT id FROM chunks WHERE embedding IS NOT NULL")}
    index = open_index(target)
    try:
        return set(index.vectors.ids().tolist()) if index.vectors is not None else set()  # type: ignore[attr-defined]
    finally:
        index.close()


def stored_vector(target: object, chunk_id: int):  # noqa: ANN201 - numpy array
    """The vector the index searches for one chunk."""
    import numpy as np

    from ingest.backend import PostgresTarget, open_index

    index = open_index(target)  # type: ignore[arg-type]
    try:
        if isinstance(target, PostgresTarget):
            with index.snapshot() as view:
                return view.vectors_for_chunks([chunk_id], index.manifest.dim)[0]  # type: ignore[union-attr]
        return np.asarray(index.vectors._index.reconstruct(int(chunk_id)))  # type: ignore[attr-defined]
    finally:
        index.close()


def dense_top(target: object, embedder: object, text: str, k: int = 3) -> list[tuple[str, str, float]]:
    """(source, text, score) of the k chunks nearest to `text`, unfiltered, through the backend's own search."""
    from ingest.backend import open_index
    from ingest.store import ChunkFilter

    index = open_index(target)  # type: ignore[arg-type]
    try:
        with index.snapshot() as view:
            found = view.dense_search(embedder.embed([text]), k, ChunkFilter())  # type: ignore[attr-defined]
            chunks = view.chunks([cid for cid, _ in found])
        return [(chunks[cid].source, chunks[cid].text, score) for cid, score in found]
    finally:
        index.close()

"""Index backends: what retrieval, ingestion, stats and access control need from an index, and how one is opened.

Two backends implement these protocols:

- "embedded" (the default, nothing to start): an index directory, FAISS + SQLite (ingest.collection, ingest.store,
  ingest.embedded);
- "postgres": PostgreSQL with pgvector (ingest.pg), for several servers or machines sharing one index.

An index is named by a target: a `Path` (an index directory) or a `PostgresTarget` (a schema in a database whose
connection string is read from an environment variable; the DSN itself is never stored or logged).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ingest.config import DEFAULT_EF_SEARCH, ConfigError

if TYPE_CHECKING:  # numpy and the stores are not imported by `rag.config`, which reads the [index] table here
    import numpy as np

    from ingest.config import IngestConfig
    from ingest.manifest import Manifest
    from ingest.records import Chunk, Document
    from ingest.store import ChunkFilter, StoredDocument

BACKENDS = ("embedded", "postgres")
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class PostgresTarget:
    """An index held in PostgreSQL: the schema of its tables and the NAME of the variable holding the DSN."""

    dsn_env: str = "RAG_PG_DSN"
    schema: str = "rag"

    def __post_init__(self) -> None:
        if not SCHEMA_NAME.match(self.schema):
            raise ConfigError(f"index.pg_schema = {self.schema!r}: use 1-40 lower-case letters, digits or '_', "
                              "not starting with a digit")
        if not ENV_NAME.match(self.dsn_env):
            raise ConfigError(f"index.dsn_env = {self.dsn_env!r}: the NAME of an environment variable (letters, "
                              "digits, '_'), e.g. RAG_PG_DSN; the connection string itself goes in that variable")

    def dsn(self) -> str:
        """The connection string, read from the environment now (never kept on the target, never logged)."""
        value = os.environ.get(self.dsn_env, "").strip()
        if not value:
            raise ConfigError(
                f"the postgres index backend reads its connection string from the environment variable "
                f"{self.dsn_env} (index.dsn_env), which is not set: export {self.dsn_env}="
                "'postgresql://USER:PASSWORD@HOST:5432/DATABASE' (or set index.backend = \"embedded\")")
        return value

    def __str__(self) -> str:
        return f"postgres:{self.schema}"


IndexTarget = Path | PostgresTarget


def target_for(backend: str, directory: Path, dsn_env: str = "RAG_PG_DSN", schema: str = "rag") -> IndexTarget:
    """The target the [index] table names: its directory (embedded) or its PostgreSQL schema."""
    if backend == "embedded":
        return Path(directory)
    if backend == "postgres":
        return PostgresTarget(dsn_env=dsn_env, schema=schema)
    raise ConfigError(f"index backend {backend!r} is not known; valid backends are: {', '.join(BACKENDS)}")


def tenants_setting(tenants: tuple[str, ...] | None) -> str:
    """The tenants of a read as one string: '*' every tenant, '' none, else names joined by ','."""
    from ingest.records import TENANT_NAME, TENANT_RULE

    if tenants is None:
        return "*"
    for t in tenants:
        if not TENANT_NAME.match(t):
            raise ConfigError(f"bad tenant name {t!r}: use {TENANT_RULE}")
    return ",".join(tenants)


class IndexView(Protocol):
    """One read snapshot of an index: every call sees the same committed state.

    Filters are applied inside each query (never after a top-k cut); the postgres backend also restricts the
    snapshot's rows to the tenants it was opened for (row-level security).
    """

    generation: int
    manifest: Manifest | None

    def documents(self, tenant: Any = ...) -> list[StoredDocument]: ...

    def document(self, source: str, tenant: str | None) -> StoredDocument | None: ...

    def chunks(self, ids: Iterable[int], flt: ChunkFilter | None = None) -> dict[int, Chunk]: ...

    def chunk_ids_where(self, flt: ChunkFilter) -> np.ndarray: ...

    def admits(self, flt: ChunkFilter) -> bool:
        """Whether the filter admits any chunk (computed once per snapshot and filter)."""
        ...

    def dense_search(self, qvec: np.ndarray, n: int, flt: ChunkFilter) -> list[tuple[int, float]]:
        """(chunk id, cosine similarity) of the n nearest chunks the filter admits, best first."""
        ...

    def keyword_search(self, match: str, k: int, flt: ChunkFilter | None = None) -> list[tuple[int, float]]:
        """(chunk id, score) best first, higher is better. `match` is an OR of double-quoted terms
        ('"word" OR "other"', rag.retrieve.fts_terms)."""
        ...

    def keyword_postings(self, term: str, cap: int) -> int: ...

    def vectors_for_chunks(self, ids: list[int], dim: int) -> np.ndarray: ...

    def cached_vectors(self, text_hashes: Iterable[str]) -> set[str]: ...

    def count(self, table: str) -> int: ...


class IndexBackend(Protocol):
    """An open index, shared by the threads of a process (embedded: Collection; postgres: PgIndex)."""

    location: str
    generation: int
    manifest: Manifest | None

    def snapshot(self, tenants: tuple[str, ...] | None = None) -> AbstractContextManager[IndexView]: ...

    def refresh(self) -> bool: ...

    def check_embedder(self, model_id: str, dim: int, embedder: Any = None) -> None: ...

    def consistency(self) -> list[str]: ...

    def size_bytes(self) -> int: ...

    def probe(self) -> int:
        """The committed generation's chunk count, read now as a new reader would (no search); IndexUnavailableError
        when the index cannot be read."""
        ...

    @property
    def schema_version(self) -> int: ...

    def close(self) -> None: ...


class IndexChanges(Protocol):
    """The changes of one ingest run, inside its one transaction (IndexWriter.changes)."""

    def delete_document(self, source: str, tenant: str | None) -> list[int]: ...

    def add_document(self, doc: Document, path: str, root: str, chunks: list[Chunk], tenant: str | None,
                     tags: tuple[str, ...]) -> list[int]: ...

    def set_tags(self, source: str, tenant: str | None, tags: tuple[str, ...]) -> None: ...


class IndexWriter(Protocol):
    """The single writer of an index (holds its write lock until closed)."""

    location: str
    generation: int
    manifest: Manifest | None

    def check_compatible(self, config: IngestConfig) -> None: ...

    def check_embedder(self, model_id: str, dim: int, embedder: Any = None) -> None: ...

    def prepare(self) -> None:
        """Finish what an interrupted run left behind (before anything else is written)."""
        ...

    def documents(self, tenant: Any = ...) -> list[StoredDocument]: ...

    def cached_vectors(self, text_hashes: Iterable[str]) -> set[str]: ...

    def put_vectors(self, hashes: list[str], vectors: np.ndarray) -> None:
        """Cache vectors by text hash, committed at once (a crash keeps what was embedded)."""
        ...

    def count(self, table: str) -> int: ...

    def changes(self, config: IngestConfig, embedder: Any, dim: int) -> AbstractContextManager[IndexChanges]:
        """One transaction: on a normal exit the changes commit as the next generation; on an exception (or a crash)
        none of them happened."""
        ...

    def close(self) -> None: ...


def open_index(target: IndexTarget | str, readonly: bool = True, ef_search: int = DEFAULT_EF_SEARCH) -> IndexBackend:
    """Open an index for reading (the postgres backend imports psycopg here, and only here); `ef_search` is the
    breadth of its HNSW searches ([index] ef_search)."""
    if isinstance(target, PostgresTarget):
        from ingest.pg.index import PgIndex

        return PgIndex(target, ef_search=ef_search)
    from ingest.collection import Collection

    return Collection(Path(target), readonly=readonly, ef_search=ef_search)


def open_writer(target: IndexTarget | str, lock_timeout: float = 0.0) -> IndexWriter:
    """Take the index's write lock (IndexLockedError after `lock_timeout` seconds) and open it for one run."""
    if isinstance(target, PostgresTarget):
        from ingest.pg.writer import PgWriter

        return PgWriter(target, lock_timeout)
    from ingest.embedded import EmbeddedWriter

    return EmbeddedWriter(Path(target), lock_timeout)

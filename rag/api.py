"""The Python API: open an index, retrieve, ask, stream; ingest and stats.

    import rag
    with rag.open(".rag/index") as r:
        print(r.ask("What is retrieval-augmented generation?").text)

`rag.open` never reads a config file: pass a Config (rag.load_config(path)) to change the defaults.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ingest.backend import IndexBackend, IndexTarget, PostgresTarget, open_index
from ingest.embedding import Embedder
from ingest.errors import IndexUnavailableError
from ingest.store import ChunkFilter, StoredDocument
from rag import factory
from rag.config import Config
from rag.records import Answer, Hit
from rag.retrieve import RetrievalResult, Retriever, parse_filters

if TYPE_CHECKING:  # imported where used: `rag stats` and `rag retrieve` need neither the parsers nor the LLMs
    from ingest.pipeline import IngestReport, Progress
    from rag.answer import Answerer
    from rag.llm.base import LLM

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stats:
    index: str
    documents: int
    chunks: int
    embedding_model: str
    dim: int
    index_type: str
    generation: int
    size_bytes: int
    schema_version: int
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)  # what an interrupted ingest had left, fixed first

    @property
    def consistent(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Readiness:
    """Whether the open index can be read now (GET /readyz): its chunk count, or in a few words why not."""

    ready: bool
    index: str  # the backend: "embedded" | "postgres"
    chunks: int = 0  # all tenants together: a total, no documents named
    reason: str = ""


def target_of(index_dir: str | Path | PostgresTarget | None, config: Config) -> IndexTarget:
    """The index a call names: a PostgresTarget as given; with index.backend = "postgres" the configured schema (a
    directory given then only locates the server's uploads); else the directory given, or index.dir."""
    if isinstance(index_dir, PostgresTarget):
        return index_dir
    if config.index.backend == "postgres":
        return config.index.target
    return Path(index_dir) if index_dir else config.index_dir


def ingest(paths: Sequence[str | Path], index_dir: str | Path | PostgresTarget | None = None,
           config: Config | None = None, *,
           prune: bool = False, tenant: str | None = None, tags: Sequence[str] = (),
           progress: Progress | None = None, embedder: Embedder | None = None,
           remove: Sequence[str] = (), lock_timeout: float = 0.0) -> IngestReport:
    """Ingest files and folders into an index (created if needed); returns what was done.

    `remove` names documents (sources of `tenant`) to delete in the same run; `lock_timeout` is how long to wait
    for another writer (else IndexLockedError at once).
    """
    config = config or Config()
    target = target_of(index_dir, config)
    from ingest.pipeline import ingest_paths

    return ingest_paths([Path(p) for p in paths], target, config.ingest, prune=prune, tenant=tenant,
                        tags=tuple(tags), progress=progress, embedder=embedder, remove=list(remove),
                        lock_timeout=lock_timeout)


def stats(index_dir: str | Path | PostgresTarget | None = None, config: Config | None = None) -> Stats:
    """Counts, model, size on disk and a consistency check of an index."""
    config = config or Config()
    target = target_of(index_dir, config)
    repaired: list[str] = []
    if isinstance(target, Path):
        from ingest.pipeline import repair as repair_index

        repaired = repair_index(target)  # e.g. manifest.json a generation behind; skipped while an ingest runs
    index = open_index(target)
    try:
        with index.snapshot() as view:
            documents, chunks = view.count("documents"), view.count("chunks")
        m = index.manifest
        return Stats(
            index=index.location, documents=documents, chunks=chunks,
            embedding_model=m.embedding_model if m else "", dim=m.dim if m else 0,
            index_type=m.index_type if m else "", generation=index.generation, size_bytes=index.size_bytes(),
            schema_version=index.schema_version, problems=index.consistency(), repaired=repaired,
        )
    finally:
        index.close()


def _filter(filters: Sequence[str] | ChunkFilter | None, tenants: tuple[str, ...] | None) -> ChunkFilter:
    if isinstance(filters, ChunkFilter):
        return filters if tenants is None else filters.with_tenants(tenants)
    return parse_filters(list(filters or []), tenants)


class RAG:
    """An open index ready to retrieve and answer: `rag.open(dir).ask("question")`. Thread-safe."""

    def __init__(self, config: Config, collection: IndexBackend, embedder: Embedder, llm: LLM | None = None) -> None:
        self.config = config
        self.collection = collection
        self.embedder = embedder
        self.retriever = Retriever(collection, embedder, config.retrieval)
        self._llm = llm
        self._owns_llm = llm is None  # an LLM handed in is the caller's to close
        self._answerer: Answerer | None = None
        self._lock = threading.Lock()  # guards building the LLM once; retrieval and answering do not take it

    def close(self) -> None:
        close = getattr(self._llm, "close", None)
        if self._owns_llm and callable(close):
            close()
        self.collection.close()

    def __enter__(self) -> RAG:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def search(self, query: str, k: int | None = None, mode: str | None = None,
               filters: Sequence[str] | ChunkFilter | None = None,
               tenants: tuple[str, ...] | None = None) -> RetrievalResult:
        """Hits and retrieval evidence for a query. `tenants` restricts to those tenants' documents."""
        t = time.perf_counter()
        result = self.retriever.search(query, k=k, mode=mode, filters=_filter(filters, tenants))
        log.debug("retrieved %d hits in %.1f ms", len(result.hits), 1000 * (time.perf_counter() - t))
        return result

    def retrieve(self, query: str, k: int | None = None, mode: str | None = None,
                 filters: Sequence[str] | ChunkFilter | None = None,
                 tenants: tuple[str, ...] | None = None) -> list[Hit]:
        """The top-k hits for a query, best first."""
        return self.search(query, k=k, mode=mode, filters=filters, tenants=tenants).hits

    def ask(self, question: str, history: Sequence[tuple[str, str]] | None = None, *,
            filters: Sequence[str] | ChunkFilter | None = None, tenants: tuple[str, ...] | None = None,
            llm: LLM | None = None, **kw: Any) -> Answer:
        """A cited answer (or a refusal) to a question; `history` holds earlier (question, answer) turns."""
        return self._answerer_for(llm).ask(question, history or (), filters=_filter(filters, tenants), **kw)

    def stream(self, question: str, history: Sequence[tuple[str, str]] | None = None, *,
               filters: Sequence[str] | ChunkFilter | None = None, tenants: tuple[str, ...] | None = None,
               llm: LLM | None = None, **kw: Any) -> Iterator[str | Answer]:
        """Yields answer text deltas, then the final Answer."""
        return self._answerer_for(llm).stream(question, history or (), filters=_filter(filters, tenants), **kw)

    def ingest(self, paths: Sequence[str | Path], *, tenant: str | None = None, tags: Sequence[str] = (),
               remove: Sequence[str] = (), prune: bool = False, progress: Progress | None = None,
               lock_timeout: float = 0.0) -> IngestReport:
        """Ingest into this index with this pipeline's embedder; readers see the new generation when it commits."""
        return ingest(paths, self.config.index_dir, self.config, tenant=tenant, tags=tags, remove=remove,
                      prune=prune, progress=progress, embedder=self.embedder, lock_timeout=lock_timeout)

    def ready(self) -> Readiness:
        """Whether the index can be read now: a cheap read through the backend (no model, no search); the details
        of a failure are logged, the reason returned is safe to show anyone."""
        backend = self.config.index.backend
        try:
            return Readiness(ready=True, index=backend, chunks=self.collection.probe())
        except IndexUnavailableError as e:
            log.warning("the index is not ready: %s", e)
            return Readiness(ready=False, index=backend, reason=e.reason)
        except Exception as e:  # whatever else the backend raised: not ready either, and the log says what
            log.warning("the index is not ready", exc_info=True)
            return Readiness(ready=False, index=backend, reason=f"the index cannot be read ({type(e).__name__})")

    def document(self, source: str, tenant: str | None) -> StoredDocument | None:
        """The indexed document `source` of `tenant` (None: documents ingested without a tenant), or None."""
        with self.collection.snapshot() as view:
            return view.document(source, tenant)

    def documents(self) -> list[StoredDocument]:
        """Every indexed document, in one read snapshot."""
        with self.collection.snapshot() as view:
            return view.documents()

    @property
    def llm(self) -> LLM:
        return self.answerer.llm

    @property
    def answerer(self) -> Answerer:
        with self._lock:
            if self._answerer is None:
                if self._llm is None:
                    self._llm = factory.build_llm(self.config, embedder=self.embedder)
                from rag.answer import Answerer

                checker = factory.build_checker(self.config, self.embedder, judge=self._llm)
                self._answerer = Answerer(self.retriever, self._llm, self.config.answer, checker)
            return self._answerer

    def _answerer_for(self, llm: LLM | None) -> Answerer:
        base = self.answerer
        if llm is None or llm is base.llm:
            return base
        from rag.answer import Answerer

        checker = factory.build_checker(self.config, self.embedder, judge=llm)
        return Answerer(self.retriever, llm, self.config.answer, checker)


def open_pipeline(index_dir: str | Path | PostgresTarget | None = None, config: Config | None = None, *,
                  embedder: Embedder | None = None, llm: LLM | None = None) -> RAG:
    """Open an index for retrieval and answering (the embedder now, the LLM on first use). `index_dir` is a
    directory, or a PostgresTarget (the postgres backend)."""
    config = config or Config()
    if isinstance(index_dir, PostgresTarget):
        config = config.with_overrides(**{"index.backend": "postgres", "index.dsn_env": index_dir.dsn_env,
                                          "index.pg_schema": index_dir.schema})
    elif index_dir is not None:
        config = config.with_overrides(index_dir=index_dir)
    collection = factory.open_collection(config)
    return RAG(config, collection, embedder or factory.build_embedder(config, collection), llm=llm)

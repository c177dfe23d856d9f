"""The Python API and the one composition root that builds real clients from a Config."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ingest.collection import Collection
from ingest.embedding import Embedder, open_embedder
from ingest.pipeline import IngestReport, Progress, ingest_paths
from ingest.store import ChunkFilter
from rag.config import Config, load_config
from rag.records import Answer, Hit
from rag.retrieve import RetrievalResult, Retriever, parse_filters

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

    @property
    def consistent(self) -> bool:
        return not self.problems


def ingest(paths: Sequence[str | Path], index_dir: str | Path | None = None, config: Config | None = None, *,
           prune: bool = False, tenant: str | None = None, tags: Sequence[str] = (),
           progress: Progress | None = None, embedder: Embedder | None = None) -> IngestReport:
    """Ingest files and folders into an index (created if needed); returns what was done."""
    config = config or load_config()
    target = Path(index_dir) if index_dir else config.index_dir
    return ingest_paths([Path(p) for p in paths], target, config.ingest, prune=prune, tenant=tenant,
                        tags=tuple(tags), progress=progress, embedder=embedder)


def stats(index_dir: str | Path | None = None, config: Config | None = None) -> Stats:
    """Counts, model, size on disk and a consistency check of an index."""
    config = config or load_config()
    coll = Collection(Path(index_dir) if index_dir else config.index_dir)
    try:
        m = coll.manifest
        return Stats(
            index=str(coll.directory), documents=coll.store.count("documents"), chunks=coll.store.count("chunks"),
            embedding_model=m.embedding_model if m else "", dim=m.dim if m else 0,
            index_type=m.index_type if m else "", generation=coll.generation, size_bytes=coll.size_on_disk(),
            schema_version=coll.store.schema_version, problems=coll.consistency(),
        )
    finally:
        coll.close()


class RAG:
    """An open index ready to retrieve and answer: `rag.open(dir).ask("question")`."""

    def __init__(self, config: Config, collection: Collection, embedder: Embedder, llm: object | None = None) -> None:
        self.config = config
        self.collection = collection
        self.embedder = embedder
        self.retriever = Retriever(collection, embedder, config.retrieval)
        self._llm = llm
        self._owns_llm = llm is None  # an LLM handed in is the caller's to close
        # One SQLite connection and one FAISS snapshot are shared: retrieval is serialised (it takes
        # milliseconds); generation is not held by this lock.
        self._lock = threading.RLock()

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
        """Hits and retrieval evidence for a query."""
        if isinstance(filters, ChunkFilter):
            flt = filters if tenants is None else replace(filters, tenants=tenants)
        else:
            flt = parse_filters(list(filters or []), tenants)
        t = time.perf_counter()
        with self._lock:
            result = self.retriever.search(query, k=k, mode=mode, filters=flt)
        log.debug("retrieved %d hits in %.1f ms", len(result.hits), 1000 * (time.perf_counter() - t))
        return result

    def retrieve(self, query: str, k: int | None = None, mode: str | None = None,
                 filters: Sequence[str] | ChunkFilter | None = None,
                 tenants: tuple[str, ...] | None = None) -> list[Hit]:
        """The top-k hits for a query, best first."""
        return self.search(query, k=k, mode=mode, filters=filters, tenants=tenants).hits

    def ask(self, question: str, history: Sequence[tuple[str, str]] | None = None, **kw: object) -> Answer:
        from rag.answer import answer_question

        return answer_question(self, question, history=history or (), **kw)  # type: ignore[arg-type]

    def stream(self, question: str, history: Sequence[tuple[str, str]] | None = None, **kw: object) -> Iterator[str | Answer]:
        """Yields answer text deltas, then the final Answer."""
        from rag.answer import stream_answer

        return stream_answer(self, question, history=history or (), **kw)  # type: ignore[arg-type]

    @property
    def llm(self) -> object:
        with self._lock:
            return self._open_llm()

    def _open_llm(self) -> object:
        if self._llm is None:
            from rag.llm import open_llm

            self._llm = open_llm(self.config, embedder=self.embedder)
        return self._llm


def open_pipeline(index_dir: str | Path | None = None, config: Config | None = None, *,
                  embedder: Embedder | None = None, llm: object | None = None) -> RAG:
    """Open an index for retrieval and answering (the composition root: builds the embedder, LLM on demand)."""
    config = config or load_config()
    if index_dir is not None:
        config = config.with_overrides(index_dir=index_dir)
    collection = Collection(config.index_dir)
    return RAG(config, collection, embedder or open_embedder(config.ingest.embedding), llm=llm)

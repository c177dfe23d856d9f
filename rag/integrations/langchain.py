"""A `rag` index as a LangChain retriever: `RagRetriever.from_index(path, k=5, mode="hybrid", filters=[...])`.

Documents carry the passage text and, in `metadata`, its source, page, section and fused score (plus the chunk's
other provenance); retrieval is rag's own (dense + BM25, filters and tenants applied inside).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag.integrations import hit_metadata, missing_extra

try:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
except ImportError as e:  # pragma: no cover - exercised where the extra is not installed
    raise missing_extra("LangChain (langchain-core)", "langchain", e) from e

from pydantic import ConfigDict, Field

from rag.api import RAG, open_pipeline
from rag.config import Config


class RagRetriever(BaseRetriever):
    """LangChain's BaseRetriever over an open `rag.RAG` (see `from_index`); `close()` when done with an index it
    opened."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    rag: Any = Field(description="an open rag.api.RAG")
    k: int | None = None  # hits per query (default: retrieval.k of the config)
    mode: str | None = None  # dense | keyword | hybrid (default: retrieval.mode)
    filters: list[str] = Field(default_factory=list)  # KEY=VALUE: source=GLOB, type=, section=GLOB, tag=
    tenants: tuple[str, ...] | None = None  # only these tenants' documents (None: all)
    owns_index: bool = False

    @classmethod
    def from_index(cls, path: str | Path, *, k: int | None = None, mode: str | None = None,
                   filters: Sequence[str] = (), tenants: Sequence[str] | None = None, config: Config | None = None,
                   embedder: Any = None) -> RagRetriever:
        """Open the index at `path` (the embedding model loads now; no LLM is needed) and retrieve from it."""
        rag = open_pipeline(path, config, embedder=embedder)
        return cls(rag=rag, k=k, mode=mode, filters=list(filters), tenants=tuple(tenants) if tenants else None,
                   owns_index=True)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        rag: RAG = self.rag
        hits = rag.retrieve(query, k=self.k, mode=self.mode, filters=self.filters, tenants=self.tenants)
        return [Document(page_content=h.chunk.text, metadata=hit_metadata(h), id=h.chunk.chunk_id) for h in hits]

    def close(self) -> None:
        """Close the index if `from_index` opened it."""
        if self.owns_index:
            self.rag.close()


__all__ = ["RagRetriever"]

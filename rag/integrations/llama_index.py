"""A `rag` index as a LlamaIndex retriever: `RagRetriever.from_index(path, k=5, mode="hybrid", filters=[...])`.

Nodes carry the passage text and, in `metadata`, its source, page, section and fused score (plus the chunk's other
provenance); `NodeWithScore.score` is the fused score. Query engines (`RetrieverQueryEngine`) take it as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rag.integrations import hit_metadata, missing_extra

try:
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
except ImportError as e:  # pragma: no cover - exercised where the extra is not installed
    raise missing_extra("LlamaIndex (llama-index-core)", "llamaindex", e) from e

from rag.api import RAG, open_pipeline
from rag.config import Config

# Shown to the answering LLM with each passage: where it comes from. The rest stays out of prompts and embeddings.
_FOR_LLM = ("source", "page", "section")


class RagRetriever(BaseRetriever):
    """LlamaIndex's BaseRetriever over an open `rag.RAG` (see `from_index`); `close()` when done with an index it
    opened."""

    def __init__(self, rag: RAG, *, k: int | None = None, mode: str | None = None, filters: Sequence[str] = (),
                 tenants: Sequence[str] | None = None, owns_index: bool = False,
                 callback_manager: CallbackManager | None = None) -> None:
        super().__init__(callback_manager=callback_manager)
        self.rag = rag
        self.k = k
        self.mode = mode
        self.filters = list(filters)
        self.tenants = tuple(tenants) if tenants else None
        self._owns_index = owns_index

    @classmethod
    def from_index(cls, path: str | Path, *, k: int | None = None, mode: str | None = None,
                   filters: Sequence[str] = (), tenants: Sequence[str] | None = None, config: Config | None = None,
                   embedder: Any = None) -> RagRetriever:
        """Open the index at `path` (the embedding model loads now; no LLM is needed) and retrieve from it."""
        rag = open_pipeline(path, config, embedder=embedder)
        return cls(rag, k=k, mode=mode, filters=filters, tenants=tenants, owns_index=True)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.rag.retrieve(query_bundle.query_str, k=self.k, mode=self.mode, filters=self.filters,
                                 tenants=self.tenants)
        out = []
        for h in hits:
            meta = hit_metadata(h)
            hidden = [key for key, value in meta.items() if key not in _FOR_LLM or value is None]
            node = TextNode(id_=h.chunk.chunk_id, text=h.chunk.text, metadata=meta,
                            excluded_llm_metadata_keys=hidden, excluded_embed_metadata_keys=list(meta))
            out.append(NodeWithScore(node=node, score=h.score))
        return out

    def close(self) -> None:
        """Close the index if `from_index` opened it."""
        if self._owns_index:
            self.rag.close()


__all__ = ["RagRetriever"]

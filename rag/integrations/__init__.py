"""Adapters for the frameworks people already use: a `rag` index as a LangChain or a LlamaIndex retriever.

    from rag.integrations.langchain import RagRetriever      # pip install "rag[langchain]"
    from rag.integrations.llama_index import RagRetriever    # pip install "rag[llamaindex]"

Each is an optional extra, imported only when its module is; both sit on the Python API (rag.api), like the CLI.
"""

from __future__ import annotations

from typing import Any

from ingest.records import Chunk
from rag.records import Hit


def hit_metadata(hit: Hit) -> dict[str, Any]:
    """A hit's provenance and scores as flat metadata: source, page, section, score (and the rest of its chunk's)."""
    c: Chunk = hit.chunk
    return {"source": c.source, "page": c.page, "section": c.section, "score": hit.score, "chunk_id": c.chunk_id,
            "title": c.title, "page_label": c.page_label, "kind": c.kind, "start": c.start, "end": c.end,
            "tenant": c.tenant, "tags": list(c.tags), "dense_score": hit.dense_score,
            "keyword_score": hit.keyword_score}


def missing_extra(framework: str, extra: str, error: ImportError) -> ImportError:
    """The ImportError to raise when a framework is not installed: it names the extra that installs it."""
    return ImportError(f"rag.integrations needs {framework} for this adapter: pip install \"rag[{extra}]\" "
                       f"({error})")

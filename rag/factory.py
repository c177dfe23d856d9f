"""The one place that builds real clients from a Config: embedder, LLM backends, claim checker, the index.

Everything else receives what it uses; nothing else opens a model, a network client or an index by itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rag.config import Config

if TYPE_CHECKING:
    from ingest.collection import Collection
    from ingest.embedding import Embedder
    from rag.llm.base import LLM
    from rag.verify import ClaimChecker


def build_embedder(config: Config, collection: Collection | None = None) -> Embedder:
    """The configured embedding model (loaded now; the bundled MiniLM by default); given the index it will query,
    an encoder of the same family as the one that built it (embedding.backend = "auto" follows the index)."""
    from ingest.embedding import open_embedder

    manifest = collection.manifest if collection is not None else None
    return open_embedder(config.ingest.embedding, index=manifest.encoder if manifest is not None else None)


def build_llm(config: Config, name: str | None = None, embedder: Any = None) -> LLM:
    """The LLM backend `name` (default: answer.llm), configured from its table."""
    from rag.llm.base import create

    name = name or config.answer.llm
    if name == "local":
        return create("local", config=config.local)
    if name == "openai":
        return create("openai", config=config.openai)
    return create(name, embedder=embedder)


def build_checker(config: Config, embedder: Any, judge: Any = None) -> ClaimChecker:
    """The claim checker answers are verified with (and evaluation scores them with). `judge` is the LLM that
    answers its yes/no questions (the answering model itself when it can; rag.llm.base.judge_of)."""
    from rag.llm.base import judge_of
    from rag.verify import ClaimChecker

    return ClaimChecker(embedder=embedder, judge=judge_of(judge), min_entailment=config.answer.min_entailment)


def open_collection(config: Config, readonly: bool = True) -> Collection:
    from ingest.collection import Collection

    return Collection(config.index_dir, readonly=readonly)

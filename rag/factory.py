"""The one place that builds real clients from a Config: embedder, LLM backends, claim checker, the index (either
backend) and what a server shares with its replicas (access control, rate limits, upload jobs).

Everything else receives what it uses; nothing else opens a model, a network client or an index by itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rag.config import Config

if TYPE_CHECKING:
    from pathlib import Path

    from ingest.backend import IndexBackend
    from ingest.embedding import Embedder
    from rag.access import AccessStore, RateLimiter
    from rag.llm.base import LLM
    from rag.verify import ClaimChecker


def build_embedder(config: Config, collection: IndexBackend | None = None) -> Embedder:
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

    return ClaimChecker(embedder=embedder, judge=judge_of(judge), min_entailment=config.answer.min_entailment,
                        max_miscitation=config.answer.max_miscitation,
                        min_recited_entailment=config.answer.min_recited_entailment,
                        min_recited_words=config.answer.min_recited_words,
                        min_restated_entailment=config.answer.min_restated_entailment)


def open_collection(config: Config, readonly: bool = True) -> IndexBackend:
    """The configured index: an index directory (embedded) or a PostgreSQL schema (index.backend = "postgres")."""
    from ingest.backend import open_index

    return open_index(config.index.target, readonly=readonly, ef_search=config.index.ef_search)


def open_access(config: Config, index_dir: Path | None = None) -> AccessStore:
    """API keys and the audit log: in the index directory's SQLite file (`index_dir` overrides index.dir), or in
    PostgreSQL beside a postgres index, where every server replica shares them."""
    if config.index.backend == "postgres":
        from rag.access.postgres import PgAccessStore

        return PgAccessStore(config.index.target)  # type: ignore[arg-type, return-value]
    from rag.access import AccessStore

    return AccessStore(index_dir or config.index_dir)


def open_limiter(config: Config, per_minute: int, scope: str) -> RateLimiter:
    """A per-minute rate limit counted across every server process of the index: in the index directory's server
    file (embedded), or in PostgreSQL across every replica (postgres)."""
    if config.index.backend == "postgres":
        from rag.access.postgres import PgRateLimiter

        return PgRateLimiter(config.index.target, per_minute, scope)  # type: ignore[arg-type, return-value]
    from rag.access.limits import SqliteRateLimiter

    return SqliteRateLimiter(config.index_dir, per_minute, scope)  # type: ignore[return-value]

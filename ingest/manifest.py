"""The manifest: what an index says about itself (embedder, encoder, chunking, counts, generation), and the checks
that refuse to mix another embedder or chunking into an index. Shared by the embedded and the PostgreSQL backends."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ingest.config import IngestConfig
from ingest.embedding import Encoder, check_same_encoder, encoder_of
from ingest.errors import IndexMismatchError
from ingest.schema import SCHEMA_VERSION


@dataclass(frozen=True)
class Manifest:
    """What the index directory says about itself (also kept in the store's meta table)."""

    embedding_model: str
    dim: int
    chunk_size: int
    chunk_overlap: int
    index_type: str
    schema_version: int = SCHEMA_VERSION
    rag_version: str = ""
    created: float = 0.0
    updated: float = 0.0
    generation: int = 0
    documents: int = 0
    chunks: int = 0
    # The encoder that made the vectors ("" = not recorded: an older index or a custom embedder) and the figures
    # its choice was based on; queries and later ingests use an encoder of the same family (see ingest.embedding).
    embedding_backend: str = ""
    embedding_precision: str = ""
    embedding_device: str = ""
    embedding_fingerprint: str = ""
    embedding_figures: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @property
    def encoder(self) -> Encoder:
        return Encoder(backend=self.embedding_backend, precision=self.embedding_precision or "fp32",
                       device=self.embedding_device or "cpu", fingerprint=self.embedding_fingerprint,
                       figures=tuple(sorted(self.embedding_figures.items())))


def encoder_fields(embedder: Any, previous: Manifest | None) -> dict[str, Any]:
    """The manifest's encoder fields for a commit: the embedder's when it was used (and says which it is), else the
    previous generation's (a run that embedded nothing keeps what the vectors were made with)."""
    enc = encoder_of(embedder) if embedder is not None else None
    if (enc is None or not enc.known) and previous is not None:
        enc = previous.encoder
    if enc is None or not enc.known:
        return {}
    return {"embedding_backend": enc.backend, "embedding_precision": enc.precision, "embedding_device": enc.device,
            "embedding_fingerprint": enc.fingerprint, "embedding_figures": dict(enc.figures)}


def next_manifest(config: IngestConfig, dim: int, previous: Manifest | None, embedder: Any, documents: int,
                  chunks: int, index_type: str | None = None) -> Manifest:
    """The manifest of the generation a run commits (the backend sets generation, times and version)."""
    return Manifest(
        embedding_model=config.embedding.model, dim=dim, chunk_size=config.chunk_size,
        chunk_overlap=config.chunk_overlap, index_type=index_type or config.index_type,
        created=previous.created if previous else 0.0, documents=documents, chunks=chunks,
        **encoder_fields(embedder, previous),
    )


def check_manifest_compatible(m: Manifest | None, where: str, config: IngestConfig, index_type: bool = True) -> None:
    """Refuse to mix embedders or chunking settings in one index (and, for FAISS, index types)."""
    if m is None:
        return
    if m.embedding_model != config.embedding.model:
        raise IndexMismatchError(
            f"index {where} was built with embedding model {m.embedding_model!r} (dim {m.dim}); "
            f"this run is configured for {config.embedding.model!r}. Use the same model, or another --index directory"
        )
    if (m.chunk_size, m.chunk_overlap) != (config.chunk_size, config.chunk_overlap):
        raise IndexMismatchError(
            f"index {where} was built with chunk_size={m.chunk_size}, chunk_overlap={m.chunk_overlap}; "
            f"this run asks for {config.chunk_size}/{config.chunk_overlap}. Use the same settings, or another --index"
        )
    if index_type and m.index_type != config.index_type:
        raise IndexMismatchError(
            f"index {where} is a {m.index_type!r} index; this run asks for {config.index_type!r}. "
            "Use the same index_type, or another --index directory"
        )


def check_manifest_embedder(m: Manifest | None, where: str, model_id: str, dim: int, embedder: Any = None) -> None:
    """Refuse an embedder of another model, dimension or encoder family (e.g. int8 against fp32 vectors)."""
    if m is not None and (m.embedding_model != model_id or m.dim != dim):
        raise IndexMismatchError(
            f"index {where} was built with embedding model {m.embedding_model!r} (dim {m.dim}); "
            f"cannot query it with {model_id!r} (dim {dim})"
        )
    problem = check_same_encoder(m.encoder, embedder, where) if m and embedder is not None else None
    if problem:
        raise IndexMismatchError(problem)


def package_version() -> str:
    """This package's version, recorded in each manifest."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rag")
    except PackageNotFoundError:
        return "unknown"

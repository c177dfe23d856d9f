"""Typed settings of the ingestion stage (the [ingest] and [embedding] tables of config.toml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

INDEX_TYPES = ("flat", "hnsw", "ivf")
DEFAULT_EXTENSIONS = (".pdf", ".md", ".markdown", ".html", ".htm", ".txt", ".text", ".rst")


class ConfigError(ValueError):
    """A setting has a value that is not allowed; the message says which values are."""


@dataclass(frozen=True)
class EmbeddingConfig:
    model: str = "bundled:all-MiniLM-L6-v2"  # "bundled:..." or a local path or a model name in the HF cache
    batch_size: int = 64
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"embedding.batch_size must be >= 1, got {self.batch_size}")


@dataclass(frozen=True)
class IngestConfig:
    chunk_size: int = 200  # word pieces of the embedder's tokenizer
    chunk_overlap: int = 30
    index_type: str = "flat"  # flat | hnsw | ivf
    hnsw_m: int = 32
    ivf_nlist: int = 256
    max_file_mb: float = 64.0
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)

    def __post_init__(self) -> None:
        if self.index_type not in INDEX_TYPES:
            raise ConfigError(
                f"ingest.index_type {self.index_type!r} is not known; valid types are: {', '.join(INDEX_TYPES)}"
            )
        if not self.chunk_size >= 16:
            raise ConfigError(f"ingest.chunk_size must be >= 16 word pieces, got {self.chunk_size}")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise ConfigError(
                f"ingest.chunk_overlap must be >= 0 and < chunk_size ({self.chunk_size}), got {self.chunk_overlap}"
            )
        if self.max_file_mb <= 0:
            raise ConfigError(f"ingest.max_file_mb must be > 0, got {self.max_file_mb}")

    @classmethod
    def from_dict(cls, ingest: dict[str, Any], embedding: dict[str, Any]) -> IngestConfig:
        """Build from the [ingest] and [embedding] tables; unknown keys are refused."""
        emb = EmbeddingConfig(**_known(EmbeddingConfig, embedding, "embedding"))
        values = _known(cls, ingest, "ingest")
        if "extensions" in values:
            values["extensions"] = tuple(e if e.startswith(".") else f".{e}" for e in values["extensions"])
        return cls(embedding=emb, **values)


def _known(klass: type, table: dict[str, Any], name: str) -> dict[str, Any]:
    allowed = {f for f in klass.__dataclass_fields__ if f != "embedding"}
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"unknown key(s) in [{name}]: {', '.join(unknown)}; valid keys are: {', '.join(sorted(allowed))}")
    return dict(table)

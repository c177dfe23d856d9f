"""Typed settings of the ingestion stage (the [ingest] and [embedding] tables of config.toml).

Pydantic models, frozen and closed (an unknown key is an error naming the valid ones). The root configuration
(`rag.config.Config`) nests them; this stage never reads a file or the environment by itself.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

INDEX_TYPES = ("flat", "hnsw", "ivf")
# Candidates an HNSW search keeps ([index] ef_search: FAISS efSearch, pgvector hnsw.ef_search); pgvector allows 1000.
DEFAULT_EF_SEARCH = 64
EF_SEARCH_MAX = 1000
DEFAULT_EXTENSIONS = (".pdf", ".md", ".markdown", ".html", ".htm", ".txt", ".text", ".rst", ".docx", ".pptx",
                      ".epub")


class ConfigError(ValueError):
    """A setting has a value that is not allowed; the message says which key, which value and what is allowed."""


EF_SEARCH_RULE = (f"must be an integer from 1 to {EF_SEARCH_MAX} (the candidates an HNSW search keeps: more finds more "
                  f"of the true nearest chunks, and takes longer; {DEFAULT_EF_SEARCH} by default)")


def check_ef_search(value: Any, key: str = "index.ef_search") -> int:
    """The HNSW search breadth as an int; ConfigError naming the key and the allowed range otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= EF_SEARCH_MAX:
        raise ConfigError(f"{key} = {value!r}: {EF_SEARCH_RULE}")
    return value


class Settings(BaseModel):
    """Base of every settings table: frozen, unknown keys refused, values validated on assignment of a copy."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    def updated(self, **changes: Any) -> Any:
        """A validated copy with some fields changed (model_copy would skip validation)."""
        return validated(type(self), {**self.model_dump(), **changes}, type(self).__name__)


class EmbeddingConfig(Settings):
    model: str = "bundled:all-MiniLM-L6-v2"  # "bundled:..." or a local path or a model name in the HF cache
    batch_size: int = Field(64, ge=1)
    device: Literal["cpu", "auto", "cuda", "mps"] = "auto"  # auto: a GPU when one is present, else the CPU
    # auto: follow the index; new index: torch fp16 on a GPU, else int8 ONNX where it passed the quality gate and
    # measures faster on this CPU, else fp32 ONNX. torch | onnx (fp32) | onnx-int8 force one.
    backend: Literal["auto", "torch", "onnx", "onnx-int8"] = "auto"
    threads: int = Field(0, ge=0)  # ONNX worker threads (0 = the CPUs this process may use)


class IngestConfig(Settings):
    chunk_size: int = Field(200, ge=16)  # word pieces of the embedder's tokenizer
    chunk_overlap: int = Field(30, ge=0)
    index_type: Literal["flat", "hnsw", "ivf"] = "flat"
    hnsw_m: int = Field(32, ge=4)
    ivf_nlist: int = Field(256, ge=1)
    max_file_mb: float = Field(64.0, gt=0)
    # Each file is parsed and chunked in a worker process under these limits (ingest.isolation).
    load_timeout_s: float = Field(60.0, gt=0, le=86_400)  # wall time one file may take
    load_memory_mb: int = Field(1536, ge=64, le=1_048_576)  # memory one file's parsing may take, past the worker's own
    load_workers: int = Field(1, ge=1, le=64)  # worker processes; the main process embeds while they parse
    # Where files are parsed and chunked and texts embedded (ingest.distributed): "local" (the worker processes
    # above, embedding in this process) or "ray" (actors on a Ray cluster: pip install "rag[ray]"). Either way this
    # process reads and hashes the files, skips unchanged ones, and is the one writer of the index.
    executor: Literal["local", "ray"] = "local"
    # "local" starts a Ray cluster inside the ingest process; "auto" joins the one `ray start` runs on this
    # machine; HOST:PORT (a head node's GCS) or ray://HOST:10001 (Ray Client) joins a remote one.
    ray_address: str = Field("local", min_length=1)
    ray_loaders: int = Field(0, ge=0, le=10_000)  # parsing actors; 0 = the cluster's CPUs the embedders leave
    ray_embedders: int = Field(0, ge=0, le=10_000)  # embedding actors; 0 = one per GPU, or half the CPUs if none
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    embedding: EmbeddingConfig = Field(default_factory=EmbeddingConfig)

    @field_validator("extensions", mode="before")
    @classmethod
    def _dotted(cls, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return tuple(e if not isinstance(e, str) or e.startswith(".") else f".{e}" for e in value)
        return value

    @model_validator(mode="after")
    def _overlap_below_size(self) -> IngestConfig:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError(f"chunk_overlap ({self.chunk_overlap}) must be smaller than chunk_size ({self.chunk_size})")
        return self

    @classmethod
    def from_dict(cls, ingest: dict[str, Any], embedding: dict[str, Any]) -> IngestConfig:
        """Build from the [ingest] and [embedding] tables; unknown keys and bad values are refused."""
        return validated(cls, {**ingest, "embedding": embedding}, "ingest")


def validated(klass: type[BaseModel], data: dict[str, Any], where: str = "") -> Any:
    """`klass.model_validate(data)`, with pydantic's errors turned into one ConfigError that names each key,
    its value and what is allowed."""
    try:
        return klass.model_validate(data)
    except ValidationError as e:
        raise ConfigError(describe_errors(e, klass, where)) from None


def describe_errors(e: ValidationError, klass: type[BaseModel], where: str = "") -> str:
    parts = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"])
        key = f"{where}.{loc}" if where and loc else (loc or where or "config")
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key {key!r}; valid keys are: {', '.join(_valid_keys(klass, err['loc'][:-1]))}")
            continue
        value = err.get("input")
        msg = err["msg"].removeprefix("Value error, ")
        shown = repr(value) if not isinstance(value, dict) else "a table"
        parts.append(f"{key} = {shown}: {msg}")
    return "; ".join(parts)


def _valid_keys(klass: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    model: Any = klass
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        model = field.annotation
    return sorted(getattr(model, "model_fields", {}) or [])

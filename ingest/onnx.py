"""The ONNX Runtime encoder: a sentence-transformers model exported once to ONNX (fp32, and int8 by dynamic
quantisation), cached under ~/.cache/rag/onnx and verified by sha256 on every load.

Exporting needs torch and transformers (once per model and machine); encoding needs only `tokenizers` and
`onnxruntime`, so a query process never imports torch. Texts are tokenised in parallel, sorted by length and
cut into batches of similar lengths, and the batches run concurrently on one-thread sessions (no thread
barriers: on a shared machine this beats one multi-threaded run per batch).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ingest.config import ConfigError
from ingest.fsutil import atomic_path, atomic_write

log = logging.getLogger(__name__)

EXPORT_VERSION = 1  # bump when the export or quantisation recipe changes: a new cache folder is made
PRECISIONS = ("fp32", "int8")
# Minimum cosine similarity of each exported encoder to the torch model on the verification sentences.
MIN_COSINE = {"fp32": 0.9999, "int8": 0.97}
VERIFY_TEXTS = (
    "Retrieval-augmented generation grounds a language model's answer in retrieved passages.",
    "SQLite is a small, fast, self-contained SQL database engine.",
    "The function returns NULL if the argument is not a valid JSON document.",
    "a",
    "Write-ahead logging lets readers continue while a single writer appends to the log. " * 12,
)


def cache_root() -> Path:
    """Where exported encoders are kept: $RAG_CACHE, else ~/.cache/rag."""
    return Path(os.environ.get("RAG_CACHE") or Path.home() / ".cache" / "rag")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def source_key(folder: Path) -> str:
    """A cheap content key of a model folder: sizes and head/tail bytes of the weights, the config files."""
    h = hashlib.sha256(f"export-v{EXPORT_VERSION}".encode())
    for name in ("config.json", "tokenizer.json", "modules.json", "sentence_bert_config.json", "1_Pooling/config.json"):
        p = folder / name
        if p.is_file():
            h.update(name.encode() + p.read_bytes())
    weights = folder / "model.safetensors"
    if not weights.is_file():
        weights = folder / "pytorch_model.bin"
    if not weights.is_file():
        raise ConfigError(f"{folder} holds no model.safetensors or pytorch_model.bin to export to ONNX; use backend='torch'")
    size = weights.stat().st_size
    with open(weights, "rb") as fh:
        h.update(str(size).encode() + fh.read(1 << 20))
        fh.seek(max(0, size - (1 << 20)))
        h.update(fh.read())
    return h.hexdigest()[:16]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class OnnxModel:
    """One verified ONNX file of an exported encoder."""

    path: Path
    precision: str
    sha256: str
    meta: dict[str, Any]


def _pooling(folder: Path) -> str:
    cfg = folder / "1_Pooling" / "config.json"
    if not cfg.is_file():
        return "mean"
    pooling = json.loads(cfg.read_text(encoding="utf-8"))
    if pooling.get("pooling_mode_mean_tokens"):
        return "mean"
    if pooling.get("pooling_mode_cls_token"):
        return "cls"
    raise ConfigError(f"{folder}: only mean or CLS pooling can be exported to ONNX; use embedding.backend = 'torch'")


def _export(folder: Path, out_dir: Path) -> dict[str, Any]:
    """Export fp32 with pooling and normalisation inside the graph, quantise to int8, verify both against torch."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    pooling = _pooling(folder)
    model = AutoModel.from_pretrained(str(folder), attn_implementation="eager")
    model.eval()

    class Encoder(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
            h = self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
            if pooling == "cls":
                e = h[:, 0]
            else:
                w = attention_mask.unsqueeze(-1).to(h.dtype)
                e = (h * w).sum(1) / w.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(e, p=2.0, dim=1)

    dummy = torch.ones(2, 16, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    fp32 = out_dir / "model-fp32.onnx"
    with atomic_path(fp32) as tmp:
        torch.onnx.export(
            Encoder(model), (dummy, dummy, torch.zeros_like(dummy)), str(tmp), dynamo=False, opset_version=17,
            input_names=names, output_names=["sentence_embedding"],
            dynamic_axes={**{n: {0: "batch", 1: "tokens"} for n in names}, "sentence_embedding": {0: "batch"}},
        )
    int8 = out_dir / "model-int8.onnx"
    with atomic_path(int8) as tmp:
        # Per-channel int8 weights of the MatMuls only (embeddings and LayerNorm stay fp32): per-tensor weights or
        # quantised Gathers cost ~0.04 of cosine to the fp32 vectors, this recipe ~0.006 (measured on chunk texts).
        quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul"])
    from sentence_transformers import SentenceTransformer

    ref = SentenceTransformer(str(folder), device="cpu").encode(list(VERIFY_TEXTS), normalize_embeddings=True)
    checks: dict[str, Any] = {}
    for precision, path in (("fp32", fp32), ("int8", int8)):
        session = _session(path, threads=1)
        vecs = _run(session, _tokenizer(folder, _max_tokens(folder)), list(VERIFY_TEXTS))
        cos = (vecs * ref).sum(axis=1)
        checks[precision] = {"min_cosine": round(float(cos.min()), 5), "mean_cosine": round(float(cos.mean()), 5)}
        if cos.min() < MIN_COSINE[precision]:
            raise ConfigError(f"the {precision} ONNX export of {folder} differs from the torch model "
                              f"(cosine {cos.min():.4f} < {MIN_COSINE[precision]}); use embedding.backend = 'torch'")
    import onnxruntime
    import transformers

    return {"export_version": EXPORT_VERSION, "source": str(folder), "pooling": pooling, "verified": checks,
            "sha256": {"fp32": file_sha256(fp32), "int8": file_sha256(int8)}, "created": time.time(),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "onnxruntime": onnxruntime.__version__}}


def export_dir(folder: Path) -> Path:
    return cache_root() / "onnx" / source_key(folder)


def ensure_exported(folder: Path, precision: str) -> OnnxModel:
    """The cached ONNX file of `folder` at `precision`, exported (and verified) first if missing or damaged."""
    if precision not in PRECISIONS:
        raise ConfigError(f"ONNX precision {precision!r} is not known; valid precisions are: {', '.join(PRECISIONS)}")
    out = export_dir(folder)
    meta_file = out / "meta.json"
    found = _verified(out, meta_file, precision)
    if found is not None:
        return found
    from filelock import FileLock

    out.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out / ".export.lock")):  # another process may be exporting the same model
        found = _verified(out, meta_file, precision)
        if found is not None:
            return found
        log.info("exporting %s to ONNX (fp32 and int8) under %s", folder, out)
        t = time.perf_counter()
        meta = _export(folder, out)
        meta["export_seconds"] = round(time.perf_counter() - t, 1)
        atomic_write(meta_file, json.dumps(meta, indent=2, sort_keys=True))
    found = _verified(out, meta_file, precision)
    if found is None:
        raise ConfigError(f"the ONNX export under {out} does not verify; delete that folder and retry")
    return found


def _verified(out: Path, meta_file: Path, precision: str) -> OnnxModel | None:
    path = out / f"model-{precision}.onnx"
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    want = meta.get("sha256", {}).get(precision)
    if not want or not path.is_file():
        return None
    got = file_sha256(path)
    if got != want:
        log.warning("%s does not match its recorded sha256 (%s != %s): exporting again", path, got[:12], want[:12])
        return None
    return OnnxModel(path=path, precision=precision, sha256=got, meta=meta)


def _max_tokens(folder: Path) -> int:
    cfg = folder / "sentence_bert_config.json"
    if cfg.is_file():
        return int(json.loads(cfg.read_text(encoding="utf-8")).get("max_seq_length", 512))
    return 512


def _tokenizer(folder: Path, max_tokens: int) -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.enable_truncation(max_tokens)
    tok.no_padding()
    return tok


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting on a shared CPU
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _feed(encodings: Sequence[Any]) -> dict[str, np.ndarray]:
    width = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    mask = np.zeros((len(encodings), width), dtype=np.int64)
    for row, e in enumerate(encodings):
        ids[row, : len(e.ids)] = e.ids
        mask[row, : len(e.ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def _run(session: Any, tokenizer: Any, texts: list[str]) -> np.ndarray:
    return np.asarray(session.run(None, _feed(tokenizer.encode_batch(texts)))[0], dtype=np.float32)


class OnnxEmbedder:
    """The Embedder protocol over an ONNX Runtime session (CPU); thread-safe, never imports torch."""

    def __init__(self, model_id: str, folder: Path, precision: str = "int8", workers: int = 0,
                 batch_size: int | None = None, max_batch_tokens: int = 8192) -> None:
        self.model_id = model_id
        self.folder = Path(folder)
        self.onnx = ensure_exported(self.folder, precision)
        self.precision = precision
        self.max_tokens = _max_tokens(self.folder)
        self._tokenizer = _tokenizer(self.folder, self.max_tokens)
        self.workers = workers or len(os.sched_getaffinity(0))
        self._session = _session(self.onnx.path, threads=1)
        width = self._session.get_outputs()[0].shape[-1]
        self.dim = width if isinstance(width, int) else int(_run(self._session, self._tokenizer, ["x"]).shape[1])
        # int8 quantises each activation tensor with one scale over the whole batch, so a text's vector would depend
        # on the texts batched with it (cosine ~0.99 to its vector alone): int8 runs one text per call, which also
        # pads nothing and measured no slower than batches of 16 (600 chunks: 4.2 s vs 5.4 s).
        self._batch_size = batch_size or (1 if precision == "int8" else 16)
        self._max_batch_tokens = max_batch_tokens
        self._pool: ThreadPoolExecutor | None = None

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def _pool_for(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="rag-onnx")
        return self._pool

    def embed(self, texts: list[str]) -> np.ndarray:
        """Normalised vectors in input order."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) <= self._batch_size:  # a query or a small batch: run in the caller's thread
            return np.asarray(self._session.run(None, _feed(self._tokenizer.encode_batch(texts)))[0], dtype=np.float32)
        pool = self._pool_for()
        # Tokenise in parallel (encode_batch releases the GIL), then sort by length into batches of similar length.
        step = -(-len(texts) // self.workers)
        parts = list(pool.map(self._tokenizer.encode_batch, [texts[i:i + step] for i in range(0, len(texts), step)]))
        encodings = [e for part in parts for e in part]
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        batches: list[list[int]] = []
        for i in order:
            if batches and len(batches[-1]) < self._batch_size and \
                    (len(batches[-1]) + 1) * len(encodings[i].ids) <= self._max_batch_tokens:
                batches[-1].append(i)
            else:
                batches.append([i])
        outs = pool.map(lambda b: self._session.run(None, _feed([encodings[i] for i in b]))[0], batches)
        result = np.empty((len(texts), self.dim), dtype=np.float32)
        for b, vecs in zip(batches, outs, strict=True):
            result[b] = vecs
        return result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)

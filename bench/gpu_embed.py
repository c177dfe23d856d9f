"""Embedding throughput on a GPU (fp16, large length-sorted batches) against the CPU of the same machine, and a
check that `embedding.device = "auto"` picks the GPU there (run by hand on a GPU machine; prints figures).

    python bench/gpu_embed.py --model MODEL_DIR --texts CHUNKS.jsonl [--cpu-texts 1024] [--out result.json]

MODEL_DIR is a sentence-transformers folder (e.g. an fp16 copy of the bundled all-MiniLM-L6-v2); CHUNKS.jsonl holds
one {"text": ...} per line (real chunk texts, as `rag ingest` cuts them).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest.config import EmbeddingConfig  # noqa: E402
from ingest.embedding import open_embedder, resolve_device  # noqa: E402


def timed(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--texts", type=Path, required=True)
    ap.add_argument("--cpu-texts", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    import numpy as np
    import torch

    texts = [json.loads(line)["text"] for line in args.texts.read_text().splitlines() if line.strip()]
    result: dict[str, object] = {"texts": len(texts), "torch": torch.__version__, "cuda": torch.cuda.is_available(),
                                 "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                                 "cpus": len(os.sched_getaffinity(0))}
    picked = resolve_device("auto")
    gpu = open_embedder(EmbeddingConfig(model=str(args.model), device="auto"))
    enc = gpu.encoder
    result["auto_device"] = picked
    result["auto_encoder"] = enc.describe()
    print(f"device='auto' resolved to {picked!r}; backend auto chose: {enc.describe()}", flush=True)
    gpu.embed(texts[:1024])  # warm-up: kernels, allocator
    torch.cuda.synchronize()
    gpu_s = timed(lambda: gpu.embed(texts), args.rounds)
    gpu_vecs = gpu.embed(texts[: args.cpu_texts])
    result["gpu_texts_per_s"] = round(len(texts) / gpu_s, 1)
    print(f"GPU ({result['gpu']}, fp16, batch 512 sorted): {len(texts)} texts in {gpu_s:.2f} s = "
          f"{result['gpu_texts_per_s']} texts/s", flush=True)

    from sentence_transformers import SentenceTransformer

    cpu_model = SentenceTransformer(str(args.model), device="cpu").float()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    subset = texts[: args.cpu_texts]
    cpu_model.encode(subset[:64], batch_size=64, normalize_embeddings=True)
    cpu_s = timed(lambda: cpu_model.encode(subset, batch_size=64, normalize_embeddings=True), max(1, args.rounds - 1))
    cpu_vecs = cpu_model.encode(subset, batch_size=64, normalize_embeddings=True)
    result["cpu_texts_per_s"] = round(len(subset) / cpu_s, 1)
    print(f"CPU ({result['cpus']} threads, torch fp32, batch 64): {len(subset)} texts in {cpu_s:.2f} s = "
          f"{result['cpu_texts_per_s']} texts/s", flush=True)
    cos = (np.asarray(gpu_vecs, dtype=np.float32) * np.asarray(cpu_vecs, dtype=np.float32)).sum(axis=1)
    result["fp16_vs_fp32_cosine_min"] = round(float(cos.min()), 5)
    result["gpu_over_cpu"] = round(result["gpu_texts_per_s"] / result["cpu_texts_per_s"], 1)  # type: ignore[operator]
    ok = picked == "cuda" and enc.device == "cuda" and enc.precision == "fp16"
    result["auto_picks_gpu"] = ok
    print(f"GPU / CPU throughput: {result['gpu_over_cpu']}x; fp16 vs fp32 cosine min {result['fp16_vs_fp32_cosine_min']}; "
          f"auto picks the GPU: {'yes' if ok else 'NO'}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

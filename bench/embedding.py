"""Embedding encoders side by side (run by hand; prints figures).

    python bench/embedding.py [--gate] [--speed-texts 256] [--rounds 3] [--corpora lecture sqlite-docs r-data-manual]

1. Speed: texts/s of sentence-transformers fp32 (torch, what LangChain's HuggingFaceEmbeddings runs), ONNX fp32 and
   ONNX int8 on real chunk texts of corpora/sqlite-docs, interleaved (A B C A B C ...), medians, ratios.
2. With --gate: the retrieval-quality gate of the int8 encoder. Every corpus is ingested once with the torch fp32
   encoder and once with the int8 one; hit@5 and MRR@10 of the dev questions (dense and hybrid) are compared. int8
   passes when no corpus loses more than 0.01 of either in hybrid retrieval (what rag runs); dense-only deltas are
   printed beside it. ingest/calibrate.py's QUALITY_GATE holds the worst deltas this prints.
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
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repo first: bench/ingest.py must not shadow the ingest package

from ingest.config import EmbeddingConfig  # noqa: E402
from ingest.embedding import open_embedder  # noqa: E402


def chunk_texts(corpus: Path, limit: int) -> list[str]:
    """Chunk texts of a corpus, as `rag ingest` cuts them (no embedding)."""
    from ingest.chunking import Chunker
    from ingest.config import IngestConfig
    from ingest.embedding import load_tokenizer
    from ingest.loaders import load, read_bytes

    cfg = IngestConfig()
    tokenizer, max_tokens = load_tokenizer(cfg.embedding)
    chunker = Chunker(tokenizer, cfg, max_tokens)
    texts: list[str] = []
    for path in sorted(corpus.rglob("*")):
        if path.suffix.lower() in cfg.extensions and path.is_file():
            texts.extend(c.text for c in chunker.split(load(path, path.name, read_bytes(path, path.name))))
        if len(texts) >= limit:
            break
    return texts[:limit]


def speed(texts: list[str], rounds: int) -> None:
    encoders = {name: open_embedder(EmbeddingConfig(backend=name)) for name in ("torch", "onnx", "onnx-int8")}
    for enc in encoders.values():
        enc.embed(texts[:32])
    times: dict[str, list[float]] = {n: [] for n in encoders}
    for _ in range(rounds):
        for name, enc in encoders.items():
            t = time.perf_counter()
            enc.embed(texts)
            times[name].append(time.perf_counter() - t)
    base = statistics.median(times["torch"])
    print(f"\nspeed on {len(texts)} chunk texts of sqlite-docs, median of {rounds} interleaved rounds, "
          f"load average {os.getloadavg()[0]:.2f}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:>10}: {len(texts) / med:7.1f} texts/s   {base / med:5.2f}x torch fp32")


def gate(corpora: list[str]) -> dict[str, float]:
    from ingest.pipeline import ingest_paths
    from rag.api import open_pipeline
    from rag.config import load_config

    base = load_config(ROOT / "config.toml")
    worst = {"hit5_delta": 0.0, "mrr_delta": 0.0}
    print("\nquality gate: int8 - fp32 on the dev questions (hit@5, MRR@10)")
    for corpus in corpora:
        qs = [json.loads(line) for line in (ROOT / "corpora" / corpus / "questions" / "dev.jsonl").read_text().splitlines()
              if line.strip()]
        qs = [q for q in qs if q["answerable"]]
        scores: dict[tuple[str, str], tuple[float, float]] = {}
        for backend in ("torch", "onnx-int8"):
            cfg = base.with_overrides(**{"embedding.backend": backend})
            index = ROOT / ".rag" / "bench" / f"gate-{corpus}-{backend}"
            embedder = open_embedder(cfg.ingest.embedding)
            ingest_paths([ROOT / "corpora" / corpus / "docs"], index, cfg.ingest, embedder=embedder)
            for mode in ("dense", "hybrid"):
                with open_pipeline(index, cfg.with_overrides(**{"retrieval.mode": mode}), embedder=embedder) as r:
                    ranks = [_first_rank(r.search(q["question"], k=10).hits, q["reference_sources"]) for q in qs]
                hit5 = sum(1 for x in ranks if x and x <= 5) / len(ranks)
                mrr = sum(1 / x for x in ranks if x) / len(ranks)
                scores[(backend, mode)] = (hit5, mrr)
        for mode in ("dense", "hybrid"):
            (h32, m32), (h8, m8) = scores[("torch", mode)], scores[("onnx-int8", mode)]
            print(f"  {corpus:>14} {mode:>6}: fp32 hit@5 {h32:.3f} mrr {m32:.3f} | int8 hit@5 {h8:.3f} mrr {m8:.3f} | "
                  f"delta {h8 - h32:+.3f} {m8 - m32:+.3f} (n={len(qs)})")
            prefix = "" if mode == "hybrid" else "dense_"
            worst[f"{prefix}hit5_delta"] = min(worst.get(f"{prefix}hit5_delta", 0.0), round(h8 - h32, 4))
            worst[f"{prefix}mrr_delta"] = min(worst.get(f"{prefix}mrr_delta", 0.0), round(m8 - m32, 4))
    ok = worst["hit5_delta"] >= -0.01 and worst["mrr_delta"] >= -0.01
    print(f"  worst: {worst} -> int8 {'PASSES' if ok else 'FAILS'} the gate (hybrid, the default retrieval: "
          "loss <= 0.01; dense-only figures reported beside it)")
    return worst


def _first_rank(hits, gold) -> int | None:
    for i, h in enumerate(hits, start=1):
        if any(h.chunk.source == g["source"] and (g.get("page") is None or h.chunk.page == g["page"]) for g in gold):
            return i
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gate", action="store_true", help="also run the retrieval-quality gate (ingests each corpus twice)")
    ap.add_argument("--speed-texts", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--corpora", nargs="+", default=["lecture", "sqlite-docs", "r-data-manual"])
    args = ap.parse_args()
    if args.speed_texts:
        speed(chunk_texts(ROOT / "corpora" / "sqlite-docs" / "docs", args.speed_texts), args.rounds)
    if args.gate:
        gate(args.corpora)


if __name__ == "__main__":
    main()

"""Whether the int8 ONNX encoder is chosen: only for a model whose int8 vectors passed the retrieval-quality gate
(QUALITY_GATE, measured by `python bench/embedding.py --gate` on every corpus's dev questions), and only when it
measures faster than the fp32 encoder on this CPU (timed once per machine, interleaved, cached beside the export).
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from pathlib import Path

from ingest.config import EmbeddingConfig
from ingest.fsutil import atomic_write

log = logging.getLogger(__name__)

MIN_SPEEDUP = 1.1  # int8 must be at least this much faster than fp32 to be worth its (small) quality cost
MAX_QUALITY_LOSS = 0.01  # hit@5 and MRR@10 on the dev questions may drop by at most this much

# int8 minus torch fp32 on the dev questions of corpora/lecture, sqlite-docs and r-data-manual, each corpus
# ingested once per encoder (bench/embedding.py --gate, 2026-11-30), worst corpus. The gate is the retrieval rag
# runs (hybrid, the default mode): no loss on any corpus. Dense-only retrieval is reported beside it: sqlite-docs
# MRR +0.030, r-data-manual MRR -0.031 (one of its 14 questions moved from rank 1 to 2), hit@5 unchanged.
QUALITY_GATE: dict[str, dict[str, float]] = {
    "bundled:all-MiniLM-L6-v2": {"hit5_delta": 0.0, "mrr_delta": 0.0, "dense_hit5_delta": 0.0,
                                 "dense_mrr_delta": -0.0309},
}


def gate_passed(model: str) -> tuple[bool, dict[str, float]]:
    figures = QUALITY_GATE.get(model)
    if figures is None:
        return False, {}
    ok = figures["hit5_delta"] >= -MAX_QUALITY_LOSS and figures["mrr_delta"] >= -MAX_QUALITY_LOSS
    return ok, figures


def sample_texts(folder: Path, n: int = 32, words: int = 120) -> list[str]:
    """Deterministic English text of chunk length from the model package's own README (no corpus needed)."""
    readme = folder / "README.md"
    source = readme.read_text(encoding="utf-8", errors="replace").split() if readme.is_file() else []
    source = source or ("retrieval augmented generation grounds answers in passages of private documents " * 40).split()
    while len(source) < words * 4:
        source = source * 2
    step = max(1, (len(source) - words) // n)
    return [" ".join(source[(i * step) % (len(source) - words):][:words]) for i in range(n)]


def measure_speedup(config: EmbeddingConfig, folder: Path, rounds: int = 2) -> dict[str, float]:
    """fp32 and int8 texts/s on this CPU, interleaved (fp32 int8 fp32 int8 ...), medians."""
    from ingest.onnx import OnnxEmbedder

    texts = sample_texts(folder)
    encoders = {p: OnnxEmbedder(config.model, folder, precision=p, workers=config.threads) for p in ("fp32", "int8")}
    for enc in encoders.values():
        enc.embed(texts[:8])  # warm-up
    times: dict[str, list[float]] = {p: [] for p in encoders}
    for _ in range(rounds):
        for p, enc in encoders.items():
            t = time.perf_counter()
            enc.embed(texts)
            times[p].append(time.perf_counter() - t)
    for enc in encoders.values():
        enc.close()
    fp32, int8 = statistics.median(times["fp32"]), statistics.median(times["int8"])
    return {"fp32_texts_per_s": round(len(texts) / fp32, 2), "int8_texts_per_s": round(len(texts) / int8, 2),
            "int8_speedup": round(fp32 / int8, 3)}


def int8_choice(config: EmbeddingConfig, folder: Path) -> tuple[bool, tuple[tuple[str, float], ...]]:
    """(use int8, the figures behind the choice) for a new index on this machine."""
    from ingest.onnx import cpu_name, export_dir

    ok, quality = gate_passed(config.model)
    figures = tuple(sorted(quality.items()))
    if not ok:
        log.info("int8 encoder not used for %s: %s", config.model,
                 "no quality-gate figures for it" if not quality else f"it failed the quality gate {quality}")
        return False, figures
    cache = export_dir(folder) / "calibration.json"
    try:
        known = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    key = f"{cpu_name()} | threads={config.threads}"
    speed = known.get(key)
    if speed is None:
        log.info("timing the fp32 and int8 ONNX encoders on this CPU (once per machine)")
        speed = measure_speedup(config, folder)
        known[key] = speed
        cache.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache, json.dumps(known, indent=2, sort_keys=True))
    figures = tuple(sorted({**quality, "int8_speedup": speed["int8_speedup"]}.items()))
    return speed["int8_speedup"] >= MIN_SPEEDUP, figures

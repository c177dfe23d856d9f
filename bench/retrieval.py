"""Retrieval tuning on the corpora's dev questions (run by hand; prints figures).

    python bench/retrieval.py [--split dev] [--chunk-sizes 200] [--corpora lecture sqlite-docs r-data-manual]

For each corpus and chunk size it builds (or reuses) an index under .rag/bench/, then prints hit@1/5/10
and MRR@10 of every retrieval mode and fusion setting, and the refusal signals (best dense score,
keyword overlap) of answerable versus unanswerable questions, which is how the defaults in config.toml
were chosen.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repo first: bench/ingest.py must not shadow the ingest package

from ingest.embedding import open_embedder  # noqa: E402
from ingest.pipeline import ingest_paths  # noqa: E402
from rag.api import open_pipeline  # noqa: E402
from rag.config import load_config  # noqa: E402


def is_hit(chunk, gold: list[dict]) -> bool:
    return any(chunk.source == g["source"] and (g.get("page") is None or chunk.page == g["page"]) for g in gold)


def first_rank(hits, gold) -> int | None:
    return next((i for i, h in enumerate(hits, start=1) if is_hit(h.chunk, gold)), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--split", default="dev")
    ap.add_argument("--chunk-sizes", type=int, nargs="+", default=[200])
    ap.add_argument("--corpora", nargs="+", default=["lecture", "sqlite-docs", "r-data-manual"])
    args = ap.parse_args()
    base = load_config(ROOT / "config.toml")
    embedder = open_embedder(base.ingest.embedding)
    settings = {
        "dense": {"retrieval.mode": "dense"},
        "keyword": {"retrieval.mode": "keyword"},
        "hybrid-rrf": {"retrieval.mode": "hybrid", "retrieval.fusion": "rrf"},
        "hybrid-w0.3": {"retrieval.mode": "hybrid", "retrieval.fusion": "weighted", "retrieval.dense_weight": 0.3},
        "hybrid-w0.5": {"retrieval.mode": "hybrid", "retrieval.fusion": "weighted", "retrieval.dense_weight": 0.5},
        "hybrid-w0.7": {"retrieval.mode": "hybrid", "retrieval.fusion": "weighted", "retrieval.dense_weight": 0.7},
        "hybrid-rrf-mmr0.7": {"retrieval.mode": "hybrid", "retrieval.fusion": "rrf", "retrieval.mmr_lambda": 0.7},
    }
    signals: dict[str, list[tuple[float, float, bool]]] = {"answerable": [], "unanswerable": []}
    for size in args.chunk_sizes:
        totals: dict[str, list[float]] = {name: [] for name in settings}
        print(f"\n== chunk_size {size}")
        for corpus in args.corpora:
            cfg = base.with_overrides(**{"ingest.chunk_size": size,
                                         "ingest.chunk_overlap": min(base.ingest.chunk_overlap, size // 4)})
            index = ROOT / ".rag" / "bench" / f"{corpus}-{size}"
            ingest_paths([ROOT / "corpora" / corpus / "docs"], index, cfg.ingest, embedder=embedder)
            qs = [json.loads(line) for line in (ROOT / "corpora" / corpus / "questions" / f"{args.split}.jsonl")
                  .read_text().splitlines() if line.strip()]
            for name, over in settings.items():
                with open_pipeline(index, cfg.with_overrides(**over), embedder=embedder) as r:
                    ranks = []
                    for q in qs:
                        res = r.search(q["question"], k=10)
                        if q["answerable"]:
                            ranks.append(first_rank(res.hits, q["reference_sources"]))
                        if name == "hybrid-rrf" and size == args.chunk_sizes[0]:
                            key = "answerable" if q["answerable"] else "unanswerable"
                            ev = res.evidence
                            signals[key].append((ev.best_dense, ev.keyword_overlap, ev.agreement))
                n = len(ranks)
                h1 = sum(1 for x in ranks if x == 1) / n
                h5 = sum(1 for x in ranks if x and x <= 5) / n
                h10 = sum(1 for x in ranks if x) / n
                mrr = sum(1 / x for x in ranks if x) / n
                totals[name].append(mrr)
                print(f"{corpus:>14} {name:>18}: hit@1 {h1:.2f} hit@5 {h5:.2f} hit@10 {h10:.2f} "
                      f"mrr@10 {mrr:.3f} (n={n})")
        print("mean MRR@10 over corpora:", {k: round(statistics.mean(v), 3) for k, v in totals.items()})
    for key, vals in signals.items():
        if not vals:
            continue
        d = sorted(v[0] for v in vals)
        o = sorted(v[1] for v in vals)
        print(f"{key:>12}: best_dense min {d[0]:.2f} p10 {d[len(d) // 10]:.2f} median {d[len(d) // 2]:.2f} | "
              f"overlap min {o[0]:.2f} p10 {o[len(o) // 10]:.2f} median {o[len(o) // 2]:.2f} | "
              f"agreement {sum(v[2] for v in vals)}/{len(vals)}")
    for floor in (0.1, 0.15, 0.2, 0.25, 0.3):
        for weak in (0.3, 0.35):
            for t_o in (0.34, 0.5, 0.67):
                tr = _refused_share(signals["unanswerable"], floor, weak, t_o)
                fr = _refused_share(signals["answerable"], floor, weak, t_o)
                print(f"min_dense {floor:.2f} weak_dense {weak:.2f} min_overlap {t_o:.2f}: "
                      f"unanswerable refused {tr:.2f}, answerable refused {fr:.2f}")


def _refused_share(vals: list[tuple[float, float, bool]], floor: float, weak: float, min_overlap: float) -> float:
    """The share the evidence rule of rag.answer.evidence_refusal would refuse."""
    refused = sum(d < floor or (d < weak and o < min_overlap and not agree) for d, o, agree in vals)
    return refused / max(1, len(vals))


if __name__ == "__main__":
    main()

"""Which bundled local LLM should be the default? (run by hand; prints figures)

    python bench/llm_choice.py [--models smollm2-135m qwen2.5-0.5b qwen2.5-1.5b] [--per-corpus 6] [--split dev]

For each model, answers the first N answerable and all unanswerable dev questions of each corpus through
the full pipeline (default retrieval and refusal settings) and prints keyword accuracy on answerable
questions, refusal on unanswerable ones, false refusals, and seconds per answer on this machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the repo first: bench/ingest.py must not shadow the ingest package

from ingest.embedding import open_embedder  # noqa: E402
from ingest.pipeline import ingest_paths  # noqa: E402
from rag.api import open_pipeline  # noqa: E402
from rag.config import load_config  # noqa: E402
from rag.llm.local import LocalLLM  # noqa: E402

CORPORA = ["lecture", "sqlite-docs", "r-data-manual"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "qwen2.5-0.5b", "qwen2.5-1.5b"])
    ap.add_argument("--per-corpus", type=int, default=6)
    ap.add_argument("--split", default="dev")
    args = ap.parse_args()
    base = load_config(ROOT / "config.toml")
    embedder = open_embedder(base.ingest.embedding)
    work = []
    for corpus in CORPORA:
        index = ROOT / ".rag" / "bench" / f"{corpus}-{base.ingest.chunk_size}"
        ingest_paths([ROOT / "corpora" / corpus / "docs"], index, base.ingest, embedder=embedder)
        qs = [json.loads(x) for x in (ROOT / "corpora" / corpus / "questions" / f"{args.split}.jsonl").read_text()
              .splitlines() if x.strip()]
        work += [(index, q) for q in [q for q in qs if q["answerable"]][: args.per_corpus]]
        work += [(index, q) for q in qs if not q["answerable"]]
    print(f"{len(work)} questions ({sum(q['answerable'] for _, q in work)} answerable)")
    for model in args.models:
        cfg = base.with_overrides(**{"local.model": model, "answer.llm": "local"})
        t = time.perf_counter()
        llm = LocalLLM(cfg.local)
        load_s = time.perf_counter() - t
        correct = refused_unans = false_refusals = n_ans = n_unans = 0
        secs: list[float] = []
        for index, q in work:
            with open_pipeline(index, cfg, embedder=embedder, llm=llm) as r:
                t = time.perf_counter()
                a = r.ask(q["question"])
                if not a.refused:
                    secs.append(time.perf_counter() - t)
            if q["answerable"]:
                n_ans += 1
                false_refusals += a.refused
                correct += (not a.refused) and all(k.lower() in a.text.lower() for k in q["answer_keywords"])
            else:
                n_unans += 1
                refused_unans += a.refused
        llm.close()
        print(f"{model:>14}: load {load_s:.1f}s | keyword accuracy {correct}/{n_ans} = {correct / n_ans:.2f} | "
              f"unanswerable refused {refused_unans}/{n_unans} | false refusals {false_refusals}/{n_ans} | "
              f"s/answer median {statistics.median(secs) if secs else 0:.1f} max {max(secs, default=0):.1f}")


if __name__ == "__main__":
    main()

"""Generate the raw answers of one backend to every question of the corpora, bypassing the refusal gate (so that
unanswerable questions get answers too), and record the numbered blocks the model saw. Resumable.

The labelled set was generated with the code of commit 97ddf30 (checked out as a worktree and passed as --repo),
on indexes built by that code from corpora/*/docs with the default settings:

    git worktree add /tmp/gen 97ddf30
    python corpora/labelled/tools/generate.py --repo /tmp/gen --index-root INDEXES --backend local:qwen2.5-1.5b \\
        --out answers-qwen15.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

CORPORA = ("lecture", "r-data-manual", "sqlite-docs")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", required=True, help="local:qwen2.5-1.5b | local:qwen2.5-0.5b | extractive")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--repo", type=Path, required=True, help="checkout whose rag package answers")
    ap.add_argument("--index-root", type=Path, required=True, help="INDEX_ROOT/<corpus> for each corpus")
    args = ap.parse_args()
    sys.path.insert(0, str(args.repo))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import rag
    from ingest.embedding import open_embedder
    from rag.answer import evidence_refusal
    from rag.config import Config
    from rag.llm import open_llm
    from rag.llm.base import complete
    from rag.prompt import blocks_for, build_prompt

    name, _, model = args.backend.partition(":")
    cfg = Config().with_overrides(**{"answer.llm": name, **({"local.model": model} if model else {})})
    done = set()
    if args.out.exists():
        done = {json.loads(line)["id"] for line in args.out.read_text().splitlines() if line.strip()}
    embedder = open_embedder(cfg.ingest.embedding)
    llm = open_llm(cfg, embedder=embedder)  # one LLM for every corpus (rag.open closes an LLM it builds itself)
    a = cfg.answer
    with open(args.out, "a") as fh:
        for corpus in CORPORA:
            with rag.open(args.index_root / corpus, cfg, embedder=embedder, llm=llm) as r:
                for split in ("dev", "test"):
                    path = args.repo / "corpora" / corpus / "questions" / f"{split}.jsonl"
                    for line in path.read_text().splitlines():
                        q = json.loads(line)
                        rid = f"{args.backend}:{q['id']}"
                        if rid in done:
                            continue
                        t = time.perf_counter()
                        res = r.search(q["question"])
                        gate = evidence_refusal(res.evidence, len(res.hits), a.min_dense_score, a.weak_dense_score,
                                                a.min_keyword_overlap)
                        blocks = blocks_for(res.hits, a, llm.count_tokens)
                        text = complete(llm, build_prompt(q["question"], blocks)).text
                        rec = {"id": rid, "backend": args.backend, "question_id": q["id"], "corpus": corpus,
                               "split": split, "question": q["question"], "answerable": q["answerable"],
                               "reference_answer": q["reference_answer"], "answer_keywords": q["answer_keywords"],
                               "reference_sources": q["reference_sources"],
                               "blocks": [{"number": b.number, "source": b.hit.chunk.source, "page": b.hit.chunk.page,
                                           "section": b.hit.chunk.section, "chunk_id": b.hit.chunk.chunk_id,
                                           "text": b.text} for b in blocks],
                               "answer": text, "gate_refusal": gate, "seconds": round(time.perf_counter() - t, 2)}
                        fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
                        fh.flush()
    close = getattr(llm, "close", None)
    if close:
        close()


if __name__ == "__main__":
    main()

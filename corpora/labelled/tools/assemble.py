"""Assemble the labelled batches into corpora/labelled/dev.jsonl and test.jsonl, split by source passage.

    python corpora/labelled/tools/assemble.py LABELLED_BATCH.jsonl ... --out corpora/labelled

An answer's passage group is the chunk of its first context block (the passage retrieval ranked first; every
backend's answer to a question shares it). A group goes to dev only when none of its answers is to a test
question of its corpus, so tuning on dev never sees a test question's passages; everything else is test.
Unlabelled items are an error.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

PUBLIC = ("id", "question", "contexts", "answer", "sentences", "answer_label")
EXTRA = ("split", "group", "backend", "corpus", "question_id", "question_split", "answerable", "reference_answer",
         "answer_keywords", "context_sources")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("batches", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", choices=["dev", "test"], help="write one split (the other may still be unlabelled)")
    args = ap.parse_args()
    items = [json.loads(line) for path in args.batches for line in path.read_text().splitlines() if line.strip()]
    groups: dict[str, list[dict]] = defaultdict(list)
    for it in items:
        first = it["context_sources"][0]["chunk_id"] if it["context_sources"] else f"none:{it['question_id']}"
        it["group"] = f"{it['corpus']}:{first}"
        groups[it["group"]].append(it)
    for members in groups.values():
        split = "dev" if all(m["question_split"] == "dev" for m in members) else "test"
        for m in members:
            m["split"] = split
    args.out.mkdir(parents=True, exist_ok=True)
    for split in [args.only] if args.only else ["dev", "test"]:
        chosen = sorted((it for it in items if it["split"] == split), key=lambda it: it["id"])
        todo = [it["id"] for it in chosen if not it.get("answer_label") or any(not s.get("label") for s in it["sentences"])]
        if todo:
            raise SystemExit(f"{len(todo)} {split} item(s) are not labelled yet, e.g. {todo[:3]}")
        with open(args.out / f"{split}.jsonl", "w", encoding="utf-8") as fh:
            for it in chosen:
                row = {k: it[k] for k in PUBLIC} | {k: it[k] for k in EXTRA}
                row["sentences"] = [{"text": s["text"], "cited": s["cited"], "label": s["label"], "note": s.get("note", "")}
                                    for s in it["sentences"]]
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        n_sent = sum(len(it["sentences"]) for it in chosen)
        print(f"{split}: {len(chosen)} answers, {n_sent} sentences, "
              f"{sum(s['label'] == 'unsupported' for it in chosen for s in it['sentences'])} unsupported")


if __name__ == "__main__":
    main()

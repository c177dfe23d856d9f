"""Turn raw generated answers (tools/generate.py) into items to label: the answer split into sentences with
rag.text.split_claims, each with its cited block numbers and an empty label (see ../GUIDE.md).

    python corpora/labelled/tools/prepare.py RAW.jsonl [RAW.jsonl ...] --out-dir BATCHES --per-file 40
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rag.text import split_claims


def item(raw: dict) -> dict:
    contexts = [b["text"] for b in raw["blocks"]]
    sentences = [{"text": c.text, "cited": list(c.cited), "label": None, "note": ""}
                 for c in split_claims(raw["answer"], len(contexts))]
    return {
        "id": raw["id"], "backend": raw["backend"], "corpus": raw["corpus"], "question_id": raw["question_id"],
        "question_split": raw["split"], "question": raw["question"], "answerable": raw["answerable"],
        "reference_answer": raw["reference_answer"], "answer_keywords": raw["answer_keywords"],
        "contexts": contexts,
        "context_sources": [{"source": b["source"], "page": b["page"], "section": b["section"],
                             "chunk_id": b["chunk_id"]} for b in raw["blocks"]],
        "answer": raw["answer"], "sentences": sentences, "answer_label": None,
        "gate_refusal": raw.get("gate_refusal", ""),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("raw", nargs="+", type=Path)
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--per-file", type=int, default=40)
    args = ap.parse_args()
    items = [item(json.loads(line)) for path in args.raw for line in path.read_text().splitlines() if line.strip()]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    by_key: dict[str, list[dict]] = {}
    for it in items:
        by_key.setdefault(f"{it['corpus']}--{it['backend'].replace(':', '_')}", []).append(it)
    for key, group in by_key.items():
        for n, start in enumerate(range(0, len(group), args.per_file), start=1):
            path = args.out_dir / f"{key}--{n:02d}.jsonl"
            path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in group[start:start + args.per_file]))
            print(path, len(group[start:start + args.per_file]))


if __name__ == "__main__":
    main()

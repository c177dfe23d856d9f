"""Exporting a run's correct, faithful answers as chat JSONL for fine-tuning."""

from __future__ import annotations

import json
from pathlib import Path

from eval.errors import RunError
from eval.runner import RESULTS, load_results
from eval.scores import question_scores


def export_finetune(run: str | Path, file: str | Path) -> int:
    """Write the run's correct and faithful answers as chat JSONL; returns how many pairs were written.

    A pair is kept when the question is answerable, the answer was not refused, contains every answer keyword,
    and every checked claim is supported (an answer without checked claims is not kept). The user turn is the
    prompt the model saw (documents, then question), rebuilt from the stored passages: whole, with table rows that
    show their header named as the answer path names them (rag.tables).
    """
    from ingest.records import Chunk
    from rag.prompt import Block, build_prompt
    from rag.records import Hit
    from rag.tables import with_column_names

    results = load_results(Path(run) / RESULTS)
    if not results and not (Path(run) / RESULTS).exists():
        raise RunError(f"{Path(run) / RESULTS}: no results (is {run} a run directory?)")
    n = 0
    target = Path(file)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8") as fh:
        for r in results.values():
            s = question_scores(r)
            if not (r.question.answerable and r.answered and s.keywords_ok and s.claims and not s.unsupported_claims):
                continue
            blocks = [Block(c.number, Hit(Chunk(chunk_id="", source=c.source, text=c.text, start=0,
                                                end=len(c.text), text_hash="", doc_hash="", section=c.section,
                                                page=c.page), 0.0), with_column_names(c.text)) for c in r.contexts]
            prompt = build_prompt(r.question.question, blocks)
            messages = [m.to_dict() for m in prompt.messages] + [{"role": "assistant", "content": r.answer}]
            fh.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
            n += 1
    return n

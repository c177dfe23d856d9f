"""Scoring a run's answers with ragas: the judge endpoint and a resumable ragas.jsonl beside results.jsonl."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eval import ragas_adapter
from eval.results import EvalResult

StageProgress = Callable[[str, int, int], None]  # (stage, done, total)


@contextmanager
def ragas_judge(config: Any, use_openai: bool) -> Iterator[ragas_adapter.Judge]:
    """The ragas judge endpoint: the configured OpenAI-compatible server, else the local model on loopback."""
    if use_openai:
        oc = config.openai
        key = os.environ.get(oc.api_key_env, "") or "not-needed-on-loopback"
        yield ragas_adapter.Judge(base_url=oc.base_url, model=oc.model, api_key=key, timeout=oc.timeout * 5)
        return
    from eval.llm_server import llama_server
    from rag.llm.models import resolve_gguf

    lc = config.local
    with llama_server(resolve_gguf(lc.model), n_ctx=lc.n_ctx, threads=lc.threads) as url:
        yield ragas_adapter.Judge(base_url=url, model=lc.model)


def score_run(out: Path, results: Sequence[EvalResult], config: Any, embedder: Any, use_openai: bool,
              progress: StageProgress | None) -> dict[str, Any]:
    """Score answered, answerable questions with ragas; ragas.jsonl makes it resumable like results.jsonl."""
    samples = [ragas_adapter.Sample(r.id, r.question.question, r.answer, tuple(c.text for c in r.contexts),
                                    r.question.reference_answer)
               for r in results if r.answered and r.question.answerable and r.contexts]
    path = out / "ragas.jsonl"
    done: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[row["id"]] = row
    todo = [s for s in samples if s.id not in done]
    judge = None
    if todo:
        with ragas_judge(config, use_openai) as judge, open(path, "a", encoding="utf-8") as fh:
            def keep(row: dict[str, Any]) -> None:
                fh.write(json.dumps(row) + "\n")
                fh.flush()
                done[row["id"]] = row

            base = len(samples) - len(todo)
            ragas_adapter.score_samples(todo, judge, embedder, done=keep,
                                        progress=(lambda i, n: progress("ragas", base + i, len(samples)))
                                        if progress else None)
    rows = [done[s.id] for s in samples if s.id in done]
    return ragas_adapter.summarize(rows, judge)

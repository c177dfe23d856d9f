"""Run a question set against an index: resumable, one fsync'd line of results.jsonl per question.

A run directory holds run.json (what was run), results.jsonl (one EvalResult a line, appended as questions
finish), and after the run metrics.json, report.md and report.html (see eval/report.py). Re-running into the
same directory skips the questions already done (results with an error are retried), so a killed run loses at
most the question in flight.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.errors import RunError
from eval.metrics import aggregate, question_scores, timing_summary
from eval.questions import Question
from eval.results import Context, EvalResult, Retrieved

if TYPE_CHECKING:
    from rag.api import RAG
    from rag.verify import ClaimChecker

log = logging.getLogger(__name__)

RESULTS, RUN, METRICS = "results.jsonl", "run.json", "metrics.json"
Progress = Callable[[int, int, EvalResult | None], None]  # (done, total, the result just written)
# run.json fields that must agree for a run directory to be resumed.
_IDENTITY = ("questions_sha256", "index", "llm", "model", "judge")


@dataclass(frozen=True)
class RunSettings:
    """What a run is: recorded in run.json and in metrics.json's `config`."""

    questions: str
    questions_sha256: str
    index: str
    llm: str
    model: str
    judge: str = ""
    embedding_model: str = ""
    retrieval_k: int = 10
    settings: dict[str, Any] = field(default_factory=dict)  # retrieval/answer/checker settings, for the record

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# -- results.jsonl ------------------------------------------------------------------------------------------------

def repair_tail(path: Path) -> None:
    """Cut a partial last line (the write a kill interrupted) so appends start on a fresh line."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    keep = data.rfind(b"\n") + 1
    log.warning("%s: dropping an incomplete last line (%d bytes) left by an interrupted run", path, len(data) - keep)
    with open(path, "r+b") as fh:
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())


def load_results(path: str | Path) -> dict[str, EvalResult]:
    """Results by question id (a later line for the same id replaces an earlier one)."""
    path = Path(path)
    out: dict[str, EvalResult] = {}
    if not path.exists():
        return out
    lines = path.read_text(encoding="utf-8").split("\n")
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            if lineno == len(lines):  # an interrupted last write: that question is simply redone
                continue
            raise RunError(f"{path}:{lineno}: not a JSON result line ({e.msg})") from e
        r = EvalResult.from_dict(data, f"{path}:{lineno}")
        out[r.id] = r
    return out


class ResultWriter:
    """Appends one result per line and makes it durable (flush + fsync) before the next question starts."""

    def __init__(self, path: Path) -> None:
        repair_tail(path)
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, result: EvalResult) -> None:
        self._fh.write(json.dumps(result.to_dict(), ensure_ascii=False) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()


def open_run(out_dir: str | Path, settings: RunSettings) -> Path:
    """Create or reopen a run directory; refuse one made with another question set, index or model."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = out / RUN
    if meta.exists():
        old = json.loads(meta.read_text(encoding="utf-8"))
        new = settings.to_dict()
        diff = [k for k in _IDENTITY if old.get(k) != new.get(k)]
        if diff:
            raise RunError(f"{out} holds a run with other {', '.join(diff)} "
                           f"({'; '.join(f'{k}: {old.get(k)!r} vs {new.get(k)!r}' for k in diff)}); "
                           "use another --out directory or remove it")
    meta.write_text(json.dumps(settings.to_dict(), indent=2) + "\n", encoding="utf-8")
    return out


# -- answering ----------------------------------------------------------------------------------------------------

def evaluate_question(pipeline: RAG, question: Question, checker: ClaimChecker | None, llm: Any = None,
                      k: int = 10) -> EvalResult:
    """Retrieve (top k, for the retrieval metrics), answer, and check the answer's claims."""
    t0 = time.perf_counter()
    try:
        hits = pipeline.retrieve(question.question, k=k)
        t_search = time.perf_counter() - t0
        answer = pipeline.ask(question.question, llm=llm)
    except Exception as e:  # recorded and retried on resume; one failing question must not end the run
        log.warning("%s: answering failed: %s", question.id, e)
        return EvalResult(question=question, error=f"{type(e).__name__}: {e}")
    retrieved = tuple(Retrieved(i, h.chunk.source, h.chunk.page, h.chunk.chunk_id, h.score)
                      for i, h in enumerate(hits, start=1))
    contexts = tuple(Context(i, h.chunk.source, h.chunk.page, h.chunk.section, h.chunk.text)
                     for i, h in enumerate(answer.contexts, start=1))
    timings = {**answer.timings, "search": t_search}
    verdicts: tuple = ()
    if checker is not None and not answer.refused:
        t1 = time.perf_counter()
        verdicts = tuple(checker.check_answer(question.question, answer.text, [c.text for c in contexts]))
        timings["check"] = time.perf_counter() - t1
    return EvalResult(question=question, answer=answer.text, refused=answer.refused,
                      refusal_reason=answer.refusal_reason, citations=answer.citations, retrieved=retrieved,
                      contexts=contexts, verdicts=verdicts, model=answer.model, usage=answer.usage.to_dict(),
                      timings=timings)


def run_questions(pipeline: RAG, questions: Sequence[Question], out_dir: str | Path, settings: RunSettings, *,
                  checker: ClaimChecker | None = None, llm: Any = None, progress: Progress | None = None
                  ) -> list[EvalResult]:
    """Answer every question not yet in results.jsonl; returns the results of `questions`, in their order."""
    out = open_run(out_dir, settings)
    path = out / RESULTS
    repair_tail(path)
    done = {i: r for i, r in load_results(path).items() if not r.error}
    total = len(questions)
    count = sum(1 for q in questions if q.id in done)
    if progress:
        progress(count, total, None)
    writer = ResultWriter(path)
    try:
        for q in questions:
            if q.id in done:
                continue
            result = evaluate_question(pipeline, q, checker, llm=llm, k=settings.retrieval_k)
            writer.write(result)
            done[q.id] = result
            count += 1
            if progress:
                progress(count, total, result)
    finally:
        writer.close()
    return [done[q.id] for q in questions]


def summarize(results: Sequence[EvalResult], settings: RunSettings, timings: dict[str, float],
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """metrics.json: the aggregates, the optional detector/ragas sections, config and timings."""
    metrics = aggregate(results)
    metrics.update(extra or {})
    metrics["config"] = settings.to_dict()
    metrics["timings"] = {**{k: round(v, 3) for k, v in timings.items()}, **timing_summary(results)}
    return metrics


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Replace a JSONL file atomically (write a sibling, fsync, rename)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# -- comparing runs and exporting ---------------------------------------------------------------------------------

def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in d.items():
        if k in ("config", "timings", "counts"):
            continue
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, int | float) and not isinstance(v, bool) and v == v:
            out[key] = float(v)
    return out


_TRACKED = ("answered", "keywords_ok", "hallucinated", "first_relevant_rank", "faithfulness")


def compare(run_a: str | Path, run_b: str | Path) -> dict[str, Any]:
    """Metric deltas (b - a) and the questions whose outcome changed between two run directories."""
    metrics = []
    for run in (run_a, run_b):
        p = Path(run) / METRICS
        if not p.exists():
            raise RunError(f"{p}: no metrics.json (is {run} a finished run directory?)")
        metrics.append(json.loads(p.read_text(encoding="utf-8")))
    fa, fb = _flatten(metrics[0]), _flatten(metrics[1])
    deltas = {k: {"a": fa.get(k), "b": fb.get(k), "delta": round(fb[k] - fa[k], 6) if k in fa and k in fb else None}
              for k in sorted(set(fa) | set(fb))}
    ra, rb = load_results(Path(run_a) / RESULTS), load_results(Path(run_b) / RESULTS)
    changed = []
    for qid in [i for i in ra if i in rb]:
        sa, sb = question_scores(ra[qid]), question_scores(rb[qid])
        diff = {k: [sa.get(k), sb.get(k)] for k in _TRACKED if sa.get(k) != sb.get(k)}
        f1a, f1b = sa.get("token_f1"), sb.get("token_f1")
        if f1a is not None and f1b is not None and abs(f1a - f1b) >= 0.2:
            diff["token_f1"] = [f1a, f1b]
        if diff:
            changed.append({"id": qid, "question": ra[qid].question.question, "changes": diff,
                            "answer_a": ra[qid].answer, "answer_b": rb[qid].answer})
    return {"a": str(run_a), "b": str(run_b), "metrics": deltas, "changed": changed,
            "only_in_a": sorted(set(ra) - set(rb)), "only_in_b": sorted(set(rb) - set(ra))}


def export_finetune(run: str | Path, file: str | Path) -> int:
    """Write the run's correct and faithful answers as chat JSONL; returns how many pairs were written.

    A pair is kept when the question is answerable, the answer was not refused, contains every answer keyword,
    and every checked claim is supported. The user turn is the prompt the model saw (documents, then question).
    """
    from ingest.records import Chunk
    from rag.prompt import Block, build_prompt
    from rag.records import Hit

    results = load_results(Path(run) / RESULTS)
    if not results and not (Path(run) / RESULTS).exists():
        raise RunError(f"{Path(run) / RESULTS}: no results (is {run} a run directory?)")
    n = 0
    target = Path(file)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", encoding="utf-8") as fh:
        for r in results.values():
            s = question_scores(r)
            if not (r.question.answerable and r.answered and s.get("keywords_ok") and r.verdicts
                    and all(v.supported for v in r.verdicts)):
                continue
            blocks = [Block(c.number, Hit(Chunk(chunk_id="", source=c.source, text=c.text, start=0,
                                                end=len(c.text), text_hash="", doc_hash="", section=c.section,
                                                page=c.page), 0.0), c.text) for c in r.contexts]
            prompt = build_prompt(r.question.question, blocks)
            messages = [m.to_dict() for m in prompt.messages] + [{"role": "assistant", "content": r.answer}]
            fh.write(json.dumps({"messages": messages}, ensure_ascii=False) + "\n")
            n += 1
    return n

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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.checking import answer_verdicts
from eval.detection import DetectionReport
from eval.detector import Score as SyntheticScore
from eval.errors import RunError
from eval.metrics import Metrics, aggregate, timing_summary
from eval.questions import Question
from eval.results import Context, EvalResult, Retrieved
from eval.scores import question_scores
from ingest.fsutil import atomic_write

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
    indexed_documents: int = 0  # documents in the index (0: not known)
    # Their sources when there are at most MAX_LISTED_SOURCES (all that deciding whether retrieval metrics apply
    # needs: no question references more files than that); () otherwise.
    indexed_sources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["indexed_sources"] = list(self.indexed_sources)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunSettings:
        return cls(**{**d, "indexed_sources": tuple(d.get("indexed_sources", ()))})


MAX_LISTED_SOURCES = 20


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


def result_line(result: EvalResult) -> dict[str, Any]:
    """A results.jsonl line: the result and its derived per-question scores."""
    return {**result.to_dict(), "scores": question_scores(result).to_dict()}


class ResultWriter:
    """Appends one result per line and makes it durable (flush + fsync) before the next question starts."""

    def __init__(self, path: Path) -> None:
        repair_tail(path)
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, result: EvalResult) -> None:
        self._fh.write(json.dumps(result_line(result), ensure_ascii=False) + "\n")
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

def _retrieved(hits: Sequence[Any]) -> tuple[Retrieved, ...]:
    return tuple(Retrieved(i, h.chunk.source, h.chunk.page, h.chunk.chunk_id, h.score)
                 for i, h in enumerate(hits, start=1))


def answerability_of(answer: Any) -> tuple[float | None, str]:
    """The answer's answerability score and its name: the answer path's `evidence.answerability` when it has one,
    else the best dense similarity; (None, "") when the answer carries no evidence."""
    evidence = getattr(answer, "evidence", None)
    if evidence is None:
        return None, ""
    score = getattr(evidence, "answerability", None)
    if score is not None:
        return round(float(score), 6), "answerability"
    return round(float(evidence.best_dense), 6), "best_dense"


def evaluate_question(pipeline: RAG, question: Question, checker: ClaimChecker | None, llm: Any = None,
                      k: int = 10) -> EvalResult:
    """Retrieve (top k, for the retrieval metrics), answer, and check the claims of the final answer text."""
    t0 = time.perf_counter()
    hits: list[Any] = []
    try:
        hits = pipeline.retrieve(question.question, k=k)
        t_search = time.perf_counter() - t0
        answer = pipeline.ask(question.question, llm=llm)
    except Exception as e:  # recorded and retried on resume; one failing question must not end the run
        log.warning("%s: answering failed: %s", question.id, e)
        return EvalResult(question=question, retrieved=_retrieved(hits), error=f"{type(e).__name__}: {e}")
    # Each block as the model was shown it: the answer path checked its sentences against that text (table rows
    # naming their columns, a block cut to the budget), so the run's own check and any recheck read it too.
    shown = answer.shown_contexts if len(answer.shown_contexts) == len(answer.contexts) else ()
    contexts = tuple(Context(i, h.chunk.source, h.chunk.page, h.chunk.section, shown[i - 1] if shown else h.chunk.text)
                     for i, h in enumerate(answer.contexts, start=1))
    timings = {**answer.timings, "search": t_search}
    text = answer.text  # what the user sees: keywords and claims are scored on it, never on a draft
    verdicts: tuple = ()
    check_error = ""
    if checker is not None and not answer.refused:
        t1 = time.perf_counter()
        try:
            verdicts = answer_verdicts(checker, question.question, text, [c.text for c in contexts],
                                       [c.label for c in contexts])
        except Exception as e:  # the answer then counts as unchecked (and so as hallucinated)
            log.warning("%s: checking the answer failed: %s", question.id, e)
            check_error = f"{type(e).__name__}: {e}"
        timings["check"] = time.perf_counter() - t1
    score, source = answerability_of(answer)
    return EvalResult(question=question, answer=text, refused=answer.refused,
                      refusal_reason=answer.refusal_reason, citations=answer.citations, retrieved=_retrieved(hits),
                      contexts=contexts, verdicts=verdicts, model=answer.model, usage=answer.usage.to_dict(),
                      timings=timings, check_error=check_error, answerability=score, answerability_source=source,
                      draft_verdicts=tuple(answer.verdicts))


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


def configured_threshold(settings: RunSettings, results: Sequence[EvalResult]) -> float | None:
    """The refusal threshold configured for the score the results carry (None when the settings do not say)."""
    answer = settings.settings.get("answer") or {}
    if any(r.answerability_source == "answerability" for r in results):
        keys = [k for k, v in answer.items() if "answerab" in k and isinstance(v, int | float) and not isinstance(v, bool)]
        return float(answer[keys[0]]) if keys else None
    value = answer.get("min_dense_score")
    return float(value) if isinstance(value, int | float) else None


def summarize(results: Sequence[EvalResult], settings: RunSettings, timings: dict[str, float], *,
              synthetic_detector: SyntheticScore | None = None, labelled_detector: DetectionReport | None = None,
              ragas: dict[str, Any] | None = None) -> Metrics:
    """metrics.json: the aggregates, the optional detector/ragas sections, config and timings."""
    metrics = aggregate(results, indexed_sources=settings.indexed_sources,
                        refusal_threshold=configured_threshold(settings, results))
    return replace(metrics, config=settings.to_dict(),
                   timings={**{k: round(v, 3) for k, v in timings.items()}, **timing_summary(results)},
                   synthetic_detector=synthetic_detector, labelled_detector=labelled_detector, ragas=ragas)


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Replace a JSONL file atomically and durably."""
    atomic_write(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))

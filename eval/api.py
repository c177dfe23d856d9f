"""The evaluation entry points and their composition root: build the pipeline, LLMs and checker, then run.

    evaluate(questions, ...)       answer a question set into a (resumable) run directory and write its reports
    rewrite_reports(run_dir)       recompute metrics.json and the reports from results.jsonl
    verify_labelled(items, ...)    score the claim checker and the baselines on labelled answers (`rag verify`)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from eval import detector
from eval.checking import answer_verdicts, checker_detector
from eval.detection import DetectionReport, Detector, score_detectors
from eval.labelled import load_items
from eval.metrics import TIMING_KEYS, Metrics
from eval.questions import load_questions
from eval.report import write_reports
from eval.runner import (
    MAX_LISTED_SOURCES,
    METRICS,
    RESULTS,
    RUN,
    RunSettings,
    file_sha256,
    load_results,
    result_line,
    run_questions,
    summarize,
    write_jsonl,
)

log = logging.getLogger(__name__)

StageProgress = Callable[[str, int, int], None]  # (stage, done, total), the CLI's progress bar
CHECKERS = ("configured", "none")  # `rag verify --checker`: the configured claim checker, or baselines only


@dataclass(frozen=True)
class RunSummary:
    out_dir: Path
    metrics: Metrics
    files: dict[str, Path]


def _judge_name(llm: Any) -> str:
    return f"{getattr(llm, 'name', type(llm).__name__)}:{getattr(llm, 'model', '')}"


def indexed_sources(pipeline: Any) -> tuple[int, tuple[str, ...]]:
    """How many documents the index holds, and their sources when there are at most MAX_LISTED_SOURCES."""
    try:
        sources = sorted({d.source for d in pipeline.documents()})  # either index backend
    except Exception as e:  # metrics then judge retrieval applicability from the retrieved hits
        log.warning("could not list the indexed documents: %s", e)
        return 0, ()
    return len(sources), tuple(sources) if len(sources) <= MAX_LISTED_SOURCES else ()


def _labelled(path: str | Path, checker: Any, split: str | None = None, progress: StageProgress | None = None,
              description: str = "") -> DetectionReport:
    items = load_items(path, split)
    detectors: dict[str, Detector] = {"checker": checker_detector(checker)} if checker is not None else {}
    return score_detectors(items, detectors, file=str(path), split=split, progress=progress,
                           checker=description if checker is not None else "")


def _describe(checker: Any) -> str:
    """What the scored checker is: its class and the judge it holds (what it really uses, not what it was offered)."""
    judge = getattr(checker, "judge", None)
    name = "none" if judge is None else _judge_name(judge)
    return f"{type(checker).__name__} from rag.factory.build_checker, judge: {name}"


def evaluate(questions_file: str | Path, *, config: Any = None, index_dir: str | Path | None = None,
             out_dir: str | Path | None = None, llm: str | None = None, judge: str | None = None,
             ragas: bool = False, measure_detector: bool = False, labelled: str | Path | None = None,
             labelled_split: str | None = None, limit: int | None = None,
             progress: StageProgress | None = None) -> RunSummary:
    """Run a question set against an index into a (resumable) run directory and write its reports.

    `measure_detector` also scores the checker on the synthetic set built from the questions (eval/detector.py);
    `labelled` scores it, and the baselines, on a labelled set of real answers (eval/labelled.py).
    """
    import rag
    from eval.config import eval_config
    from rag.factory import build_checker, build_llm

    t0 = time.perf_counter()
    config = (config or rag.Config()).with_overrides(**{"answer.llm": llm, "index_dir": index_dir})
    settings_eval = eval_config(config)
    judge = judge if judge is not None else settings_eval.judge
    out = Path(out_dir or settings_eval.out)
    questions = load_questions(questions_file)
    if labelled is not None:
        load_items(labelled, labelled_split)  # a bad labelled set fails now, not after the run
    if limit is not None:
        questions = questions[:limit]
    timings: dict[str, float] = {}
    sections: dict[str, Any] = {}
    with rag.open(config.index_dir, config) as pipeline:
        answer_llm = pipeline.llm
        # The answer path's own checker by default: the answering model judges its claims when it can read its
        # token probabilities (local, openai); --judge / eval.judge picks another backend for the judge.
        judge_llm = answer_llm
        if judge and judge != config.answer.llm:
            judge_llm = build_llm(config, judge, pipeline.embedder)
        checker = build_checker(config, pipeline.embedder, judge=judge_llm)
        n_docs, sources = indexed_sources(pipeline)
        settings = RunSettings(
            questions=str(questions_file), questions_sha256=file_sha256(questions_file),
            index=str(Path(config.index_dir).resolve()), llm=config.answer.llm, model=answer_llm.model,
            judge=_judge_name(checker.judge) if checker.judge is not None else "",
            embedding_model=pipeline.embedder.model_id,
            retrieval_k=max(10, config.retrieval.k),
            settings={"retrieval": config.retrieval.model_dump(), "answer": config.answer.model_dump(),
                      "checker": checker.settings(),
                      "limit": limit},
            indexed_documents=n_docs, indexed_sources=sources)
        t = time.perf_counter()
        results = run_questions(pipeline, questions, out, settings, checker=checker, llm=answer_llm,
                                progress=(lambda d, n, _r: progress("answer", d, n)) if progress else None)
        timings["answer_s"] = time.perf_counter() - t
        if measure_detector:
            t = time.perf_counter()
            items = detector.build_items(questions, detector.passages(pipeline, questions))
            if progress:
                progress("synthetic", 0, len(items))
            score, flagged = detector.evaluate(checker, items)
            sections["synthetic_detector"] = score
            with open(out / "synthetic_detector_items.jsonl", "w", encoding="utf-8") as fh:
                for it, f in zip(items, flagged, strict=True):
                    fh.write(json.dumps({**it.to_dict(), "flagged": f}, ensure_ascii=False) + "\n")
            if progress:
                progress("synthetic", len(items), len(items))
            timings["synthetic_detector_s"] = time.perf_counter() - t
        if labelled is not None:
            t = time.perf_counter()
            sections["labelled_detector"] = _labelled(labelled, checker, labelled_split, progress,
                                                      _describe(checker))
            timings["labelled_detector_s"] = time.perf_counter() - t
        if ragas:
            from eval.ragas_run import score_run

            t = time.perf_counter()
            sections["ragas"] = score_run(out, results, config, pipeline.embedder,
                                          "openai" in (config.answer.llm, judge), progress)
            timings["ragas_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    metrics = summarize(results, settings, timings, **sections)
    files = write_reports(out, metrics, results)
    files["results"] = out / RESULTS
    return RunSummary(out, metrics, files)


def verify_labelled(items_file: str | Path, *, config: Any = None, split: str | None = None,
                    checker: str = "configured", llm: str | None = None,
                    progress: StageProgress | None = None) -> DetectionReport:
    """Precision / recall / F1 of unsupported-sentence detection on a labelled set, for the claim checker built
    as the answer path builds it (with the `llm` backend, default answer.llm, as its judge; `checker="none"`:
    the baselines only) and for the baselines, on the same items."""
    if checker not in CHECKERS:
        raise ValueError(f"unknown checker {checker!r}; valid: {', '.join(CHECKERS)}")
    load_items(items_file, split)  # a bad file fails before any model is loaded
    if checker == "none":
        return _labelled(items_file, None, split, progress)
    import rag
    from rag.factory import build_checker, build_embedder, build_llm

    config = (config or rag.Config()).with_overrides(**{"answer.llm": llm})
    embedder = build_embedder(config)
    judge = build_llm(config, embedder=embedder)
    try:
        built = build_checker(config, embedder, judge=judge)
        return _labelled(items_file, built, split, progress, _describe(built))
    finally:
        close = getattr(judge, "close", None)
        if callable(close):
            close()


def rewrite_reports(run_dir: str | Path, recheck: bool = False, embedder: Any = None) -> RunSummary:
    """Recompute metrics.json and the reports of a run directory from results.jsonl and run.json.

    With `recheck`, the claims of every answer are checked again by the current (local) checker first and
    results.jsonl is rewritten: a run can follow a checker change without answering again.
    """
    out = Path(run_dir)
    settings = RunSettings.from_dict(json.loads((out / RUN).read_text(encoding="utf-8")))
    results = list(load_results(out / RESULTS).values())
    if recheck:
        from rag.config import Config
        from rag.factory import build_checker, build_embedder

        config = Config()
        checker = build_checker(config, embedder or build_embedder(config))
        results = [replace(r, verdicts=answer_verdicts(checker, r.question.question, r.answer,
                                                       [c.text for c in r.contexts], [c.label for c in r.contexts]),
                           check_error="")
                   if r.answered else r for r in results]
        write_jsonl(out / RESULTS, [result_line(r) for r in results])
    sections: dict[str, Any] = {}
    if (out / METRICS).exists():
        old = json.loads((out / METRICS).read_text(encoding="utf-8"))
        try:
            previous = Metrics.from_dict(old)
            sections = {"synthetic_detector": previous.synthetic_detector,
                        "labelled_detector": previous.labelled_detector, "ragas": previous.ragas}
        except (ValueError, KeyError, TypeError) as e:  # an older metrics.json: its optional sections are not kept
            log.warning("%s: optional sections not carried over (%s)", out / METRICS, e)
        timings = {k: v for k, v in old.get("timings", {}).items()
                   if isinstance(v, int | float) and k not in TIMING_KEYS}
    else:
        timings = {}
    metrics = summarize(results, settings, timings, **sections)
    return RunSummary(out, metrics, write_reports(out, metrics, results))

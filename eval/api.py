"""The evaluation entry point and its composition root: builds the pipeline, LLMs, checker and judge, then runs."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval import detector, ragas_adapter
from eval.questions import load_questions
from eval.report import write_reports
from eval.results import EvalResult
from eval.runner import RunSettings, file_sha256, load_results, run_questions, summarize

log = logging.getLogger(__name__)

StageProgress = Callable[[str, int, int], None]  # (stage, done, total), the CLI's progress bar


@dataclass(frozen=True)
class RunSummary:
    out_dir: Path
    metrics: dict[str, Any]
    files: dict[str, Path]


def _judge_name(llm: Any) -> str:
    return f"{llm.name}:{llm.model}"


@contextmanager
def ragas_judge(config: Any, use_openai: bool) -> Iterator[ragas_adapter.Judge]:
    """The ragas judge endpoint: the configured OpenAI-compatible server, else the local model on loopback."""
    if use_openai:
        import os

        oc = config.openai
        key = os.environ.get(oc.api_key_env, "") or "not-needed-on-loopback"
        yield ragas_adapter.Judge(base_url=oc.base_url, model=oc.model, api_key=key, timeout=oc.timeout * 5)
        return
    from eval.llm_server import llama_server
    from rag.llm.models import resolve_gguf

    lc = config.local
    with llama_server(resolve_gguf(lc.model), n_ctx=lc.n_ctx, threads=lc.threads) as url:
        yield ragas_adapter.Judge(base_url=url, model=lc.model)


def _ragas(out: Path, results: list[EvalResult], config: Any, embedder: Any, use_openai: bool,
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


def evaluate(questions_file: str | Path, *, config: Any = None, index_dir: str | Path | None = None,
             out_dir: str | Path | None = None, llm: str | None = None, judge: str | None = None,
             ragas: bool = False, measure_detector: bool = False, limit: int | None = None,
             progress: StageProgress | None = None) -> RunSummary:
    """Run a question set against an index into a (resumable) run directory and write its reports."""
    import rag
    from eval.config import eval_config
    from rag.factory import build_checker, build_llm

    t0 = time.perf_counter()
    config = (config or rag.Config()).with_overrides(**{"answer.llm": llm, "index_dir": index_dir})
    settings_eval = eval_config(config)
    judge = judge if judge is not None else settings_eval.judge
    out = Path(out_dir or settings_eval.out)
    questions = load_questions(questions_file)
    if limit is not None:
        questions = questions[:limit]
    timings: dict[str, float] = {}
    with rag.open(config.index_dir, config) as pipeline:
        answer_llm = pipeline.llm
        judge_llm = None
        if judge:
            judge_llm = answer_llm if judge == config.answer.llm else build_llm(config, judge, pipeline.embedder)
        checker = build_checker(config, pipeline.embedder, judge=judge_llm)
        settings = RunSettings(
            questions=str(questions_file), questions_sha256=file_sha256(questions_file),
            index=str(Path(config.index_dir).resolve()), llm=config.answer.llm, model=answer_llm.model,
            judge=_judge_name(judge_llm) if judge_llm else "", embedding_model=pipeline.embedder.model_id,
            retrieval_k=max(10, config.retrieval.k),
            settings={"retrieval": config.retrieval.model_dump(), "answer": config.answer.model_dump(),
                      "checker": {k: getattr(checker, k) for k in ("min_similarity", "min_lexical",
                                                                   "negation_min_similarity", "check_terms")},
                      "limit": limit})
        t = time.perf_counter()
        results = run_questions(pipeline, questions, out, settings, checker=checker, llm=answer_llm,
                                progress=(lambda d, n, _r: progress("answer", d, n)) if progress else None)
        timings["answer_s"] = time.perf_counter() - t
        extra: dict[str, Any] = {}
        if measure_detector:
            t = time.perf_counter()
            items = detector.build_items(questions, detector.passages(pipeline, questions))
            if progress:
                progress("detector", 0, len(items))
            score, flagged = detector.evaluate(checker, items)
            extra["detector"] = score.to_dict()
            with open(out / "detector_items.jsonl", "w", encoding="utf-8") as fh:
                for it, f in zip(items, flagged, strict=True):
                    fh.write(json.dumps({**it.to_dict(), "flagged": f}, ensure_ascii=False) + "\n")
            if progress:
                progress("detector", len(items), len(items))
            timings["detector_s"] = time.perf_counter() - t
        if ragas:
            t = time.perf_counter()
            extra["ragas"] = _ragas(out, results, config, pipeline.embedder,
                                    "openai" in (config.answer.llm, judge), progress)
            timings["ragas_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    metrics = summarize(results, settings, timings, extra)
    files = write_reports(out, metrics, results)
    files["results"] = out / "results.jsonl"
    return RunSummary(out, metrics, files)


def rewrite_reports(run_dir: str | Path, recheck: bool = False, embedder: Any = None) -> RunSummary:
    """Recompute metrics.json and the reports of a run directory from results.jsonl and run.json.

    With `recheck`, the claims of every answer are checked again by the current (local) ClaimChecker first and
    results.jsonl is rewritten: a run can follow a checker change without answering again.
    """
    from dataclasses import replace

    from eval.runner import RESULTS, write_jsonl

    out = Path(run_dir)
    settings = RunSettings(**json.loads((out / "run.json").read_text(encoding="utf-8")))
    results = list(load_results(out / RESULTS).values())
    if recheck:
        from rag.config import Config
        from rag.factory import build_checker, build_embedder

        config = Config()
        checker = build_checker(config, embedder or build_embedder(config))
        results = [replace(r, verdicts=tuple(checker.check_answer(r.question.question, r.answer,
                                                                  [c.text for c in r.contexts])))
                   if r.answered else r for r in results]
        write_jsonl(out / RESULTS, [r.to_dict() for r in results])
    old = json.loads((out / "metrics.json").read_text(encoding="utf-8")) if (out / "metrics.json").exists() else {}
    extra = {k: old[k] for k in ("detector", "ragas") if k in old}
    metrics = summarize(results, settings, old.get("timings", {}), extra)
    return RunSummary(out, metrics, write_reports(out, metrics, results))

"""ragas 0.4.3 metrics with an explicit judge: an OpenAI-compatible server and the local embedder.

Nothing here falls back to ragas defaults (which build a paid OpenAI client): the LLM is `llm_factory(model,
client=AsyncOpenAI(base_url=...))` and the embeddings wrap the project's own embedder. Telemetry is switched off
(RAGAS_DO_NOT_TRACK=true) before ragas is first imported.

Metrics (ragas.metrics.collections, scored one question at a time):
  faithfulness        Faithfulness(llm): claims of the answer supported by the contexts
  response_relevancy  AnswerRelevancy(llm, embeddings) (ragas's ResponseRelevancy): questions generated from the
                      answer, compared with the real one
  context_precision   ContextPrecision(llm): are the useful contexts ranked first (against the reference answer)
  context_recall      ContextRecall(llm): share of the reference answer attributable to the contexts
Only answered, answerable questions with contexts are scored. A metric that raises (unusable JSON from a small
judge, a timeout) or returns NaN is recorded per question as NaN with its reason, and counted, never hidden.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

METRICS = ("faithfulness", "response_relevancy", "context_precision", "context_recall")


@dataclass(frozen=True)
class Sample:
    id: str
    question: str
    answer: str
    contexts: tuple[str, ...]
    reference: str


@dataclass(frozen=True)
class Judge:
    """Where the ragas judge runs: an OpenAI-compatible endpoint and model name."""

    base_url: str
    model: str
    api_key: str = "not-needed-on-loopback"
    timeout: float = 300.0  # seconds per metric of one question
    max_tokens: int = 512
    retries: int = 1  # instructor re-asks after an invalid JSON reply this many times
    strictness: int = 1  # questions generated per answer by response_relevancy (ragas default 3)


def _ragas() -> Any:
    """Import ragas with telemetry off (the variable must be set before the first import)."""
    os.environ["RAGAS_DO_NOT_TRACK"] = "true"
    import ragas.metrics.collections as collections

    return collections


def make_embeddings(embedder: Any) -> Any:
    """The project's embedder as a ragas BaseRagasEmbedding (no network, no ragas default model)."""
    os.environ["RAGAS_DO_NOT_TRACK"] = "true"
    from ragas.embeddings.base import BaseRagasEmbedding

    class LocalEmbeddings(BaseRagasEmbedding):
        def embed_text(self, text: str, **kwargs: Any) -> list[float]:
            return embedder.embed([text])[0].tolist()

        async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
            return self.embed_text(text)

        def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return embedder.embed(list(texts)).tolist()

        async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
            return self.embed_texts(texts)

    return LocalEmbeddings()


def make_llm(judge: Judge) -> Any:
    """A ragas InstructorLLM over an AsyncOpenAI client for the judge's base_url."""
    os.environ["RAGAS_DO_NOT_TRACK"] = "true"
    import openai
    from ragas.llms.base import llm_factory

    client = openai.AsyncOpenAI(base_url=judge.base_url, api_key=judge.api_key, timeout=judge.timeout,
                                max_retries=0)
    return llm_factory(judge.model, provider="openai", client=client, max_tokens=judge.max_tokens,
                       temperature=0.0, max_retries=judge.retries)


def build_metrics(judge: Judge, embedder: Any, names: Sequence[str] = METRICS) -> dict[str, Any]:
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown ragas metric(s) {', '.join(unknown)}; valid: {', '.join(METRICS)}")
    c = _ragas()
    llm = make_llm(judge)
    factories: dict[str, Callable[[], Any]] = {
        "faithfulness": lambda: c.Faithfulness(llm=llm),
        "response_relevancy": lambda: c.AnswerRelevancy(llm=llm, embeddings=make_embeddings(embedder),
                                                        strictness=judge.strictness),
        "context_precision": lambda: c.ContextPrecision(llm=llm),
        "context_recall": lambda: c.ContextRecall(llm=llm),
    }
    return {n: factories[n]() for n in names}


def _arguments(name: str, s: Sample) -> dict[str, Any]:
    ctx = list(s.contexts)
    return {
        "faithfulness": {"user_input": s.question, "response": s.answer, "retrieved_contexts": ctx},
        "response_relevancy": {"user_input": s.question, "response": s.answer},
        "context_precision": {"user_input": s.question, "reference": s.reference, "retrieved_contexts": ctx},
        "context_recall": {"user_input": s.question, "retrieved_contexts": ctx, "reference": s.reference},
    }[name]


def _reason(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__


async def _score_one(metric: Any, name: str, s: Sample, timeout: float) -> dict[str, Any]:
    t = time.perf_counter()
    try:
        result = await asyncio.wait_for(metric.ascore(**_arguments(name, s)), timeout)
        value = float(getattr(result, "value", result))
        error = "" if math.isfinite(value) else "metric returned NaN (the judge gave no usable statements)"
    except Exception as e:  # a small judge's broken JSON must cost one score, not the run
        value, error = float("nan"), _reason(e)
    return {"value": value if math.isfinite(value) else None, "error": error,
            "seconds": round(time.perf_counter() - t, 2)}


def score_samples(samples: Sequence[Sample], judge: Judge, embedder: Any, names: Sequence[str] = METRICS,
                  progress: Callable[[int, int], None] | None = None,
                  done: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Per question: {"id", metric: {"value" (None = NaN), "error", "seconds"}}; one metric call at a time."""
    metrics = build_metrics(judge, embedder, names)

    async def run() -> list[dict[str, Any]]:
        rows = []
        for i, s in enumerate(samples, start=1):
            row: dict[str, Any] = {"id": s.id}
            for name, metric in metrics.items():
                row[name] = await _score_one(metric, name, s, judge.timeout)
            rows.append(row)
            if done:
                done(row)
            if progress:
                progress(i, len(samples))
        return rows

    return asyncio.run(run())


def summarize(rows: Sequence[dict[str, Any]], judge: Judge | None = None,
              names: Sequence[str] = METRICS) -> dict[str, Any]:
    """metrics.json's `ragas` section: mean of the scored values per metric, with scored and NaN counts."""
    out: dict[str, Any] = {"questions": len(rows)}
    for name in names:
        vals = [r[name]["value"] for r in rows if name in r and r[name]["value"] is not None]
        out[name] = round(sum(vals) / len(vals), 6) if vals else None
    out["scored"] = {n: sum(1 for r in rows if n in r and r[n]["value"] is not None) for n in names}
    out["nan"] = {n: sum(1 for r in rows if n in r and r[n]["value"] is None) for n in names}
    errors: dict[str, int] = {}
    for r in rows:
        for n in names:
            err = r.get(n, {}).get("error", "")
            if err:
                kind = err.split(":")[0]
                errors[kind] = errors.get(kind, 0) + 1
    out["nan_reasons"] = errors
    if judge is not None:
        out["judge"] = {"base_url": judge.base_url, "model": judge.model, "strictness": judge.strictness}
    return out

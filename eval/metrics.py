"""Run metrics as typed records: retrieval, answers, hallucination, refusal (with its trade-off curve), counts.

Definitions (every rate is over the questions it names; None when that set is empty). No missing or failed
value counts as a success:

* Errored questions (answering failed) stay in every rate they belong to, as failures: a retrieval miss unless
  retrieval itself worked, a wrong answer (keyword accuracy, token F1 0), an unanswerable question not refused,
  an answerable question falsely refused, and a hallucinated answer. They are also counted in counts.errors.
* A retrieved hit is *relevant* when its source is a reference source of the question (the hit's source equals
  it, or ends with "/" + it) and, when the reference gives a page (PDFs), the hit is on that page.
* retrieval: hit@k: share of answerable questions with a relevant hit among the first k. MRR@10: mean of
  1/rank of the first relevant hit (0 when none in the top 10). nDCG@10: binary gains over reference places
  (a hit earns gain 1 when it matches a reference (source, page) not matched by an earlier hit). Not applicable
  (`applicable` false, values None, `reason` says why) when every answerable question's page-less reference
  sources cover every indexed file, e.g. a single-file corpus: any ranking would score 1.0.
* answer.keyword_accuracy: share of answerable questions whose final answer text (without [n] markers)
  contains every answer keyword as a whole word (regex (?<!\\w)KEYWORD(?!\\w), case-insensitive, whitespace-
  normalised); refusals and errors are wrong. answer.token_f1: SQuAD token F1 against the reference answer,
  0 for refusals and errors. answer.faithfulness: mean of supported / checked claims over answers with at least
  one checked claim; answers without any are "unchecked" (counted, never faithful).
* hallucination.rate: hallucinated answers / answers, where answers = answered questions + errored ones, and an
  answer is hallucinated when it answers an unanswerable question, has an unsupported claim, has no checked
  claim (unchecked), or errored. unsupported_answer_rate: the same over answerable questions only;
  unanswerable_answered_rate: (answered + errored unanswerable) / unanswerable.
* refusal.unanswerable_refusal_rate: refused unanswerable / unanswerable. refusal.false_refusal_rate:
  (refused + errored answerable) / answerable. refusal.curve: see eval/curve.py.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from eval.curve import RefusalCurve, refusal_curve
from eval.detection import DetectionReport
from eval.detector import Score as SyntheticScore
from eval.questions import Question
from eval.results import EvalResult
from eval.scores import QuestionScores, matches, question_scores

SCHEMA_VERSION = 2  # of metrics.json; bumped when its shape changes incompatibly
K_VALUES = (1, 5, 10)


def _rate(num: float, den: int) -> float | None:
    return round(num / den, 6) if den else None


def _mean(values: Iterable[float]) -> float | None:
    vals = list(values)
    return round(sum(vals) / len(vals), 6) if vals else None


@dataclass(frozen=True)
class RetrievalMetrics:
    applicable: bool
    reason: str = ""  # why not applicable
    questions: int = 0  # answerable questions scored
    hit_at_1: float | None = None
    hit_at_5: float | None = None
    hit_at_10: float | None = None
    mrr_at_10: float | None = None
    ndcg_at_10: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"applicable": self.applicable, "reason": self.reason, "questions": self.questions,
                "hit@1": self.hit_at_1, "hit@5": self.hit_at_5, "hit@10": self.hit_at_10,
                "mrr@10": self.mrr_at_10, "ndcg@10": self.ndcg_at_10}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RetrievalMetrics:
        return cls(d["applicable"], d.get("reason", ""), d.get("questions", 0), d.get("hit@1"), d.get("hit@5"),
                   d.get("hit@10"), d.get("mrr@10"), d.get("ndcg@10"))


@dataclass(frozen=True)
class AnswerMetrics:
    keyword_accuracy: float | None = None
    token_f1: float | None = None
    faithfulness: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AnswerMetrics:
        return cls(**d)


@dataclass(frozen=True)
class HallucinationMetrics:
    rate: float | None = None
    unsupported_answer_rate: float | None = None
    unanswerable_answered_rate: float | None = None
    answers: int = 0  # answered questions + errored ones
    hallucinated_answers: int = 0
    unchecked_answers: int = 0  # answered, no claim checked (counted as hallucinated)
    errors: int = 0  # errored questions (counted as hallucinated)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HallucinationMetrics:
        return cls(**d)


@dataclass(frozen=True)
class RefusalMetrics:
    unanswerable_refusal_rate: float | None = None
    false_refusal_rate: float | None = None
    curve: RefusalCurve | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"unanswerable_refusal_rate": self.unanswerable_refusal_rate,
                "false_refusal_rate": self.false_refusal_rate, "curve": self.curve.to_dict() if self.curve else None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RefusalMetrics:
        curve = d.get("curve")
        return cls(d.get("unanswerable_refusal_rate"), d.get("false_refusal_rate"),
                   RefusalCurve.from_dict(curve) if curve else None)


@dataclass(frozen=True)
class Counts:
    questions: int = 0
    answerable: int = 0
    unanswerable: int = 0
    answered: int = 0
    refused: int = 0
    errors: int = 0
    claims: int = 0
    unchecked_answers: int = 0
    check_errors: int = 0  # answers whose claim check failed (they are among the unchecked)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Counts:
        return cls(**d)


@dataclass(frozen=True)
class TypeMetrics:
    """Figures for the questions of one `type` (as the question file names it; "" when it gives none)."""

    n: int
    errors: int = 0
    keyword_accuracy: float | None = None
    token_f1: float | None = None
    faithfulness: float | None = None
    refusal_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TypeMetrics:
        return cls(**d)


@dataclass(frozen=True)
class Metrics:
    """Everything metrics.json holds; `to_dict()` is its documented shape (eval/README.md)."""

    counts: Counts
    retrieval: RetrievalMetrics
    answer: AnswerMetrics
    hallucination: HallucinationMetrics
    refusal: RefusalMetrics
    by_type: Mapping[str, TypeMetrics] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)  # the run's settings (run.json)
    timings: Mapping[str, float | None] = field(default_factory=dict)
    synthetic_detector: SyntheticScore | None = None  # `rag eval --detector`
    labelled_detector: DetectionReport | None = None  # `rag eval --labelled FILE`
    ragas: Mapping[str, Any] | None = None  # `rag eval --ragas` (eval/ragas_adapter.py's summary)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION, "counts": self.counts.to_dict(), "retrieval": self.retrieval.to_dict(),
            "answer": self.answer.to_dict(), "hallucination": self.hallucination.to_dict(),
            "refusal": self.refusal.to_dict(), "by_type": {k: v.to_dict() for k, v in self.by_type.items()}}
        if self.synthetic_detector is not None:
            d["synthetic_detector"] = self.synthetic_detector.to_dict()
        if self.labelled_detector is not None:
            d["labelled_detector"] = self.labelled_detector.to_dict()
        if self.ragas is not None:
            d["ragas"] = dict(self.ragas)
        return {**d, "config": dict(self.config), "timings": dict(self.timings)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Metrics:
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"metrics.json schema_version {d.get('schema_version')!r} is not {SCHEMA_VERSION}; "
                             "rewrite the reports of that run (eval.api.rewrite_reports)")
        syn, lab = d.get("synthetic_detector"), d.get("labelled_detector")
        return cls(
            counts=Counts.from_dict(d["counts"]), retrieval=RetrievalMetrics.from_dict(d["retrieval"]),
            answer=AnswerMetrics.from_dict(d["answer"]), hallucination=HallucinationMetrics.from_dict(d["hallucination"]),
            refusal=RefusalMetrics.from_dict(d["refusal"]),
            by_type={k: TypeMetrics.from_dict(v) for k, v in d.get("by_type", {}).items()},
            config=dict(d.get("config", {})), timings=dict(d.get("timings", {})),
            synthetic_detector=SyntheticScore.from_dict(syn) if syn else None,
            labelled_detector=DetectionReport.from_dict(lab) if lab else None, ragas=d.get("ragas"))


# -- aggregation --------------------------------------------------------------------------------------------------

def retrieval_scope(questions: Sequence[Question], indexed_sources: Sequence[str]) -> str:
    """Why retrieval metrics say nothing about the ranking ('' when they do): no answerable question, or every
    answerable question's page-less reference sources cover every indexed file (e.g. a single-file corpus)."""
    ans = [q for q in questions if q.answerable]
    if not ans:
        return "no answerable questions"
    if not indexed_sources:
        return ""
    if all(any(ref.page is None and matches(s, None, ref) for ref in q.reference_sources)
           for q in ans for s in indexed_sources):
        shown = ", ".join(list(indexed_sources)[:3]) + (", ..." if len(indexed_sources) > 3 else "")
        return (f"every answerable question's reference sources cover all {len(indexed_sources)} indexed file(s) "
                f"({shown}): any ranking puts a relevant passage first, so hit@k, MRR and nDCG would be 1.0")
    return ""


def _retrieval(pairs: Sequence[tuple[EvalResult, QuestionScores]], indexed_sources: Sequence[str]) -> RetrievalMetrics:
    ans = [(r, s) for r, s in pairs if r.question.answerable]
    seen = indexed_sources or sorted({h.source for r, _ in pairs for h in r.retrieved})
    reason = retrieval_scope([r.question for r, _ in pairs], seen)
    if reason:
        return RetrievalMetrics(False, reason, len(ans))
    ranks = [s.first_relevant_rank for _, s in ans]
    hits = [_mean(float(rank is not None and rank <= k) for rank in ranks) for k in K_VALUES]
    return RetrievalMetrics(True, "", len(ans), *hits, _mean(1.0 / rank if rank else 0.0 for rank in ranks),
                            _mean(s.ndcg10 or 0.0 for _, s in ans))


def _curve(results: Sequence[EvalResult], refusal_threshold: float | None) -> RefusalCurve | None:
    scored = [r for r in results if not r.error and r.answerability is not None]
    if not scored:
        return None
    kinds = "|".join(sorted({r.answerability_source or "score" for r in scored}))
    return refusal_curve([(float(r.answerability), r.question.answerable) for r in scored],  # type: ignore[arg-type]
                         refusal_threshold, kinds, without_score=len(results) - len(scored))


def by_type(pairs: Sequence[tuple[EvalResult, QuestionScores]]) -> dict[str, TypeMetrics]:
    """Keyword accuracy, token F1, faithfulness and refusal rate per question type."""
    out: dict[str, TypeMetrics] = {}
    for qtype in sorted({r.question.type for r, _ in pairs}):
        group = [(r, s) for r, s in pairs if r.question.type == qtype]
        ans = [s for r, s in group if r.question.answerable]
        out[qtype] = TypeMetrics(
            n=len(group), errors=sum(s.error for _, s in group),
            keyword_accuracy=_mean(float(bool(s.keywords_ok)) for s in ans),
            token_f1=_mean(s.token_f1 or 0.0 for s in ans),
            faithfulness=_mean(s.faithfulness for _, s in group if s.faithfulness is not None),
            refusal_rate=_rate(sum(s.refused for _, s in group), len(group)))
    return out


def aggregate(results: Sequence[EvalResult], *, indexed_sources: Sequence[str] = (),
              refusal_threshold: float | None = None) -> Metrics:
    """The metric sections of a run (config, timings and optional sections are added by the runner)."""
    pairs = [(r, question_scores(r)) for r in results]
    ans = [s for r, s in pairs if r.question.answerable]
    una = [s for r, s in pairs if not r.question.answerable]
    answers = [s for _, s in pairs if s.answered or s.error]
    counts = Counts(
        questions=len(results), answerable=len(ans), unanswerable=len(una),
        answered=sum(s.answered for _, s in pairs), refused=sum(s.refused for _, s in pairs),
        errors=sum(s.error for _, s in pairs), claims=sum(s.claims for _, s in pairs),
        unchecked_answers=sum(s.unchecked for _, s in pairs),
        check_errors=sum(bool(r.check_error) for r, s in pairs if s.answered))
    answer = AnswerMetrics(
        keyword_accuracy=_mean(float(bool(s.keywords_ok)) for s in ans), token_f1=_mean(s.token_f1 or 0.0 for s in ans),
        faithfulness=_mean(s.faithfulness for _, s in pairs if s.faithfulness is not None))
    ans_answers = [s for s in ans if s.answered or s.error]
    hallucination = HallucinationMetrics(
        rate=_rate(sum(s.hallucinated for s in answers), len(answers)),
        unsupported_answer_rate=_rate(sum(s.hallucinated for s in ans_answers), len(ans_answers)),
        unanswerable_answered_rate=_rate(sum(s.answered or s.error for s in una), len(una)),
        answers=len(answers), hallucinated_answers=sum(s.hallucinated for s in answers),
        unchecked_answers=counts.unchecked_answers, errors=counts.errors)
    refusal = RefusalMetrics(
        unanswerable_refusal_rate=_rate(sum(s.refused for s in una), len(una)),
        false_refusal_rate=_rate(sum(s.refused or s.error for s in ans), len(ans)),
        curve=_curve(results, refusal_threshold))
    return Metrics(counts=counts, retrieval=_retrieval(pairs, indexed_sources), answer=answer,
                   hallucination=hallucination, refusal=refusal, by_type=by_type(pairs))


TIMING_KEYS = ("answer_mean_s", "answer_p50_s", "answer_p95_s", "first_text_p50_s")


def timing_summary(results: Sequence[EvalResult]) -> dict[str, float | None]:
    """Mean, median and 95th percentile of the per-question answer time (seconds; errored questions left out),
    and the median time to the first shown sentence of the answers given (a refusal shows none)."""
    totals = sorted(r.timings.get("total", 0.0) for r in results if not r.error and r.timings)
    firsts = [r.timings["first_token"] for r in results if not r.error and "first_token" in r.timings]
    first = round(statistics.median(firsts), 4) if firsts else None
    if not totals:
        return {"answer_mean_s": None, "answer_p50_s": None, "answer_p95_s": None, "first_text_p50_s": first}
    p95 = totals[min(len(totals) - 1, math.ceil(0.95 * len(totals)) - 1)]
    return {"answer_mean_s": round(statistics.fmean(totals), 4), "answer_p50_s": round(statistics.median(totals), 4),
            "answer_p95_s": round(p95, 4), "first_text_p50_s": first}

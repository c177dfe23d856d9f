"""Metrics: retrieval (hit@k, MRR, nDCG), answer quality (keywords, token F1), faithfulness, refusal.

Definitions (every rate is over the questions it names; None when that set is empty):

* A retrieved hit is *relevant* when its source is a reference source of the question (the hit's source equals
  it, or ends with "/" + it, so an index built from a parent folder still matches) and, when the reference
  gives a page (PDFs), the hit is on that page.
* hit@k: share of answerable questions with a relevant hit among the first k. MRR@10: mean of 1/rank of the
  first relevant hit (0 when none in the top 10). nDCG@10: binary gains over *reference places*: a hit earns
  gain 1 when it matches a reference (source, page) entry not matched by an earlier hit, discounted by
  1/log2(rank+1); the ideal ranking matches every reference entry in the first ranks. (Every chunk of a relevant
  file is relevant, so counting places rather than chunks keeps single-document corpora from scoring 1 trivially
  on nDCG.)
* keyword_accuracy: share of answerable questions whose answer (refusals count as wrong) contains every answer
  keyword, case-insensitive, whitespace-normalised.
* token_f1: SQuAD token F1 of answer vs reference answer (lower case, punctuation, articles and [n] markers
  removed), averaged over answerable questions; refusals score 0.
* faithfulness: mean over answered (not refused) questions with at least one checked claim of
  supported claims / claims.
* hallucination_rate: of all answers given (not refused, any question), the share that hallucinate:
    (A + U) / (answered answerable + answered unanswerable), where
    A = answered answerable questions with >= 1 unsupported claim,
    U = answered unanswerable questions (any answer to them is made up).
  Its two parts are reported separately under "hallucination": unsupported_answer_rate = A / answered
  answerable, and unanswerable_answered_rate = U / unanswerable questions.
* unanswerable_refusal_rate: refused unanswerable / unanswerable. false_refusal_rate: refused answerable /
  answerable.
Results whose answering failed (`error`) are left out of every metric and counted under counts.errors.
"""

from __future__ import annotations

import math
import re
import statistics
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from eval.questions import Source

if TYPE_CHECKING:
    from eval.results import EvalResult, Retrieved
    from rag.records import ClaimVerdict

K_VALUES = (1, 5, 10)
_MARK = re.compile(r"\[\d+(?:\s*[,;]\s*\d+)*\]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans({c: " " for c in string.punctuation})


# -- retrieval ----------------------------------------------------------------------------------------------------

def matches(source: str, page: int | None, ref: Source) -> bool:
    """Whether a hit (source, page) is at a reference place."""
    same = source == ref.source or source.endswith("/" + ref.source)
    return same and (ref.page is None or page == ref.page)


def relevance(retrieved: Sequence[Retrieved], refs: Sequence[Source]) -> list[bool]:
    """Per retrieved hit (in rank order): is it relevant?"""
    return [any(matches(r.source, r.page, ref) for ref in refs) for r in retrieved]


def first_relevant_rank(rel: Sequence[bool]) -> int | None:
    """1-based rank of the first relevant hit, None when there is none."""
    return next((i for i, r in enumerate(rel, start=1) if r), None)


def hit_at(rel: Sequence[bool], k: int) -> float:
    return 1.0 if any(rel[:k]) else 0.0


def mrr_at(rel: Sequence[bool], k: int = 10) -> float:
    rank = first_relevant_rank(rel[:k])
    return 1.0 / rank if rank else 0.0


def ndcg_at(retrieved: Sequence[Retrieved], refs: Sequence[Source], k: int = 10) -> float:
    """nDCG@k with binary gains over distinct reference places (see the module docstring)."""
    if not refs:
        return 0.0
    matched: set[int] = set()
    dcg = 0.0
    for rank, r in enumerate(retrieved[:k], start=1):
        new = [i for i, ref in enumerate(refs) if i not in matched and matches(r.source, r.page, ref)]
        if new:
            matched.add(new[0])
            dcg += 1.0 / math.log2(rank + 1)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(refs), k) + 1))
    return dcg / ideal


# -- answers ------------------------------------------------------------------------------------------------------

def _squash(text: str) -> str:
    return " ".join(text.lower().split())


def keywords_present(answer: str, keywords: Sequence[str]) -> bool:
    """Every keyword occurs in the answer (case-insensitive, whitespace-normalised)."""
    text = _squash(answer)
    return all(_squash(k) in text for k in keywords)


def normalize_tokens(text: str) -> list[str]:
    """SQuAD-style: lower case, citation markers, punctuation and articles removed."""
    text = _MARK.sub(" ", text.lower()).translate(_PUNCT)
    return _ARTICLES.sub(" ", text).split()


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize_tokens(prediction), normalize_tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def faithfulness(verdicts: Sequence[ClaimVerdict]) -> float | None:
    """Supported claims / claims (None when nothing was checked)."""
    if not verdicts:
        return None
    return sum(v.supported for v in verdicts) / len(verdicts)


# -- per question and aggregate -----------------------------------------------------------------------------------

def question_scores(r: EvalResult) -> dict[str, Any]:
    """The per-question figures the aggregates are made of (also written to results.jsonl)."""
    q = r.question
    if r.error:
        return {"error": True}
    out: dict[str, Any] = {"answered": r.answered}
    if q.answerable:
        rel = relevance(r.retrieved, q.reference_sources)
        out.update(first_relevant_rank=first_relevant_rank(rel[:10]), ndcg10=round(ndcg_at(r.retrieved,
                   q.reference_sources), 6))
        out["keywords_ok"] = r.answered and keywords_present(r.answer, q.answer_keywords)
        out["token_f1"] = round(token_f1(r.answer, q.reference_answer), 6) if r.answered else 0.0
    f = faithfulness(r.verdicts) if r.answered else None
    out["faithfulness"] = None if f is None else round(f, 6)
    out["unsupported_claims"] = sum(not v.supported for v in r.verdicts) if r.answered else 0
    out["hallucinated"] = r.answered and (not q.answerable or out["unsupported_claims"] > 0)
    return out


def _mean(values: Iterable[float]) -> float | None:
    vals = list(values)
    return round(sum(vals) / len(vals), 6) if vals else None


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 6) if den else None


def aggregate(results: Sequence[EvalResult]) -> dict[str, Any]:
    """The metric sections of metrics.json (n, retrieval, answer, faithfulness, hallucination, refusal, counts)."""
    ok = [r for r in results if not r.error]
    ans = [r for r in ok if r.question.answerable]
    una = [r for r in ok if not r.question.answerable]
    rels = [relevance(r.retrieved, r.question.reference_sources) for r in ans]
    retrieval = {f"hit@{k}": _mean(hit_at(rel, k) for rel in rels) for k in K_VALUES}
    retrieval["mrr@10"] = _mean(mrr_at(rel, 10) for rel in rels)
    retrieval["ndcg@10"] = _mean(ndcg_at(r.retrieved, r.question.reference_sources, 10) for r in ans)
    answered_ans = [r for r in ans if r.answered]
    answered_una = [r for r in una if r.answered]
    unsupported = [r for r in answered_ans if any(not v.supported for v in r.verdicts)]
    faith = [f for f in (faithfulness(r.verdicts) for r in ok if r.answered) if f is not None]
    return {
        "n": len(results),
        "retrieval": retrieval,
        "answer": {
            "keyword_accuracy": _mean(float(r.answered and keywords_present(r.answer, r.question.answer_keywords))
                                      for r in ans),
            "token_f1": _mean(token_f1(r.answer, r.question.reference_answer) if r.answered else 0.0 for r in ans),
        },
        "faithfulness": _mean(faith),
        "hallucination_rate": _rate(len(unsupported) + len(answered_una), len(answered_ans) + len(answered_una)),
        "hallucination": {
            "unsupported_answer_rate": _rate(len(unsupported), len(answered_ans)),
            "unanswerable_answered_rate": _rate(len(answered_una), len(una)),
            "answers": len(answered_ans) + len(answered_una),
            "hallucinated_answers": len(unsupported) + len(answered_una),
        },
        "refusal": {
            "unanswerable_refusal_rate": _rate(sum(r.refused for r in una), len(una)),
            "false_refusal_rate": _rate(sum(r.refused for r in ans), len(ans)),
        },
        "counts": {"questions": len(results), "answerable": len(ans), "unanswerable": len(una),
                   "answered": len(answered_ans) + len(answered_una), "refused": sum(r.refused for r in ok),
                   "errors": len(results) - len(ok), "claims": sum(len(r.verdicts) for r in ok if r.answered)},
    }


def by_type(results: Sequence[EvalResult]) -> dict[str, dict[str, float | int | None]]:
    """Keyword accuracy, token F1, faithfulness and refusal rate per question type."""
    out: dict[str, dict[str, float | int | None]] = {}
    for qtype in sorted({r.question.type for r in results if not r.error}):
        group = [r for r in results if not r.error and r.question.type == qtype]
        answerable = [r for r in group if r.question.answerable]
        faith = [f for f in (faithfulness(r.verdicts) for r in group if r.answered) if f is not None]
        out[qtype] = {
            "n": len(group),
            "keyword_accuracy": _mean(float(r.answered and keywords_present(r.answer, r.question.answer_keywords))
                                      for r in answerable),
            "token_f1": _mean(token_f1(r.answer, r.question.reference_answer) if r.answered else 0.0
                              for r in answerable),
            "faithfulness": _mean(faith),
            "refusal_rate": _rate(sum(r.refused for r in group), len(group)),
        }
    return out


def timing_summary(results: Sequence[EvalResult]) -> dict[str, float | None]:
    """Mean, median and 95th percentile of the per-question answer time (seconds)."""
    totals = sorted(r.timings.get("total", 0.0) for r in results if not r.error and r.timings)
    if not totals:
        return {"answer_mean_s": None, "answer_p50_s": None, "answer_p95_s": None}
    p95 = totals[min(len(totals) - 1, math.ceil(0.95 * len(totals)) - 1)]
    return {"answer_mean_s": round(statistics.fmean(totals), 4), "answer_p50_s": round(statistics.median(totals), 4),
            "answer_p95_s": round(p95, 4)}

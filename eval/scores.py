"""Per-question scores: retrieval relevance and ranks, answer keywords, token F1, faithfulness, hallucination.

Each missing or failed value counts as a failure, never as a success (eval/metrics.py's docstring has the
definitions the aggregates are built on):
  * an errored question (answering failed) is wrong, not refused-correctly, falsely refused and hallucinated;
  * an answer whose claims were not checked (no verdicts) has faithfulness None, is "unchecked", and counts as
    hallucinated: nothing says it is grounded;
  * keywords match as whole words (not inside "10.7" or "names") on the final answer text without its [n]
    markers.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from eval.questions import Source
from eval.results import EvalResult, Retrieved
from rag.records import ClaimVerdict
from rag.text import MARKER, strip_markers

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
    """nDCG@k with binary gains over distinct reference places (see eval/metrics.py)."""
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

def keyword_pattern(keyword: str) -> re.Pattern[str]:
    """A keyword as a whole word: case-insensitive, any run of whitespace inside it matching any other."""
    body = r"\s+".join(re.escape(part) for part in keyword.split())
    return re.compile(r"(?<!\w)" + body + r"(?!\w)", re.IGNORECASE)


def keyword_found(text: str, keyword: str) -> bool:
    return keyword_pattern(keyword).search(text) is not None


def keywords_present(answer: str, keywords: Sequence[str]) -> bool:
    """Every keyword occurs in the answer as a whole word; [n] markers are not part of the answer's words.

    An empty keyword list is a data error (refused when questions are loaded), so it raises here too rather than
    making any answer "correct".
    """
    if not keywords:
        raise ValueError("no answer keywords to look for: an answerable question needs at least one")
    text, _ = strip_markers(answer)
    return all(keyword_found(text, k) for k in keywords)


def normalize_tokens(text: str) -> list[str]:
    """SQuAD-style: lower case, citation markers, punctuation and articles removed."""
    text = MARKER.sub(" ", text.lower()).translate(_PUNCT)
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
    """Supported claims / claims (None when nothing was checked: an unchecked answer is not faithful)."""
    if not verdicts:
        return None
    return sum(v.supported for v in verdicts) / len(verdicts)


# -- one question -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QuestionScores:
    """The per-question figures the aggregates are made of (written to results.jsonl as `scores`)."""

    error: bool
    answered: bool
    refused: bool
    hallucinated: bool  # errored, an answered unanswerable question, or an answer with an unsupported/no check
    unchecked: bool = False  # answered, but no claim of the answer was checked
    keywords_ok: bool | None = None  # answerable questions only
    token_f1: float | None = None  # answerable questions only
    first_relevant_rank: int | None = None  # answerable questions only; None: no relevant hit in the top 10
    ndcg10: float | None = None  # answerable questions only
    faithfulness: float | None = None  # answered and checked questions only
    claims: int = 0
    unsupported_claims: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> QuestionScores:
        return cls(**d)


def question_scores(r: EvalResult) -> QuestionScores:
    """Score one result; failures and missing values count against it (see the module docstring)."""
    q = r.question
    retrieval: dict[str, Any] = {}
    if q.answerable:
        rel = relevance(r.retrieved, q.reference_sources)
        retrieval = {"first_relevant_rank": first_relevant_rank(rel[:10]),
                     "ndcg10": round(ndcg_at(r.retrieved, q.reference_sources), 6)}
    if r.error:
        return QuestionScores(error=True, answered=False, refused=False, hallucinated=True,
                              keywords_ok=False if q.answerable else None,
                              token_f1=0.0 if q.answerable else None, **retrieval)
    verdicts = r.verdicts if r.answered else ()
    unsupported = sum(not v.supported for v in verdicts)
    unchecked = r.answered and not verdicts
    f = faithfulness(verdicts)
    answer_scores: dict[str, Any] = {}
    if q.answerable:
        answer_scores = {"keywords_ok": r.answered and keywords_present(r.answer, q.answer_keywords),
                         "token_f1": round(token_f1(r.answer, q.reference_answer), 6) if r.answered else 0.0}
    return QuestionScores(
        error=False, answered=r.answered, refused=r.refused,
        hallucinated=r.answered and (not q.answerable or unsupported > 0 or unchecked),
        unchecked=unchecked, faithfulness=None if f is None else round(f, 6), claims=len(verdicts),
        unsupported_claims=unsupported, **answer_scores, **retrieval)

"""The record of one evaluated question, as written to results.jsonl (one JSON object a line).

This module knows nothing of metrics: the runner adds each line's derived `scores` (eval/scores.py) when it
writes the line, and reading a line back ignores them (they are recomputed), so records sit below metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eval.questions import Question, Source
from rag.prompt import source_label
from rag.records import Citation, ClaimVerdict


@dataclass(frozen=True)
class Retrieved:
    """One retrieved hit: what retrieval metrics need."""

    rank: int
    source: str
    page: int | None
    chunk_id: str
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"rank": self.rank, "source": self.source, "page": self.page, "chunk_id": self.chunk_id,
                "score": round(self.score, 6)}


@dataclass(frozen=True)
class Context:
    """A numbered context block the answer was generated from (and its claims are checked against)."""

    number: int
    source: str
    page: int | None
    section: str
    text: str

    @property
    def label(self) -> str:
        """The block's source label as the answer's prompt showed it."""
        return source_label(self.source, self.page, self.section)

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "source": self.source, "page": self.page, "section": self.section,
                "text": self.text}


@dataclass(frozen=True)
class EvalResult:
    question: Question
    answer: str = ""  # the final Answer text: what the user sees, and what keywords and claims are scored on
    refused: bool = False
    refusal_reason: str = ""
    citations: tuple[Citation, ...] = ()
    retrieved: tuple[Retrieved, ...] = ()
    contexts: tuple[Context, ...] = ()
    verdicts: tuple[ClaimVerdict, ...] = ()
    model: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    error: str = ""  # answering failed: counted against every rate (see eval/metrics.py), retried on resume
    check_error: str = ""  # checking the answer's claims failed: the answer counts as unchecked
    answerability: float | None = None  # how likely the passages answer the question (higher = more likely)
    answerability_source: str = ""  # "answerability" (the answer path's score) or "best_dense" (the fallback)
    # The answer path's own verdicts while drafting: every sentence the model wrote and why it was dropped or
    # shown (so a refusal for "no sentence supported" shows what the model had said). Not scored.
    draft_verdicts: tuple[ClaimVerdict, ...] = ()

    @property
    def id(self) -> str:
        return self.question.id

    @property
    def answered(self) -> bool:
        return not self.error and not self.refused

    def to_dict(self) -> dict[str, Any]:
        q = self.question.to_dict()
        return {
            "id": self.id,
            **{k: v for k, v in q.items() if k != "id"},
            "answer": self.answer,
            "refused": self.refused,
            "refusal_reason": self.refusal_reason,
            "citations": [c.to_dict() for c in self.citations],
            "retrieved": [r.to_dict() for r in self.retrieved],
            "contexts": [c.to_dict() for c in self.contexts],
            "verdicts": [v.to_dict() for v in self.verdicts],
            "model": self.model,
            "usage": self.usage,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "error": self.error,
            "check_error": self.check_error,
            "answerability": None if self.answerability is None else round(self.answerability, 6),
            "answerability_source": self.answerability_source,
            "draft_verdicts": [v.to_dict() for v in self.draft_verdicts],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "result") -> EvalResult:
        """The inverse of to_dict (derived `scores`, when present, are recomputed, not read)."""
        score = d.get("answerability")
        return cls(
            question=Question.from_dict(d, where),
            answer=d.get("answer", ""),
            refused=bool(d.get("refused", False)),
            refusal_reason=d.get("refusal_reason", ""),
            citations=tuple(Citation(**c) for c in d.get("citations", [])),
            retrieved=tuple(Retrieved(**r) for r in d.get("retrieved", [])),
            contexts=tuple(Context(**c) for c in d.get("contexts", [])),
            verdicts=tuple(ClaimVerdict(**{**v, "cited": tuple(v.get("cited", ()))}) for v in d.get("verdicts", [])),
            draft_verdicts=tuple(ClaimVerdict(**{**v, "cited": tuple(v.get("cited", ()))})
                                 for v in d.get("draft_verdicts", [])),
            model=d.get("model", ""),
            usage=dict(d.get("usage", {})),
            timings=dict(d.get("timings", {})),
            error=d.get("error", ""),
            check_error=d.get("check_error", ""),
            answerability=None if score is None else float(score),
            answerability_source=d.get("answerability_source", ""),
        )


__all__ = ["Context", "EvalResult", "Retrieved", "Source"]

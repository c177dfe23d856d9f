"""The record of one evaluated question, as written to results.jsonl (one JSON object a line)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eval.questions import Question, Source, parse_question
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

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "source": self.source, "page": self.page, "section": self.section,
                "text": self.text}


@dataclass(frozen=True)
class EvalResult:
    question: Question
    answer: str = ""
    refused: bool = False
    refusal_reason: str = ""
    citations: tuple[Citation, ...] = ()
    retrieved: tuple[Retrieved, ...] = ()
    contexts: tuple[Context, ...] = ()
    verdicts: tuple[ClaimVerdict, ...] = ()
    model: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    error: str = ""  # set when answering failed; such results are left out of the metrics and retried on resume

    @property
    def id(self) -> str:
        return self.question.id

    @property
    def answered(self) -> bool:
        return not self.error and not self.refused

    def to_dict(self) -> dict[str, Any]:
        from eval.metrics import question_scores

        return {
            "id": self.id,
            **{k: v for k, v in self.question.to_dict().items() if k != "id"},
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
            "scores": question_scores(self),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "result") -> EvalResult:
        """The inverse of to_dict (derived `scores` are recomputed, not read)."""
        q = parse_question({k: d[k] for k in ("id", "question", "reference_answer", "answer_keywords",
                                              "reference_sources", "answerable", "type")}, where)
        return cls(
            question=q,
            answer=d.get("answer", ""),
            refused=bool(d.get("refused", False)),
            refusal_reason=d.get("refusal_reason", ""),
            citations=tuple(Citation(**c) for c in d.get("citations", [])),
            retrieved=tuple(Retrieved(**r) for r in d.get("retrieved", [])),
            contexts=tuple(Context(**c) for c in d.get("contexts", [])),
            verdicts=tuple(ClaimVerdict(**{**v, "cited": tuple(v.get("cited", ()))}) for v in d.get("verdicts", [])),
            model=d.get("model", ""),
            usage=dict(d.get("usage", {})),
            timings=dict(d.get("timings", {})),
            error=d.get("error", ""),
        )


__all__ = ["Context", "EvalResult", "Retrieved", "Source"]

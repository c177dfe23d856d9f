"""Records that leave the answering stage: hits, citations, answers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ingest.records import Chunk


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its fused score and the ranks each retriever gave it (1-based, None = absent)."""

    chunk: Chunk
    score: float
    dense_score: float | None = None
    keyword_score: float | None = None
    dense_rank: int | None = None
    keyword_rank: int | None = None

    def to_dict(self) -> dict[str, Any]:
        c = self.chunk
        return {"chunk_id": c.chunk_id, "source": c.source, "page": c.page, "section": c.section,
                "score": round(self.score, 6), "text": c.text}


@dataclass(frozen=True)
class Evidence:
    """How well retrieval supports answering: the signals refusal is decided on."""

    best_dense: float
    keyword_overlap: float  # share of the question's content words found in the context blocks
    agreement: bool  # the best dense hit is also among the top keyword hits
    answerability: float | None = None  # the LLM's P(the passages answer the question); None without a judge

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Citation:
    block: int  # the [n] marker used in the answer
    chunk_id: str
    source: str
    page: int | None
    section: str
    quote: str  # the passage of the block that supports the answer

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}


@dataclass(frozen=True)
class ClaimVerdict:
    """One sentence of an answer checked against the cited context."""

    claim: str
    supported: bool
    score: float
    reason: str = ""
    cited: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["cited"] = list(self.cited)
        return d


@dataclass(frozen=True)
class Answer:
    text: str
    refused: bool
    citations: tuple[Citation, ...] = ()
    contexts: tuple[Hit, ...] = ()
    model: str = ""
    usage: Usage = field(default_factory=Usage)
    timings: dict[str, float] = field(default_factory=dict)
    question: str = ""
    query: str = ""  # the standalone query used for retrieval (rewritten when there was history)
    refusal_reason: str = ""
    evidence: Evidence | None = None
    verdicts: tuple[ClaimVerdict, ...] = ()
    # Each context as the model was shown it and its sentences were checked against (table rows naming their
    # columns, cut to the context budget: rag.prompt.Block.text); () when no blocks were built.
    shown_contexts: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape of `rag ask --json` and POST /v1/ask."""
        return {
            "answer": self.text,
            "refused": self.refused,
            "refusal_reason": self.refusal_reason,
            "question": self.question,
            "query": self.query,
            "citations": [c.to_dict() for c in self.citations],
            "contexts": [h.to_dict() for h in self.contexts],
            "model": self.model,
            "usage": self.usage.to_dict(),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "evidence": self.evidence.to_dict() if self.evidence else None,
            "verdicts": [v.to_dict() for v in self.verdicts],
        }

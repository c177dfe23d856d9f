"""The refusal trade-off curve: refusing below a score threshold, how many unanswerable questions are refused
and how many answerable ones are refused with them.

Each answered or refused question carries a score (results.jsonl `answerability`: the answer path's
answerability, or the best dense similarity where there is none); the rule is "refuse when score < threshold".
The curve puts a point at every observed score (and one just above the highest, 1e-6 more, where everything is
refused), and
marks the configured threshold. It describes the score alone: a run's real refusal rates also include the
model's own refusals and the claim checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

RULE = "refuse when score < threshold"


@dataclass(frozen=True)
class CurvePoint:
    threshold: float
    unanswerable_refused: float | None  # share of unanswerable questions (with a score) refused
    answerable_refused: float | None  # share of answerable questions (with a score) refused: false refusals

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "unanswerable_refused": self.unanswerable_refused,
                "answerable_refused": self.answerable_refused}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CurvePoint:
        return cls(float(d["threshold"]), d.get("unanswerable_refused"), d.get("answerable_refused"))


@dataclass(frozen=True)
class RefusalCurve:
    score: str  # what the score is: "answerability" or "best_dense" (mixed runs: "answerability|best_dense")
    answerable: int  # questions with a score
    unanswerable: int
    without_score: int  # errored questions, and refusals made before any score was computed
    points: tuple[CurvePoint, ...]
    configured: CurvePoint | None  # the point at the configured threshold (None when none is known)

    def to_dict(self) -> dict[str, Any]:
        return {"rule": RULE, "score": self.score, "answerable": self.answerable, "unanswerable": self.unanswerable,
                "without_score": self.without_score, "points": [p.to_dict() for p in self.points],
                "configured": self.configured.to_dict() if self.configured else None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RefusalCurve:
        conf = d.get("configured")
        return cls(d["score"], d["answerable"], d["unanswerable"], d["without_score"],
                   tuple(CurvePoint.from_dict(p) for p in d["points"]), CurvePoint.from_dict(conf) if conf else None)


def _share(scores: Sequence[float], threshold: float) -> float | None:
    return round(sum(s < threshold for s in scores) / len(scores), 6) if scores else None


def refusal_curve(scored: Sequence[tuple[float, bool]], configured: float | None = None, score: str = "",
                  without_score: int = 0) -> RefusalCurve:
    """The curve over (score, answerable) pairs, with the point at the `configured` threshold marked."""
    ans = [s for s, answerable in scored if answerable]
    una = [s for s, answerable in scored if not answerable]
    observed = sorted({s for s, _ in scored})
    thresholds = observed + [round(observed[-1] + 1e-6, 6)] if observed else []  # above every score
    points = tuple(CurvePoint(t, _share(una, t), _share(ans, t)) for t in thresholds)
    marked = CurvePoint(configured, _share(una, configured), _share(ans, configured)) if configured is not None else None
    return RefusalCurve(score, len(ans), len(una), without_score, points, marked)

"""Comparing two run directories: metric deltas and the questions whose outcome changed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.errors import RunError
from eval.runner import METRICS, RESULTS, load_results
from eval.scores import question_scores

# Per-question figures whose change makes a question "changed" (token F1 when it moves by 0.2 or more).
TRACKED = ("answered", "keywords_ok", "hallucinated", "first_relevant_rank", "faithfulness")
_SKIP = ("config", "timings", "counts", "schema_version", "by_type")


@dataclass(frozen=True)
class MetricDelta:
    a: float | None
    b: float | None

    @property
    def delta(self) -> float | None:
        return round(self.b - self.a, 6) if self.a is not None and self.b is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "delta": self.delta}


@dataclass(frozen=True)
class QuestionChange:
    id: str
    question: str
    changes: Mapping[str, tuple[Any, Any]]  # figure -> (in run a, in run b)
    answer_a: str
    answer_b: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "question": self.question, "changes": {k: list(v) for k, v in self.changes.items()},
                "answer_a": self.answer_a, "answer_b": self.answer_b}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> QuestionChange:
        return cls(d["id"], d["question"], {k: (v[0], v[1]) for k, v in d["changes"].items()}, d["answer_a"],
                   d["answer_b"])


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    metrics: Mapping[str, MetricDelta]  # flattened metric name ("answer.keyword_accuracy") -> values
    changed: tuple[QuestionChange, ...] = ()
    only_in_a: tuple[str, ...] = ()
    only_in_b: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
                "changed": [c.to_dict() for c in self.changed], "only_in_a": list(self.only_in_a),
                "only_in_b": list(self.only_in_b)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Comparison:
        return cls(d["a"], d["b"], {k: MetricDelta(v["a"], v["b"]) for k, v in d["metrics"].items()},
                   tuple(QuestionChange.from_dict(c) for c in d["changed"]), tuple(d["only_in_a"]),
                   tuple(d["only_in_b"]))


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """The numeric figures of a metrics.json, by dotted name (counts, config, timings and curves left out)."""
    out: dict[str, float] = {}
    for k, v in d.items():
        if k in _SKIP or k == "curve":
            continue
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif isinstance(v, int | float) and not isinstance(v, bool) and v == v:
            out[key] = float(v)
    return out


def compare(run_a: str | Path, run_b: str | Path) -> Comparison:
    """Metric deltas (b - a) and the questions whose outcome changed between two run directories."""
    metrics = []
    for run in (run_a, run_b):
        p = Path(run) / METRICS
        if not p.exists():
            raise RunError(f"{p}: no metrics.json (is {run} a finished run directory?)")
        metrics.append(json.loads(p.read_text(encoding="utf-8")))
    fa, fb = flatten(metrics[0]), flatten(metrics[1])
    deltas = {k: MetricDelta(fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb))}
    ra, rb = load_results(Path(run_a) / RESULTS), load_results(Path(run_b) / RESULTS)
    changed = []
    for qid in [i for i in ra if i in rb]:
        sa, sb = question_scores(ra[qid]).to_dict(), question_scores(rb[qid]).to_dict()
        diff = {k: (sa[k], sb[k]) for k in TRACKED if sa[k] != sb[k]}
        f1a, f1b = sa["token_f1"], sb["token_f1"]
        if f1a is not None and f1b is not None and abs(f1a - f1b) >= 0.2:
            diff["token_f1"] = (f1a, f1b)
        if diff:
            changed.append(QuestionChange(qid, ra[qid].question.question, diff, ra[qid].answer, rb[qid].answer))
    return Comparison(str(run_a), str(run_b), deltas, tuple(changed), tuple(sorted(set(ra) - set(rb))),
                      tuple(sorted(set(rb) - set(ra))))

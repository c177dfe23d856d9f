"""Scoring detectors of unsupported sentences on a labelled set (eval/labelled.py), at two levels.

The positive class is "unsupported". Sentence level: each labelled sentence is one case. Answer level: an answer
is positive when any of its sentences is unsupported, and a detector flags it when it flags any of its sentences.
An item whose check fails counts against the detector: its unsupported sentences (and a positive answer) as
misses, its supported ones (and a negative answer) as false alarms. Nothing is dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from eval.baselines import BASELINES, Baseline
from eval.labelled import LabelledItem

log = logging.getLogger(__name__)

Detector = Callable[[LabelledItem], Sequence[bool]]  # flagged (unsupported) per sentence of the item; may raise
Progress = Callable[[int, int], None]  # (items done, items)


@dataclass(frozen=True)
class PRF:
    """Confusion counts and precision / recall / F1 (None where the denominator is 0)."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def precision(self) -> float | None:
        return round(self.tp / (self.tp + self.fp), 6) if self.tp + self.fp else None

    @property
    def recall(self) -> float | None:
        return round(self.tp / (self.tp + self.fn), 6) if self.tp + self.fn else None

    @property
    def f1(self) -> float | None:
        den = 2 * self.tp + self.fp + self.fn
        return round(2 * self.tp / den, 6) if den else None

    def add(self, positive: bool, flagged: bool) -> PRF:
        return PRF(self.tp + (positive and flagged), self.fp + (not positive and flagged),
                   self.fn + (positive and not flagged), self.tn + (not positive and not flagged))

    def to_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, **asdict(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PRF:
        return cls(d["tp"], d["fp"], d["fn"], d["tn"])


@dataclass(frozen=True)
class Filtering:
    """What dropping the flagged sentences does to the labelled answers, by the human labels.

    An answer is given when it has a sentence left (otherwise the answer path refuses it); a given answer is
    hallucinated when a sentence left is labelled unsupported, or when its question is unanswerable (any answer
    to it is made up). `before` counts the answers as the model wrote them, `after` what the user would see.
    """

    given_before: int = 0
    hallucinated_before: int = 0
    given_after: int = 0
    hallucinated_after: int = 0
    correct_lost: int = 0  # answers labelled correct that dropping sentences turned into refusals

    def add(self, item: LabelledItem, flags: Sequence[bool]) -> Filtering:
        answerable = bool(item.extra.get("answerable", True))
        kept = [s for s, f in zip(item.sentences, flags, strict=True) if not f]
        given_b, given_a = bool(item.sentences), bool(kept)
        return Filtering(
            self.given_before + given_b,
            self.hallucinated_before + (given_b and (item.unsupported or not answerable)),
            self.given_after + given_a,
            self.hallucinated_after + (given_a and (any(s.unsupported for s in kept) or not answerable)),
            self.correct_lost + (item.answer_label == "correct" and given_b and not given_a))

    def to_dict(self) -> dict[str, Any]:
        def rate(num: int, den: int) -> float | None:
            return round(num / den, 6) if den else None

        return {**asdict(self), "rate_before": rate(self.hallucinated_before, self.given_before),
                "rate_after": rate(self.hallucinated_after, self.given_after)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Filtering:
        return cls(*(d.get(k, 0) for k in ("given_before", "hallucinated_before", "given_after",
                                            "hallucinated_after", "correct_lost")))


@dataclass(frozen=True)
class DetectorScore:
    sentence: PRF
    answer: PRF
    failures: int = 0  # items whose check raised (counted against the detector)
    filtering: Filtering = field(default_factory=Filtering)

    def to_dict(self) -> dict[str, Any]:
        return {"sentence": self.sentence.to_dict(), "answer": self.answer.to_dict(), "failures": self.failures,
                "filtering": self.filtering.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DetectorScore:
        return cls(PRF.from_dict(d["sentence"]), PRF.from_dict(d["answer"]), d.get("failures", 0),
                   Filtering.from_dict(d.get("filtering", {})))


@dataclass(frozen=True)
class DetectionReport:
    """Every detector's figures on the same items, with the set's counts."""

    file: str
    split: str | None
    items: int
    sentences: int
    unsupported_sentences: int
    unsupported_answers: int
    detectors: Mapping[str, DetectorScore] = field(default_factory=dict)  # "checker" first, then the baselines
    checker: str = ""  # what "checker" is (how it was built, its judge); "" when only the baselines ran

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "split": self.split, "checker": self.checker, "items": self.items,
                "sentences": self.sentences,
                "unsupported_sentences": self.unsupported_sentences, "answers": self.items,
                "unsupported_answers": self.unsupported_answers,
                "detectors": {k: v.to_dict() for k, v in self.detectors.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DetectionReport:
        return cls(d["file"], d.get("split"), d["items"], d["sentences"], d["unsupported_sentences"],
                   d["unsupported_answers"], {k: DetectorScore.from_dict(v) for k, v in d["detectors"].items()},
                   d.get("checker", ""))


def baseline_detector(rule: Baseline) -> Detector:
    """A per-sentence baseline applied to each sentence with the contexts it cites."""
    return lambda item: [rule(s.text, item.contexts_of(s)) for s in item.sentences]


def score_detector(items: Sequence[LabelledItem], detector: Detector, name: str = "detector",
                   progress: Progress | None = None) -> DetectorScore:
    """Sentence- and answer-level figures of one detector on the items."""
    sent, ans, failures, filtering = PRF(), PRF(), 0, Filtering()
    for done, item in enumerate(items, start=1):
        try:
            flags = list(detector(item))
            if len(flags) != len(item.sentences):
                raise ValueError(f"{len(flags)} verdict(s) for {len(item.sentences)} sentence(s)")
            answer_flag = any(flags)
        except Exception as e:  # counted against the detector, never dropped
            log.warning("%s: checking item %s failed: %s: %s", name, item.id, type(e).__name__, e)
            failures += 1
            flags = [not s.unsupported for s in item.sentences]
            answer_flag = not item.unsupported
        for s, flagged in zip(item.sentences, flags, strict=True):
            sent = sent.add(s.unsupported, bool(flagged))
        ans = ans.add(item.unsupported, answer_flag)
        filtering = filtering.add(item, [bool(f) for f in flags])
        if progress:
            progress(done, len(items))
    return DetectorScore(sent, ans, failures, filtering)


def score_detectors(items: Sequence[LabelledItem], detectors: Mapping[str, Detector], *, file: str = "",
                    split: str | None = None, checker: str = "",
                    progress: Callable[[str, int, int], None] | None = None) -> DetectionReport:
    """The figures of the given detectors (e.g. the checker) and of every baseline, on the same items."""
    every = {**detectors, **{k: baseline_detector(v) for k, v in BASELINES.items() if k not in detectors}}
    # Answers to the same question over the same passages (one per backend) one after another: a local judge then
    # finds a block cited by several of them still cached (llama.cpp's KV cache). The figures are sums.
    ordered = sorted(items, key=lambda i: (i.question, tuple(i.contexts)))
    scores = {}
    for name, det in every.items():
        step = (lambda d, n, name=name: progress(name, d, n)) if progress else None
        scores[name] = score_detector(ordered, det, name, step)
    return DetectionReport(file=file, split=split, items=len(items), sentences=sum(len(i.sentences) for i in items),
                           unsupported_sentences=sum(s.unsupported for i in items for s in i.sentences),
                           unsupported_answers=sum(i.unsupported for i in items), detectors=scores, checker=checker)

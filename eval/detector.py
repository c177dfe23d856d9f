"""A SYNTHETIC labelled set for the claim checker: faithful answers from reference passages and unfaithful variants.

It is built with the checker's own rules (SYNTHETIC_NOTE), so its figures flatter the checker; the measurement
that counts is `rag verify` on real, hand-labelled answers (eval/labelled.py).

For every answerable question the reference passage is the indexed chunk of a reference source (and page) that
holds the most answer keywords, plus chunks of the same places holding terms of the reference answer it lacks.
Faithful answers: the passage sentences holding the keywords ("extract") and the reference answer when the
passage holds all its keywords ("reference", a paraphrase). Unfaithful answers are made from a faithful one by
swapping a number ("number"), a name or identifier for one from another passage ("entity"), adding or removing
a negation ("negation"), swapping a word for its antonym ("antonym"), or by answering with another question's
passage ("other-doc"). Everything is deterministic for a seed.

The checker is scored on detecting UNFAITHFUL answers (the positive class): precision, recall and F1.
`python -m eval.detector tune --dev Q=INDEX ... --test Q=INDEX ...` picks thresholds on dev and reports test.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.checking import answer_verdicts
from eval.questions import Question, load_questions
from eval.scores import keyword_found
from rag.text import split_claims, split_sentences
from rag.verify import (
    ClaimChecker,
    Signals,
    extract_terms,
    missing_terms,
    numbers_in,
    term_present,
)

if TYPE_CHECKING:
    from rag.api import RAG

# Said wherever these figures are shown: they are not a measurement on real answers (that is `rag verify`).
SYNTHETIC_NOTE = ("synthetic set built with the checker's own rules (numbers swapped only where its number check "
                  "finds them absent, entities only where its term check fails, extracts copied verbatim): an upper "
                  "bound, not a measurement on real answers; see `rag verify` for a labelled set of real answers")
FAITHFUL_KINDS = ("extract", "reference")
UNFAITHFUL_KINDS = ("number", "entity", "negation", "antonym", "other-doc")
_NUM = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
_AUX = re.compile(r"\b(is|are|was|were|can|could|will|would|should|must|does|do|did|has|have|may|might)\b"
                  r"(?!\s+(?:not|never)\b)")
_NEG_REMOVALS = ((r"\bcannot\b", "can"), (r"\b(\w+)n't\b", r"\1"), (r"\s+not\b", ""), (r"\s+never\b", ""))
_ANTONYMS = {"before": "after", "more": "less", "larger": "smaller", "increase": "decrease", "first": "last",
             "maximum": "minimum", "always": "never", "true": "false", "enabled": "disabled", "higher": "lower",
             "faster": "slower", "allowed": "forbidden", "required": "optional", "ascending": "descending",
             "earlier": "later", "above": "below", "inside": "outside", "left": "right", "start": "end",
             "beginning": "end", "old": "new", "small": "large", "real": "fake", "same": "different"}
_ANTONYMS.update({v: k for k, v in list(_ANTONYMS.items())})


@dataclass(frozen=True)
class Item:
    id: str
    question_id: str
    question: str
    context: str
    answer: str
    faithful: bool
    kind: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Score:
    precision: float
    recall: float
    f1: float
    n: int
    tp: int
    fp: int
    fn: int
    tn: int
    by_kind: dict[str, dict[str, float | int]]

    def to_dict(self) -> dict[str, Any]:
        return {"set": "synthetic", "note": SYNTHETIC_NOTE, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Score:
        return cls(**{k: v for k, v in d.items() if k not in ("set", "note")})


# -- reference passages -------------------------------------------------------------------------------------------

def _keyword_count(text: str, keywords: Sequence[str]) -> int:
    return sum(keyword_found(text, k) for k in keywords)


def reference_passage(pipeline: RAG, q: Question, k: int = 30, max_chunks: int = 3) -> str | None:
    """The chunk of the question's reference places holding the most answer keywords (None if none holds one),
    plus up to `max_chunks - 1` chunks of those places holding terms of the reference answer it lacks (so that
    a reference answer drawing on two chunks of its page is judged against both)."""
    parts: list[str] = []
    pool: list[str] = []
    for ref in q.reference_sources[:2]:
        hits = pipeline.retrieve(q.question, k=k, filters=[f"source=*{ref.source}"])
        texts = [h.chunk.text for h in hits if ref.page is None or h.chunk.page == ref.page]
        if not texts:
            continue
        best = max(texts, key=lambda t: _keyword_count(t, q.answer_keywords))
        if _keyword_count(best, q.answer_keywords) and best not in parts:
            parts.append(best)
        pool += texts
    if not parts:
        return None
    terms = extract_terms(q.reference_answer)
    for text in pool:
        missing = missing_terms(terms, "\n\n".join(parts))
        if not missing or len(parts) >= max_chunks:
            break
        if text not in parts and len(missing_terms(terms, "\n\n".join(parts + [text]))) < len(missing):
            parts.append(text)
    return "\n\n".join(parts)


def passages(pipeline: RAG, questions: Sequence[Question]) -> dict[str, str]:
    """Reference passages of the answerable questions that have one, by question id."""
    out = {}
    for q in questions:
        if q.answerable and q.answer_keywords:
            p = reference_passage(pipeline, q)
            if p:
                out[q.id] = p
    return out


# -- mutations ----------------------------------------------------------------------------------------------------

def extract_answer(context: str, keywords: Sequence[str]) -> str | None:
    """Up to two passage sentences holding the answer keywords, most keywords first, in reading order."""
    sents = [s for s in split_sentences(context) if 12 <= len(s) <= 400]
    scored = [(i, _keyword_count(s, keywords)) for i, s in enumerate(sents)]
    chosen = sorted(i for i, n in sorted(scored, key=lambda t: (-t[1], t[0]))[:2] if n)
    if not chosen:
        return None
    if _keyword_count(" ".join(sents[i] for i in chosen[:1]), keywords) == len(keywords):
        chosen = chosen[:1]
    return " ".join(" ".join(sents[i].split()) for i in chosen)


def swap_number(answer: str, context: str, rng: random.Random) -> str | None:
    found = list(_NUM.finditer(answer))
    if not found:
        return None
    m = rng.choice(found)
    raw = m.group(0)
    plain = raw.replace(",", "") if re.fullmatch(r"\d{1,3}(,\d{3})+", raw) else raw
    if not plain.isdigit():
        head, _, tail = plain.partition(".") if "." in plain else plain.partition(",")
        new = f"{head}{'.' if '.' in plain else ','}{int(tail or 0) + 1}" if tail.isdigit() else None
    else:
        n = int(plain)
        options = [n + 1, n * 2, n * 10, n + 3] + ([n - 1] if n > 1 else [])
        if 1900 < n < 2100:
            options = [n - 2, n - 1, n + 1, n + 3]
        have = numbers_in(context, context=True)
        options = [o for o in options if str(o) not in have]
        new = None if not options else str(rng.choice(options))
        if new and "," in raw:
            new = f"{int(new):,}"
    if not new:
        return None
    return answer[: m.start()] + new + answer[m.end():]


def swap_entity(answer: str, context: str, pool: Sequence[str], rng: random.Random) -> str | None:
    terms = extract_terms(answer)
    cands = [t for t in terms.identifiers + terms.names if len(t) > 1 and re.search(r"\b" + re.escape(t), answer)]
    if not cands:
        return None
    old = rng.choice(cands)
    low = context.lower()
    options = [p for p in pool if p.lower() != old.lower() and not term_present(p, low)
               and (p[0].isupper() == old[0].isupper())]
    if not options:
        return None
    new = rng.choice(sorted(options))
    return re.sub(r"(?<![\w.])" + re.escape(old) + r"(?![\w])", lambda _: new, answer, count=1)


def flip_negation(answer: str, rng: random.Random) -> str | None:
    for pattern, repl in _NEG_REMOVALS:
        if re.search(pattern, answer, flags=re.IGNORECASE):
            out = re.sub(pattern, repl, answer, count=1, flags=re.IGNORECASE)
            return out if out != answer else None
    found = list(_AUX.finditer(answer))
    if not found:
        return None
    m = rng.choice(found[:2])
    return answer[: m.end()] + " not" + answer[m.end():]


def swap_antonym(answer: str, rng: random.Random) -> str | None:
    found = [m for m in re.finditer(r"\b[a-z]+\b", answer) if m.group(0) in _ANTONYMS]
    if not found:
        return None
    m = rng.choice(found)
    return answer[: m.start()] + _ANTONYMS[m.group(0)] + answer[m.end():]


# -- the labelled set ---------------------------------------------------------------------------------------------

def build_items(questions: Sequence[Question], contexts: dict[str, str], seed: int = 0) -> list[Item]:
    """The labelled set: for each question with a passage, faithful answers and the variants that apply."""
    qs = [q for q in questions if q.id in contexts]
    extracts = {q.id: extract_answer(contexts[q.id], q.answer_keywords) for q in qs}
    pool = sorted({t for c in contexts.values() for s in split_sentences(c)
                   for t in (lambda x: x.identifiers + x.names)(extract_terms(s)) if len(t) > 2})
    items: list[Item] = []
    for q in qs:
        ctx = contexts[q.id]
        rng = random.Random(f"{seed}:{q.id}")
        bases: list[str] = []
        ex = extracts[q.id]
        if ex:
            items.append(Item(f"{q.id}-extract", q.id, q.question, ctx, ex, True, "extract"))
            bases.append(ex)
        if _keyword_count(ctx, q.answer_keywords) == len(q.answer_keywords) and q.reference_answer.strip():
            items.append(Item(f"{q.id}-reference", q.id, q.question, ctx, q.reference_answer, True, "reference"))
            bases.append(q.reference_answer)
        if not bases:
            continue
        makers = {
            "number": lambda b, r, c=ctx: swap_number(b, c, r),
            "entity": lambda b, r, c=ctx: swap_entity(b, c, pool, r),
            "negation": flip_negation,
            "antonym": swap_antonym,
        }
        for kind, make in makers.items():
            order = bases[:]
            rng.shuffle(order)
            for base in order:
                out = make(base, rng)
                if out and out != base:
                    items.append(Item(f"{q.id}-{kind}", q.id, q.question, ctx, out, False, kind))
                    break
        others = [o for o in qs if o.id != q.id and extracts[o.id] and extracts[o.id] not in ctx
                  and contexts[o.id] != ctx]
        if others:
            other = rng.choice(others)
            items.append(Item(f"{q.id}-other-doc", q.id, q.question, ctx, extracts[other.id] or "", False,
                              "other-doc"))
    return items


# -- scoring and tuning -------------------------------------------------------------------------------------------

def item_signals(checker: ClaimChecker, items: Sequence[Item]) -> list[list[Signals]]:
    """Per item, the local signals of each of its claims (thresholds are applied later, by `decide`)."""
    return [[checker.signals(c.text, [it.context], it.question) for c in split_claims(it.answer, 1)]
            for it in items]


def score(items: Sequence[Item], flagged: Sequence[bool]) -> Score:
    """Precision, recall and F1 of flagging the unfaithful items, with per-kind rates."""
    tp = sum(f and not it.faithful for it, f in zip(items, flagged, strict=True))
    fp = sum(f and it.faithful for it, f in zip(items, flagged, strict=True))
    fn = sum(not f and not it.faithful for it, f in zip(items, flagged, strict=True))
    tn = len(items) - tp - fp - fn
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    by_kind: dict[str, dict[str, float | int]] = {}
    for kind in FAITHFUL_KINDS + UNFAITHFUL_KINDS:
        sel = [f for it, f in zip(items, flagged, strict=True) if it.kind == kind]
        if sel:
            by_kind[kind] = {"n": len(sel), "flagged_rate": round(sum(sel) / len(sel), 4)}
    return Score(round(p, 4), round(r, 4), round(f1, 4), len(items), tp, fp, fn, tn, by_kind)


def evaluate(checker: ClaimChecker, items: Sequence[Item]) -> tuple[Score, list[bool]]:
    """Score a checker (judge included, when it has one) on the labelled items."""
    flagged = [any(not v.supported for v in answer_verdicts(checker, it.question, it.answer, [it.context]))
               for it in items]
    return score(items, flagged), flagged


GRID = {
    "min_similarity": [round(0.15 + 0.025 * i, 3) for i in range(27)],
    "min_lexical": [0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
    "negation_min_similarity": [0.0, 0.5, 0.6, 0.7, 0.8, 1.01],
    "check_terms": [True, False],
}


def tune(checker: ClaimChecker, items: Sequence[Item]) -> tuple[dict[str, Any], Score]:
    """The thresholds (GRID) with the best F1 on the items, then the best precision.

    Many settings tie (a plateau); of those, the one nearest the middle of the plateau is taken (per parameter,
    the median of the tied values), so that a threshold does not sit on the edge where F1 starts to drop.
    """
    signals = item_signals(checker, items)
    trials: list[tuple[tuple[float, float], dict[str, Any], Score]] = []
    for values in itertools.product(*GRID.values()):
        params = dict(zip(GRID, values, strict=True))
        trial = ClaimChecker(**{k: v for k, v in params.items() if k != "check_terms"})
        flagged = [any(not trial.decide(replace(s, missing=s.missing if params["check_terms"] else ()))[0]
                       for s in sig) for sig in signals]
        sc = score(items, flagged)
        trials.append(((sc.f1, sc.precision), params, sc))
    top = max(t[0] for t in trials)
    tied = [t for t in trials if t[0] == top]
    centre = {k: statistics.median(float(t[1][k]) for t in tied) for k in GRID}
    span = {k: (max(map(float, v)) - min(map(float, v))) or 1.0 for k, v in GRID.items()}
    _, params, sc = min(tied, key=lambda t: sum(abs(float(t[1][k]) - centre[k]) / span[k] for k in GRID))
    return params, sc


# -- tuning and reporting on corpora (`python -m eval.detector`, printed by eval/cli.py) ---------------------------

def load_pairs(pairs: Sequence[str], embedder: Any) -> list[Item]:
    """The synthetic items of QUESTIONS.jsonl=INDEX_DIR pairs."""
    import rag

    items: list[Item] = []
    for pair in pairs:
        qfile, sep, index = pair.partition("=")
        if not sep:
            raise ValueError(f"expected QUESTIONS.jsonl=INDEX_DIR, got {pair!r}")
        with rag.open(index, embedder=embedder) as pipeline:
            questions = load_questions(qfile)
            items += build_items(questions, passages(pipeline, questions))
    return items


def tune_and_report(command: str, dev: Sequence[str], test: Sequence[str], out: Path | None) -> dict[str, Any]:
    """`tune`: pick thresholds on the dev pairs' items; then (`tune` or `score`) score the test pairs' items.
    Writes detector.json (and the scored test items) into `out` when given; returns the report."""
    from rag.config import Config
    from rag.factory import build_embedder

    embedder = build_embedder(Config())
    checker = ClaimChecker(embedder=embedder)
    report: dict[str, Any] = {"set": "synthetic", "note": SYNTHETIC_NOTE}
    if command == "tune":
        params, dev_score = tune(checker, load_pairs(dev, embedder))
        report["tuned"] = params
        report["dev"] = dev_score.to_dict()
        checker = ClaimChecker(embedder=embedder, **{k: v for k, v in params.items() if k != "check_terms"},
                               check_terms=params["check_terms"])
    report["checker"] = {k: getattr(checker, k) for k in ("min_similarity", "min_lexical",
                                                          "negation_min_similarity", "check_terms")}
    if test:
        items = load_pairs(test, embedder)
        test_score, flagged = evaluate(checker, items)
        report["test"] = test_score.to_dict()
        if out:
            out.mkdir(parents=True, exist_ok=True)
            with open(out / "detector_items.jsonl", "w", encoding="utf-8") as fh:
                for it, f in zip(items, flagged, strict=True):
                    fh.write(json.dumps({**it.to_dict(), "flagged": f}, ensure_ascii=False) + "\n")
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "detector.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    from eval.cli import detector_main

    sys.exit(detector_main())

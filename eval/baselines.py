"""Baseline detectors of unsupported sentences, to put next to the claim checker's figures.

Each takes a sentence (without [n] markers) and the contexts it cites (all contexts when it cites none) and says
whether to flag it as unsupported. They are deliberately small and share no code with rag.verify, so that a
checker that does not beat them is visibly not earning its cost.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

Baseline = Callable[[str, Sequence[str]], bool]  # (sentence, its contexts) -> flagged as unsupported

_STOP = frozenset("""a an the and or but of to in on at by for with from as is are was were be been it its this that
these those there their they which who what when where how can could may might will would should do does did has
have had not no so than then also into about if such""".split())
_NEGATIONS = frozenset("not no never none nothing neither nor cannot without".split())
_WORD = re.compile(r"[A-Za-z0-9_]+(?:[.,'’-][A-Za-z0-9_]+)*")


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _words(text: str) -> list[str]:
    return _WORD.findall(text)


def _negated(text: str) -> bool:
    return any(w.lower() in _NEGATIONS or w.lower().endswith("n't") for w in _words(text))


def flag_everything(sentence: str, contexts: Sequence[str]) -> bool:
    """Every sentence is unsupported (recall 1; precision = the share of unsupported sentences)."""
    return True


def not_verbatim(sentence: str, contexts: Sequence[str]) -> bool:
    """Flag unless the sentence (whitespace- and case-normalised) occurs verbatim in one of its contexts."""
    return not any(_norm(sentence) in _norm(c) for c in contexts)


def ten_line_rule(sentence: str, contexts: Sequence[str]) -> bool:
    """Flag a number or a capitalised name/identifier missing from the contexts, < 60 % of the content words
    found there, or a negation mismatch with the best-matching context sentence (issue 8's rule)."""
    found = {w.lower() for c in contexts for w in _words(c)}
    tokens = _words(sentence)
    terms = [t for i, t in enumerate(tokens) if any(ch.isdigit() for ch in t)
             or (i > 0 and t[0].isupper()) or "_" in t or re.search(r"[a-z][A-Z]", t)]
    if any(t.lower() not in found for t in terms):
        return True
    content = [t.lower() for t in tokens if t.lower() not in _STOP]
    if content and sum(w in found for w in content) / len(content) < 0.6:
        return True
    units = [u for c in contexts for u in re.split(r"(?<=[.!?])\s+", c) if u.strip()]
    if not units:
        return True
    best = max(units, key=lambda u: len(set(content) & {w.lower() for w in _words(u)}))
    return _negated(sentence) != _negated(best)


BASELINES: dict[str, Baseline] = {
    "flag-everything": flag_everything,
    "not-a-verbatim-substring": not_verbatim,
    "ten-line rule": ten_line_rule,
}

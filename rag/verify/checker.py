"""Claim checking: is each sentence of an answer supported by the passages it cites?

Local signals, all offline:
  * terms: numbers, names (capitalised words), identifiers (code-like tokens) and quoted strings of the claim
    must occur in the cited passages (all passages when none is cited);
  * similarity: the bi-encoder similarity of the claim to its best passage sentence (or pair of adjacent
    sentences) must reach `min_similarity`;
  * polarity: a claim that is negated while its best sentence is not (or the reverse), or that uses a word whose
    opposite its best sentence uses ("before"/"after", "more"/"less", ...), is flagged.
An optional LLM judge gives a JSON verdict per claim; a claim is supported only when the local signals and the
judge agree (an unusable judge reply leaves the local verdict alone, and says so in the reason).

The default thresholds were chosen on the labelled detector set built from the corpora's dev questions
(`python -m eval.detector tune`), not guessed; see eval/detector.py.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rag.prompt import Block, Message, Prompt
from rag.records import ClaimVerdict
from rag.text import content_words, split_claims
from rag.verify.judge import JUDGE_SYSTEM, parse_judge_reply
from rag.verify.terms import extract_terms, lexical_support, missing_terms, opposite_in, passage_units, polarity_conflict

log = logging.getLogger(__name__)

# Chosen on the dev detector set (eval/detector.py `tune`); see the module docstring.
MIN_SIMILARITY = 0.275
MIN_LEXICAL = 0.2
NEGATION_MIN_SIMILARITY = 0.6
SHORT_CLAIM_WORDS = 6  # claims with fewer content words are compared with their question prepended

@dataclass(frozen=True)
class Signals:
    """Local evidence about one claim: thresholds turn it into a verdict (ClaimChecker.decide)."""

    similarity: float  # best bi-encoder (or lexical, without an embedder) similarity to a passage unit
    lexical: float  # share of the claim's content words found in the passages
    missing: tuple[str, ...] = ()  # numbers, names, identifiers, quoted strings not found
    negation: str = ""  # how the claim's polarity (a negation, an opposite word) differs from its best passage unit


class ClaimChecker:
    """Checks answer sentences against context passages with local signals and an optional LLM judge."""

    def __init__(self, embedder: Any = None, judge: Any = None, min_similarity: float = MIN_SIMILARITY,
                 min_lexical: float = MIN_LEXICAL, negation_min_similarity: float = NEGATION_MIN_SIMILARITY,
                 check_terms: bool = True, check_negation: bool = True, cache_size: int = 4096) -> None:
        self.embedder = embedder
        self.judge = judge
        self.min_similarity = min_similarity
        self.min_lexical = min_lexical
        self.negation_min_similarity = negation_min_similarity
        self.check_terms = check_terms
        self.check_negation = check_negation
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size

    # -- public API -------------------------------------------------------------------------------------------

    def check_sentences(self, question: str, sentences: Sequence[tuple[str, tuple[int, ...]]],
                        blocks: Sequence[Block]) -> list[ClaimVerdict]:
        """A verdict per (sentence, cited block numbers), in order; uncited sentences are checked against all."""
        by_number = {b.number: b.text for b in blocks}
        every = [b.text for b in blocks]
        claims = []
        for text, cited in sentences:
            ctx = [by_number[n] for n in cited if n in by_number]
            claims.append((text, tuple(n for n in cited if n in by_number), ctx or every))
        return self._check(question, claims)

    def check_answer(self, question: str, answer_text: str, contexts: Sequence[str]) -> list[ClaimVerdict]:
        """Split an answer into claims (sentences) and check each; [n] markers cite contexts[n-1]."""
        claims = []
        for claim in split_claims(answer_text, len(contexts)):
            claims.append((claim.text, claim.cited, [contexts[n - 1] for n in claim.cited] or list(contexts)))
        return self._check(question, claims)

    # -- internals --------------------------------------------------------------------------------------------

    def _check(self, question: str, claims: list[tuple[str, tuple[int, ...], list[str]]]) -> list[ClaimVerdict]:
        local = [self._local(text, ctx, question) for text, _, ctx in claims]
        judged: list[tuple[bool, str] | None] = [None] * len(claims)
        if self.judge is not None and claims:
            judged = self._judge(question, claims)
        out = []
        for (text, cited, _), (ok, score, reasons), jv in zip(claims, local, judged, strict=True):
            if jv is not None:
                j_ok, j_reason = jv
                if not j_ok:
                    reasons = reasons + [f"judge: {j_reason or 'not supported'}"]
                ok = ok and j_ok
            elif self.judge is not None:
                reasons = reasons + ["judge reply unusable; local signals only"]
            out.append(ClaimVerdict(claim=text, supported=ok, score=round(float(score), 4),
                                    reason="; ".join(reasons), cited=cited))
        return out

    def signals(self, claim: str, contexts: Sequence[str], question: str = "") -> Signals:
        """The local evidence about one claim, before any threshold is applied.

        A short claim ("512.", "It was written in 2000.") means little without its question, so its similarity
        is also measured with the question prepended, and the better of the two counts.
        """
        context = "\n".join(contexts)
        missing = tuple(missing_terms(extract_terms(claim), context)) if self.check_terms else ()
        units = [u for c in contexts for u in passage_units(c)]
        sim, best = self._best(claim, units)
        if question and len(content_words(claim)) < SHORT_CLAIM_WORDS:
            sim_q, best_q = self._best(f"{question} {claim}", units)
            if sim_q > sim:
                sim, best = sim_q, best_q
        negation = ""
        if self.check_negation and best:
            lexical_best = max(units, key=lambda u: lexical_support(claim, u))
            flipped = polarity_conflict(claim, best)
            if flipped and polarity_conflict(claim, lexical_best):
                negation = flipped
            elif opposite_in(claim, best) and opposite_in(claim, lexical_best):
                negation = opposite_in(claim, best)
        return Signals(similarity=sim, lexical=lexical_support(claim, context), missing=missing, negation=negation)

    def decide(self, s: Signals) -> tuple[bool, list[str]]:
        """(supported, reasons it is not) from a claim's signals and this checker's thresholds."""
        reasons: list[str] = []
        if s.missing:
            reasons.append("not in the cited passages: " + ", ".join(s.missing[:5]))
        if s.similarity < self.min_similarity:
            reasons.append(f"similarity {s.similarity:.2f} below {self.min_similarity:.2f}")
        if s.lexical < self.min_lexical:
            reasons.append(f"only {s.lexical:.0%} of the claim's words occur in the passages")
        if s.negation and s.similarity >= self.negation_min_similarity:
            reasons.append(s.negation)
        return not reasons, reasons

    def _local(self, claim: str, contexts: Sequence[str], question: str = "") -> tuple[bool, float, list[str]]:
        """(supported, similarity score, reasons it is not) from the local signals alone."""
        if not content_words(claim):
            return True, 1.0, []
        if not "".join(contexts).strip():
            return False, 0.0, ["no context"]
        s = self.signals(claim, contexts, question)
        ok, reasons = self.decide(s)
        return ok, s.similarity, reasons

    def _best(self, claim: str, units: list[str]) -> tuple[float, str]:
        if not units:
            return 0.0, ""
        if self.embedder is None:
            scores = np.array([lexical_support(claim, u) for u in units])
        else:
            vecs = self._embed([claim] + units)
            scores = vecs[1:] @ vecs[0]
        i = int(np.argmax(scores))
        return float(scores[i]), units[i]

    def _embed(self, texts: list[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            for t, v in zip(todo, self.embedder.embed(todo), strict=True):
                self._cache[t] = v
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        for t in texts:
            self._cache.move_to_end(t)
        return np.stack([self._cache[t] for t in texts])

    def _judge(self, question: str, claims: list[tuple[str, tuple[int, ...], list[str]]]) -> list[
            tuple[bool, str] | None]:
        """One judge call per distinct context; None where the reply gives no usable verdict."""
        from rag.llm.base import complete  # the LLM package imports prompts; a judge is optional

        out: list[tuple[bool, str] | None] = [None] * len(claims)
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, (_, _, ctx) in enumerate(claims):
            groups.setdefault(tuple(ctx), []).append(i)
        for ctx, idx in groups.items():
            listing = "\n".join(f"{k}. {claims[i][0]}" for k, i in enumerate(idx, start=1))
            user = (f"Context:\n{chr(10).join(ctx)}\n\nQuestion: {question}\n\nClaims:\n{listing}\n\n"
                    "For each claim, is it supported by the context? Answer in JSON.")
            prompt = Prompt((Message("system", JUDGE_SYSTEM), Message("user", user)), question=question,
                            json_mode=True, max_tokens=80 + 60 * len(idx))
            try:
                reply = complete(self.judge, prompt).text
            except Exception as e:  # a failing judge must not fail the answer; local signals still apply
                log.warning("claim judge failed: %s", e)
                continue
            for k, verdict in parse_judge_reply(reply, len(idx)).items():
                out[idx[k - 1]] = verdict
        return out



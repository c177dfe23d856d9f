"""Citation markers: parse [n], attach missing ones by lexical support, and quote the supporting passage."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.prompt import REFUSAL, Block
from rag.records import Citation
from rag.text import split_claims, split_sentences, strip_markers, with_markers, word_support

# A sentence that says the documents do not answer: it must speak of the documents (or of answering), so that
# "SQLite keeps no information about column order [1]" is an answer, not a refusal.
_REFUSAL_SENTENCE = re.compile(
    r"^(?:i|we)\s+(?:cannot|can't|can ?not|am unable to|are unable to)\s+(?:answer|find|determine|tell)"
    r"|\b(?:documents?|context|passages?|provided (?:text|information|material))\b[^.]{0,60}?"
    r"\b(?:do(?:es)? not|don't|doesn't|never|fails? to)\b[^.]{0,40}?\b(?:contain|mention|say|provide|include|"
    r"state|specify|cover|answer|discuss|give)"
    r"|\b(?:not|no)\b[^.]{0,30}?\b(?:mentioned|provided|stated|specified|given|found|information|details?)\b"
    r"[^.]{0,40}?\b(?:in|by|within)\s+(?:the\s+)?(?:provided\s+|given\s+)?(?:documents?|context|passages?)\b",
    re.I,
)
AUTO_CITE_MIN = 0.5  # share of a sentence's content words a block must contain to be cited for it


@dataclass(frozen=True)
class CitedSentence:
    text: str  # without markers
    blocks: tuple[int, ...]  # cited block numbers (valid ones only)
    auto: bool = False  # the citation was attached here, not written by the model


def is_refusal(text: str) -> bool:
    """Whether an answer as a whole declines: empty, the refusal phrase, or only sentences saying the documents
    do not answer. An answer that also states something cited is not a refusal."""
    body, _ = strip_markers(text)
    low = " ".join(body.lower().split())
    if not low or low.startswith(REFUSAL.lower()[:30]):
        return True
    sentences = split_sentences(body)
    return bool(sentences) and all(_REFUSAL_SENTENCE.search(s) for s in sentences)


def parse(text: str, n_blocks: int) -> list[CitedSentence]:
    """Claims of an answer with the valid block numbers each cites (see rag.text.split_claims)."""
    return [CitedSentence(c.text, c.cited) for c in split_claims(text, n_blocks)]


def support(sentence: str, text: str) -> float:
    """Share of a sentence's content words found in a text (0 for a sentence without any)."""
    return word_support(sentence, text, empty=0.0)


def attach(sentences: list[CitedSentence], blocks: Sequence[Block]) -> list[CitedSentence]:
    """Give each uncited sentence the block that supports it best, when one supports it well enough."""
    out = []
    for s in sentences:
        if s.blocks or not blocks:
            out.append(s)
            continue
        best = max(blocks, key=lambda b: support(s.text, b.text))
        if support(s.text, best.text) >= AUTO_CITE_MIN:
            out.append(CitedSentence(s.text, (best.number,), auto=True))
        else:
            out.append(s)
    return out


def render(sentences: list[CitedSentence]) -> str:
    return " ".join(with_markers(s.text, s.blocks) for s in sentences)


def quote_for(block: Block, claims: list[str]) -> str:
    """The sentence of a block that best supports the claims citing it (verbatim from the chunk)."""
    sentences = split_sentences(block.verbatim) or [block.verbatim]
    joined = " ".join(claims)
    best = max(sentences, key=lambda s: support(joined, s) + 0.01 * min(len(s), 200) / 200)
    return best


def citations(sentences: list[CitedSentence], blocks: Sequence[Block]) -> tuple[Citation, ...]:
    by_number = {b.number: b for b in blocks}
    claims: dict[int, list[str]] = {}
    for s in sentences:
        for n in s.blocks:
            claims.setdefault(n, []).append(s.text)
    out = []
    for n in sorted(claims):
        b = by_number[n]
        c = b.hit.chunk
        out.append(Citation(block=n, chunk_id=c.chunk_id, source=c.source, page=c.page, section=c.section,
                            quote=quote_for(b, claims[n])))
    return tuple(out)

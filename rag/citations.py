"""Citation markers: parse [n], attach missing ones by lexical support, and quote the supporting passage."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.prompt import REFUSAL, Block, split_sentences
from rag.records import Citation
from rag.retrieve import content_words, word_support

_MARK = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")
_ECHOED_TAG = re.compile(r"</?\s*document\b[^>]*>", re.I)  # small models sometimes echo the delimiters
_REFUSAL_HINTS = (
    "cannot answer this from the provided documents",
    "cannot answer this from the documents",
    "documents do not contain",
    "documents don't contain",
    "not mentioned in the documents",
    "not provided in the documents",
    "no information",
)
AUTO_CITE_MIN = 0.5  # share of a sentence's content words a block must contain to be cited for it


@dataclass(frozen=True)
class CitedSentence:
    text: str  # without markers
    blocks: tuple[int, ...]  # cited block numbers (valid ones only)
    auto: bool = False  # the citation was attached here, not written by the model


def is_refusal(text: str) -> bool:
    low = " ".join(text.lower().split())
    return not low or low.startswith(REFUSAL.lower()[:30]) or any(h in low for h in _REFUSAL_HINTS)


def parse(text: str, n_blocks: int) -> list[CitedSentence]:
    """Sentences of an answer with the block numbers each cites (markers after the sentence count too)."""
    out: list[CitedSentence] = []
    for raw in split_sentences(_ECHOED_TAG.sub(" ", text)):
        nums = [int(n) for m in _MARK.finditer(raw) for n in re.split(r"[,;]\s*", m.group(1))]
        body = " ".join(_MARK.sub("", raw).split())
        if not content_words(body):
            # A sentence that is only markers cites for the sentence before it.
            if out and nums:
                last = out[-1]
                out[-1] = CitedSentence(last.text, _valid(last.blocks + tuple(nums), n_blocks))
            continue
        out.append(CitedSentence(body, _valid(tuple(nums), n_blocks)))
    return out


def _valid(nums: tuple[int, ...], n_blocks: int) -> tuple[int, ...]:
    return tuple(dict.fromkeys(n for n in nums if 1 <= n <= n_blocks))


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
    return " ".join(s.text + "".join(f" [{n}]" for n in s.blocks) for s in sentences)


def quote_for(block: Block, claims: list[str]) -> str:
    """The sentence of a block that best supports the claims citing it (verbatim from the chunk)."""
    sentences = split_sentences(block.text) or [block.text]
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

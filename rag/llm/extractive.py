"""`extractive`: no LLM at all; answers with the retrieved sentences that best match the question, cited."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np

from rag.llm.base import register
from rag.prompt import REFUSAL, Prompt
from rag.records import Usage
from rag.text import content_words, split_sentences

MAX_SENTENCES = 2
MIN_SCORE = 0.25
CACHE_SIZE = 20_000  # sentence vectors kept: the same passages come back for related questions
_MARKUP = re.compile(r"^\s*(#{1,6}\s+|[-*+]\s+|>\s+)|\*\*|__")


class ExtractiveLLM:
    """Scores every sentence of the context blocks against the question; returns the best one or two."""

    name = "extractive"
    model = "extractive"

    def __init__(self, embedder: Any = None) -> None:
        self._embedder = embedder
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def _vectors(self, texts: list[str]) -> np.ndarray:
        """Embeddings of texts, computed once per distinct text (LRU-bounded)."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        fresh = self._embedder.embed(missing) if missing else []
        with self._lock:
            for text, vec in zip(missing, fresh, strict=True):
                self._cache[text] = vec
            out = []
            for t in texts:
                vec = self._cache.get(t)
                if vec is None:  # evicted by a concurrent caller between the two steps
                    vec = self._embedder.embed([t])[0]
                self._cache[t] = vec
                self._cache.move_to_end(t)
                out.append(vec)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return np.vstack(out)

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(self, prompt: Prompt) -> Iterator[str | Usage]:
        text = self.answer(prompt)
        yield text
        yield Usage(0, self.count_tokens(text))

    def answer(self, prompt: Prompt) -> str:
        candidates: list[tuple[int, int, str]] = []  # (block number, rank of block, sentence)
        for rank, block in enumerate(prompt.blocks):
            for sentence in split_sentences(block.text):
                # Headings and labels ("Zebrafish care") are not answers: ask for a clause's worth of words.
                if len(content_words(sentence)) >= 2 and len(sentence.split()) >= 4:
                    candidates.append((block.number, rank, sentence))
        if not candidates:
            return REFUSAL
        q_words = set(content_words(prompt.question))
        lexical = np.array([_overlap(q_words, s) for _, _, s in candidates])
        if self._embedder is not None:
            question = self._embedder.embed([prompt.question])[0]
            semantic = self._vectors([s for _, _, s in candidates]) @ question
        else:
            semantic = lexical
        rank_prior = np.array([1.0 / (1 + 0.1 * r) for _, r, _ in candidates])
        scores = (0.6 * semantic + 0.4 * lexical) * rank_prior
        order = np.argsort(-scores)
        chosen = [int(i) for i in order[:MAX_SENTENCES] if scores[i] >= MIN_SCORE]
        if not chosen:
            return REFUSAL
        chosen.sort(key=lambda i: (candidates[i][1], i))  # reading order
        return " ".join(f"{_clean(candidates[i][2])} [{candidates[i][0]}]" for i in chosen)


def _overlap(q_words: set[str], sentence: str) -> float:
    if not q_words:
        return 0.0
    return len(q_words & set(content_words(sentence))) / len(q_words)


def _clean(sentence: str) -> str:
    s = " ".join(_MARKUP.sub("", sentence).split())
    return s if s.endswith((".", "!", "?", ":")) else s + "."


@register("extractive")
def _factory(embedder: Any = None, **_: object) -> ExtractiveLLM:
    return ExtractiveLLM(embedder)

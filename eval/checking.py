"""The one place eval calls rag's claim checker.

`rag verify` (and `rag eval --labelled`) score whatever `rag.factory.build_checker(config, embedder)` returns
through `sentence_verdicts` (given sentences); a run checks each final answer through `answer_verdicts`. When
the checker's interface changes, only these two functions change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eval.detection import Detector
from eval.labelled import LabelledItem
from rag.records import ClaimVerdict


def sentence_verdicts(checker: Any, question: str, contexts: Sequence[str],
                      sentences: Sequence[tuple[str, tuple[int, ...]]], sources: Sequence[str] = ()) -> list[bool]:
    """Supported (True) or not, per (sentence text, cited context numbers 1..len(contexts)), in order.

    A sentence citing nothing is checked against every context. `sources`: each context's source label, which the
    judge is shown ("passage-N" when not given). Raises when the checker fails or does not give
    one verdict per sentence (the caller counts that against the checker).
    """
    from rag.prompt import blocks_from_texts

    blocks = blocks_from_texts(list(contexts), list(sources) or None)
    verdicts = checker.check_sentences(question, [(text, tuple(cited)) for text, cited in sentences], blocks)
    if len(verdicts) != len(sentences):
        raise ValueError(f"the checker gave {len(verdicts)} verdict(s) for {len(sentences)} sentence(s)")
    return [bool(v.supported) for v in verdicts]


def answer_verdicts(checker: Any, question: str, answer_text: str, contexts: Sequence[str],
                    sources: Sequence[str] = ()) -> tuple[ClaimVerdict, ...]:
    """The checker's verdict on each claim of an answer ([n] markers cite contexts[n-1], labelled sources[n-1])."""
    return tuple(checker.check_answer(question, answer_text, list(contexts), list(sources) or None))


def checker_detector(checker: Any) -> Detector:
    """The checker as a detector: flags the sentences it does not find supported."""
    def detect(item: LabelledItem) -> list[bool]:
        ok = sentence_verdicts(checker, item.question, item.contexts, [(s.text, s.cited) for s in item.sentences],
                               item.sources)
        return [not v for v in ok]

    return detect

"""Generating an answer that never takes words back: the model's text is cut into sentences as it streams, each
sentence is checked against the block it cites, and only sentences that pass are shown. What is streamed is
therefore exactly the final answer's text. A sentence that fails against its citation but is supported by another
block is shown citing that block (ClaimChecker.recite): small models often cite a neighbouring block.

With a local model that can be paused (`interruptible`), the stream is stopped after the first sentence so that
it is checked and shown at once (the first words come early), and resumed from the text written so far; the
rest is checked as it completes. Before anything is shown, a sentence must also give what the question asks for
(a number, a name: rag.verify.asked); one that does not is dropped and the next may lead. A sentence that speaks
only of the documents or the answer (rag.text.about_the_prompt_only) is never shown when answers are checked. A
server that runs requests side by side (`concurrent`) keeps writing while its sentences are checked; any other
server's answer is read whole, then checked (its checks would interrupt it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from rag import citations as cite
from rag.llm.base import LLM
from rag.prompt import Block, Prompt
from rag.records import ClaimVerdict, Usage
from rag.text import about_the_prompt_only, split_claims
from rag.verify.asked import not_given

log = logging.getLogger(__name__)
NOT_THE_ANSWER = "not an answer to the question"  # the reason of a lead dropped by rag.verify.asked


@dataclass
class Draft:
    """What a drafting run produced (filled in as it goes)."""

    shown: list[cite.CitedSentence] = field(default_factory=list)  # checked and streamed, in order
    verdicts: list[ClaimVerdict] = field(default_factory=list)  # one per sentence checked (dropped ones too)
    model_text: str = ""  # everything the model wrote
    refused_by_model: bool = False  # the model said the documents do not answer
    usage: Usage = field(default_factory=Usage)
    first_shown: float | None = None  # perf_counter time the first sentence was streamed
    check_seconds: float = 0.0


class Drafter:
    """Streams the checked sentences of one answer (see the module docstring)."""

    def __init__(self, llm: LLM, prompt: Prompt, blocks: Sequence[Block], question: str, checker: object | None,
                 verify: bool) -> None:
        self.llm = llm
        self.prompt = prompt
        self.blocks = list(blocks)
        self.question = question
        self.checker = checker if verify else None
        self.draft = Draft()

    def __iter__(self) -> Iterator[str]:
        """Text deltas: each checked sentence with its markers (the first without a leading space)."""
        self._prompt_tokens = 0
        try:
            yield from self._sentences()
        finally:  # also when the model refused or the caller stopped reading
            prompt_tokens = self._prompt_tokens or sum(  # a server that reports no usage: the backend's estimate
                self.llm.count_tokens(m.content) for m in self.prompt.messages)
            self.draft.usage = Usage(prompt_tokens, self._spent())

    def _sentences(self) -> Iterator[str]:
        d = self.draft
        budget = self.prompt.max_tokens
        # A local model cannot answer a check while its stream is open (one model, one lock): it is paused
        # until the first sentence is shown, and later sentences are checked when the stream has ended.
        pausing = bool(getattr(self.llm, "interruptible", False)) and self.checker is not None
        side_by_side = bool(getattr(self.llm, "concurrent", False)) or self.checker is None
        done = 0  # claims of model_text already decided
        while True:
            prompt = self.prompt if budget is None else self.prompt.with_max_tokens(max(1, budget - self._spent()))
            stream = self.llm.stream(prompt, d.model_text) if d.model_text else self.llm.stream(prompt)
            paused = False
            try:
                for item in stream:
                    if isinstance(item, Usage):
                        self._prompt_tokens = self._prompt_tokens or item.prompt_tokens
                        continue
                    d.model_text += item
                    complete = split_claims(d.model_text, len(self.blocks))[:-1]  # the last may still grow
                    if len(complete) <= done:
                        continue
                    if pausing and not d.shown:
                        paused = True
                        break
                    if not pausing and side_by_side:  # the server keeps writing while its sentences are checked
                        for claim in complete[done:]:
                            yield from self._decide(claim.text, claim.cited)
                            if d.refused_by_model:
                                return
                        done = len(complete)
            finally:
                close = getattr(stream, "close", None)
                if callable(close):
                    close()
            if not paused:
                break
            complete = split_claims(d.model_text, len(self.blocks))[:-1]
            for claim in complete[done:]:
                yield from self._decide(claim.text, claim.cited)
                if d.refused_by_model:
                    return
            done = len(complete)
            if budget is not None and self._spent() >= budget:
                break
        for claim in split_claims(d.model_text, len(self.blocks))[done:]:
            yield from self._decide(claim.text, claim.cited)
            if d.refused_by_model:
                return

    def _spent(self) -> int:
        return self.llm.count_tokens(self.draft.model_text) if self.draft.model_text else 0

    def _decide(self, text: str, cited: tuple[int, ...]) -> Iterator[str]:
        d = self.draft
        if cite.is_refusal(text):
            if not d.shown:  # the model declines: stop here (a refusal after an answer is only dropped)
                d.refused_by_model = True
            return
        if self.checker is not None and about_the_prompt_only(text):  # "The document number for this answer is [3]."
            d.verdicts.append(ClaimVerdict(claim=text, supported=False, score=0.0, cited=cited,
                                           reason="speaks of the documents or the answer, not of what they say"))
            log.info("dropped a sentence about the prompt itself: %s", text)
            return
        (sentence,) = cite.attach([cite.CitedSentence(text, cited)], self.blocks)
        if not sentence.blocks:  # uncited, and no block holds its words: never shown, so not worth a judge's look
            if self.checker is not None:
                d.verdicts.append(ClaimVerdict(claim=text, supported=False, score=0.0,
                                               reason="cites no block and no block holds its words"))
            log.info("dropped an uncited sentence: %s", text)
            return
        if self.checker is not None and not d.shown:  # the lead must give what the question asks for
            lacks = not_given(self.question, sentence.text)
            if lacks:
                d.verdicts.append(ClaimVerdict(claim=text, supported=False, score=0.0, reason=f"{NOT_THE_ANSWER}: "
                                               f"{lacks}", cited=sentence.blocks))
                log.info("dropped a lead that does not answer the question (%s): %s", lacks, sentence.text)
                return
        if self.checker is not None:
            t = time.perf_counter()
            verdict = self.checker.check_claim(self.question, sentence.text, sentence.blocks,  # type: ignore[attr-defined]
                                               self.blocks)
            if not verdict.supported:  # a true sentence citing the wrong block is shown with the right one
                recited = self.checker.recite(self.question, sentence.text, sentence.blocks,  # type: ignore[attr-defined]
                                              self.blocks)
                if recited is not None:
                    verdict = replace(recited, reason=f"{recited.reason} (as cited: {verdict.reason})")
                    sentence = cite.CitedSentence(sentence.text, recited.cited)
            d.check_seconds += time.perf_counter() - t
            d.verdicts.append(verdict)
            if not verdict.supported:
                log.info("dropped an unsupported sentence (%s): %s", verdict.reason, sentence.text)
                return
        piece = cite.render([sentence])
        if d.first_shown is None:
            d.first_shown = time.perf_counter()
        yield piece if not d.shown else " " + piece
        d.shown.append(sentence)

"""The server's LLM as one chat request asked for it: the caller's instructions, a token limit and stop sequences.

`RequestLLM` wraps the pipeline's LLM for one request and changes only the answering prompt (the one with context
blocks): the caller's system/developer text is added to the question turn, after the system prompt's grounding
rules, which it never replaces; the answer is cut at `max_tokens` (the server's own llm.*.max_tokens caps it) and
before the first stop sequence, as OpenAI does. Yes/no checks (`p_yes`) and query rewrites pass through unchanged,
so the caller's text cannot steer the claim checks, and a local model's cache of system prompt and documents is
shared by the checks and the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from rag.prompt import Message, Prompt
from rag.records import Usage

log = logging.getLogger(__name__)
INSTRUCTIONS_HEAD = ("Instructions from the client application (follow them only where they agree with the rules "
                     "of the system message, which always come first):")


class RequestLLM:
    """One request's view of an LLM (see the module docstring). `cut` is True when the answer hit its token limit."""

    def __init__(self, base: Callable[[], Any], instructions: str = "", max_tokens: int | None = None,
                 stop: tuple[str, ...] = (), server_max_tokens: int | None = None) -> None:
        self._base_factory = base  # the pipeline's LLM, built (or fetched) when the answer starts, in its worker
        self._base: Any = None
        self.instructions = instructions
        caps = [n for n in (max_tokens, server_max_tokens) if n is not None]
        self.limit = min(caps) if caps else None
        self.asked = max_tokens
        self.stop = stop
        self.cut = False  # the answer reached its token limit (finish_reason "length")
        self.stopped = False  # a stop sequence ended it

    @property
    def base(self) -> Any:
        if self._base is None:
            self._base = self._base_factory()
        return self._base

    @property
    def name(self) -> str:
        return str(self.base.name)

    @property
    def model(self) -> str:
        return str(self.base.model)

    def __getattr__(self, name: str) -> Any:  # p_yes, interruptible, tokens, close...: the base model's own
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.base, name)

    def count_tokens(self, text: str) -> int:
        return int(self.base.count_tokens(text))

    def answering(self, prompt: Prompt) -> bool:
        return bool(prompt.blocks) and bool(prompt.messages) and prompt.messages[-1].role == "user"

    def stream(self, prompt: Prompt, prefix: str = "") -> Iterator[str | Usage]:
        if not self.answering(prompt):
            yield from (self.base.stream(prompt, prefix) if prefix else self.base.stream(prompt))
            return
        if self.cut or self.stopped:  # a resumed stream after the answer ended: nothing more
            return
        budget = None
        if self.limit is not None:
            budget = self.limit - (self.count_tokens(prefix) if prefix else 0)
            if budget <= 0:
                self.cut = True
                return
            prompt = prompt.with_max_tokens(min(budget, prompt.max_tokens or budget))
        prompt = self.with_instructions(prompt)
        log.debug("answering with %s (%d blocks, token budget %s, %d stop sequences, client instructions: %s)",
                  self.model, len(prompt.blocks), budget, len(self.stop), "yes" if self.instructions else "no")
        upstream = self.base.stream(prompt, prefix) if prefix else self.base.stream(prompt)
        produced: list[str] = []
        usage: Usage | None = None
        try:
            for piece in self._until_stop(upstream):
                if isinstance(piece, Usage):
                    usage = piece
                    continue
                if budget is not None and self.asked is not None:
                    piece = self._within(produced, piece, budget)
                if piece:
                    produced.append(piece)
                    yield piece
                if self.cut:
                    break
        finally:
            close = getattr(upstream, "close", None)
            if callable(close):
                close()
        if budget is not None and not self.stopped:
            spent = usage.completion_tokens if usage is not None and usage.completion_tokens else \
                self.count_tokens("".join(produced))
            self.cut = self.cut or spent >= budget
        if usage is not None:
            yield usage

    def with_instructions(self, prompt: Prompt) -> Prompt:
        """The answering prompt with the caller's instructions after the question (after the grounding rules)."""
        if not self.instructions:
            return prompt
        last = prompt.messages[-1]
        text = f"{last.content}\n\n{INSTRUCTIONS_HEAD}\n{self.instructions}"
        return replace(prompt, messages=(*prompt.messages[:-1], Message(last.role, text)))

    def _within(self, produced: list[str], piece: str, budget: int) -> str:
        """`piece`, shortened to fit the budget of the caller's max_tokens (a backend that ignores the prompt's
        max_tokens, such as the extractive one, is cut here)."""
        before = "".join(produced)
        if self.count_tokens(before + piece) <= budget:
            return piece
        self.cut = True
        words = piece.split(" ")
        while words and self.count_tokens(before + " ".join(words)) > budget:
            words.pop()
        return " ".join(words)

    def _until_stop(self, upstream: Any) -> Iterator[str | Usage]:
        """The upstream items, ended before the first stop sequence (held back until it cannot start one)."""
        if not self.stop:
            yield from upstream
            return
        keep = max(len(s) for s in self.stop) - 1
        buf = ""
        for item in upstream:
            if isinstance(item, Usage):
                yield item
                continue
            buf += item
            hits = [i for i in (buf.find(s) for s in self.stop) if i >= 0]
            if hits:
                if buf[:min(hits)]:
                    yield buf[:min(hits)]
                self.stopped = True
                return
            if len(buf) > keep:
                yield buf[:len(buf) - keep]
                buf = buf[len(buf) - keep:]
        if buf:
            yield buf

"""The LLM Protocol every backend implements, and the registry that picks one by name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from rag.errors import LLMConfigError
from rag.prompt import Prompt
from rag.records import Usage


@dataclass(frozen=True)
class Completion:
    text: str
    usage: Usage
    model: str


@runtime_checkable
class LLM(Protocol):
    """A chat model: streams text deltas for a prompt; the last item of a stream may be its Usage."""

    name: str
    model: str

    def count_tokens(self, text: str) -> int: ...

    def stream(self, prompt: Prompt) -> Iterator[str | Usage]: ...


@runtime_checkable
class Judge(Protocol):
    """A model that can answer a yes/no prompt with a probability: P(yes) against P(no) for its first token.

    Used to decide answerability and to check claims; a backend that cannot read its token probabilities
    does not implement it (answers are then checked by the lexical signals alone).
    """

    def p_yes(self, prompt: Prompt) -> float: ...


def judge_of(llm: object) -> Judge | None:
    """The LLM as a judge when it can be one."""
    return llm if callable(getattr(llm, "p_yes", None)) else None  # type: ignore[return-value]


def complete(llm: LLM, prompt: Prompt) -> Completion:
    """Run a prompt to the end and collect text and usage."""
    parts: list[str] = []
    usage = Usage()
    for item in llm.stream(prompt):
        if isinstance(item, Usage):
            usage = item
        else:
            parts.append(item)
    text = "".join(parts)
    if usage.total_tokens == 0:
        prompt_text = "\n".join(m.content for m in prompt.messages)
        usage = Usage(llm.count_tokens(prompt_text), llm.count_tokens(text))
    return Completion(text, usage, llm.model)


Factory = Callable[..., LLM]
_REGISTRY: dict[str, Factory] = {}


def register(name: str) -> Callable[[Factory], Factory]:
    def deco(factory: Factory) -> Factory:
        _REGISTRY[name] = factory
        return factory

    return deco


def create(name: str, **kwargs: Any) -> LLM:
    """The backend registered under `name`; unknown names fail with the list of valid ones."""
    from rag.llm import extractive, local, openai_compat  # noqa: F401 - registers the built-in backends

    if name not in _REGISTRY:
        raise LLMConfigError(f"unknown LLM backend {name!r}; valid backends are: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](**kwargs)

"""LLM backends: `local` (bundled GGUF via llama.cpp), `openai` (any OpenAI-compatible server), `extractive`."""

from __future__ import annotations

from typing import Any

from rag.config import Config
from rag.llm.base import LLM, Completion, complete, create


def open_llm(config: Config, name: str | None = None, embedder: Any = None) -> LLM:
    """Build the configured backend (the only place that creates LLM clients)."""
    name = name or config.answer.llm
    if name == "local":
        return create("local", config=config.local)
    if name == "openai":
        return create("openai", config=config.openai)
    return create(name, embedder=embedder)


__all__ = ["LLM", "Completion", "complete", "create", "open_llm"]

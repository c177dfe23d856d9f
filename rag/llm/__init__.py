"""LLM backends: `local` (bundled GGUF via llama.cpp), `openai` (any OpenAI-compatible server), `extractive`.

Backends register themselves by name (rag.llm.base.register); rag.factory.build_llm builds the configured one.
"""

from rag.llm.base import LLM, Completion, complete, create

__all__ = ["LLM", "Completion", "complete", "create"]

"""Errors raised by the answering stage."""

from __future__ import annotations


class RagError(Exception):
    """Base class for answering errors."""


class LLMError(RagError):
    """The LLM backend failed after its retries; the message says what happened and where."""


class LLMConfigError(RagError):
    """An LLM backend is misconfigured (unknown model, missing API key, ...)."""

"""Errors raised by the evaluation harness."""

from __future__ import annotations


class EvalError(Exception):
    """Base class for evaluation errors; the message names the file or value and what is accepted."""


class QuestionError(EvalError):
    """A question file is missing or malformed (the message gives file:line)."""


class RunError(EvalError):
    """A run directory cannot be used (missing, or made with another question set, index or model)."""


class LabelledSetError(EvalError):
    """A labelled set (the `rag verify` format) is missing or malformed (the message gives file:line)."""

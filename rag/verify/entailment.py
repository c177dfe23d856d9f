"""The questions put to an LLM judge, as follow-ups of the answer's own prompt (same system prompt, history and
documents, so a local model evaluates only the question's tokens): is the question answerable from the
documents, and is a claim stated in the documents it cites."""

from __future__ import annotations

import logging

from rag.llm.base import Judge
from rag.prompt import Prompt

log = logging.getLogger(__name__)


def answerability_instruction(question: str) -> str:
    return (f"Question: {question}\n\nDo the documents above contain the specific information needed to answer "
            "this question? Reply with yes or no.")


def claim_instruction(claim: str, cited: tuple[int, ...]) -> str:
    if not cited:
        where = "one of the documents above"
    elif len(cited) == 1:
        where = f"document [{cited[0]}] above"
    else:
        where = "documents " + ", ".join(f"[{n}]" for n in cited[:-1]) + f" and [{cited[-1]}] above"
    return (f"Statement: {claim}\n\nIs this statement stated in {where}, with the same names, numbers and "
            "meaning? Reply with yes or no.")


def ask(judge: Judge, prompt: Prompt, instruction: str) -> float | None:
    """P(yes) for an instruction following the prompt's documents; None when the judge fails (logged)."""
    try:
        return judge.p_yes(prompt.follow_up(instruction))
    except Exception as e:  # a failing judge must not fail the answer: the caller falls back to local signals
        log.warning("LLM judge failed: %s", e)
        return None

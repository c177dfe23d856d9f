"""The questions put to an LLM judge: is the question answerable from the documents (a follow-up of the answer's
own prompt: same system prompt, history and documents, so a local model evaluates only the question's tokens),
and is a claim stated in the documents it cites (asked over those documents alone, see `claim_prompt`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from rag.llm.base import Judge
from rag.prompt import Prompt, blocks_from_texts, build_prompt

log = logging.getLogger(__name__)


def answerability_instruction(question: str) -> str:
    # Chosen on the dev questions among three wordings (python -m eval.tuning answerability; AUC of P(yes) for
    # answerable vs unanswerable dev questions: this one 0.94, "Do the documents contain the specific
    # information needed ...?" 0.88, "Is the specific answer missing ...?" 0.82 inverted).
    return (f"Question: {question}\n\nAnswer yes only if one of the documents above states the specific answer to "
            "this question (the exact value, name or fact asked for). If the documents are about the topic but do "
            "not give that specific answer, answer no. Reply with yes or no.")


def claim_instruction(claim: str, cited: tuple[int, ...]) -> str:
    # Chosen on the labelled dev answers among four wordings (python -m eval.tuning checker; AUC of 1 - P(yes) for
    # unsupported vs supported dev sentences: this one 0.774; "Is this statement stated in ..., with the same
    # names, numbers and meaning?" 0.712; "Does this statement contain any value, name or fact that ... does not
    # state?" 0.726 inverted; a question-aware "... as the answer to this question" 0.586).
    if not cited:
        where = "one of the documents above"
    elif len(cited) == 1:
        where = f"document [{cited[0]}] above"
    else:
        where = "documents " + ", ".join(f"[{n}]" for n in cited[:-1]) + f" and [{cited[-1]}] above"
    return (f"Statement: {claim}\n\nAnswer yes only if {where} states everything this statement says (the same "
            "values, names and facts). If it is about the topic but does not state this, or says something "
            "different, answer no. Reply with yes or no.")


def claim_prompt(claim: str, cited_texts: Sequence[str], cited: bool = True,
                 labels: Sequence[str] | None = None) -> Prompt:
    """The judge's question whether `claim` is stated in `cited_texts`, shown alone (numbered from 1), not among the
    answer's other documents. Chosen on the labelled dev answers (corpora/labelled/tuning/README.md, 2026-12-01):
    over their 197 cited sentences, AUC of 1 - P(yes) for unsupported vs supported sentences 0.880 with the cited
    block alone against 0.750 after the answer's whole prompt, where the judge hardly tells the cited block from
    its neighbours (over the 96 the current model drafted in dev runs: 0.885 against 0.720). The wording (B) was
    chosen earlier, after the whole prompt, and not chosen again for this one. `cited=False` (an uncited sentence,
    checked against every block): "one of the documents above".

    `labels`: each block's source label as the answer's prompt shows it ("passage-N" without). A claim citing the
    answer's first block then opens exactly as the answer's prompt does (system prompt, first document), so a local
    model copies that part of the answer's cache instead of reading the block again (rag.llm.local)."""
    blocks = blocks_from_texts(list(cited_texts), list(labels) if labels else None)
    numbers = tuple(b.number for b in blocks) if cited else ()
    base = replace(build_prompt("", blocks), side=True)
    return base.follow_up(claim_instruction(claim, numbers))


def ask(judge: Judge, prompt: Prompt, instruction: str | None = None) -> float | None:
    """P(yes) for an instruction following the prompt's documents (or for the prompt as it is, without one);
    None when the judge fails (logged)."""
    try:
        return judge.p_yes(prompt.follow_up(instruction) if instruction is not None else prompt)
    except Exception as e:  # a failing judge must not fail the answer: the caller falls back to local signals
        log.warning("LLM judge failed: %s", e)
        return None

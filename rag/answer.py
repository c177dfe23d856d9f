"""From a question to a cited, grounded Answer: retrieve, decide on evidence, prompt, generate, check."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ingest.store import ChunkFilter
from rag import citations as cite
from rag.config import AnswerConfig
from rag.drafting import NOT_THE_ANSWER, Draft, Drafter
from rag.llm.base import LLM, complete
from rag.prompt import REFUSAL, Block, blocks_for, build_prompt, build_rewrite_prompt, quote_prompt
from rag.records import Answer, Evidence, Usage
from rag.text import content_words

if TYPE_CHECKING:
    from rag.retrieve import Retriever
    from rag.verify import ClaimChecker

log = logging.getLogger(__name__)
SECOND_DRAFT = "second draft"  # opens the reason of every verdict on a second draft's sentences
_FOLLOW_UP = {"it", "its", "they", "them", "their", "this", "that", "these", "those", "he", "she", "one", "ones"}


def evidence_refusal(evidence: Evidence, n_hits: int, min_dense: float, weak_dense: float, min_overlap: float) -> str:
    """Why retrieval evidence is too weak to answer ('' when it is strong enough).

    Below `min_dense` the question is off-topic. Between `min_dense` and `weak_dense` the passages must
    also hold enough of the question's key words, or dense and keyword search must agree on the best one.
    """
    if n_hits == 0:
        return "no passage of the documents matches the question"
    if evidence.best_dense < min_dense:
        return f"best passage similarity {evidence.best_dense:.2f} is below {min_dense:.2f}"
    if evidence.best_dense < weak_dense and evidence.keyword_overlap < min_overlap and not evidence.agreement:
        return (f"weak match: similarity {evidence.best_dense:.2f} and only {evidence.keyword_overlap:.0%} of the "
                f"question's key words occur in the passages (needs {min_overlap:.0%})")
    return ""


def standalone_query(llm: LLM, question: str, history: Sequence[tuple[str, str]]) -> str:
    """Rewrite a follow-up into a standalone query for retrieval (the LLM, with a lexical fallback)."""
    if not history:
        return question
    last_user = history[-1][0]
    fallback = f"{last_user} {question}"
    words = [w.lower() for w in question.split()]
    if llm.name == "extractive":
        return fallback if set(words) & _FOLLOW_UP or len(content_words(question)) <= 2 else question
    try:
        text = complete(llm, build_rewrite_prompt(question, history)).text.strip().strip('"')
    except Exception as e:  # rewriting is an optimisation; never fail the answer for it
        log.warning("query rewrite failed (%s); using the question with the previous one", e)
        return fallback
    line = text.splitlines()[0].strip() if text else ""
    if not line or len(line) > 3 * len(question) + 200:
        return fallback
    return line


class Answerer:
    """From a question to a cited, grounded Answer: retrieve, decide on the evidence, prompt, generate, check.

    Built from a retriever, an LLM, the answer settings and (when answers are verified) a claim checker; it
    holds no other state, so one Answerer serves concurrent questions.
    """

    def __init__(self, retriever: Retriever, llm: LLM, config: AnswerConfig, checker: ClaimChecker | None = None) -> None:
        self.retriever = retriever
        self.llm = llm
        self.config = config
        self.checker = checker

    def _second_draft_due(self, first: Draft, p_answer: float | None) -> bool:
        """A second draft (asking for a sentence quoted from the documents) is due when answers are checked, no sentence
        of the first passed the checks although the model did not decline, and the model's P(answerable) reaches
        `min_second_draft_answerability` (without such a P: never)."""
        cfg = self.config
        return (cfg.second_draft and bool(first.verdicts) and not first.shown and not first.refused_by_model
                and p_answer is not None and p_answer >= cfg.min_second_draft_answerability
                and self.llm.name != "extractive")

    def ask(self, question: str, history: Sequence[tuple[str, str]] = (), **kw: Any) -> Answer:
        """The final Answer of `stream`."""
        answer = None
        for item in self.stream(question, history, **kw):
            if isinstance(item, Answer):
                answer = item
        assert answer is not None
        return answer

    def stream(self, question: str, history: Sequence[tuple[str, str]] = (), *, filters: ChunkFilter | None = None,
               k: int | None = None, mode: str | None = None, verify: bool | None = None) -> Iterator[str | Answer]:
        """Yields the answer's text as it is checked (sentence by sentence), then the final Answer.

        The text streamed is exactly the final Answer's text: nothing shown is ever taken back.
        """
        cfg = self.config
        llm = self.llm
        verify = cfg.verify if verify is None else verify
        t0 = time.perf_counter()
        query = standalone_query(llm, question, history)
        t_rewrite = time.perf_counter() - t0
        result = self.retriever.search(query, k=k, mode=mode, filters=filters)
        timings = {"rewrite": t_rewrite, "retrieve": time.perf_counter() - t0 - t_rewrite}
        evidence = result.evidence
        base = {"question": question, "query": query, "model": llm.model}

        def refused(reason: str, usage: Usage | None = None, shown: Sequence[Block] = (),
                    verdicts: tuple = ()) -> Answer:
            timings["total"] = time.perf_counter() - t0
            return Answer(text=REFUSAL, refused=True, refusal_reason=reason, contexts=tuple(b.hit for b in shown),
                          usage=usage or Usage(), timings=dict(timings), evidence=evidence, verdicts=verdicts,
                          shown_contexts=tuple(b.text for b in shown), **base)  # type: ignore[arg-type]

        floor = evidence_refusal(evidence, len(result.hits), cfg.min_dense_score, -1.0, 0.0)
        if floor:  # off-topic: nothing to show the model
            yield REFUSAL
            yield refused(floor)
            return
        blocks = blocks_for(result.hits, cfg, llm.count_tokens)
        prompt = build_prompt(query if history else question, blocks, history)
        contexts = tuple(b.hit for b in blocks)
        checker = self.checker if verify else None
        # Answerability: the model's P(the passages answer the question), when it can give one; the evidence
        # gate of retrieval scores otherwise. Both before any word is generated.
        t = time.perf_counter()
        p_answer = checker.answerability(prompt) if checker is not None else None
        timings["answerability"] = time.perf_counter() - t
        evidence = replace(evidence, answerability=p_answer)
        if p_answer is not None and p_answer < cfg.min_answerability:
            yield REFUSAL
            yield refused(f"the passages do not seem to answer the question (P {p_answer:.2f} < "
                          f"{cfg.min_answerability:.2f})", shown=blocks)
            return
        if p_answer is None:
            weak = evidence_refusal(evidence, len(result.hits), cfg.min_dense_score, cfg.weak_dense_score,
                                    cfg.min_keyword_overlap)
            if weak:
                yield REFUSAL
                yield refused(weak, shown=blocks)
                return
        t_gen = time.perf_counter()
        drafter = Drafter(llm, prompt, blocks, question, checker, verify)
        yield from drafter
        d = drafter.draft
        usage = d.usage if d.usage.total_tokens else Usage(
            sum(llm.count_tokens(m.content) for m in prompt.messages), llm.count_tokens(d.model_text))
        verdicts = tuple(d.verdicts)
        check_seconds = d.check_seconds
        if self._second_draft_due(d, p_answer):
            log.info("no sentence of the first draft passed the checks: asking for a quoted sentence")
            t_second = time.perf_counter()
            second = Drafter(llm, quote_prompt(prompt), blocks, question, checker, verify)
            yield from second
            d = second.draft
            usage = Usage(usage.prompt_tokens + d.usage.prompt_tokens, usage.completion_tokens + d.usage.completion_tokens)
            verdicts += tuple(replace(v, reason=f"{SECOND_DRAFT}: {v.reason}" if v.reason else SECOND_DRAFT)
                              for v in d.verdicts)
            check_seconds += d.check_seconds
            timings["second_draft"] = time.perf_counter() - t_second
        timings["generate"] = time.perf_counter() - t_gen - check_seconds
        timings["verify"] = check_seconds
        if d.first_shown is not None:
            timings["first_token"] = d.first_shown - t0
        if not d.shown:
            if d.refused_by_model or cite.is_refusal(d.model_text):
                why = "the model found no answer in the passages"
            elif verdicts and all(NOT_THE_ANSWER in v.reason for v in verdicts):
                why = "no sentence of the answer gives what the question asks for"
            else:
                why = "no sentence of the answer is supported by the passage it cites"
            yield REFUSAL
            yield refused(why, usage, blocks, verdicts)
            return
        timings["total"] = time.perf_counter() - t0
        yield Answer(text=cite.render(d.shown), refused=False, citations=cite.citations(d.shown, blocks),
                     contexts=contexts, usage=usage, timings=timings, verdicts=verdicts, evidence=evidence,
                     shown_contexts=tuple(b.text for b in blocks),
                     **base)  # type: ignore[arg-type]

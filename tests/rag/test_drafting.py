"""Answers that never take words back: only checked sentences are streamed, the stream equals the final text,
unsupported cited sentences are dropped, a local model is paused after its first sentence and resumed."""

from __future__ import annotations

from collections.abc import Iterator

from rag import citations as cite
from rag.answer import Answerer
from rag.config import AnswerConfig
from rag.drafting import Drafter
from rag.prompt import REFUSAL, Prompt, blocks_from_texts, build_prompt
from rag.records import Answer, Evidence, Hit, Usage
from rag.retrieve import RetrievalResult
from rag.verify import ClaimChecker

PASSAGES = ["The observatory telescope has a 40 centimetre mirror and opened in 1998.",
            "Sourdough bread rises for twelve hours at room temperature before baking."]


class ScriptedLLM:
    """A unit seam: streams a fixed answer in small pieces; records how it was called."""

    name = "scripted"
    model = "scripted"

    def __init__(self, answer: str, interruptible: bool = False, concurrent: bool = False) -> None:
        self.answer = answer
        self.interruptible = interruptible
        self.concurrent = concurrent
        self.calls: list[str] = []  # the prefix each stream was resumed from
        self.open_streams = 0

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(self, prompt: Prompt, prefix: str = "") -> Iterator[str | Usage]:
        self.calls.append(prefix)
        assert self.answer.startswith(prefix)
        rest = self.answer[len(prefix):]
        self.open_streams += 1
        try:
            for i in range(0, len(rest), 7):
                yield rest[i:i + 7]
            yield Usage(10, self.count_tokens(self.answer))
        finally:
            self.open_streams -= 1


class TableJudge:
    """P(yes) by the statement in the judge's question (a unit seam standing in for the LLM)."""

    def __init__(self, table: dict[str, float], llm: ScriptedLLM | None = None) -> None:
        self.table = table
        self.llm = llm
        self.asked: list[str] = []

    def p_yes(self, prompt: Prompt) -> float:
        if self.llm is not None:  # a local model cannot judge while its own stream is open
            assert self.llm.open_streams == 0
        question = prompt.messages[-1].content
        self.asked.append(question)
        for key, p in self.table.items():
            if key in question:
                return p
        return 0.9


def _draft(llm: ScriptedLLM, checker: ClaimChecker | None) -> tuple[str, Drafter]:
    blocks = blocks_from_texts(PASSAGES)
    drafter = Drafter(llm, build_prompt("When did the observatory open?", blocks), blocks,
                      "When did the observatory open?", checker, verify=checker is not None)
    return "".join(drafter), drafter


def test_green_cheese_with_a_valid_marker_is_not_shown() -> None:
    """The claim of issue 8: a cited sentence over an unrelated passage is no longer passed as grounded."""
    llm = ScriptedLLM("The observatory opened in 1998 [1]. The moon is made of green cheese [1].")
    text, d = _draft(llm, ClaimChecker())
    assert text == "The observatory opened in 1998 [1]."
    assert [v.supported for v in d.draft.verdicts] == [True, False]
    assert "green cheese" in d.draft.model_text and "cheese" not in text


def test_streamed_text_equals_the_final_answer_and_nothing_is_taken_back() -> None:
    llm = ScriptedLLM("The telescope mirror is 40 centimetres [1]. It opened in 2004 [1]. "
                      "Bread rises for twelve hours [2].")
    judge = TableJudge({"2004": 0.05})
    text, d = _draft(llm, ClaimChecker(judge=judge))
    assert text == "The telescope mirror is 40 centimetres [1]. Bread rises for twelve hours [2]."
    assert text == cite.render(d.draft.shown)
    assert [v.supported for v in d.draft.verdicts] == [True, False, True]
    assert len(judge.asked) == 3 and "document [1]" in judge.asked[1] and "2004" in judge.asked[1]


def test_a_local_model_is_paused_for_its_first_sentence_then_resumed() -> None:
    answer = "The mirror is 40 centimetres [1]. It opened in 1998 [1]."
    llm = ScriptedLLM(answer, interruptible=True)
    judge = TableJudge({}, llm)
    text, _ = _draft(llm, ClaimChecker(judge=judge))
    assert text == answer
    assert len(llm.calls) == 2 and llm.calls[0] == "" and answer.startswith(llm.calls[1]) and llm.calls[1]
    assert "The mirror is 40 centimetres [1]." in llm.calls[1]  # resumed after the first checked sentence


class WatchingJudge(TableJudge):
    """Records how many of the model's streams were open at each check."""

    def __init__(self, llm: ScriptedLLM) -> None:
        super().__init__({})
        self.watched, self.open_at_check = llm, []

    def p_yes(self, prompt: Prompt) -> float:
        self.open_at_check.append(self.watched.open_streams)
        return super().p_yes(prompt)


def test_a_server_is_checked_while_it_writes_only_when_it_runs_requests_side_by_side() -> None:
    answer = "The mirror is 40 centimetres [1]. It opened in 1998 [1]. It has a 40 centimetre mirror [1]."
    for concurrent in (False, True):
        llm = ScriptedLLM(answer, concurrent=concurrent)  # a remote server: never paused
        judge = WatchingJudge(llm)
        text, _ = _draft(llm, ClaimChecker(judge=judge))
        assert text == answer and llm.calls == [""]  # one request, never resumed
        # llama.cpp's server cancels a running stream when a check arrives: checks wait for the whole answer.
        assert judge.open_at_check and (any(judge.open_at_check) if concurrent else not any(judge.open_at_check))


def test_uncited_sentences_get_the_block_that_supports_them_or_are_dropped() -> None:
    llm = ScriptedLLM("The telescope has a 40 centimetre mirror. Penguins live in Antarctica.")
    text, _ = _draft(llm, ClaimChecker())
    assert text == "The telescope has a 40 centimetre mirror [1]."
    # the judge is asked only about the sentence a block carries: the other is never shown, whatever it says
    judge = TableJudge({})
    text, d = _draft(ScriptedLLM("The telescope has a 40 centimetre mirror. Penguins live in Antarctica."),
                     ClaimChecker(judge=judge))
    assert text == "The telescope has a 40 centimetre mirror [1]."
    assert len(judge.asked) == 1 and "Penguins" not in judge.asked[0]
    assert [v.supported for v in d.draft.verdicts] == [True, False] and "cites no block" in d.draft.verdicts[1].reason


def test_a_model_refusal_stops_generation_and_nothing_is_shown() -> None:
    llm = ScriptedLLM(f"{REFUSAL} But the telescope opened in 1998 [1].", interruptible=True)
    text, d = _draft(llm, ClaimChecker(judge=TableJudge({}, llm)))
    assert text == "" and d.draft.refused_by_model and d.draft.shown == []


class OneHitRetriever:
    def __init__(self, best_dense: float) -> None:
        self.best_dense = best_dense

    def search(self, query: str, k: int | None = None, mode: str | None = None, filters: object = None) -> RetrievalResult:
        blocks = blocks_from_texts(PASSAGES)
        hits = [Hit(b.hit.chunk, 1.0 - i / 10, dense_score=self.best_dense) for i, b in enumerate(blocks)]
        return RetrievalResult(hits, Evidence(self.best_dense, 1.0, True))


def _answer(answer: str, judge_table: dict[str, float]) -> tuple[list[str], Answer]:
    llm = ScriptedLLM(answer, interruptible=True)
    checker = ClaimChecker(judge=TableJudge(judge_table, llm))
    answerer = Answerer(OneHitRetriever(0.6), llm, AnswerConfig(), checker)  # type: ignore[arg-type]
    *deltas, final = list(answerer.stream("When did the observatory open?"))
    assert isinstance(final, Answer) and all(isinstance(x, str) for x in deltas)
    return deltas, final  # type: ignore[return-value]


def test_stream_of_the_answerer_equals_its_answer_text() -> None:
    deltas, final = _answer("It opened in 1998 [1]. It has a 40 centimetre mirror [1].", {})
    assert "".join(deltas) == final.text and not final.refused
    assert final.evidence is not None and final.evidence.answerability == 0.9
    assert {"answerability", "generate", "verify", "first_token", "total"} <= set(final.timings)
    # the blocks as the model was shown them (and its sentences checked against), one per context
    assert final.shown_contexts == tuple(PASSAGES[:len(final.contexts)]) and final.contexts


def test_unanswerable_is_refused_before_generation_and_the_refusal_is_streamed() -> None:
    deltas, final = _answer("It opened in 1998 [1].", {"states the specific answer": 0.2})
    assert final.refused and "do not seem to answer" in final.refusal_reason
    assert "".join(deltas) == final.text == REFUSAL and "generate" not in final.timings
    assert len(final.shown_contexts) == len(final.contexts) > 0


def test_an_answer_with_nothing_supported_is_refused_and_streams_only_the_refusal() -> None:
    deltas, final = _answer("It opened in 2004 [1].", {"2004": 0.1})
    assert final.refused and "no sentence" in final.refusal_reason
    assert "".join(deltas) == final.text == REFUSAL
    assert [v.supported for v in final.verdicts] == [False]


def test_is_refusal_needs_the_whole_answer_to_decline() -> None:
    assert cite.is_refusal(REFUSAL)
    assert cite.is_refusal("The documents do not contain information about the port.")
    assert cite.is_refusal("")
    assert not cite.is_refusal("SQLite keeps no information about column order [1].")
    assert not cite.is_refusal("The documents do not mention the port. The default timeout is 5 seconds [2].")


def test_a_true_sentence_citing_the_wrong_block_is_shown_citing_the_right_one() -> None:
    """Small models often cite a neighbouring block: the sentence is re-cited, not dropped (a false refusal)."""
    llm = ScriptedLLM("Bread rises for twelve hours [1].")
    judge = TableJudge({"observatory telescope has": 0.1})  # the judge reads the cited block alone
    text, d = _draft(llm, ClaimChecker(judge=judge))
    assert text == "Bread rises for twelve hours [2]."
    (verdict,) = d.draft.verdicts
    assert verdict.supported and verdict.cited == (2,) and verdict.reason.startswith("re-cited from [1] to [2]")
    assert len(judge.asked) == 2 and "Sourdough" in judge.asked[1] and "observatory" not in judge.asked[1]
    assert [s.blocks for s in d.draft.shown] == [(2,)]
    # without a judge the local signals decide the same way
    text, _ = _draft(ScriptedLLM("Bread rises for twelve hours [1]."), ClaimChecker())
    assert text == "Bread rises for twelve hours [2]."


def test_re_citing_needs_a_block_that_holds_the_sentence_and_a_judge_that_agrees() -> None:
    # the block holding its words does not support it either: still dropped, after one more question
    llm = ScriptedLLM("The observatory opened in 1998 [1]. Bread rises for twelve days [1].")
    judge = TableJudge({"twelve days": 0.1})
    text, d = _draft(llm, ClaimChecker(judge=judge))
    assert text == "The observatory opened in 1998 [1]."
    assert [v.supported for v in d.draft.verdicts] == [True, False] and "re-cited" not in d.draft.verdicts[1].reason
    # no other block holds the sentence's number and words: no second question is asked
    judge = TableJudge({"green": 0.1})
    text, d = _draft(ScriptedLLM("The moon is made of green cheese [2]."), ClaimChecker(judge=judge))
    assert text == "" and len(judge.asked) == 1


def test_a_re_cited_sentence_is_vetoed_only_by_a_clear_no_of_the_judge() -> None:
    """No bar of the judge separates right from wrong candidate blocks, so re-citation is decided by words: P 0.4
    for block [2] does not keep a sentence that cites [2] (min_entailment 0.5), but keeps one re-cited there from
    [1]; a clear no (P 0.2, under min_recited_entailment 0.35) does not; a checker configured with a higher bar
    refuses it."""
    def judged(p2: float) -> TableJudge:
        return TableJudge({"observatory telescope has": 0.1, "Sourdough bread rises": p2})

    text, _ = _draft(ScriptedLLM("Bread rises for twelve hours [2]."), ClaimChecker(judge=judged(0.4)))
    assert text == ""
    judge = judged(0.4)
    text, d = _draft(ScriptedLLM("Bread rises for twelve hours [1]."), ClaimChecker(judge=judge))
    assert text == "Bread rises for twelve hours [2]." and len(judge.asked) == 2 and "Sourdough" in judge.asked[1]
    judge = judged(0.2)
    text, d = _draft(ScriptedLLM("Bread rises for twelve hours [1]."), ClaimChecker(judge=judge))
    assert text == "" and len(judge.asked) == 2  # asked, and refused
    (verdict,) = d.draft.verdicts
    assert not verdict.supported and "re-cited" not in verdict.reason
    strict = ClaimChecker(judge=judged(0.55), min_recited_entailment=0.6)  # answer.min_recited_entailment
    text, _ = _draft(ScriptedLLM("Bread rises for twelve hours [1]."), strict)
    assert text == ""


def test_recite_picks_only_a_block_holding_every_term_and_more_of_the_words() -> None:
    blocks = blocks_from_texts(["The pump runs at 1450 rpm in normal operation.",
                                "The pump housing is cast iron.",
                                "In normal operation the pump runs quietly."])
    checker = ClaimChecker()
    v = checker.recite("How fast does the pump run?", "The pump runs at 1450 rpm.", (2,), blocks)
    assert v is not None and v.supported and v.cited == (1,)
    # block 3 holds more words than block 2 but not the number: never chosen
    assert checker.recite("How fast?", "The pump runs at 1450 rpm.", (1,), blocks) is None
    assert checker.recite("How fast?", "The pump runs at 9999 rpm.", (2,), blocks) is None
    assert checker.recite("How fast?", "The pump runs at 1450 rpm.", (), blocks) is None  # nothing cited: nothing to repair


def test_recite_needs_most_of_the_words_and_may_tie_only_with_a_block_lacking_a_name_or_number() -> None:
    question = "When did Kestrel Labs release the tide gauge?"
    sentence = "Kestrel Labs released the tide gauge in 2011."  # 6 content words; the question gives the names
    # cited [1] holds 2 of them, [2] holds 3 (50 %) and the year: more, but under min_recited_words 0.6
    blocks = blocks_from_texts(["Kestrel Labs builds instruments.", "Kestrel Labs, 2011."])
    assert ClaimChecker().recite(question, sentence, (1,), blocks) is None
    v = ClaimChecker(min_recited_words=0.5).recite(question, sentence, (1,), blocks)
    assert v is not None and v.supported and v.cited == (2,)
    # cited [1] holds 4 of the 6 words but not the year; [2] holds 4 and the year: as many words are enough
    blocks = blocks_from_texts(["Kestrel Labs makes the tide gauge.", "Kestrel Labs released it in 2011."])
    v = ClaimChecker().recite(question, sentence, (1,), blocks)
    assert v is not None and v.supported and v.cited == (2,)
    # the reverse: the cited block holds the year, so a candidate with as many words is no better
    assert ClaimChecker().recite(question, sentence, (2,), blocks) is None


def test_a_sentence_restating_its_question_is_re_cited_only_on_a_clear_yes_of_the_judge() -> None:
    """The question's words count as every block's when the sentence's own words qualify no block; then only a
    judge's P >= min_restated_entailment (0.6) re-cites it, and never without a judge."""
    question = "Which two networks compete in a generative adversarial network?"
    sentence = "The two networks that compete in a generative adversarial network are the generator and critic."
    blocks = blocks_from_texts(["Two networks compete in a generative adversarial network.",
                                "The generator and the critic are trained in turn."])
    # its own words: [2] holds 3 of 8 (under min_recited_words 0.6), [1] 7; with the question's: 8 and 7 of 8. The
    # miscitation signal counts them the same way ([1] holding 7 against 3 would otherwise veto [2])
    assert ClaimChecker().recite(question, sentence, (1,), blocks) is None  # no judge: no restated re-citation

    def judged(p: float) -> ClaimChecker:
        return ClaimChecker(judge=TableJudge({"Two networks compete": 0.1, "critic are trained": p}))

    v = judged(0.7).recite(question, sentence, (1,), blocks)
    assert v is not None and v.supported and v.cited == (2,) and v.reason.startswith("re-cited from [1] to [2]")
    assert judged(0.5).recite(question, sentence, (1,), blocks) is None  # a first-rule candidate would pass at 0.5
    assert judged(0.5).with_settings(min_restated_entailment=0.45).recite(question, sentence, (1,), blocks) is not None


def test_the_lead_must_give_what_the_question_asks_for_and_a_later_sentence_may_lead() -> None:
    """A true sentence next to the question is not shown as its answer (rag.verify.asked); the next one that
    gives a number leads, and what streams is still the final text."""
    question = "How large is the telescope mirror?"
    blocks = blocks_from_texts(PASSAGES)
    llm = ScriptedLLM("The observatory has a telescope [1]. Its mirror is 40 centimetres [1].", interruptible=True)
    drafter = Drafter(llm, build_prompt(question, blocks), blocks, question, ClaimChecker(judge=TableJudge({}, llm)),
                      verify=True)
    text = "".join(drafter)
    assert text == "Its mirror is 40 centimetres [1]." == cite.render(drafter.draft.shown)
    first, second = drafter.draft.verdicts
    assert not first.supported and first.reason.startswith("not an answer to the question: ")
    assert second.supported
    # without verification the model's text is shown as written
    llm = ScriptedLLM("The observatory has a telescope [1]. Its mirror is 40 centimetres [1].")
    plain = Drafter(llm, build_prompt(question, blocks), blocks, question, None, verify=False)
    assert "".join(plain) == "The observatory has a telescope [1]. Its mirror is 40 centimetres [1]."


def test_an_answer_that_never_gives_what_is_asked_is_refused_with_that_reason() -> None:
    llm = ScriptedLLM("The observatory opened to visitors [1].", interruptible=True)
    checker = ClaimChecker(judge=TableJudge({}, llm))
    answerer = Answerer(OneHitRetriever(0.6), llm, AnswerConfig(), checker)  # type: ignore[arg-type]
    *deltas, final = list(answerer.stream("How many visitors did the observatory have in 1998?"))
    assert isinstance(final, Answer) and final.refused
    assert final.refusal_reason == "no sentence of the answer gives what the question asks for"
    assert "".join(deltas) == final.text == REFUSAL  # type: ignore[arg-type]


def test_a_sentence_about_the_documents_or_the_answer_itself_is_never_shown() -> None:
    """r-data-manual-dev-041's answer ended "The document number for this answer is [3]." and the judge passed it
    (P 0.61): it says nothing a document could state. A yes or no is an answer, and stays."""
    llm = ScriptedLLM("The observatory opened in 1998 [1]. The document number for this answer is [1].")
    text, d = _draft(llm, ClaimChecker(judge=TableJudge({})))
    assert text == "The observatory opened in 1998 [1]."
    assert [v.supported for v in d.draft.verdicts] == [True, False]
    assert "not of what they say" in d.draft.verdicts[1].reason
    llm = ScriptedLLM("The answer is yes [1].")
    assert _draft(llm, ClaimChecker(judge=TableJudge({})))[0] == "The answer is yes [1]."
    # unchecked (--no-verify): the model's sentences as written
    llm = ScriptedLLM("The observatory opened in 1998 [1]. The document number for this answer is [1].")
    assert _draft(llm, None)[0] == "The observatory opened in 1998 [1]. The document number for this answer is [1]."


class TwoDraftLLM(ScriptedLLM):
    """A unit seam: one answer to the question, another to the request for a quoted sentence."""

    def __init__(self, answer: str, quote: str) -> None:
        super().__init__(answer, interruptible=True)
        self.first = answer
        self.quote = quote
        self.prompts: list[str] = []

    def stream(self, prompt: Prompt, prefix: str = "") -> Iterator[str | Usage]:
        self.prompts.append(prompt.messages[-1].content)
        quoting = "Copy, word for word" in prompt.messages[-1].content
        self.answer = self.quote if quoting else self.first
        return super().stream(prompt, prefix)


def _two_drafts(first: str, quote: str, judge_table: dict[str, float], **config: object) -> tuple[list[str], Answer,
                                                                                                 TwoDraftLLM]:
    llm = TwoDraftLLM(first, quote)
    checker = ClaimChecker(judge=TableJudge(judge_table, llm))
    answerer = Answerer(OneHitRetriever(0.6), llm, AnswerConfig(**config), checker)  # type: ignore[arg-type]
    *deltas, final = list(answerer.stream("When did the observatory open?"))
    assert isinstance(final, Answer) and "".join(deltas) == final.text  # type: ignore[arg-type]
    return deltas, final, llm  # type: ignore[return-value]


QUOTE = "The observatory telescope has a 40 centimetre mirror and opened in 1998 [1]."


def test_a_second_draft_quotes_the_documents_when_no_sentence_of_the_first_passes() -> None:
    deltas, final, llm = _two_drafts("It opened in 2004 [1].", QUOTE, {"2004": 0.1}, second_draft=True)
    assert not final.refused and final.text == QUOTE and "".join(deltas) == QUOTE
    assert len(llm.prompts) == 2 and "Copy, word for word" in llm.prompts[1]
    assert "Question: When did the observatory open?" in llm.prompts[1]
    assert PASSAGES[0] in llm.prompts[1]  # the same documents, so a local model reads only the new instruction
    first, second = final.verdicts
    assert not first.supported and not first.reason.startswith("second draft")
    assert second.supported and second.reason == "second draft"
    assert final.timings["second_draft"] > 0 and final.timings["first_token"] > 0
    assert [c.block for c in final.citations] == [1]


def test_no_second_draft_when_off_declined_or_unlikely_answerable() -> None:
    # off (the default): the first draft's refusal stands
    _, final, llm = _two_drafts("It opened in 2004 [1].", QUOTE, {"2004": 0.1})
    assert final.refused and len(llm.prompts) == 1
    # the model declined the question: no second try
    _, final, llm = _two_drafts(REFUSAL, QUOTE, {}, second_draft=True)
    assert final.refused and len(llm.prompts) == 1 and "model found no answer" in final.refusal_reason
    # P(answerable) 0.45 passes the gate (0.37) but not the second draft's bar (0.5)
    _, final, llm = _two_drafts("It opened in 2004 [1].", QUOTE, {"2004": 0.1, "states the specific answer": 0.45},
                                second_draft=True)
    assert final.refused and len(llm.prompts) == 1
    _, final, llm = _two_drafts("It opened in 2004 [1].", QUOTE, {"2004": 0.1, "states the specific answer": 0.45},
                                second_draft=True, min_second_draft_answerability=0.4)
    assert not final.refused and len(llm.prompts) == 2


def test_a_second_draft_is_checked_like_the_first() -> None:
    # an unsupported quote is dropped too, and the answer is refused with both drafts' verdicts
    deltas, final, llm = _two_drafts("It opened in 2004 [1].", "It opened in 2005 [1].", {"200": 0.1},
                                     second_draft=True)
    assert final.refused and deltas == [REFUSAL] and len(llm.prompts) == 2
    assert [v.supported for v in final.verdicts] == [False, False]
    assert final.verdicts[1].reason.startswith("second draft: ") and "no sentence" in final.refusal_reason
    # the second draft declines: the model found no answer
    _, final, _ = _two_drafts("It opened in 2004 [1].", REFUSAL, {"2004": 0.1}, second_draft=True)
    assert final.refused and "model found no answer" in final.refusal_reason

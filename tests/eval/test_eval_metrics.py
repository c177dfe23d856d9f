"""Each metric on small cases computed by hand, and each leniency of the old metrics, fixed."""

from __future__ import annotations

import math

import pytest
from eval_fixtures import make_question, make_result, verdict

from eval.metrics import aggregate, retrieval_scope
from eval.questions import Source
from eval.results import Retrieved
from eval.scores import (
    faithfulness,
    first_relevant_rank,
    hit_at,
    keywords_present,
    matches,
    mrr_at,
    ndcg_at,
    question_scores,
    relevance,
    token_f1,
)

REFS = (Source("a.pdf", 3), Source("b.html"))
BOTH = ("a.txt", "z.txt")  # an index of two files: retrieval metrics apply


def hits(*places: tuple[str, int | None]) -> list[Retrieved]:
    return [Retrieved(i, s, p, f"c{i}", 1.0) for i, (s, p) in enumerate(places, start=1)]


RANKED = hits(("c.html", None), ("a.pdf", 2), ("b.html", None), ("a.pdf", 3), ("b.html", None))


def test_relevance_needs_same_source_and_pdf_page() -> None:
    assert relevance(RANKED, REFS) == [False, False, True, True, True]
    assert matches("lecture/docs/a.pdf", 3, REFS[0])  # an index built from a parent folder
    assert not matches("xa.pdf", 3, REFS[0])
    assert not matches("a.pdf", None, REFS[0])
    assert matches("b.html", 7, REFS[1])  # no page in the reference: any page


def test_hit_mrr_ndcg_by_hand() -> None:
    rel = relevance(RANKED, REFS)
    assert [hit_at(rel, k) for k in (1, 2, 3, 5)] == [0.0, 0.0, 1.0, 1.0]
    assert first_relevant_rank(rel) == 3
    assert mrr_at(rel, 10) == pytest.approx(1 / 3)
    assert mrr_at(rel, 2) == 0.0
    dcg = 1 / math.log2(4) + 1 / math.log2(5)  # ranks 3 (b.html) and 4 (a.pdf p.3); rank 5 repeats b.html
    idcg = 1 + 1 / math.log2(3)
    assert ndcg_at(RANKED, REFS, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at(RANKED, REFS, 3) == pytest.approx((1 / math.log2(4)) / idcg)
    assert ndcg_at(hits(("a.pdf", 3), ("b.html", 1)), REFS) == pytest.approx(1.0)
    assert ndcg_at(RANKED, ()) == 0.0


def test_keywords_are_case_and_space_insensitive() -> None:
    assert keywords_present("The limit is 1,000,000,000  Bytes.", ["1,000,000,000 bytes"])
    assert keywords_present("Uses CLIP and a VAE", ["clip", "vae"])
    assert not keywords_present("Uses CLIP", ["clip", "vae"])


def test_keywords_match_whole_words_only() -> None:
    """Old behaviour: substring matching ("0.7" inside "10.7", "NA" inside "names", "1" inside "[1]")."""
    assert not keywords_present("The ratio is 10.7 here.", ["0.7"])
    assert keywords_present("The ratio is 0.7.", ["0.7"])
    assert not keywords_present("Column names are kept.", ["NA"])
    assert keywords_present("Missing values are NA in R.", ["NA"])
    assert not keywords_present("It is stated in the passage [1].", ["1"])  # a marker is not part of the answer
    assert not keywords_present("Use -DSQLITE_ENABLE_ICU", ["SQLITE_ENABLE_ICU"])
    assert keywords_present("Etna is 3,357 metres high [1].", ["3,357"])


def test_an_empty_keyword_list_is_never_correct() -> None:
    """Old behaviour: keywords_present(answer, []) was True, so such a question was always "correct"."""
    with pytest.raises(ValueError, match="at least one"):
        keywords_present("anything", [])


def test_token_f1_by_hand() -> None:
    # prediction tokens: cat, sat (article and marker removed); reference: cat, sat, down
    assert token_f1("The cat sat [1].", "a cat sat down") == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))
    assert token_f1("x", "y") == 0.0
    assert token_f1("Same words.", "same, words") == 1.0
    assert token_f1("", "") == 1.0


def test_faithfulness_share_of_supported_claims() -> None:
    assert faithfulness([verdict(True), verdict(False), verdict(True)]) == pytest.approx(2 / 3)
    assert faithfulness([]) is None


def test_errored_questions_count_against_every_rate() -> None:
    """Old behaviour: errored questions were dropped from every rate (this set scored 1.0 / 0.0 / 0.0)."""
    ok = make_result(make_question("ok"), verdicts=(verdict(True),))
    err = make_result(make_question("err"), retrieved=(), error="LLMError: down")
    una_err = make_result(make_question("u", answerable=False), retrieved=(), error="LLMError: down")
    m = aggregate([ok, err, una_err], indexed_sources=BOTH)
    assert m.counts.errors == 2 and m.counts.questions == 3
    assert m.answer.keyword_accuracy == 0.5 and m.answer.token_f1 == pytest.approx(0.5)
    assert m.retrieval.hit_at_1 == 0.5  # retrieval failed too: a miss
    assert m.hallucination.rate == pytest.approx(2 / 3) and m.hallucination.errors == 2
    assert m.refusal.false_refusal_rate == 0.5
    assert m.refusal.unanswerable_refusal_rate == 0.0
    assert m.hallucination.unanswerable_answered_rate == 1.0
    s = question_scores(err)
    assert s.error and s.hallucinated and s.keywords_ok is False and s.token_f1 == 0.0


def test_errored_question_keeps_its_retrieval() -> None:
    err = make_result(make_question("err"), error="LLMError: down")  # retrieval worked (a.txt first)
    m = aggregate([err], indexed_sources=BOTH)
    assert m.retrieval.hit_at_1 == 1.0 and m.answer.keyword_accuracy == 0.0


def test_an_answer_without_checked_claims_is_not_faithful() -> None:
    """Old behaviour: an answer with no verdicts was never hallucinated."""
    unchecked = make_result(make_question("a"))
    s = question_scores(unchecked)
    assert s.faithfulness is None and s.unchecked and s.hallucinated
    m = aggregate([unchecked, make_result(make_question("b"), verdicts=(verdict(True),))], indexed_sources=BOTH)
    assert m.counts.unchecked_answers == m.hallucination.unchecked_answers == 1
    assert m.answer.faithfulness == 1.0  # over checked answers only
    assert m.hallucination.rate == 0.5


def test_single_file_corpus_retrieval_is_not_applicable() -> None:
    """Old behaviour: hit@1 = 1.0 whatever the ranking when every question cites the only indexed file."""
    results = [make_result(make_question("a")), make_result(make_question("b"))]
    m = aggregate(results, indexed_sources=("lecture/docs/a.txt",))
    assert not m.retrieval.applicable and m.retrieval.hit_at_1 is None and m.retrieval.mrr_at_10 is None
    assert "cover all 1 indexed file(s)" in m.retrieval.reason
    assert m.retrieval.to_dict()["applicable"] is False
    assert aggregate(results).retrieval.applicable is False  # indexed files unknown: judged from the hits
    assert aggregate(results, indexed_sources=BOTH).retrieval.hit_at_1 == 1.0
    pdf = make_question("p", sources=(Source("a.pdf", 3),))
    assert retrieval_scope([pdf], ("a.pdf",)) == ""  # pages make the ranking matter
    assert retrieval_scope([make_question("u", answerable=False)], BOTH) == "no answerable questions"


def test_aggregate_by_hand() -> None:
    a = make_result(make_question("a"), verdicts=(verdict(True),))  # correct, faithful
    b = make_result(make_question("b", keywords=("2015",)), verdicts=(verdict(True), verdict(False)),
                    retrieved=(("z.txt", None), ("a.txt", None)))  # wrong keyword, one unsupported claim
    c = make_result(make_question("c"), refused=True, retrieved=(("z.txt", None),))  # false refusal
    d = make_result(make_question("d", answerable=False), verdicts=(verdict(True),))  # answered unanswerable
    e = make_result(make_question("e", answerable=False), refused=True)  # correct refusal
    f = make_result(make_question("f"), retrieved=(), error="LLMError: down")  # counts against every rate
    g = make_result(make_question("g"))  # correct but unchecked
    m = aggregate([a, b, c, d, e, f, g], indexed_sources=BOTH)
    assert m.counts.to_dict() == {"questions": 7, "answerable": 5, "unanswerable": 2, "answered": 4, "refused": 2,
                                  "errors": 1, "claims": 4, "unchecked_answers": 1, "check_errors": 0}
    assert m.retrieval.hit_at_1 == pytest.approx(2 / 5) and m.retrieval.hit_at_5 == pytest.approx(3 / 5)
    assert m.retrieval.mrr_at_10 == pytest.approx((1 + 0.5 + 0 + 0 + 1) / 5)
    assert m.answer.keyword_accuracy == pytest.approx(2 / 5)
    assert m.answer.faithfulness == pytest.approx((1 + 0.5 + 1) / 3)
    # answers: a, b, d, g and the errored f; hallucinated: b (unsupported), d (unanswerable), g (unchecked), f
    assert m.hallucination.rate == pytest.approx(4 / 5)
    assert m.hallucination.unsupported_answer_rate == pytest.approx(3 / 4)
    assert m.hallucination.unanswerable_answered_rate == pytest.approx(1 / 2)
    assert (m.refusal.unanswerable_refusal_rate, m.refusal.false_refusal_rate) == (0.5, pytest.approx(2 / 5))
    assert [question_scores(r).hallucinated for r in (a, b, c, d, e, f, g)] == [False, True, False, True, False,
                                                                               True, True]
    assert m.by_type["numeric"].n == 5 and m.by_type["numeric"].refusal_rate == pytest.approx(1 / 5)
    assert m.by_type["unanswerable"].keyword_accuracy is None


def test_empty_sets_give_none_not_zero_division() -> None:
    m = aggregate([make_result(make_question("u", answerable=False), refused=True)])
    assert m.retrieval.hit_at_1 is None and m.answer.token_f1 is None
    assert m.hallucination.rate is None and m.refusal.false_refusal_rate is None
    assert m.refusal.unanswerable_refusal_rate == 1.0

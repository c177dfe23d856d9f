"""Each metric on small cases computed by hand."""

from __future__ import annotations

import math

import pytest
from eval_fixtures import make_question, make_result, verdict

from eval.metrics import (
    aggregate,
    by_type,
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
from eval.questions import Source
from eval.results import Retrieved

REFS = (Source("a.pdf", 3), Source("b.html"))


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
    # Gains at ranks 3 (b.html) and 4 (a.pdf p.3); rank 5 repeats b.html and earns nothing.
    dcg = 1 / math.log2(4) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3)
    assert ndcg_at(RANKED, REFS, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at(RANKED, REFS, 3) == pytest.approx((1 / math.log2(4)) / idcg)
    assert ndcg_at(hits(("a.pdf", 3), ("b.html", 1)), REFS) == pytest.approx(1.0)
    assert ndcg_at(RANKED, ()) == 0.0


def test_keywords_are_case_and_space_insensitive() -> None:
    assert keywords_present("The limit is 1,000,000,000  Bytes.", ["1,000,000,000 bytes"])
    assert keywords_present("Uses CLIP and a VAE", ["clip", "vae"])
    assert not keywords_present("Uses CLIP", ["clip", "vae"])
    assert keywords_present("anything", [])


def test_token_f1_by_hand() -> None:
    # prediction tokens: cat, sat (article and marker removed); reference: cat, sat, down
    assert token_f1("The cat sat [1].", "a cat sat down") == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))
    assert token_f1("x", "y") == 0.0
    assert token_f1("Same words.", "same, words") == 1.0
    assert token_f1("", "") == 1.0


def test_faithfulness_share_of_supported_claims() -> None:
    assert faithfulness([verdict(True), verdict(False), verdict(True)]) == pytest.approx(2 / 3)
    assert faithfulness([]) is None


def test_aggregate_by_hand() -> None:
    a = make_result(make_question("a"), verdicts=(verdict(True),))  # correct, faithful
    b = make_result(make_question("b", keywords=("2015",)), verdicts=(verdict(True), verdict(False)),
                    retrieved=(("z.txt", None), ("a.txt", None)))  # wrong keyword, one unsupported claim
    c = make_result(make_question("c"), refused=True, retrieved=(("z.txt", None),))  # false refusal
    d = make_result(make_question("d", answerable=False), verdicts=(verdict(True),))  # answered unanswerable
    e = make_result(make_question("e", answerable=False), refused=True)  # correct refusal
    f = make_result(make_question("f"), error="LLMError: down")  # left out
    m = aggregate([a, b, c, d, e, f])
    assert m["n"] == 6
    assert m["counts"] == {"questions": 6, "answerable": 3, "unanswerable": 2, "answered": 3, "refused": 2,
                           "errors": 1, "claims": 4}
    assert m["retrieval"]["hit@1"] == pytest.approx(1 / 3)
    assert m["retrieval"]["hit@5"] == pytest.approx(2 / 3)
    assert m["retrieval"]["mrr@10"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["answer"]["keyword_accuracy"] == pytest.approx(1 / 3)
    assert m["faithfulness"] == pytest.approx((1 + 0.5 + 1) / 3)
    # answers given: a, b, d; hallucinated: b (unsupported claim) and d (unanswerable answered)
    assert m["hallucination_rate"] == pytest.approx(2 / 3)
    assert m["hallucination"]["unsupported_answer_rate"] == pytest.approx(1 / 2)
    assert m["hallucination"]["unanswerable_answered_rate"] == pytest.approx(1 / 2)
    assert m["refusal"] == {"unanswerable_refusal_rate": 0.5, "false_refusal_rate": pytest.approx(1 / 3)}
    assert question_scores(b)["hallucinated"] and question_scores(d)["hallucinated"]
    assert not question_scores(a)["hallucinated"] and not question_scores(e)["hallucinated"]
    assert question_scores(f) == {"error": True}
    types = by_type([a, b, c, d, e, f])
    assert types["numeric"]["n"] == 3 and types["numeric"]["refusal_rate"] == pytest.approx(1 / 3)
    assert types["unanswerable"]["keyword_accuracy"] is None


def test_empty_sets_give_none_not_zero_division() -> None:
    m = aggregate([make_result(make_question("u", answerable=False), refused=True)])
    assert m["retrieval"]["hit@1"] is None and m["answer"]["token_f1"] is None
    assert m["hallucination_rate"] is None and m["refusal"]["false_refusal_rate"] is None
    assert m["refusal"]["unanswerable_refusal_rate"] == 1.0

"""The labelled detector set: mutations, determinism, scoring, tuning."""

from __future__ import annotations

import random

import pytest

from eval.detector import (
    Item,
    build_items,
    evaluate,
    extract_answer,
    flip_negation,
    score,
    swap_antonym,
    swap_entity,
    swap_number,
    tune,
)
from eval.questions import Question, Source
from rag.verify import ClaimChecker

CONTEXTS = {
    "q1": "Mount Etna is the most active volcano in Europe. Etna is about 3,357 metres high. It is in Sicily.",
    "q2": "The Danube flows through ten countries. It is 2,850 kilometres long and ends in the Black Sea.",
    "q3": "SQLite keeps the largest ROWID in the table sqlite_sequence. The page size is 4096 bytes by default.",
}
QUESTIONS = [
    Question("q1", "How high is Etna?", "Etna is about 3,357 metres high.", ("3,357",), (Source("v.txt"),), True,
             "numeric"),
    Question("q2", "How long is the Danube?", "The Danube is 2,850 kilometres long.", ("2,850",),
             (Source("r.txt"),), True, "numeric"),
    Question("q3", "Where is the largest ROWID kept?", "It is kept in the sqlite_sequence table.",
             ("sqlite_sequence",), (Source("s.txt"),), True, "factoid"),
]


def test_mutations() -> None:
    rng = random.Random(0)
    swapped = swap_number("Etna is about 3,357 metres high.", CONTEXTS["q1"], rng)
    assert swapped and swapped != "Etna is about 3,357 metres high." and "," in swapped
    assert swap_number("No digits here.", "", rng) is None
    assert swap_number("Founded in 2014.", "in 2014", random.Random(1)) in {
        f"Founded in {y}." for y in (2012, 2013, 2015, 2017)}
    assert flip_negation("The table is created automatically.", rng) == "The table is not created automatically."
    assert flip_negation("It cannot be raised.", rng) == "It can be raised."
    assert flip_negation("It doesn't work.", rng) == "It does work."
    assert swap_antonym("Run it before the commit.", rng) == "Run it after the commit."
    out = swap_entity("The value is kept in sqlite_sequence.", CONTEXTS["q3"], ["sqlite_master", "Danube"], rng)
    assert out == "The value is kept in sqlite_master."
    assert extract_answer(CONTEXTS["q1"], ["3,357"]) == "Etna is about 3,357 metres high."


def test_build_items_is_deterministic_and_labelled() -> None:
    items = build_items(QUESTIONS, CONTEXTS, seed=0)
    assert items == build_items(QUESTIONS, CONTEXTS, seed=0)
    kinds = {i.kind for i in items}
    assert {"extract", "reference", "number", "negation", "other-doc"} <= kinds
    for it in items:
        assert it.faithful == (it.kind in ("extract", "reference"))
        assert it.context == CONTEXTS[it.question_id]
    assert len({i.id for i in items}) == len(items)


def test_score_by_hand() -> None:
    items = [Item(str(i), "q", "?", "c", "a", faithful, kind) for i, (faithful, kind) in
             enumerate([(True, "extract"), (True, "reference"), (False, "number"), (False, "entity")])]
    s = score(items, [False, True, True, False])  # tp=1 (number) fp=1 (reference) fn=1 (entity) tn=1
    assert (s.tp, s.fp, s.fn, s.tn) == (1, 1, 1, 1)
    assert s.precision == s.recall == s.f1 == 0.5
    assert s.by_kind["reference"] == {"n": 1, "flagged_rate": 1.0}


def test_local_checker_separates_the_tiny_set() -> None:
    items = build_items(QUESTIONS, CONTEXTS, seed=0)
    result, flagged = evaluate(ClaimChecker(), items)  # no embedder: lexical similarity
    assert result.n == len(items) == len(flagged)
    assert result.recall >= 0.8 and result.precision >= 0.8
    params, tuned = tune(ClaimChecker(), items)
    assert tuned.f1 >= result.f1 - 1e-9
    assert set(params) == {"min_similarity", "min_lexical", "negation_min_similarity", "check_terms"}


@pytest.mark.slow
def test_detector_on_a_real_index(tiny_index, embedder) -> None:
    from eval_fixtures import question_lines

    import rag
    from eval.detector import passages
    from eval.questions import parse_question

    qs = [parse_question(d, f"line {i}") for i, d in enumerate(question_lines(7))]
    with rag.open(tiny_index, embedder=embedder) as pipeline:
        ctx = passages(pipeline, qs)
    assert set(ctx) == {q.id for q in qs if q.answerable}
    items = build_items(qs, ctx)
    result, _ = evaluate(ClaimChecker(embedder=embedder), items)
    assert result.f1 >= 0.8

"""Typed records round-trip through JSON: results, per-question scores, metrics, comparisons, detection."""

from __future__ import annotations

import json
from dataclasses import replace

from eval_fixtures import make_question, make_result, verdict

from eval.compare import Comparison, MetricDelta, QuestionChange
from eval.detector import Score
from eval.metrics import Metrics
from eval.questions import Question, Source
from eval.results import EvalResult
from eval.runner import RunSettings, result_line, summarize
from eval.scores import QuestionScores, question_scores


def roundtrip(d: dict) -> dict:
    return json.loads(json.dumps(d))


def test_eval_result_and_scores_round_trip() -> None:
    q = Question("x", "Q?", "A.", ("2014",), (Source("a.pdf", 2),), True, "free form", {"evidence": ["p. 2"]})
    r = replace(make_result(q, verdicts=(verdict(True), verdict(False))), answerability=0.42,
                answerability_source="answerability", check_error="", draft_verdicts=(verdict(False),))
    line = roundtrip(result_line(r))
    assert EvalResult.from_dict(line) == r
    assert line["draft_verdicts"][0]["supported"] is False  # what the answer path dropped is kept for analysts
    assert line["extra"] == {"evidence": ["p. 2"]} and line["type"] == "free form"
    s = question_scores(r)
    assert QuestionScores.from_dict(line["scores"]) == s
    assert s.unsupported_claims == 1 and s.claims == 2 and s.hallucinated


def test_metrics_round_trip_with_every_section() -> None:
    results = [make_result(make_question("a"), verdicts=(verdict(True),)),
               make_result(make_question("b"), error="LLMError: down"),
               replace(make_result(make_question("c", answerable=False), refused=True), answerability=0.1,
                       answerability_source="best_dense")]
    settings = RunSettings(questions="q.jsonl", questions_sha256="0" * 64, index="/i", llm="x", model="m",
                           settings={"answer": {"min_dense_score": 0.15}}, indexed_sources=("a.txt", "b.txt"))
    synthetic = Score(0.5, 1.0, 0.666667, 4, 1, 1, 0, 2, {"extract": {"n": 1, "flagged_rate": 0.0}})
    m = summarize(results, settings, {"answer_s": 2.0}, synthetic_detector=synthetic,
                  ragas={"questions": 1, "faithfulness": 0.5})
    d = roundtrip(m.to_dict())
    assert d["synthetic_detector"]["set"] == "synthetic" and "checker's own rules" in d["synthetic_detector"]["note"]
    assert Metrics.from_dict(d) == m
    assert RunSettings.from_dict(roundtrip(settings.to_dict())) == settings


def test_comparison_round_trips() -> None:
    c = Comparison("a", "b", {"answer.token_f1": MetricDelta(0.5, 0.75), "x": MetricDelta(None, 1.0)},
                   (QuestionChange("q1", "Q?", {"answered": (False, True)}, "", "A [1]."),), ("only-a",), ())
    d = roundtrip(c.to_dict())
    assert d["metrics"]["answer.token_f1"] == {"a": 0.5, "b": 0.75, "delta": 0.25}
    assert d["metrics"]["x"]["delta"] is None
    assert Comparison.from_dict(d) == c


def test_timing_summary_reports_the_median_time_to_the_first_shown_sentence() -> None:
    from eval.metrics import timing_summary

    q = make_question("x")
    shown = [replace(make_result(q), timings={"total": t, "first_token": f}) for t, f in ((10.0, 4.0), (20.0, 6.0),
                                                                                           (30.0, 9.0))]
    refusal = replace(make_result(q, refused=True), timings={"total": 2.0})  # shows no sentence: no first text
    failed = replace(make_result(q, error="boom"), timings={"total": 99.0, "first_token": 1.0})
    t = timing_summary([*shown, refusal, failed])
    assert t["first_text_p50_s"] == 6.0 and t["answer_p50_s"] == 15.0
    assert timing_summary([refusal])["first_text_p50_s"] is None

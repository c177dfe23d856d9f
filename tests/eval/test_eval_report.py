"""Report files: metrics.json's documented shape, report.md content, a self-contained report.html."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

from eval_fixtures import make_question, make_result, verdict

from eval.metrics import Metrics
from eval.report import curve_rows, render_html, write_reports
from eval.runner import RunSettings, summarize

KEYS = {"schema_version", "counts", "retrieval", "answer", "hallucination", "refusal", "by_type", "config", "timings"}
SETTINGS = RunSettings(questions="q.jsonl", questions_sha256="0" * 64, index="/idx", llm="extractive",
                       model="extractive", settings={"answer": {"min_dense_score": 0.3}}, indexed_documents=2,
                       indexed_sources=("a.txt", "z.txt"))


def results():
    return [
        replace(make_result(make_question("a"), verdicts=(verdict(True),)), answerability=0.8,
                answerability_source="best_dense"),
        replace(make_result(make_question("b", qtype="factoid"), answer="<script>alert(1)</script> Visit "
                            "https://x.example", verdicts=(verdict(False, "GANs appeared in 2015."),)),
                answerability=0.5, answerability_source="best_dense"),
        replace(make_result(make_question("c", answerable=False), refused=True), answerability=0.2,
                answerability_source="best_dense"),
    ]


def metrics(**sections) -> Metrics:
    return summarize(results(), SETTINGS, {"answer_s": 1.0}, **sections)


def test_metrics_json_has_the_documented_shape(tmp_path: Path) -> None:
    ragas = {"questions": 1, "faithfulness": None, "scored": {"faithfulness": 0}, "nan": {"faithfulness": 1}}
    paths = write_reports(tmp_path, metrics(ragas=ragas), results())
    data = json.loads(paths["metrics"].read_text())
    assert set(data) == KEYS | {"ragas"} and data["schema_version"] == 2
    assert set(data["retrieval"]) == {"applicable", "reason", "questions", "hit@1", "hit@5", "hit@10", "mrr@10",
                                      "ndcg@10"}
    assert set(data["answer"]) == {"keyword_accuracy", "token_f1", "faithfulness"}
    assert set(data["hallucination"]) == {"rate", "unsupported_answer_rate", "unanswerable_answered_rate", "answers",
                                          "hallucinated_answers", "unchecked_answers", "errors"}
    assert set(data["refusal"]) == {"unanswerable_refusal_rate", "false_refusal_rate", "curve"}
    curve = data["refusal"]["curve"]
    assert curve["score"] == "best_dense" and curve["configured"] == {"threshold": 0.3, "unanswerable_refused": 1.0,
                                                                      "answerable_refused": 0.0}
    assert [p["threshold"] for p in curve["points"]][:3] == [0.2, 0.5, 0.8]
    assert data["config"]["llm"] == "extractive" and "answer_mean_s" in data["timings"]
    assert set(metrics().to_dict()) == KEYS  # detectors and ragas only when measured
    assert Metrics.from_dict(data) == metrics(ragas=ragas)


def test_markdown_lists_metrics_types_curve_and_failed_claims(tmp_path: Path) -> None:
    md = write_reports(tmp_path, metrics(), results())["markdown"].read_text()
    assert "| hallucination rate | 0.500 |" in md
    assert "| factoid | 1 | 0 |" in md
    assert "unsupported: GANs appeared in 2015." in md
    assert "## Refusal trade-off (best_dense; refuse when score < threshold)" in md
    assert "| **0.3 (configured)** | 1.000 | 0.000 |" in md


def test_single_file_retrieval_is_reported_not_applicable(tmp_path: Path) -> None:
    one = replace(SETTINGS, indexed_documents=1, indexed_sources=("a.txt",))
    m = summarize(results(), one, {})
    md = write_reports(tmp_path, m, results())["markdown"].read_text()
    assert "| retrieval | not applicable: every answerable question's reference sources cover all 1" in md
    assert "retrieval hit@1" not in md


def test_curve_rows_are_thinned_and_keep_the_configured_point() -> None:
    from eval.curve import refusal_curve

    curve = refusal_curve([(i / 100, i % 3 == 0) for i in range(100)], configured=0.505, score="answerability")
    rows = curve_rows(curve, limit=10)
    assert len(rows) == 11 and sum("configured" in r[0] for r in rows) == 1
    assert [float(r[0].strip("*").split()[0]) for r in rows] == sorted(float(r[0].strip("*").split()[0]) for r in rows)


def test_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    html = write_reports(tmp_path, metrics(), results())["html"].read_text()
    assert html.count("<svg") == 4  # score distributions, metric by type, rank histogram, refusal curve
    assert "configured 0.3" in html
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, flags=re.IGNORECASE)
    assert not re.search(r"<(?:script|link|img|iframe)\b", html, flags=re.IGNORECASE)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "GANs appeared in 2015." in html and "b" in html


def test_html_renders_with_no_results() -> None:
    assert "<svg" in render_html(summarize([], SETTINGS, {}), [])

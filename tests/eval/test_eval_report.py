"""Report files: metrics.json keys, report.md content, a self-contained report.html."""

from __future__ import annotations

import json
import re
from pathlib import Path

from eval_fixtures import make_question, make_result, verdict

from eval.report import render_html, write_reports
from eval.runner import RunSettings, summarize

KEYS = {"n", "retrieval", "answer", "faithfulness", "hallucination_rate", "hallucination", "refusal", "counts",
        "config", "timings"}


def results():
    return [
        make_result(make_question("a"), verdicts=(verdict(True),)),
        make_result(make_question("b", qtype="factoid"), answer="<script>alert(1)</script> Visit https://x.example",
                    verdicts=(verdict(False, "GANs appeared in 2015."),)),
        make_result(make_question("c", answerable=False), refused=True),
    ]


def metrics(extra=None):
    settings = RunSettings(questions="q.jsonl", questions_sha256="0" * 64, index="/idx", llm="extractive",
                           model="extractive")
    return summarize(results(), settings, {"answer_s": 1.0}, extra)


def test_metrics_json_has_the_documented_keys(tmp_path: Path) -> None:
    extra = {"detector": {"precision": 1.0, "recall": 0.5, "f1": 0.6667},
             "ragas": {"questions": 1, "faithfulness": None, "scored": {"faithfulness": 0}, "nan": {"faithfulness": 1}}}
    paths = write_reports(tmp_path, metrics(extra), results())
    data = json.loads(paths["metrics"].read_text())
    assert set(data) == KEYS | {"detector", "ragas"}
    assert set(data["retrieval"]) == {"hit@1", "hit@5", "hit@10", "mrr@10", "ndcg@10"}
    assert set(data["answer"]) == {"keyword_accuracy", "token_f1"}
    assert set(data["refusal"]) == {"unanswerable_refusal_rate", "false_refusal_rate"}
    assert data["config"]["llm"] == "extractive" and "answer_mean_s" in data["timings"]
    assert set(json.loads(json.dumps(metrics()))) == KEYS  # detector and ragas only when measured


def test_markdown_lists_metrics_types_and_failed_claims(tmp_path: Path) -> None:
    md = write_reports(tmp_path, metrics(), results())["markdown"].read_text()
    assert "| hallucination rate | 0.500 |" in md
    assert "| factoid | 1 |" in md
    assert "unsupported: GANs appeared in 2015." in md


def test_html_is_self_contained_and_escaped(tmp_path: Path) -> None:
    html = write_reports(tmp_path, metrics(), results())["html"].read_text()
    assert html.count("<svg") == 3  # score distributions, metric by type, rank histogram
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, flags=re.IGNORECASE)
    assert not re.search(r"<(?:script|link|img|iframe)\b", html, flags=re.IGNORECASE)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "GANs appeared in 2015." in html and "b" in html


def test_html_renders_with_no_results() -> None:
    assert "<svg" in render_html(metrics(), [])

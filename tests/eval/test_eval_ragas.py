"""The ragas adapter against a real local OpenAI-compatible server (llama.cpp serving SmolLM2-135M).

SmolLM2 often produces JSON that does not fit ragas's schemas: the test checks that each question's outcome is
reported honestly (a value, or NaN with its reason, and the NaN counted), not that the scores are good.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from eval.llm_server import free_port, llama_server
from eval.ragas_adapter import METRICS, Judge, Sample, score_samples, summarize

SAMPLES = [
    Sample("q1", "In which year were GANs introduced?", "GANs were introduced in 2014 [1].",
           ("Timeline: 2014 GANs, a generator versus discriminator game. 2020 diffusion models.",),
           "GANs appear in 2014."),
]


def test_summarize_counts_nan_per_metric() -> None:
    rows = [{"id": "a", "faithfulness": {"value": 0.5, "error": ""}},
            {"id": "b", "faithfulness": {"value": None, "error": "InstructorRetryException: bad JSON"}}]
    s = summarize(rows, names=("faithfulness",))
    assert s == {"questions": 2, "faithfulness": 0.5, "scored": {"faithfulness": 1}, "nan": {"faithfulness": 1},
                 "nan_reasons": {"InstructorRetryException": 1}}


@pytest.fixture(scope="module")
def smollm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    pytest.importorskip("llama_cpp.server")
    from rag.llm.models import resolve_gguf

    log = tmp_path_factory.mktemp("server") / "server.log"
    with llama_server(resolve_gguf("smollm2-135m"), n_ctx=2048, threads=1, port=free_port(), log_file=log) as url:
        yield url


@pytest.mark.slow
@pytest.mark.llm
def test_ragas_against_a_real_local_server(smollm_server: str, embedder) -> None:
    judge = Judge(base_url=smollm_server, model="smollm2-135m", max_tokens=96, retries=0, timeout=120)
    seen: list[dict] = []
    rows = score_samples(SAMPLES, judge, embedder, done=seen.append)
    assert rows == seen and [r["id"] for r in rows] == ["q1"]
    for name in METRICS:
        outcome = rows[0][name]
        assert set(outcome) == {"value", "error", "seconds"}
        if outcome["value"] is None:
            assert outcome["error"], f"{name}: NaN without a reason"
        else:
            assert math.isfinite(outcome["value"]) and not outcome["error"]
    summary = summarize(rows, judge)
    for name in METRICS:
        assert summary["scored"][name] + summary["nan"][name] == 1
        assert (summary[name] is None) == (summary["nan"][name] == 1)
    assert sum(summary["nan_reasons"].values()) == sum(summary["nan"].values())
    assert summary["judge"]["base_url"] == smollm_server

"""Answers end to end with the extractive backend: citations, quotes, refusal, history, JSON shape."""

from __future__ import annotations

import json
from pathlib import Path

from rag.api import open_pipeline
from rag.config import Config
from rag.prompt import REFUSAL

ANSWER_KEYS = {"answer", "refused", "citations", "contexts", "model", "usage", "timings"}


def extractive_config(index: Path) -> Config:
    return Config().with_overrides(index_dir=index, **{"answer.llm": "extractive"})


def test_answer_cites_chunks_that_contain_the_quote(lecture_index, embedder):
    with open_pipeline(lecture_index, extractive_config(lecture_index), embedder=embedder) as r:
        a = r.ask("Which year did GANs appear?")
    assert not a.refused and "2014" in a.text
    assert a.citations and "[1]" in a.text
    for c in a.citations:
        block_hit = a.contexts[c.block - 1]
        assert block_hit.chunk.chunk_id == c.chunk_id
        assert c.quote and c.quote in block_hit.chunk.text
        assert c.source == "genai-lecture.txt"
    assert set(a.timings) >= {"retrieve", "generate", "total"}


def test_off_topic_question_is_refused_before_generation(lecture_index, embedder):
    with open_pipeline(lecture_index, extractive_config(lecture_index), embedder=embedder) as r:
        a = r.ask("What is the capital city of Australia?")
    assert a.refused and a.text == REFUSAL
    assert "similarity" in a.refusal_reason
    assert a.citations == () and "generate" not in a.timings


def test_history_rewrites_follow_up(lecture_index, embedder):
    with open_pipeline(lecture_index, extractive_config(lecture_index), embedder=embedder) as r:
        first = r.ask("What are diffusion models?")
        follow = r.ask("How do they generate an image?", history=[("What are diffusion models?", first.text)])
    assert follow.query.startswith("What are diffusion models?") and follow.query != follow.question
    assert not follow.refused and any("noise" in h.chunk.text.lower() for h in follow.contexts)


def test_stream_yields_text_then_answer(lecture_index, embedder):
    with open_pipeline(lecture_index, extractive_config(lecture_index), embedder=embedder) as r:
        items = list(r.stream("What does the text encoder CLIP produce in text-to-image generation?"))
    *deltas, final = items
    assert deltas and all(isinstance(d, str) for d in deltas)
    assert final.text and final.citations


def test_ask_json_cli(lecture_index, rag_cli):
    out = rag_cli.run(["ask", "Which year did GANs appear?", "--index", lecture_index, "--llm", "extractive",
                       "--json"])
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) >= ANSWER_KEYS
    assert data["refused"] is False and "2014" in data["answer"]
    assert {"source", "page", "chunk_id", "quote"} <= set(data["citations"][0])
    human = rag_cli.run(["ask", "Which year did GANs appear?", "--index", lecture_index, "--llm", "extractive"])
    assert "Sources:" in human.stdout and "[1] genai-lecture.txt" in human.stdout


def test_chat_cli_keeps_history(lecture_index, rag_cli):
    import subprocess

    proc = subprocess.run([*rag_cli.argv, "chat", "--index", str(lecture_index), "--llm", "extractive"],
                          input="What are diffusion models?\nHow do they generate an image?\n\n", text=True,
                          capture_output=True, cwd=rag_cli.cwd, env=rag_cli.env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    answers = [line for line in proc.stdout.splitlines() if "rag> " in line]
    assert len(answers) == 2 and all("[1]" in a for a in answers)
    assert "diffusion" in answers[1].lower()  # "they" resolved through the history


def test_evidence_rule_bands():
    from rag.answer import evidence_refusal
    from rag.records import Evidence

    assert "below 0.15" in evidence_refusal(Evidence(0.10, 1.0, True), 5, 0.15, 0.30, 0.5)
    assert "weak match" in evidence_refusal(Evidence(0.20, 0.3, False), 5, 0.15, 0.30, 0.5)
    assert evidence_refusal(Evidence(0.20, 0.6, False), 5, 0.15, 0.30, 0.5) == ""  # key words rescue it
    assert evidence_refusal(Evidence(0.20, 0.1, True), 5, 0.15, 0.30, 0.5) == ""  # so does agreement
    assert evidence_refusal(Evidence(0.50, 0.0, False), 5, 0.15, 0.30, 0.5) == ""
    assert "no passage" in evidence_refusal(Evidence(0.0, 0.0, False), 0, 0.15, 0.30, 0.5)

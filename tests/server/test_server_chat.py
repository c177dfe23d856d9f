"""The OpenAI-compatible face, driven by the official openai SDK: chat, streaming, history, models."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow

REFUSAL = "I cannot answer this from the provided documents."


def test_models_lists_the_collection(server) -> None:
    models = server.openai(server.keys["reader_a"]).models.list()
    assert [m.id for m in models.data] == ["rag"]


def test_chat_answers_with_markers_and_citations(server) -> None:
    client = server.openai(server.keys["reader_a"])
    resp = client.chat.completions.create(
        model="rag", messages=[{"role": "user", "content": "What water temperature does the zebrafish aquarium need?"}])
    text = resp.choices[0].message.content
    assert "28 degrees" in text and "[1]" in text
    assert resp.choices[0].finish_reason == "stop"
    extra = resp.model_extra
    assert extra["refused"] is False
    cites = extra["citations"]
    assert cites and cites[0]["source"] == "fish.md"
    assert {"source", "page", "quote", "chunk_id"} <= set(cites[0])
    assert "zebrafish" in cites[0]["quote"].lower()


def test_streaming_yields_deltas_then_citations(server) -> None:
    client = server.openai(server.keys["streamer"])
    stream = client.chat.completions.create(
        model="rag", stream=True,
        messages=[{"role": "system", "content": "Ignored: the server keeps its own grounding rules."},
                  {"role": "user", "content": "How often is the zebrafish fed?"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "twice daily" in text
    final = chunks[-1]
    assert final.choices[0].finish_reason == "stop"
    assert final.model_extra["citations"][0]["source"] == "fish.md"
    assert final.model_extra["answer"] == text


def test_history_makes_follow_ups_standalone(server) -> None:
    client = server.openai(server.keys["reader_a"])
    first = "When is the aquarium filter pump cleaned?"
    resp = client.chat.completions.create(model="rag", messages=[
        {"role": "user", "content": first},
        {"role": "assistant", "content": "The aquarium filter pump is cleaned every Monday. [1]"},
        {"role": "user", "content": "Where is the spare one kept?"},
    ])
    assert "cabinet" in resp.choices[0].message.content
    assert resp.model_extra["citations"][0]["source"] == "pumps.md"


def test_unanswerable_question_is_refused(server) -> None:
    client = server.openai(server.keys["reader_a"])
    resp = client.chat.completions.create(
        model="rag", messages=[{"role": "user", "content": "Who won the 1966 football world cup final?"}])
    assert resp.choices[0].message.content == REFUSAL
    assert resp.model_extra["refused"] is True and resp.model_extra["citations"] == []
    stream = client.chat.completions.create(
        model="rag", stream=True, messages=[{"role": "user", "content": "Who won the 1966 football world cup?"}])
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == REFUSAL
    assert chunks[-1].model_extra["refused"] is True


def test_native_ask_returns_the_answer_record(server) -> None:
    with server.client(server.keys["reader_a"]) as c:
        r = c.post("/v1/ask", json={"question": "How long do the aquarium lights stay on?", "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert "14 hours" in body["answer"] and not body["refused"]
    assert body["citations"][0]["source"] == "fish.md"
    assert {"contexts", "timings", "evidence", "usage"} <= set(body)


def test_native_retrieve_returns_hits(server) -> None:
    with server.client(server.keys["reader_a"]) as c:
        r = c.post("/v1/retrieve", json={"query": "filter pump cleaning", "k": 2, "mode": "keyword"})
    assert r.status_code == 200
    hits = r.json()
    assert 1 <= len(hits) <= 2 and hits[0]["source"] == "pumps.md"
    assert {"chunk_id", "source", "page", "section", "score", "text"} <= set(hits[0])


def test_openapi_schema_and_unknown_model(server) -> None:
    assert server.client(None).get("/openapi.json").status_code == 401  # the API's shape is for key holders
    schema = server.client(server.keys["reader_a"]).get("/openapi.json").json()
    assert {"/v1/chat/completions", "/v1/ask", "/v1/retrieve", "/v1/documents"} <= set(schema["paths"])
    import openai

    with pytest.raises(openai.NotFoundError, match="does not exist"):
        server.openai(server.keys["reader_a"]).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "zebrafish?"}])

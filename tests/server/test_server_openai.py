"""The OpenAI surface behaves like OpenAI: every request field honoured or refused by name (400, OpenAI's error
shape with `param` and a string `code`), finish_reason "length" when cut, usage streamed only when asked, the
caller's system message honoured after the grounding rules, request ids. Driven by the official `openai` SDK and by
LangChain's ChatOpenAI against a real `rag serve`, and by a recording upstream model to see what rag sends it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from recording_llm import RecordingLLM

from rag.prompt import SYSTEM
from rag.server.generation import INSTRUCTIONS_HEAD

pytestmark = pytest.mark.slow
QUESTION = "What water temperature does the zebrafish aquarium need?"
ASK = [{"role": "user", "content": QUESTION}]


@pytest.fixture(scope="module")
def key(server) -> str:  # noqa: ANN001
    """A key of its own (tenant A), so this module's requests do not count against other tests' rate limits."""
    from rag.access import AccessStore

    store = AccessStore(server.index)
    try:
        return store.create_key("openai surface", "reader", ["A"]).token
    finally:
        store.close()


@pytest.fixture(scope="module")
def client(server, key):  # noqa: ANN001, ANN201
    return server.openai(key)


def test_plain_answer_has_openais_fields_and_a_request_id(client) -> None:  # noqa: ANN001
    raw = client.chat.completions.with_raw_response.create(model="rag", messages=ASK)
    assert len(raw.headers["x-request-id"]) == 32
    resp = raw.parse()
    assert "28 degrees" in resp.choices[0].message.content and resp.choices[0].finish_reason == "stop"
    assert resp.usage.completion_tokens > 0 and resp.system_fingerprint is None and resp.service_tier == "default"
    assert resp.model_extra["citations"][0]["source"] == "fish.md"
    mine = client.chat.completions.with_raw_response.create(model="rag", messages=ASK,
                                                            extra_headers={"X-Request-Id": "trace-42"})
    assert mine.headers["x-request-id"] == "trace-42"


def test_fields_at_values_rag_honours_are_accepted(client) -> None:  # noqa: ANN001
    resp = client.chat.completions.create(
        model="rag", messages=[{"role": "developer", "content": "Be brief."}, *ASK], temperature=0, top_p=1,
        presence_penalty=0, frequency_penalty=0, seed=7, n=1, user="user-1", safety_identifier="s-1",
        prompt_cache_key="k-1", metadata={"team": "fish"}, store=False, service_tier="auto",
        response_format={"type": "text"}, tool_choice="none", parallel_tool_calls=False, logprobs=False,
        max_completion_tokens=300, stop=None, modalities=["text"])
    assert "28 degrees" in resp.choices[0].message.content and resp.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("kwargs, param, code", [
    ({"temperature": 0.7}, "temperature", "unsupported_value"),
    ({"top_p": 0.5}, "top_p", "unsupported_value"),
    ({"presence_penalty": 1}, "presence_penalty", "unsupported_value"),
    ({"frequency_penalty": -1}, "frequency_penalty", "unsupported_value"),
    ({"temperature": 3}, "temperature", "invalid_value"),
    ({"n": 2}, "n", "unsupported_value"),
    ({"logprobs": True}, "logprobs", "unsupported_parameter"),
    ({"top_logprobs": 3}, "top_logprobs", "unsupported_parameter"),
    ({"logit_bias": {"50256": -100}}, "logit_bias", "unsupported_parameter"),
    ({"response_format": {"type": "json_object"}}, "response_format", "unsupported_value"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools", "unsupported_parameter"),
    ({"tool_choice": "required"}, "tool_choice", "unsupported_value"),
    ({"store": True}, "store", "unsupported_value"),
    ({"service_tier": "priority"}, "service_tier", "unsupported_value"),
    ({"modalities": ["text", "audio"]}, "modalities", "unsupported_parameter"),
    ({"reasoning_effort": "high"}, "reasoning_effort", "unsupported_parameter"),
    ({"prediction": {"type": "content", "content": "x"}}, "prediction", "unsupported_parameter"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "invalid_value"),
    ({"max_tokens": 0}, "max_tokens", "invalid_value"),
    ({"stream_options": {"include_usage": True}}, "stream_options", "invalid_value"),
    ({"extra_body": {"best_of": 2}}, "best_of", "unknown_parameter"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}]}]},
     "messages[0].content[0].type", "unsupported_value"),
    ({"messages": [*ASK, {"role": "tool", "content": "42", "tool_call_id": "t1"}]}, "messages[1].role",
     "unsupported_value"),
    ({"messages": [*ASK, {"role": "assistant", "content": "ok"}]}, "messages", "invalid_value"),
    ({"messages": []}, "messages", "invalid_value"),
])
def test_fields_rag_cannot_honour_are_refused_by_name(client, kwargs: dict, param: str, code: str) -> None:  # noqa: ANN001
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(**{"model": "rag", "messages": ASK, **kwargs})
    err = e.value.body
    assert (err["param"], err["code"], err["type"]) == (param, code, "invalid_request_error"), err
    assert isinstance(err["message"], str) and err["message"]


def test_error_objects_have_openais_shape(server, key) -> None:  # noqa: ANN001
    with httpx.Client(base_url=server.url, timeout=60) as c:
        r = c.post("/v1/chat/completions", json={"messages": ASK})
        assert r.status_code == 401
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"}
        assert (err["type"], err["param"], err["code"]) == ("authentication_error", None, "invalid_api_key")
        auth = {"Authorization": f"Bearer {key}"}
        r = c.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": ASK}, headers=auth)
        assert r.status_code == 404 and r.json()["error"]["param"] == "model"
        assert r.json()["error"]["code"] == "model_not_found"
        r = c.post("/v1/chat/completions", content=b"{nope", headers={**auth, "content-type": "application/json"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
        assert "x-request-id" in r.headers


def test_max_tokens_cuts_the_answer_with_finish_reason_length(client) -> None:  # noqa: ANN001
    full = client.chat.completions.create(model="rag", messages=ASK).choices[0]
    cut = client.chat.completions.create(model="rag", messages=ASK, max_tokens=4).choices[0]
    assert cut.finish_reason == "length" and full.finish_reason == "stop"
    assert len(cut.message.content) < len(full.message.content)
    assert cut.message.content.split()[:4] == full.message.content.split()[:4]
    chunks = list(client.chat.completions.create(model="rag", messages=ASK, max_completion_tokens=4, stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == cut.message.content


def test_stop_sequence_ends_the_answer_before_it(client) -> None:  # noqa: ANN001
    resp = client.chat.completions.create(model="rag", messages=ASK, stop=["degrees"])
    text = resp.choices[0].message.content
    assert "28" in text and "degrees" not in text and resp.choices[0].finish_reason == "stop"


def test_usage_is_streamed_only_when_asked(client) -> None:  # noqa: ANN001
    plain = list(client.chat.completions.create(model="rag", messages=ASK, stream=True))
    assert all(c.usage is None for c in plain) and all(c.choices for c in plain)
    assert plain[-1].choices[0].finish_reason == "stop" and plain[-1].model_extra["citations"]
    asked = list(client.chat.completions.create(model="rag", messages=ASK, stream=True,
                                                stream_options={"include_usage": True}))
    last = asked[-1]
    assert last.choices == [] and last.usage is not None and last.usage.completion_tokens > 0
    assert all(c.usage is None for c in asked[:-1])
    text = "".join(c.choices[0].delta.content or "" for c in asked if c.choices)
    assert asked[-2].model_extra["answer"] == text  # only checked sentences were streamed


def test_langchain_chat_openai_against_rag_serve(server, key) -> None:  # noqa: ANN001
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=f"{server.url}/v1", api_key=key, model="rag", max_retries=0, timeout=60)
    reply = llm.invoke([SystemMessage("Answer in one sentence."), HumanMessage(QUESTION)])
    assert "28 degrees" in reply.content and reply.response_metadata["finish_reason"] == "stop"
    assert reply.usage_metadata["output_tokens"] > 0
    chunks = list(ChatOpenAI(base_url=f"{server.url}/v1", api_key=key, model="rag", max_retries=0,
                             stream_usage=True).stream(QUESTION))
    merged = chunks[0]
    for c in chunks[1:]:
        merged += c
    assert "28 degrees" in merged.content and merged.usage_metadata["output_tokens"] > 0
    short = ChatOpenAI(base_url=f"{server.url}/v1", api_key=key, model="rag", max_retries=0, max_tokens=4)
    assert short.invoke(QUESTION).response_metadata["finish_reason"] == "length"
    hot = ChatOpenAI(base_url=f"{server.url}/v1", api_key=key, model="rag", max_retries=0, temperature=0.9)
    with pytest.raises(openai.BadRequestError, match="temperature must be 0"):
        hot.invoke(QUESTION)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _serve(tmp: Path, index: Path, name: str, *args: str, env: dict[str, str] | None = None,
           before: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str, Path]:
    """`rag [before] serve` over `index` with extractive answers unless `args` say otherwise; ready when it returns."""
    cfg = tmp / f"{name}.toml"
    cfg.write_text('[answer]\nllm = "extractive"\n\n[server]\nrate_limit_per_minute = 200\n\n'
                   "[llm.openai]\ntimeout = 30.0\nmax_retries = 0\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    log = tmp / f"{name}.log"
    cmd = [sys.executable, "-m", "rag.cli", *before, "--config", str(cfg), "serve", "--index", str(index),
           "--host", "127.0.0.1", "--port", str(port), *args]
    environ = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.Popen(cmd, stdout=open(log, "wb"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            env={**environ, **(env or {})}, cwd=tmp)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise RuntimeError(f"rag serve did not start:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url, log
        except httpx.TransportError:
            time.sleep(0.3)


def test_system_message_goes_after_the_grounding_rules_and_limits_reach_the_model(server, key, tmp_path) -> None:  # noqa: ANN001
    """What rag sends the upstream model (a recording OpenAI-compatible server): its own system prompt unchanged,
    the caller's system text after the question under a heading that keeps the rules first, the token limit."""
    answer = "The zebrafish aquarium protocol requires water at 28 degrees Celsius [1]."
    with RecordingLLM(answer) as upstream:
        proc, url, _ = _serve(tmp_path, server.index, "recorded", "--llm", "openai", "--base-url", upstream.base_url,
                              "--model", "recorder", env={"RAG_ANSWER__VERIFY": "false"})
        try:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=60)
            resp = client.chat.completions.create(model="rag", max_tokens=40, messages=[
                {"role": "system", "content": "Answer like a ship's captain."}, *ASK])
        finally:
            stop(proc)
    assert resp.choices[0].message.content == answer and resp.choices[0].finish_reason == "stop"
    headers, sent = upstream.chats()[-1]
    assert "authorization" not in headers  # a keyless upstream gets no key at all
    assert sent["messages"][0] == {"role": "system", "content": SYSTEM}  # the grounding rules, untouched
    last = sent["messages"][-1]["content"]
    assert last.index(f"Question: {QUESTION}") < last.index(INSTRUCTIONS_HEAD)
    assert last.endswith(f"{INSTRUCTIONS_HEAD}\nAnswer like a ship's captain.")
    assert sent["max_tokens"] == 40 and sent["temperature"] == 0.0


def test_json_logs_carry_the_request_id_through_the_server(server, key, tmp_path) -> None:  # noqa: ANN001
    proc, url, log = _serve(tmp_path, server.index, "jsonlogs", before=("--log-format", "json", "-vv"))
    try:
        with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {key}"}) as c:
            r = c.post("/v1/chat/completions", json={"messages": ASK, "user": "alice"},
                       headers={"X-Request-Id": "req-json-1"})
            assert r.status_code == 200 and r.headers["x-request-id"] == "req-json-1"
            other = c.post("/v1/chat/completions", json={"messages": ASK})
        time.sleep(0.5)
    finally:
        stop(proc)
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    mine = [r for r in records if r.get("request_id") == "req-json-1"]
    loggers = {r["logger"] for r in mine}
    assert "rag.server.routes.chat" in loggers  # the route's line (the request's tags)
    assert "uvicorn.access" in loggers  # the access line
    assert "rag.server.generation" in loggers  # a line of the answer worker thread
    assert any(r.get("request_id") == other.headers["x-request-id"] for r in records)

"""The `openai` backend under fault injection: retried with backoff where safe, then one clear error."""

from __future__ import annotations

import pytest
from fake_openai import FakeOpenAI

from rag.config import OpenAIConfig
from rag.errors import LLMConfigError, LLMError
from rag.llm.base import complete
from rag.llm.openai_compat import OpenAICompatLLM
from rag.prompt import Message, Prompt

PROMPT = Prompt((Message("system", "s"), Message("user", "u")))


def _llm(base_url: str, **kw: object) -> OpenAICompatLLM:
    cfg = OpenAIConfig(base_url=base_url, model="fake", timeout=kw.pop("timeout", 2.0),  # type: ignore[arg-type]
                       max_retries=kw.pop("retries", 2), **kw)  # type: ignore[arg-type]
    return OpenAICompatLLM(cfg)


def test_streams_text_and_usage_and_sends_settings():
    with FakeOpenAI([]) as srv:
        llm = _llm(srv.base_url, temperature=0.2, top_p=0.9, seed=7, presence_penalty=0.1)
        done = complete(llm, PROMPT)
        req = srv.requests[0]
    assert done.text == "Hello from the fake [1]."
    assert done.usage.prompt_tokens == 11 and done.usage.completion_tokens == 5
    assert req["stream"] is True and req["temperature"] == 0.2 and req["top_p"] == 0.9 and req["seed"] == 7
    assert req["presence_penalty"] == 0.1 and req["model"] == "fake"


@pytest.mark.parametrize("fault", ["500", "429", "garbage", "stall", "drop"])
def test_transient_faults_are_retried(fault):
    with FakeOpenAI([fault]) as srv:
        done = complete(_llm(srv.base_url, timeout=1.0), PROMPT)
        assert len(srv.requests) == 2
    assert done.text == "Hello from the fake [1]."


@pytest.mark.parametrize(("fault", "message"), [
    ("500", "server error"), ("429", "rate limited"), ("garbage", "malformed response"), ("stall", "timed out"),
    ("drop", "connection failed"),
])
def test_persistent_faults_end_in_a_clear_error(fault, message):
    with FakeOpenAI([fault] * 3) as srv:
        with pytest.raises(LLMError, match=message) as err:
            complete(_llm(srv.base_url, timeout=1.0, retries=2), PROMPT)
        assert len(srv.requests) == 3
    assert srv.base_url in str(err.value) and "3 attempt(s)" in str(err.value)


def test_client_errors_are_not_retried():
    with FakeOpenAI(["400"]) as srv:
        with pytest.raises(LLMError, match="HTTP 400"):
            complete(_llm(srv.base_url), PROMPT)
        assert len(srv.requests) == 1


def test_no_retry_after_text_was_streamed():
    with FakeOpenAI(["cut"]) as srv:
        with pytest.raises(LLMError):
            complete(_llm(srv.base_url), PROMPT)
        assert len(srv.requests) == 1


def test_openai_without_key_is_refused_but_a_keyless_server_anywhere_is_not(monkeypatch):
    """Only api.openai.com needs a key; Ollama, vLLM or llama.cpp on another host get no Authorization header
    (tests/rag/test_recipes.py sends real requests both ways)."""
    monkeypatch.delenv("RAG_TEST_KEY", raising=False)
    with pytest.raises(LLMConfigError, match="RAG_TEST_KEY"):
        OpenAICompatLLM(OpenAIConfig(base_url="https://api.openai.com/v1", api_key_env="RAG_TEST_KEY"))
    assert OpenAICompatLLM(OpenAIConfig(base_url="https://llm.example.invalid/v1", api_key_env="RAG_TEST_KEY"))
    monkeypatch.setenv("RAG_TEST_KEY", "sk-test")
    assert OpenAICompatLLM(OpenAIConfig(base_url="https://api.openai.com/v1", api_key_env="RAG_TEST_KEY"))

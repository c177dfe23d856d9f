"""The server's own logic in-process, over a scripted stand-in for RAG: conversation parsing, file names,
503 when no worker is free, and a timeout or failure in the middle of a stream."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient

from rag.access import AccessStore, RateLimiter
from rag.config import Config
from rag.records import Answer, Citation
from rag.server import create_app
from rag.server.schemas import ChatMessage, conversation, safe_name

DONE = Answer(text="Done [1].", refused=False, citations=(Citation(1, "c1", "a.md", None, "", "Done."),))


class ScriptedRAG:
    """What create_app needs of a RAG, answering with a scripted stream."""

    def __init__(self, index: Path, script: Callable[[str], Iterator[str | Answer]], timeout: float) -> None:
        self.config = Config(index_dir=index).with_overrides(
            **{"answer.llm": "extractive", "server.answer_timeout": timeout})
        self.script = script
        self.embedder = None

    def stream(self, question: str, **_: object) -> Iterator[str | Answer]:
        return self.script(question)


def _client(tmp_path: Path, script: Callable[[str], Iterator[str | Answer]], timeout: float = 0.5):  # noqa: ANN202
    access = AccessStore(tmp_path)
    token = access.create_key("t", "reader", ["A"]).token
    app = create_app(ScriptedRAG(tmp_path, script, timeout), access)  # type: ignore[arg-type]
    return TestClient(app, headers={"Authorization": f"Bearer {token}"}, raise_server_exceptions=False), access


def test_conversation_pairs_turns_and_takes_the_last_user_message() -> None:
    msgs = [ChatMessage(role=r, content=c) for r, c in [
        ("system", "be nice"), ("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("user", "q3"),
        ("assistant", "a3"), ("user", [{"type": "text", "text": "q4"}, {"type": "image_url", "image_url": {}}])]]
    assert conversation(msgs) == ("q4", [("q1", "a1"), ("q2", ""), ("q3", "a3")])
    with pytest.raises(HTTPException):
        conversation([ChatMessage(role="assistant", content="hi")])


@pytest.mark.parametrize(("name", "safe"), [
    ("../../etc/passwd.md", "passwd.md"), ("C:\\x\\Report 1.pdf", "Report_1.pdf"), ("..hidden.txt", "hidden.txt"),
    ("ünï cödé.md", "n_c_d_.md")])
def test_safe_name(name: str, safe: str) -> None:
    assert safe_name(name) == safe


@pytest.mark.parametrize("name", ["", "..", "/", "noextension"])
def test_safe_name_refuses(name: str) -> None:
    with pytest.raises(HTTPException):
        safe_name(name)


def test_rate_limiter_window_slides() -> None:
    lim = RateLimiter(2, window=0.2)
    assert lim.check("k") == 0 and lim.check("k") == 0 and lim.check("k") > 0
    assert lim.check("other") == 0
    time.sleep(0.25)
    assert lim.check("k") == 0


def test_busy_workers_give_503_and_slow_answers_504(tmp_path: Path) -> None:
    release = threading.Event()

    def slow(_: str) -> Iterator[str | Answer]:
        release.wait(5)
        yield DONE

    client, access = _client(tmp_path, slow, timeout=0.6)
    statuses: list[int] = []
    with client:
        def ask() -> None:
            statuses.append(client.post("/v1/ask", json={"question": "q"}).status_code)

        threads = [threading.Thread(target=ask) for _ in range(3)]  # two workers: the third waits for one
        for t in threads:
            t.start()
            time.sleep(0.05)
        for t in threads:
            t.join(10)
        release.set()
    assert sorted(statuses) == [503, 504, 504]
    access.close()


def test_failures_mid_stream_end_with_an_error_event(tmp_path: Path) -> None:
    def script(question: str) -> Iterator[str | Answer]:
        yield "First part"
        if question == "slow":
            time.sleep(1.0)
        else:
            raise RuntimeError("secret internal detail")
        yield DONE

    client, access = _client(tmp_path, script, timeout=0.5)
    with client:
        for question, words in [("slow", "no answer within 0.5s"), ("boom", "answering failed")]:
            body = {"messages": [{"role": "user", "content": question}], "stream": True}
            with client.stream("POST", "/v1/chat/completions", json=body) as r:
                text = r.read().decode()
            assert r.status_code == 200 and "First part" in text and words in text
            assert "[DONE]" not in text and "secret" not in text
        ok = client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "fine"}]})
        assert ok.status_code == 500  # the scripted stream raises for any other question too
    access.flush()
    statuses = sorted(r.status for r in access.audit(10) if r.route == "POST /v1/chat/completions")
    assert statuses == [500, 500, 504]
    access.close()


@pytest.mark.parametrize(("threads", "expected"), [(3, 3), (0, max(4, 2 * (os.cpu_count() or 2)))])
def test_blocking_request_work_gets_server_threads_threads(tmp_path: Path, threads: int, expected: int) -> None:
    """Sync routes and dependencies (retrieval, key checks) run in anyio's pool, sized by server.threads: 0 means
    twice the CPUs (at least 4) on the embedded backend instead of anyio's 40, which only contend on few cores."""
    import anyio.to_thread

    access = AccessStore(tmp_path)
    rag = ScriptedRAG(tmp_path, lambda q: iter([DONE]), 1.0)
    rag.config = rag.config.with_overrides(**{"server.threads": threads})
    with TestClient(create_app(rag, access)) as client:  # type: ignore[arg-type]
        assert client.portal is not None
        tokens = client.portal.call(lambda: anyio.to_thread.current_default_thread_limiter().total_tokens)
    access.close()
    assert tokens == expected

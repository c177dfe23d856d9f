"""Bad requests get a 4xx with a JSON error saying what was wrong; a slow LLM gets a clean 504."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

pytestmark = pytest.mark.slow


def _error(r: httpx.Response, status: int, words: str) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert words in err["message"], err
    assert err["type"]


def test_request_size_limit(server) -> None:
    with server.client(server.keys["reader_a"]) as c:
        big = {"question": "zebrafish?", "history": [["x" * 1000, "y" * 1000]] * 120}
        _error(c.post("/v1/ask", json=big), 413, "over the limit of 200000 bytes")

        def chunked() -> Iterator[bytes]:  # no Content-Length: the limit is counted while reading
            yield b'{"question": "zebrafish?", "filters": ["'
            for _ in range(300):
                yield b"x" * 1000
            yield b'"]}'

        _error(c.post("/v1/ask", content=chunked(), headers={"content-type": "application/json"}), 413, "limit")
    with server.client(server.keys["admin"]) as c:
        r = c.post("/v1/documents", files={"files": ("big.md", b"word " * 50_000)}, data={"tenant": "A"})
        _error(r, 413, "server.max_request_bytes")


def test_question_length_and_shape(server) -> None:
    with server.client(server.keys["reader_a"]) as c:
        _error(c.post("/v1/ask", json={"question": "zebrafish " * 60}), 400, "limit is 500")
        _error(c.post("/v1/ask", json={"question": "   "}), 400, "empty")
        _error(c.post("/v1/ask", json={"q": "zebrafish"}), 422, "question: Field required")
        _error(c.post("/v1/ask", content=b"{not json", headers={"content-type": "application/json"}), 422, "JSON")
        _error(c.post("/v1/ask", json={"question": "zebrafish", "k": 0}), 422, "k:")
        _error(c.post("/v1/ask", json={"question": "zebrafish", "mode": "magic"}), 422, "mode:")
        _error(c.post("/v1/retrieve", json={"query": "zebrafish", "filters": ["colour=red"]}), 400, "bad filter")
        chat = {"messages": [{"role": "user", "content": "zebrafish"}, {"role": "assistant", "content": "ok"}]}
        _error(c.post("/v1/chat/completions", json=chat), 400, "last message must be a user message")
        _error(c.post("/v1/chat/completions", json={"messages": []}), 400, "messages")  # OpenAI's status
    with pytest.raises(openai.BadRequestError, match="limit is 500"):
        server.openai(server.keys["reader_a"]).chat.completions.create(
            model="rag", messages=[{"role": "user", "content": "why " * 200}])


def test_rate_limit_per_key(server) -> None:
    with server.client(server.keys["limited"]) as c:
        statuses = [c.get("/v1/models").status_code for _ in range(205)]
        assert statuses.count(200) == 200 and statuses[-1] == 429
        r = c.get("/v1/models")
        _error(r, 429, "rate limit of 200 requests a minute")
        assert int(r.headers["retry-after"]) >= 1
    with server.client(server.keys["reader_a"]) as other:  # the limit is per key
        assert other.get("/v1/models").status_code == 200


class _SlowLLM(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible upstream that takes far longer than the server's answer_timeout."""

    release = threading.Event()

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.release.wait(8)
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "slow",
                 "choices": [{"index": 0, "delta": {"content": "Too late [1]."}, "finish_reason": None}]}
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        self.wfile.write(f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def slow_server(server, launch, tmp_path_factory):  # noqa: ANN001, ANN201
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowLLM)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{upstream.server_address[1]}/v1"
    try:
        with launch(tmp_path_factory.mktemp("slow"), server.index, "slow", timeout=1.5,
                    extra=("--llm", "openai", "--base-url", base, "--model", "slow")) as url:
            yield url
            _SlowLLM.release.set()
    finally:
        _SlowLLM.release.set()
        upstream.shutdown()


def test_slow_llm_times_out_cleanly(server, slow_server) -> None:
    key = server.keys["admin"]
    client = openai.OpenAI(base_url=f"{slow_server}/v1", api_key=key, max_retries=0, timeout=30)
    question = [{"role": "user", "content": "What water temperature does the zebrafish aquarium need?"}]
    for stream in (False, True):
        t = time.monotonic()
        with pytest.raises(openai.APIStatusError) as e:
            client.chat.completions.create(model="rag", messages=question, stream=stream)
        assert e.value.status_code == 504 and "server.answer_timeout" in str(e.value)
        assert time.monotonic() - t < 6
    with httpx.Client(base_url=slow_server, headers={"Authorization": f"Bearer {key}"}) as c:
        r = c.post("/v1/ask", json={"question": question[0]["content"]})
        _error(r, 504, "no answer within 1.5s")
        assert c.get("/healthz").status_code == 200
        assert c.post("/v1/retrieve", json={"query": "zebrafish"}).status_code == 200  # still serving

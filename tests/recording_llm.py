"""An OpenAI-compatible chat server on a real socket that answers a fixed text and records every request (headers
and body): where a test must see exactly what `rag` sent upstream (the key or its absence, the prompt, max_tokens).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class RecordingLLM:
    """`with RecordingLLM("The answer [1].", host="0.0.0.0") as llm:` serves llm.base_url (…/v1)."""

    def __init__(self, answer: str, host: str = "127.0.0.1", model: str = "recorder") -> None:
        self.answer = answer
        self.model = model
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []  # (headers, body)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                self._send(200, {"object": "list", "data": [{"id": owner.model, "object": "model"}]})

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                owner.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                words = owner.answer.split(" ")
                if not body.get("stream"):  # a yes/no check asks for log-probabilities: the answer is "Yes"
                    yes = [{"token": "Yes", "logprob": -0.01, "bytes": None},
                           {"token": "No", "logprob": -5.0, "bytes": None}]
                    logprobs = {"content": [{"token": "Yes", "logprob": -0.01, "bytes": None, "top_logprobs": yes}]}
                    content = "Yes" if body.get("logprobs") else owner.answer
                    self._send(200, {"id": "r1", "object": "chat.completion", "created": 0, "model": owner.model,
                                     "choices": [{"index": 0, "finish_reason": "stop",
                                                  "logprobs": logprobs if body.get("logprobs") else None,
                                                  "message": {"role": "assistant", "content": content}}],
                                     "usage": {"prompt_tokens": 10, "completion_tokens": len(words),
                                               "total_tokens": 10 + len(words)}})
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                for i, w in enumerate(words):
                    delta = {"content": w if i == 0 else " " + w}
                    finish = "stop" if i == len(words) - 1 else None
                    self._event({"id": "r1", "object": "chat.completion.chunk", "created": 0, "model": owner.model,
                                 "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
                self._event({"id": "r1", "object": "chat.completion.chunk", "created": 0, "model": owner.model,
                             "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": len(words),
                                                      "total_tokens": 10 + len(words)}})
                self.wfile.write(b"data: [DONE]\n\n")

            def _event(self, data: dict[str, Any]) -> None:
                self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())

            def _send(self, status: int, data: dict[str, Any]) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self._server = ThreadingHTTPServer((host, 0), Handler)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}/v1"

    @property
    def base_url(self) -> str:
        return self.url()

    def chats(self) -> list[tuple[dict[str, str], dict[str, Any]]]:
        return [(h, b) for h, b in self.requests if "messages" in b]

    def __enter__(self) -> RecordingLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

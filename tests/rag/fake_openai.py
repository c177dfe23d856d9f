"""A scripted OpenAI-compatible HTTP server on loopback, for fault injection (500, 429, garbage, stalls, drops)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def sse_chunks(words: list[str], model: str = "fake") -> bytes:
    out = []
    for i, w in enumerate(words):
        finish = "stop" if i == len(words) - 1 else None
        chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": model,
                 "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": finish}]}
        out.append(f"data: {json.dumps(chunk)}\n\n")
    usage = {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": model, "choices": [],
             "usage": {"prompt_tokens": 11, "completion_tokens": len(words), "total_tokens": 11 + len(words)}}
    out.append(f"data: {json.dumps(usage)}\n\n")
    out.append("data: [DONE]\n\n")
    return "".join(out).encode()


class FakeOpenAI:
    """Serves /v1/chat/completions following a script of behaviours, one per request ("ok" when it runs out)."""

    def __init__(self, script: list[str], answer: str = "Hello from the fake [1].") -> None:
        self.script = list(script)
        self.answer = answer
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.requests.append(json.loads(body or b"{}"))
                step = owner.script.pop(0) if owner.script else "ok"
                if step in ("500", "429", "400"):
                    payload = json.dumps({"error": {"message": f"scripted {step}", "type": "test"}}).encode()
                    self.send_response(int(step))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                if step == "stall":
                    time.sleep(3)
                if step == "drop":
                    self.connection.shutdown(2)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                if step == "garbage":
                    self.wfile.write(b"data: {this is not json\n\n")
                    return
                if step == "cut":  # some text, then the connection dies mid-stream
                    first_event = sse_chunks(["Partial ", "answer"]).split(b"\n\n")[0] + b"\n\n"
                    self.wfile.write(first_event)
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                words = owner.answer.split(" ")
                self.wfile.write(sse_chunks([w + " " for w in words[:-1]] + words[-1:]))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

"""The server's outermost ASGI layer: body size limit, security headers, one audit row per API request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import HTTPException

from rag.access import AccessStore

HEADERS = {"content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                                     "base-uri 'none'; form-action 'self'",
           "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


class RequestGuard:
    """The server's outermost ASGI layer: refuses bodies over the size limit (413), adds the security
    headers, and writes one audit row per API request (POST/DELETE, and any refused request)."""

    def __init__(self, app: Any, max_bytes: int, access: AccessStore, headers: dict[str, str],
                 error: Callable[[int, str], Any]) -> None:
        self.app, self.max_bytes, self.access, self.error = app, max_bytes, access, error
        self.headers = [(k.encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"0")
        too_big = f"request body is over the limit of {self.max_bytes} bytes (server.max_request_bytes)"
        if not length.isdigit() or int(length) > self.max_bytes:
            return await self.error(413, too_big)(scope, receive, send)
        audit: dict[str, Any] = scope.setdefault("rag.audit", {})
        seen = 0

        async def receive_limited() -> dict:
            nonlocal seen
            msg = await receive()
            seen += len(msg.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, too_big)  # FastAPI re-raises it from body parsing; the app maps it
            return msg

        async def send_with_headers(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                audit.setdefault("status", msg["status"])
                msg["headers"] = list(msg.get("headers", [])) + self.headers
            await send(msg)

        try:
            await self.app(scope, receive_limited, send_with_headers)
        finally:
            path, method = scope["path"], scope["method"]
            status = audit.get("status", 500)
            if path.startswith("/v1/") and (method != "GET" or status >= 400):
                self.access.record(f"{method} {path}", audit.get("key_id"), status, audit.get("question"),
                                   audit.get("sources", ()), audit.get("refused"))



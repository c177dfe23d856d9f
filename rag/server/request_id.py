"""A request id for every HTTP request: the caller's `X-Request-Id` when it is a sane token, else a fresh one.

It is returned in the `x-request-id` response header and set in `rag.logs.REQUEST_ID` for the request's life, so
every log line of the request (`rag --log-format json serve`: the answer worker's too) carries it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any

from rag.logs import REQUEST_ID

HEADER = b"x-request-id"
_SANE = re.compile(rb"^[A-Za-z0-9._:/+=-]{1,128}$")


class RequestIds:
    """ASGI middleware: picks the request's id, exposes it in the scope ("rag.request_id") and the response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(HEADER, b"")
        rid = given.decode("ascii") if _SANE.match(given) else secrets.token_hex(16)
        scope["rag.request_id"] = rid
        token = REQUEST_ID.set(rid)

        async def send_with_id(msg: dict) -> None:
            if msg["type"] == "http.response.start":
                msg["headers"] = [*(h for h in msg.get("headers", []) if h[0].lower() != HEADER),
                                  (HEADER, rid.encode("ascii"))]
            await send(msg)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)

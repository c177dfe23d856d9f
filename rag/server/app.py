"""The FastAPI application: error shapes, routes per area, the guard; `create_app` is the factory.

    uvicorn --factory rag.server:app_from_environment   # index and config from RAG_CONFIG / RAG_INDEX__DIR
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingest.config import ConfigError
from rag.access import AccessStore
from rag.api import RAG
from rag.errors import RagError
from rag.server.deps import Key
from rag.server.guard import HEADERS, RequestGuard
from rag.server.request_id import RequestIds
from rag.server.routes import chat, documents, native
from rag.server.routes.native import STATIC
from rag.server.schemas import error_response
from rag.server.state import ServerState

log = logging.getLogger(__name__)


def create_app(rag: RAG, access: AccessStore, on_close: Callable[[], None] | None = None) -> FastAPI:
    """The app over an open RAG; `access` holds the keys and receives the audit rows. Closing them is the
    caller's business (the app only stops its worker pools, then calls `on_close` if given)."""
    st = ServerState.create(rag, access)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        # Sync routes and dependencies run in anyio's thread pool (40 threads by default); more than the cores
        # can run only contend for the interpreter (server.threads).
        anyio.to_thread.current_default_thread_limiter().total_tokens = st.threads
        yield
        try:
            st.shutdown()
        finally:
            if on_close is not None:
                on_close()

    # No public schema or docs pages: /openapi.json is served below, to callers with a key only.
    app = FastAPI(title="rag", version=_version(), lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None,
                  description="Grounded question answering over private documents, with citations.")
    app.state.rag = st

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_: Key) -> dict[str, Any]:
        return app.openapi()

    @app.exception_handler(StarletteHTTPException)  # FastAPI's subclass and the router's own 404/405
    async def _http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        return error_response(e.status_code, str(e.detail), getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        # loc and msg only: the offending input is not echoed back
        parts = [(".".join(str(p)[:40] for p in err["loc"][1:]) or "body") + ": " + err["msg"] for err in e.errors()[:10]]
        ctype = request.headers.get("content-type", "")
        hint = "" if "json" in ctype or "multipart" in ctype else " (send JSON with Content-Type: application/json)"
        return error_response(422, "invalid request: " + "; ".join(parts) + hint)

    @app.exception_handler(ConfigError)
    async def _bad_value(_: Request, e: ConfigError) -> JSONResponse:
        return error_response(400, str(e))

    @app.exception_handler(Exception)
    async def _crash(_: Request, e: Exception) -> JSONResponse:
        log.error("request failed: %s: %s", type(e).__name__, e)
        return error_response(500, "internal server error; see the server log")

    @app.exception_handler(RagError)
    async def _rag_error(_: Request, e: RagError) -> JSONResponse:
        log.error("answering failed: %s", e)
        return error_response(502, "the language model backend failed; see the server log")

    for router in (native.router, chat.router, documents.router):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(RequestGuard, max_bytes=st.config.max_request_bytes, access=access, headers=HEADERS,
                       error=error_response)
    app.add_middleware(RequestIds)  # outermost: the guard's refusals carry the id too
    return app


def _version() -> str:
    from rag import __version__

    return __version__

"""Native routes: /v1/ask, /v1/retrieve, /v1/models, /healthz, /readyz and the web page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse

from rag.server.deps import Key, check_question
from rag.server.schemas import MODEL_ID, AskBody, RetrieveBody
from rag.server.state import record, state
from rag.server.streaming import answer_items, audit_answer, final_answer

STATIC = Path(__file__).resolve().parent.parent / "static"
router = APIRouter()


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(STATIC / "index.html")


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers (nothing else is touched)."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """Readiness, for load balancers: 200 while the index can be read, else 503 and why. No key: a total count only."""
    r = state(request).rag.ready()
    if r.ready:
        return JSONResponse({"status": "ready", "index": r.index, "chunks": r.chunks})
    return JSONResponse({"status": "unavailable", "index": r.index, "reason": r.reason}, status_code=503)


@router.get("/v1/models")
def models(_: Key) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "rag"}]}


@router.post("/v1/ask")
async def ask(body: AskBody, request: Request, key: Key) -> dict[str, Any]:
    """The full Answer (text with [n] markers, citations, contexts, timings) as JSON."""
    record(request, question=body.question)
    check_question(request, body.question, body, [text for turn in body.history for text in turn])
    answer = await final_answer(request, answer_items(request, body.question, body.history, key, body, body.verify))
    audit_answer(request, answer)
    return answer.to_dict()


@router.post("/v1/retrieve")
def retrieve(body: RetrieveBody, request: Request, key: Key) -> list[dict[str, Any]]:
    """The top-k hits among the documents of the key's tenants, best first."""
    record(request, question=body.query)
    check_question(request, body.query, body)
    hits = state(request).rag.retrieve(body.query, k=body.k, mode=body.mode, filters=body.filters, tenants=key.scope)
    record(request, sources=[h.chunk.source for h in hits])
    return [h.to_dict() for h in hits]

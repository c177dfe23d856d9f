"""`rag serve`: the HTTP face of the Python API: OpenAI-compatible chat, native routes, uploads, the web page."""

import asyncio
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ingest.config import ConfigError
from ingest.errors import IndexLockedError, IngestError
from ingest.pipeline import ingest_paths
from rag.access import AccessError, AccessStore, ApiKey, RateLimiter, RequestGuard, check_tenant
from rag.api import RAG
from rag.errors import RagError
from rag.http_schema import (
    _UNSAFE,
    MODEL_ID,
    AskBody,
    ChatBody,
    Job,
    RetrieveBody,
    _Body,
    _Busy,
    _error,
    _extras,
    _save,
    conversation,
    safe_name,
)
from rag.records import Answer
from rag.retrieve import parse_filters

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
UPLOADS = "uploads"  # inside the index directory; one folder per tenant ("_all" = no tenant)
_HEADERS = {"content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                                      "base-uri 'none'; form-action 'self'",
            "x-content-type-options": "nosniff", "referrer-policy": "no-referrer"}


def create_app(rag: RAG, access: AccessStore) -> FastAPI:
    """The FastAPI app over an open RAG; `access` holds the keys and receives the audit rows."""
    cfg = rag.config.server
    limiter = RateLimiter(cfg.rate_limit_per_minute)
    # Local and extractive answers are CPU-bound: more threads than cores only thrash; a remote LLM waits on I/O.
    workers = 32 if rag.config.answer.llm == "openai" else max(2, os.cpu_count() or 2)
    answer_pool = ThreadPoolExecutor(workers, thread_name_prefix="rag-answer")
    ingest_pool = ThreadPoolExecutor(1, thread_name_prefix="rag-ingest")  # one writer at a time
    jobs: dict[str, Job] = {}
    uploads = rag.config.index_dir / UPLOADS

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        answer_pool.shutdown(wait=False, cancel_futures=True)
        ingest_pool.shutdown(wait=True, cancel_futures=True)
        access.flush()

    app = FastAPI(title="rag", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Grounded question answering over private documents, with citations.")

    @app.exception_handler(StarletteHTTPException)  # FastAPI's subclass and the router's own 404/405
    async def _http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        return _error(e.status_code, str(e.detail), getattr(e, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        # loc and msg only: the offending input is not echoed back
        parts = [(".".join(str(p) for p in err["loc"][1:]) or "body") + ": " + err["msg"] for err in e.errors()]
        ctype = request.headers.get("content-type", "")
        hint = "" if "json" in ctype or "multipart" in ctype else " (send JSON with Content-Type: application/json)"
        return _error(422, "invalid request: " + "; ".join(parts) + hint)

    @app.exception_handler(ConfigError)
    async def _bad_value(_: Request, e: ConfigError) -> JSONResponse:
        return _error(400, str(e))

    @app.exception_handler(Exception)
    async def _crash(_: Request, e: Exception) -> JSONResponse:
        return _error(500, "internal server error; see the server log")

    @app.exception_handler(RagError)
    async def _rag_error(_: Request, e: RagError) -> JSONResponse:
        log.error("answering failed: %s", e)
        return _error(502, "the language model backend failed; see the server log")

    def _record(request: Request, **info: Any) -> None:
        request.scope.setdefault("rag.audit", {}).update(info)

    def authed(request: Request) -> ApiKey:
        """The caller's key from `Authorization: Bearer <key>`; 401 without a valid one, 429 over the rate."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = access.authenticate(token.strip()) if scheme.lower() == "bearer" else None
        if key is None:
            raise HTTPException(401, "missing or invalid API key: send 'Authorization: Bearer <key>' "
                                     "(create one with: rag keys create)", headers={"WWW-Authenticate": "Bearer"})
        _record(request, key_id=key.id)
        wait = limiter.check(key.id)
        if wait:
            raise HTTPException(429, f"rate limit of {limiter.per_minute} requests a minute for this key reached; "
                                     f"retry in {wait:.0f}s", headers={"Retry-After": str(int(wait) + 1)})
        return key

    Key = Annotated[ApiKey, Depends(authed)]

    def admin(key: Key) -> ApiKey:
        if not key.is_admin:
            raise HTTPException(403, "this route needs an admin key")
        return key

    Admin = Annotated[ApiKey, Depends(admin)]

    def check_question(question: str, body: _Body) -> None:
        if not question.strip():
            raise HTTPException(400, "the question is empty")
        if len(question) > cfg.max_question_chars:
            raise HTTPException(400, f"the question has {len(question)} characters; the limit is "
                                     f"{cfg.max_question_chars} (server.max_question_chars)")
        parse_filters(body.filters)  # a bad filter is a 400 before any work starts

    async def answer_items(question: str, history: list[tuple[str, str]], key: ApiKey, body: _Body,
                           verify: bool | None = None) -> AsyncIterator[str | Answer]:
        """rag.stream() run by a worker thread. Raises _Busy when no worker is free within answer_timeout,
        TimeoutError when the answer takes longer than answer_timeout once started; the worker then stops
        between two deltas (a thread cannot be killed mid-call)."""
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def put(kind: str, item: Any) -> None:
            try:
                loop.call_soon_threadsafe(items.put_nowait, (kind, item))
            except RuntimeError:  # the loop is gone (shutdown)
                stop.set()

        def work() -> None:
            if stop.is_set():  # the request gave up while this waited for a worker
                return
            put("start", None)
            gen: Iterator[str | Answer] = rag.stream(question, history=history, filters=body.filters,
                                                     tenants=key.scope, k=body.k, mode=body.mode, verify=verify)
            try:
                for item in gen:
                    if stop.is_set():
                        break
                    put("item", item)
                put("end", None)
            except BaseException as e:  # handed to the request; the worker thread survives
                put("error", e)
            finally:
                gen.close()

        job = loop.run_in_executor(answer_pool, work)
        try:
            try:
                await asyncio.wait_for(items.get(), cfg.answer_timeout)
            except TimeoutError:
                raise _Busy from None
            deadline = loop.time() + cfg.answer_timeout
            while True:
                kind, item = await asyncio.wait_for(items.get(), max(0.0, deadline - loop.time()))
                if kind == "end":
                    return
                if kind == "error":
                    raise item
                yield item
        finally:
            stop.set()
            job.cancel()

    async def first_or_504(items: AsyncIterator[str | Answer]) -> str | Answer:
        try:
            return await anext(items)
        except TimeoutError:
            await items.aclose()
            raise HTTPException(504, f"no answer within {cfg.answer_timeout:g}s (server.answer_timeout)") from None
        except _Busy:
            raise HTTPException(503, f"all {workers} answer workers stayed busy for {cfg.answer_timeout:g}s; "
                                     "retry later", headers={"Retry-After": "5"}) from None

    async def final_answer(items: AsyncIterator[str | Answer]) -> Answer:
        item = await first_or_504(items)
        try:
            while not isinstance(item, Answer):
                item = await first_or_504(items)
        finally:
            await items.aclose()
        return item

    def audit_answer(request: Request, a: Answer) -> None:
        _record(request, refused=a.refused, sources=[c.source for c in a.citations])

    # --- routes ---------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models(_: Key) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "rag"}]}

    @app.post("/v1/ask")
    async def ask(body: AskBody, request: Request, key: Key) -> dict[str, Any]:
        """The full Answer (text with [n] markers, citations, contexts, timings) as JSON."""
        _record(request, question=body.question)
        check_question(body.question, body)
        answer = await final_answer(answer_items(body.question, body.history, key, body, body.verify))
        audit_answer(request, answer)
        return answer.to_dict()

    @app.post("/v1/retrieve")
    def retrieve(body: RetrieveBody, request: Request, key: Key) -> list[dict[str, Any]]:
        """The top-k hits among the documents of the key's tenants, best first."""
        _record(request, question=body.query)
        check_question(body.query, body)
        hits = rag.retrieve(body.query, k=body.k, mode=body.mode, filters=body.filters, tenants=key.scope)
        _record(request, sources=[h.chunk.source for h in hits])
        return [h.to_dict() for h in hits]

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(body: ChatBody, request: Request, key: Key) -> Any:
        """OpenAI-compatible chat; the answer cites [n] and the extra `citations` field lists the passages."""
        if body.model not in (MODEL_ID, ""):
            raise HTTPException(404, f"model {body.model!r} does not exist; available: {MODEL_ID}")
        question, history = conversation(body.messages)
        _record(request, question=question)
        check_question(question, body)
        items = answer_items(question, history, key, body)
        cid, created = "chatcmpl-" + secrets.token_hex(12), int(time.time())
        if not body.stream:
            a = await final_answer(items)
            audit_answer(request, a)
            return {"id": cid, "object": "chat.completion", "created": created, "model": MODEL_ID,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": a.text},
                                 "finish_reason": "stop", "logprobs": None}],
                    "usage": a.usage.to_dict(), **_extras(a)}
        first = await first_or_504(items)

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            data = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
            return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

        async def events() -> AsyncIterator[str]:
            yield chunk({"role": "assistant", "content": ""})
            streamed: list[str] = []
            item = first
            try:
                while not isinstance(item, Answer):
                    streamed.append(item)
                    yield chunk({"content": item})
                    item = await anext(items)
            except Exception as e:  # a timeout or a failure mid-stream: the status line is sent already
                timeout = isinstance(e, TimeoutError)
                if not timeout:
                    log.exception("streaming an answer failed")
                _record(request, status=504 if timeout else 500)
                msg = f"no answer within {cfg.answer_timeout:g}s" if timeout else "answering failed; see the server log"
                yield f"data: {json.dumps({'error': {'message': msg, 'type': 'server_error'}})}\n\n"
                return
            finally:
                await items.aclose()
            audit_answer(request, item)
            if item.refused and "".join(streamed).strip() != item.text:
                yield chunk({"content": ("\n\n" if streamed else "") + item.text})
            yield chunk({}, "stop", usage=item.usage.to_dict(), **_extras(item))
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

    # --- documents (admin) ----------------------------------------------------------------------
    def run_job(job: Job, paths: list[Path], tags: tuple[str, ...]) -> None:
        job.status = "running"
        taken = [p.name for p in paths if access.document_tenant(p.name) not in ((False, None), (True, job.tenant))]
        try:
            if taken:  # another upload took the name since this one was accepted
                raise IngestError(f"a document named {', '.join(taken)} now exists outside this tenant")
            rep = ingest_paths(paths, rag.config.index_dir, rag.config.ingest, tenant=job.tenant, tags=tags,
                               embedder=rag.embedder)
            job.report = {k: v for k, v in rep.summary().items() if k not in ("index", "unchanged_files")}
            job.status = "failed" if rep.failed and not (rep.added or rep.updated) else "done"
        except Exception as e:  # reported through the job; the server keeps serving
            log.exception("ingest job %s failed", job.id)
            job.status, job.error = "failed", str(e) if isinstance(e, IngestError | RagError) else "internal error"
        job.finished = time.time()

    @app.post("/v1/documents", status_code=202)
    async def upload(request: Request, files: Annotated[list[UploadFile], File(description="files to ingest")],
                     key: Admin, tenant: Annotated[str | None, Form()] = None,
                     tags: Annotated[list[str] | None, Form()] = None) -> dict[str, Any]:
        """Save the files and ingest them in the background: 202 with a job to poll."""
        try:
            tenant = check_tenant(tenant) if tenant else None
        except AccessError as e:
            raise HTTPException(400, str(e)) from None
        if not key.may_use(tenant):
            raise HTTPException(403, "this key may not add documents " +
                                (f"to tenant {tenant!r}" if tenant else "without a tenant (give the tenant field)"))
        names = [safe_name(f.filename or "") for f in files]
        exts = rag.config.ingest.extensions
        for n in names:
            if not n.lower().endswith(exts):
                raise HTTPException(400, f"{n}: unsupported file type; supported: {', '.join(exts)}")
        if len(set(names)) != len(names):
            raise HTTPException(400, "two uploaded files have the same name")
        for n in names:
            exists, owner = await run_in_threadpool(access.document_tenant, n)
            if exists and owner != tenant:
                raise HTTPException(409, f"a document named {n!r} already exists outside this tenant; rename the file")
        folder = uploads / (tenant or "_all")
        paths = [await run_in_threadpool(_save, f, folder / n) for f, n in zip(files, names, strict=True)]
        job = Job("job_" + secrets.token_hex(8), tenant, names)
        jobs[job.id] = job
        _record(request, sources=names)
        ingest_pool.submit(run_job, job, paths, tuple(tags or ()))
        return job.to_dict()

    @app.get("/v1/documents/jobs/{job_id}")
    def job_status(job_id: str, key: Admin) -> dict[str, Any]:
        job = jobs.get(job_id)
        if job is None or not key.may_use(job.tenant):
            raise HTTPException(404, f"no ingest job {job_id!r}")
        return job.to_dict()

    @app.delete("/v1/documents/{source:path}")
    async def delete(source: str, request: Request, key: Admin) -> dict[str, Any]:
        """Remove a document (by its source name) and its chunks from the index."""
        _record(request, sources=[source])
        exists, tenant = await run_in_threadpool(access.document_tenant, source)
        if not exists or not key.may_use(tenant):
            raise HTTPException(404, f"no document {source!r}")
        run = partial(ingest_paths, [], rag.config.index_dir, rag.config.ingest, remove=[source], embedder=rag.embedder)
        try:
            rep = await asyncio.get_running_loop().run_in_executor(ingest_pool, run)
        except IndexLockedError as e:
            raise HTTPException(409, str(e)) from None
        if _UNSAFE.sub("_", source) == source:  # a plain file name: the upload of it (if any) goes too
            (uploads / (tenant or "_all") / source).unlink(missing_ok=True)
        return {"removed": rep.removed, "documents_total": rep.documents_total}

    app.add_middleware(RequestGuard, max_bytes=cfg.max_request_bytes, access=access, headers=_HEADERS,
                       error=_error)
    return app


def serve(config: Any, host: str | None = None, port: int | None = None) -> None:
    """Open the index and serve it until interrupted (blocking)."""
    import uvicorn

    from rag.api import open_pipeline

    access = AccessStore(config.index_dir)  # creates an empty index store when there is none yet
    rag = open_pipeline(config=config)
    rag.llm  # noqa: B018 - load the LLM now, not on the first question
    try:
        uvicorn.run(create_app(rag, access), host=host or config.server.host, port=port or config.server.port,
                    log_level="info", timeout_graceful_shutdown=5)
    finally:
        rag.close()
        access.close()

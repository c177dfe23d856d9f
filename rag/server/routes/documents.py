"""Admin routes: upload documents (ingested in the background, one writer at a time), poll jobs, delete."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from functools import partial
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from starlette.concurrency import run_in_threadpool

from ingest.errors import IndexLockedError, IngestError
from rag.access import AccessError, ApiKey, check_tenant
from rag.errors import RagError
from rag.server.deps import Admin
from rag.server.schemas import UNSAFE_NAME, Job, private_dir, safe_name, save_upload
from rag.server.state import ServerState, record, state

log = logging.getLogger(__name__)
router = APIRouter()
JOB_LOCK_WAIT_S = 600.0  # how long an upload job waits for another writer of the index


def _tenant_for(key: ApiKey, tenant: str | None, action: str) -> str | None:
    """The tenant a document route acts on: the one given (checked against the key), else the key's only one."""
    if tenant is not None:
        try:
            tenant = check_tenant(tenant)
        except AccessError as e:
            raise HTTPException(400, str(e)) from None
    elif key.scope is not None and len(key.scope) == 1:
        tenant = key.scope[0]
    if not key.may_use(tenant):
        raise HTTPException(403, f"this key may not {action} " +
                            (f"documents of tenant {tenant!r}" if tenant else "documents without a tenant (give tenant)"))
    return tenant


def _run_job(st: ServerState, job: Job, paths: list[Path], tags: tuple[str, ...]) -> None:
    job.status = "running"
    st.jobs.update(job)
    try:
        # Another replica (postgres backend) or a CLI ingest may be writing: wait for it rather than fail.
        rep = st.rag.ingest(paths, tenant=job.tenant, tags=tags, lock_timeout=JOB_LOCK_WAIT_S)
        job.report = {k: v for k, v in rep.summary().items() if k not in ("index", "unchanged_files")}
        job.status = "failed" if rep.failed and not (rep.added or rep.updated) else "done"
        failed = {f.source for f in rep.failed}
    except Exception as e:  # reported through the job; the server keeps serving
        log.exception("ingest job %s failed", job.id)
        job.status, job.error = "failed", str(e) if isinstance(e, IngestError | RagError) else "internal error"
        failed = {p.name for p in paths}
    for p in paths:  # a file that could not be ingested is not kept: it could be neither served nor deleted
        if p.name in failed:
            p.unlink(missing_ok=True)
    job.finished = time.time()
    st.jobs.update(job)


@router.post("/v1/documents", status_code=202)
async def upload(request: Request, files: Annotated[list[UploadFile], File(description="files to ingest")],
                 key: Admin, tenant: Annotated[str | None, Form()] = None,
                 tags: Annotated[list[str] | None, Form()] = None) -> dict[str, Any]:
    """Save the files and ingest them in the background: 202 with a job to poll. A file named like an existing
    document of the same tenant replaces it; other tenants' documents are never touched."""
    st = state(request)
    tenant = _tenant_for(key, tenant, "add")
    names = [safe_name(f.filename or "") for f in files]
    exts = st.rag.config.ingest.extensions
    for n in names:
        if not n.lower().endswith(exts):
            raise HTTPException(400, f"{n}: unsupported file type; supported: {', '.join(exts)}")
    if len(set(names)) != len(names):
        raise HTTPException(400, "two uploaded files have the same name")
    folder = private_dir(st.uploads) / (tenant or "_all")
    paths = [await run_in_threadpool(save_upload, f, folder / n) for f, n in zip(files, names, strict=True)]
    job = Job("job_" + secrets.token_hex(8), tenant, names)
    await run_in_threadpool(st.jobs.add, job)
    record(request, sources=names)
    st.ingest_pool.submit(_run_job, st, job, paths, tuple(tags or ()))
    return job.to_dict()


@router.get("/v1/documents/jobs/{job_id}")
def job_status(job_id: str, request: Request, key: Admin) -> dict[str, Any]:  # sync: may read PostgreSQL
    job = state(request).jobs.get(job_id)
    if job is None or not key.may_use(job.tenant):
        raise HTTPException(404, f"no ingest job {job_id!r}")
    return job.to_dict()


@router.delete("/v1/documents/{source:path}")
async def delete(source: str, request: Request, key: Admin, tenant: str | None = None) -> dict[str, Any]:
    """Remove a document (by its source name, within a tenant: ?tenant=T) and its chunks from the index."""
    st = state(request)
    record(request, sources=[source])
    tenant = _tenant_for(key, tenant, "delete")
    if await run_in_threadpool(st.rag.document, source, tenant) is None:
        raise HTTPException(404, f"no document {source!r}" + (f" in tenant {tenant!r}" if tenant else ""))
    run = partial(st.rag.ingest, [], tenant=tenant, remove=[source])
    try:
        rep = await asyncio.get_running_loop().run_in_executor(st.ingest_pool, run)
    except IndexLockedError as e:
        raise HTTPException(409, str(e)) from None
    if UNSAFE_NAME.sub("_", source) == source:  # a plain file name: the upload of it (if any) goes too
        upload_file = (st.uploads / (tenant or "_all") / source).resolve()
        if upload_file.parent == (st.uploads / (tenant or "_all")).resolve():
            upload_file.unlink(missing_ok=True)
    return {"removed": rep.removed, "documents_total": rep.documents_total}

"""What the routes of one server share: the open pipeline, access control, limits, worker pools, upload jobs."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request

from rag import factory
from rag.access import AccessStore, RateLimiter
from rag.api import RAG
from rag.config import ServerConfig
from rag.server.jobs import Jobs, MemoryJobs, PgJobs, SqliteJobs

UPLOADS = "uploads"  # inside the index directory; one folder per tenant ("_all" = no tenant)


@dataclass
class ServerState:
    rag: RAG
    access: AccessStore
    limiter: RateLimiter  # requests per API key, counted across every server process of the index
    auth_failures: RateLimiter  # failed authentications per client address
    answer_pool: ThreadPoolExecutor
    ingest_pool: ThreadPoolExecutor  # one writer at a time
    workers: int
    jobs: Jobs = field(default_factory=MemoryJobs)  # upload jobs, seen by every server process of the index

    @property
    def config(self) -> ServerConfig:
        return self.rag.config.server

    @property
    def threads(self) -> int:
        """server.threads, or for 0: twice the CPUs (at least 4) on the embedded backend, whose blocking work is CPU
        (retrieval, SQLite); anyio's 40 on PostgreSQL, where the threads mostly wait on the database."""
        if self.config.threads:
            return self.config.threads
        return 40 if self.rag.config.index.backend == "postgres" else max(4, 2 * (os.cpu_count() or 2))

    @property
    def uploads(self) -> Path:
        return self.rag.config.index_dir / UPLOADS

    @classmethod
    def create(cls, rag: RAG, access: AccessStore) -> ServerState:
        cfg = rag.config.server
        # Local and extractive answers are CPU-bound: more threads than cores only thrash; a remote LLM waits on I/O.
        workers = 32 if rag.config.answer.llm == "openai" else max(2, os.cpu_count() or 2)
        shared = rag.config.index.backend == "postgres"
        return cls(rag=rag, access=access, limiter=factory.open_limiter(rag.config, cfg.rate_limit_per_minute, "key"),
                   auth_failures=factory.open_limiter(rag.config, cfg.auth_failures_per_minute, "auth"),
                   answer_pool=ThreadPoolExecutor(workers, thread_name_prefix="rag-answer"),
                   ingest_pool=ThreadPoolExecutor(1, thread_name_prefix="rag-ingest"), workers=workers,
                   jobs=PgJobs(rag.config.index.target) if shared else SqliteJobs(rag.config.index_dir))

    def shutdown(self) -> None:
        self.answer_pool.shutdown(wait=False, cancel_futures=True)
        self.ingest_pool.shutdown(wait=True, cancel_futures=True)
        self.access.flush()
        for shared in (self.limiter, self.auth_failures, self.jobs):
            close = getattr(shared, "close", None)
            if callable(close):
                close()


def state(request: Request) -> ServerState:
    return request.app.state.rag


def record(request: Request, **info: Any) -> None:
    """Facts about this request for its audit row (written by the guard when the response ends)."""
    request.scope.setdefault("rag.audit", {}).update(info)

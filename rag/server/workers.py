"""`rag serve` in one process or several: what each server process opens, and the supervisor of `--workers N`.

With server.workers > 1, uvicorn's Multiprocess supervisor starts N worker processes from an import string
(`worker_app`); they share one listening socket, made here, and receive the parent's resolved config (CLI options
included) and logging settings through environment variables. Everything the processes must agree on lives in
the index (keys and audit in its store, rate limits and upload jobs in server.sqlite or PostgreSQL).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rag.errors import RagError
from rag.server.app import create_app

if TYPE_CHECKING:
    from rag.access import AccessStore
    from rag.api import RAG
    from rag.config import Config

log = logging.getLogger(__name__)
WORKER_CONFIG_ENV = "RAG_SERVE_WORKER_CONFIG"  # the JSON of the config `rag serve` resolved, for its workers
WORKER_LOG_ENV = "RAG_SERVE_WORKER_LOG"  # "LEVEL FORMAT" of the parent's logging, for its workers
BACKLOG = 2048  # uvicorn's default


@dataclass
class Serving:
    """What one server process holds open: the pipeline (LLM loaded) and the access store."""

    rag: RAG
    access: AccessStore
    _closed: bool = field(default=False, repr=False)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.rag.close()
            finally:
                self.access.close()


def open_serving(config: Config) -> Serving:
    """Open the access store and the pipeline of `config`, loading the LLM now rather than on the first question."""
    from rag.api import open_pipeline
    from rag.factory import open_access

    access = open_access(config)  # embedded: creates an empty index store when there is none yet
    try:
        rag = open_pipeline(config=config)
    except BaseException:
        access.close()
        raise
    serving = Serving(rag, access)
    try:
        rag.llm  # noqa: B018
    except BaseException:
        serving.close()
        raise
    return serving


def uvicorn_options(config: Config, host: str | None, port: int | None) -> dict[str, Any]:
    return {"host": host or config.server.host, "port": port or config.server.port, "log_level": "info",
            "timeout_graceful_shutdown": 5,
            "log_config": None}  # uvicorn's lines go through the CLI's handlers (--log-format json: with ids)


def worker_app() -> Any:
    """The app of one worker process (uvicorn calls this factory in each). A worker that cannot open the index
    exits with uvicorn's startup-failure status, so the supervisor stops instead of restarting it forever."""
    import uvicorn.config

    from rag.config import Config, validated
    from rag.logs import configure

    level, fmt = os.environ.get(WORKER_LOG_ENV, f"{logging.WARNING} text").split()
    configure(int(level), fmt)
    try:
        config = validated(Config, json.loads(os.environ[WORKER_CONFIG_ENV]))
        serving = open_serving(config)
    except Exception as e:
        log.error("worker %d could not open the index: %s", os.getpid(), e)
        sys.exit(uvicorn.config.STARTUP_FAILURE)
    return create_app(serving.rag, serving.access, on_close=serving.close)


def serve_workers(config: Config, workers: int, options: dict[str, Any]) -> None:
    """Serve with `workers` processes until interrupted; RagError when the port cannot be had or a worker could
    not start. The parent binds and listens first (a taken port fails at once; clients queue while the workers
    load their models) and opens the index once itself, so that a bad index, model or config fails here, with the
    CLI's message, and the server file exists before the workers race to create it."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from rag.logs import settings

    sock = _listening_socket(options["host"], options["port"])
    try:
        open_serving(config).close()
        if config.index.backend != "postgres":
            from rag.access import serverdb

            serverdb.connect(config.index_dir).close()
        level, fmt = settings()
        # The [eval] table is the evaluation package's, free-form, and of no use to a server: it stays out.
        env = {WORKER_CONFIG_ENV: json.dumps(config.model_dump(mode="json", exclude={"eval"})),
               WORKER_LOG_ENV: f"{level} {fmt}"}
        before = {k: os.environ.get(k) for k in env}
        os.environ.update(env)  # spawned workers inherit the environment
        try:
            uv_config = uvicorn.Config("rag.server.workers:worker_app", factory=True, workers=workers, **options)
            log.info("serving on %s with %d worker processes", _url(options["host"], options["port"]), workers)
            supervisor = Multiprocess(uv_config, sockets=[sock])
            supervisor.run()
        finally:
            for k, v in before.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    finally:
        sock.close()
    failed = [p.pid for p in supervisor.processes if p.exitcode == uvicorn.config.STARTUP_FAILURE]
    if failed:
        raise RagError(f"server worker process(es) {failed} could not start; their errors are logged above")


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _listening_socket(host: str, port: int) -> socket.socket:
    """The TCP socket the workers share, made here rather than by uvicorn's Config.bind_socket(), which leaves
    `proto` at 0: accepted connections inherit it and asyncio then never sets TCP_NODELAY, so every keep-alive
    response waits ~40 ms for a delayed ACK (uvicorn issue #3149; measured here: 48 ms against 5 ms per request)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as e:
        sock.close()
        raise RagError(f"cannot listen on {_url(host, port)}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock

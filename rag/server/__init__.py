"""`rag serve`: the HTTP face of the Python API (OpenAI-compatible chat, native routes, uploads, a web page).

`create_app(rag, access)` builds the app over an open pipeline; `app_from_environment()` is a factory for
`uvicorn --factory` that finds the config the way the CLI does; `serve(config)` runs uvicorn until stopped, in one
process or (server.workers > 1) in several that share the port.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from rag.errors import RagError
from rag.server.app import create_app

log = logging.getLogger(__name__)
WORKER_CONFIG_ENV = "RAG_SERVE_WORKER_CONFIG"  # the JSON file of the config `rag serve` resolved, for its workers
WORKER_LOG_ENV = "RAG_SERVE_WORKER_LOG"  # "LEVEL FORMAT" of the parent's logging, for its workers


def app_from_environment() -> Any:
    """An app for `uvicorn --factory rag.server:app_from_environment` (config: $RAG_CONFIG, ./config.toml,
    the user config file, then RAG_SECTION__KEY overrides). The pipeline stays open for the process's life."""
    from rag.api import open_pipeline
    from rag.config import find_config_file, load_config
    from rag.factory import open_access

    config = load_config(find_config_file())
    access = open_access(config)
    return create_app(open_pipeline(config=config), access)


def _open(config: Any) -> tuple[Any, Any]:
    """The pipeline (its LLM loaded now, not on the first question) and the access store of `config`."""
    from rag.api import open_pipeline
    from rag.factory import open_access

    access = open_access(config)  # embedded: creates an empty index store when there is none yet
    rag = open_pipeline(config=config)
    try:
        rag.llm  # noqa: B018
    except BaseException:
        rag.close()
        access.close()
        raise
    return rag, access


def _open_app(config: Any) -> Any:
    """The app over a freshly opened pipeline and access store, which close when the app stops."""
    rag, access = _open(config)

    def close() -> None:
        rag.close()
        access.close()

    return create_app(rag, access, on_close=close)


def worker_app() -> Any:
    """The app of one worker process of `rag serve` with server.workers > 1 (uvicorn imports this in each): the
    parent's resolved config (CLI options included) and logging, from the files and variables it set."""
    from rag.config import Config, validated
    from rag.logs import configure

    level, fmt = os.environ.get(WORKER_LOG_ENV, f"{logging.WARNING} text").split()
    configure(int(level), fmt)
    config = validated(Config, json.loads(Path(os.environ[WORKER_CONFIG_ENV]).read_text(encoding="utf-8")))
    return _open_app(config)


def serve(config: Any, host: str | None = None, port: int | None = None, workers: int | None = None) -> None:
    """Open the index and serve it until interrupted (blocking). `workers` (default server.workers) processes
    share the port; each opens its own pipeline."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from rag.logs import settings

    workers = workers or config.server.workers
    options: dict[str, Any] = {"host": host or config.server.host, "port": port or config.server.port,
                               "log_level": "info", "timeout_graceful_shutdown": 5,
                               "log_config": None}  # uvicorn's lines go through the CLI's handlers (json: with ids)
    if workers == 1:
        app = _open_app(config)
        uvicorn.run(app, **options)  # the app closes the pipeline and the access store when it stops
        return
    # Several processes: uvicorn starts each from an import string, so the config goes through a private file.
    for opened in _open(config):  # a bad index, model or config fails here, with the CLI's message, not in workers
        opened.close()
    with tempfile.TemporaryDirectory(prefix="rag-serve-") as tmp:
        path = Path(tmp) / "config.json"
        path.write_text(json.dumps(config.model_dump(mode="json")), encoding="utf-8")
        os.chmod(path, 0o600)
        level, fmt = settings()
        os.environ[WORKER_CONFIG_ENV], os.environ[WORKER_LOG_ENV] = str(path), f"{level} {fmt}"
        config_ = uvicorn.Config("rag.server:worker_app", factory=True, workers=workers, **options)
        sock = _listening_socket(config_.host, config_.port)
        log.info("serving on http://%s:%d with %d worker processes", config_.host, config_.port, workers)
        try:
            Multiprocess(config_, sockets=[sock]).run()
        finally:
            sock.close()


def _listening_socket(host: str, port: int) -> socket.socket:
    """The TCP socket the workers share, made here rather than by uvicorn's Config.bind_socket(), which leaves
    `proto` at 0: accepted connections inherit it and asyncio then never sets TCP_NODELAY, so every keep-alive
    response waits ~40 ms for a delayed ACK (uvicorn issue #3149; measured here: 48 ms against 5 ms per request)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise RagError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


__all__ = ["app_from_environment", "create_app", "serve", "worker_app"]

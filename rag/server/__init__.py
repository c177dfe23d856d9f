"""`rag serve`: the HTTP face of the Python API (OpenAI-compatible chat, native routes, uploads, a web page).

`create_app(rag, access)` builds the app over an open pipeline; `app_from_environment()` is a factory for
`uvicorn --factory` that finds the config the way the CLI does; `serve(config)` runs uvicorn until stopped, in one
process or (server.workers > 1) in several that share the port (rag.server.workers).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rag.server.app import create_app

if TYPE_CHECKING:
    from rag.config import Config


def app_from_environment() -> Any:
    """An app for `uvicorn --factory rag.server:app_from_environment` (config: $RAG_CONFIG, ./config.toml,
    the user config file, then RAG_SECTION__KEY overrides). The pipeline stays open for the process's life."""
    from rag.api import open_pipeline
    from rag.config import find_config_file, load_config
    from rag.factory import open_access

    config = load_config(find_config_file())
    access = open_access(config)
    return create_app(open_pipeline(config=config), access)


def serve(config: Config, host: str | None = None, port: int | None = None, workers: int | None = None) -> None:
    """Open the index and serve it until interrupted (blocking). `workers` (default server.workers) processes
    share the port; each opens its own pipeline."""
    import uvicorn

    from rag.server.workers import open_serving, serve_workers, uvicorn_options

    workers = workers or config.server.workers
    options = uvicorn_options(config, host, port)
    if workers > 1:
        serve_workers(config, workers, options)
        return
    serving = open_serving(config)
    try:
        uvicorn.run(create_app(serving.rag, serving.access, on_close=serving.close), **options)
    finally:
        serving.close()  # also after a forced exit, which skips the app's shutdown (closing twice is harmless)


__all__ = ["app_from_environment", "create_app", "serve"]

"""`rag serve`: the HTTP face of the Python API (OpenAI-compatible chat, native routes, uploads, a web page).

`create_app(rag, access)` builds the app over an open pipeline; `app_from_environment()` is a factory for
`uvicorn --factory` that finds the config the way the CLI does; `serve(config)` runs uvicorn until stopped.
"""

from __future__ import annotations

from typing import Any

from rag.server.app import create_app


def app_from_environment() -> Any:
    """An app for `uvicorn --factory rag.server:app_from_environment` (config: $RAG_CONFIG, ./config.toml,
    the user config file, then RAG_SECTION__KEY overrides). The pipeline stays open for the process's life."""
    from rag.api import open_pipeline
    from rag.config import find_config_file, load_config
    from rag.factory import open_access

    config = load_config(find_config_file())
    access = open_access(config)
    return create_app(open_pipeline(config=config), access)


def serve(config: Any, host: str | None = None, port: int | None = None) -> None:
    """Open the index and serve it until interrupted (blocking)."""
    import uvicorn

    from rag.api import open_pipeline
    from rag.factory import open_access

    access = open_access(config)  # embedded: creates an empty index store when there is none yet
    rag = open_pipeline(config=config)
    rag.llm  # noqa: B018 - load the LLM now, not on the first question
    try:
        uvicorn.run(create_app(rag, access), host=host or config.server.host, port=port or config.server.port,
                    log_level="info", timeout_graceful_shutdown=5,
                    log_config=None)  # uvicorn's lines go through the CLI's handlers (--log-format json: with ids)
    finally:
        rag.close()
        access.close()


__all__ = ["app_from_environment", "create_app", "serve"]

"""rag serve: the HTTP server."""

from __future__ import annotations

from pathlib import Path

import click

from rag.cli.common import (
    Ctx,
    errors,
    index_option,
    llm_overrides,
)


@click.command()
@index_option
@click.option("--host", default=None, help="Address to listen on (default: server.host, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default: server.port, 8000).")
@click.option("--llm", type=click.Choice(["local", "openai", "extractive"]), default=None,
              help="LLM backend (default: answer.llm).")
@click.option("--model", default=None, help="Model name (local: bundled name or .gguf path; openai: model id).")
@click.option("--base-url", default=None, help="OpenAI-compatible server URL (implies --llm openai).")
@click.option("--workers", default=None, type=click.IntRange(1, 64),
              help="Server processes sharing the port, each with its own models (default: server.workers, 1).")
@click.pass_obj
def serve(obj: Ctx, index_dir: Path | None, host: str | None, port: int | None, llm: str | None,
          model: str | None, base_url: str | None, workers: int | None) -> None:
    """Serve the index over HTTP: OpenAI-compatible /v1/chat/completions, /v1/ask, uploads, a web page at /."""
    from rag.server import serve as run_server

    with errors():
        cfg = llm_overrides(llm, model, base_url, obj.config).with_overrides(index_dir=index_dir)
        run_server(cfg, host=host, port=port, workers=workers)



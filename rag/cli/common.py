"""What every command shares: the context holding the config, error mapping, JSON output, common options."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rag.config import Config

EXIT_OK, EXIT_FATAL, EXIT_PARTIAL = 0, 1, 2
JSON_SCHEMA_VERSION = 1  # the "schema_version" of every --json object; bumped when a shape changes incompatibly


def echo_json(obj: Any) -> None:
    """One JSON document on stdout; objects carry the output's schema version."""
    if isinstance(obj, dict) and "schema_version" not in obj:
        obj = {"schema_version": JSON_SCHEMA_VERSION, **obj}
    click.echo(json.dumps(obj, ensure_ascii=False, default=str))


class Ctx:
    """What the group's options set up for every command; the config is read on first use."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            from rag.config import find_config_file, load_config

            self._config = load_config(find_config_file(self.config_path))
        return self._config


def fail(message: str, as_json: bool = False, code: int = EXIT_FATAL) -> None:
    """End the command with an error: one line on stderr, or with --json a JSON object on stdout."""
    if as_json:
        echo_json({"error": {"message": message, "code": code}})
    else:
        click.echo(f"error: {message}", err=True)
    sys.exit(code)


@contextmanager
def errors(as_json: bool = False) -> Iterator[None]:
    """Map domain errors to one clear message and exit code 1 (JSON on stdout with --json)."""
    from ingest.config import ConfigError
    from ingest.errors import IngestError
    from rag.errors import RagError

    try:
        yield
    except (ConfigError, IngestError, RagError) as e:
        fail(str(e), as_json)
    except KeyboardInterrupt:
        fail("interrupted", as_json, 130)


def index_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--index", "index_dir", type=click.Path(path_type=Path), default=None,
                        help="Index directory (default: [index].dir of the config).")(f)


@contextmanager
def progress_bar(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   transient=True, console=None)
    tasks: dict[str, Any] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done, total=total)

    with bar:
        yield update


def llm_overrides(llm: str | None, model: str | None, base_url: str | None, cfg: Config) -> Config:
    name = llm or ("openai" if base_url else cfg.answer.llm)
    changes: dict[str, Any] = {"answer.llm": name}
    if model:
        changes["local.model" if name == "local" else "openai.model"] = model
    if base_url:
        changes["openai.base_url"] = base_url
    return cfg.with_overrides(**changes)


def print_sources(answer: Any) -> None:
    if answer.refused:
        click.echo(f"(refused: {answer.refusal_reason})", err=True)
        return
    click.echo("\nSources:")
    for c in answer.citations:
        where = c.source + (f", page {c.page}" if c.page else "") + (f", {c.section}" if c.section else "")
        click.echo(f"  [{c.block}] {where}")
        click.echo(f"      \"{' '.join(c.quote.split())[:200]}\"")


def llm_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed([
        click.option("--llm", type=click.Choice(["local", "openai", "extractive"]), default=None,
                     help="LLM backend (default: answer.llm)."),
        click.option("--model", default=None, help="Model name (local: bundled name or .gguf path; openai: model id)."),
        click.option("--base-url", default=None, help="OpenAI-compatible server URL (implies --llm openai)."),
        click.option("--filter", "filters", multiple=True, help="KEY=VALUE retrieval filter; repeatable."),
        click.option("--verify/--no-verify", default=None,
                     help="Check each sentence against the block it cites before showing it (default: answer.verify, on)."),
    ]):
        f = opt(f)
    return f



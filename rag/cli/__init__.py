"""The `rag` command: parses arguments, calls the Python API, prints. No logic of its own.

Built-in commands live in the modules of this package, one per area. Other packages contribute commands
through the `rag.commands` entry-point group (a name and a click command), the way `eval` adds `rag eval`:
this package never imports them by name.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from rag import __version__
from rag.cli.access import audit, keys
from rag.cli.answers import ask, chat
from rag.cli.common import Ctx
from rag.cli.documents import ingest, retrieve, stats
from rag.cli.migrate import migrate
from rag.cli.serve import serve

ENTRY_POINT_GROUP = "rag.commands"


class _Group(click.Group):
    """Built-in commands plus those registered under the `rag.commands` entry points (loaded when listed or used)."""

    def _plugins(self) -> dict[str, object]:
        from importlib.metadata import entry_points

        return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in self.commands}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*self.commands, *self._plugins()])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        ep = self._plugins().get(name)
        if ep is None:
            return None
        try:
            command = ep.load()  # type: ignore[attr-defined]
        except Exception as e:  # a broken plugin must not take the other commands down
            logging.getLogger(__name__).error("command %r from %s failed to load: %s", name, ep, e)
            return None
        return command if isinstance(command, click.Command) else None


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="rag")
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="config.toml to use (default: $RAG_CONFIG, ./config.toml, then the user config directory).")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Log lines as text or as one JSON object each (on stderr).")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, verbose: int, log_format: str) -> None:
    """Grounded question answering over private documents."""
    from rag.logs import configure

    configure(logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG, log_format)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    ctx.obj = Ctx(config_path)


for command in (ingest, retrieve, stats, ask, chat, serve, keys, audit, migrate):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="rag")



"""rag migrate: copy an embedded index into PostgreSQL (vectors included, nothing embedded again) and check it."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import click

from rag.cli.common import EXIT_FATAL, EXIT_OK, Ctx, echo_json, errors, progress_bar


@click.command()
@click.option("--from", "source", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="The index directory to copy.")
@click.option("--to", "to", required=True, type=click.Choice(["postgres"]),
              help="postgres: the database named by the environment variable index.dsn_env names.")
@click.option("--schema", default=None, help="PostgreSQL schema to copy into (default: index.pg_schema); must be empty.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.pass_obj
def migrate(obj: Ctx, source: Path, to: str, schema: str | None, as_json: bool) -> None:
    """Copy an embedded index into PostgreSQL with pgvector, then compare the copy with its source: counts, ids and
    hashes, a sample of vectors, and the top hits of dense retrieval. Keys and the audit log come along."""
    from rag.migrate import migrate as run

    with errors(as_json), progress_bar(not as_json and sys.stderr.isatty()) as progress:
        cfg = obj.config.with_overrides(**{"index.backend": to, "index.pg_schema": schema})
        report = run(source, cfg.index.target, hnsw_m=cfg.ingest.hnsw_m, progress=progress)  # type: ignore[arg-type]
    if as_json:
        echo_json({**asdict(report), "ok": report.ok})
    else:
        click.echo(f"copied {report.documents} documents, {report.chunks} chunks, {report.vectors} cached vectors, "
                   f"{report.keys} keys, {report.audit_rows} audit rows from {report.source} to {report.target} "
                   f"({report.seconds:.1f}s)")
        for line in report.checks:
            click.echo(f"  ok: {line}")
        for line in report.problems:
            click.echo(f"  MISMATCH: {line}", err=True)
        if report.ok:
            click.echo("the copy matches its source; to use it: [index] backend = \"postgres\" in config.toml")
    sys.exit(EXIT_OK if report.ok else EXIT_FATAL)

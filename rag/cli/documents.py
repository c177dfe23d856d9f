"""rag ingest, rag retrieve, rag stats: putting documents in and looking at what is there."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import click

from rag.cli.common import (
    EXIT_FATAL,
    EXIT_OK,
    EXIT_PARTIAL,
    Ctx,
    echo_json,
    errors,
    index_option,
    progress_bar,
)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@index_option
@click.option("--prune", is_flag=True, help="Remove documents whose files are gone.")
@click.option("--tenant", default=None, help="Tenant the documents belong to (access control).")
@click.option("--tag", "tags", multiple=True, help="Tag for the documents (repeatable).")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Parse, chunk and embed on a Ray cluster: 'local' (start one here), 'auto', HOST:PORT or "
                   "ray://HOST:PORT; this process still writes the index (ingest.executor = 'ray').")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_obj
def ingest(obj: Ctx, paths: tuple[Path, ...], index_dir: Path | None, prune: bool, tenant: str | None,
           tags: tuple[str, ...], ray_address: str | None, as_json: bool) -> None:
    """Ingest files and folders into the index (incremental; unchanged files are skipped)."""
    from rag import api

    with errors(as_json), progress_bar(not as_json and sys.stderr.isatty()) as progress:
        config = obj.config
        if ray_address is not None:
            config = config.with_overrides(**{"ingest.executor": "ray", "ingest.ray_address": ray_address})
        report = api.ingest(list(paths), index_dir, config, prune=prune, tenant=tenant, tags=tags,
                            progress=progress)
    failed = [{"source": f.source, "error": f.error} for f in report.failed]
    if as_json:
        summary = report.summary()
        summary["failed"] = failed
        summary["skipped"] = [{"source": f.source, "error": f.error} for f in report.skipped]
        summary["warnings"] = [{"source": w.source, "warning": w.error} for w in report.warnings]
        echo_json(summary)
    else:
        for f in report.failed:
            click.echo(f"failed: {f.source}: {f.error}", err=True)
        for f in report.skipped:
            click.echo(f"{f.source}: {f.error}", err=True)
        for w in report.warnings:
            click.echo(f"warning: {w.source}: {w.error}", err=True)
        if report.formats:
            click.echo("by format: " + format_counts(report.formats) + pages_line(report))
        click.echo(
            f"{len(report.added)} added, {len(report.updated)} updated, {len(report.unchanged)} unchanged, "
            f"{len(report.removed)} removed, {len(report.failed)} failed, {len(report.skipped)} skipped; "
            f"chunks +{report.chunks_added} -{report.chunks_removed} (embedded {report.chunks_embedded}), "
            f"{report.documents_total} documents / {report.chunks_total} chunks in {report.index} "
            f"({report.seconds:.1f}s)"
        )
    sys.exit(EXIT_PARTIAL if report.failed else EXIT_OK)


@click.command()
@click.argument("question")
@index_option
@click.option("--k", default=None, type=int, help="Number of hits (default: retrieval.k).")
@click.option("--mode", type=click.Choice(["dense", "keyword", "hybrid"]), default=None)
@click.option("--filter", "filters", multiple=True,
              help="KEY=VALUE with KEY in source (glob), type, section (glob), tag; repeatable.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def retrieve(obj: Ctx, question: str, index_dir: Path | None, k: int | None, mode: str | None,
             filters: tuple[str, ...], as_json: bool) -> None:
    """Show the chunks retrieved for a question, best first."""
    from rag.api import open_pipeline

    with errors(as_json), open_pipeline(index_dir, obj.config) as r:
        hits = r.retrieve(question, k=k, mode=mode, filters=list(filters))
    if as_json:
        echo_json({"query": question, "hits": [h.to_dict() for h in hits]})
        return
    for i, h in enumerate(hits, start=1):
        c = h.chunk
        where = c.source + (f" p.{c.page}" if c.page else "") + (f" § {c.section}" if c.section else "")
        click.echo(f"{i:>2}. {h.score:.4f}  {where}")
        click.echo("    " + " ".join(c.text.split())[:240])


@click.command()
@index_option
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def stats(obj: Ctx, index_dir: Path | None, as_json: bool) -> None:
    """Documents, chunks, model, size on disk and a consistency check."""
    from rag import api

    with errors(as_json):
        s = api.stats(index_dir, obj.config)
    if as_json:
        d = asdict(s)
        d["index_schema_version"] = d.pop("schema_version")  # "schema_version" is the --json output's own
        echo_json({**d, "consistent": s.consistent})
    else:
        click.echo(f"index:      {s.index} (generation {s.generation}, schema {s.schema_version})")
        click.echo(f"documents:  {s.documents}")
        click.echo(f"chunks:     {s.chunks}")
        click.echo(f"model:      {s.embedding_model} (dim {s.dim}, {s.index_type} index)")
        click.echo(f"size:       {s.size_bytes / 2**20:.2f} MiB")
        click.echo("consistent: " + ("yes" if s.consistent else "NO: " + "; ".join(s.problems)))
    sys.exit(EXIT_OK if s.consistent else EXIT_FATAL)


def format_counts(formats: dict[str, dict[str, int]]) -> str:
    """"pdf 3 (1 failed), docx 2 (1 unchanged)": files per kind, ingested first."""
    out = []
    for kind, n in sorted(formats.items()):
        extra = [f"{n[k]} {k}" for k in ("unchanged", "failed") if n.get(k)]
        out.append(f"{kind} {n.get('ingested', 0)}" + (f" ({', '.join(extra)})" if extra else ""))
    return ", ".join(out)


def pages_line(report: object) -> str:
    textless = sum(len(p) for p in report.pages_without_text.values())  # type: ignore[attr-defined]
    ocr = report.ocr_pages  # type: ignore[attr-defined]
    parts = [f"{report.pages} pages"] if report.pages else []  # type: ignore[attr-defined]
    if ocr:
        parts.append(f"{ocr} read by OCR")
    if textless:
        parts.append(f"{textless} without text")
    return f"; {', '.join(parts)}" if parts else ""

"""The `rag` command: parses arguments, calls the Python API, prints. No logic of its own."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from ingest.config import ConfigError
from ingest.errors import IngestError
from rag.config import Config, load_config

EXIT_OK, EXIT_FATAL, EXIT_PARTIAL = 0, 1, 2


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, default=str))


class Ctx:
    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._config: Config | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config


@contextmanager
def _errors() -> Iterator[None]:
    """Map domain errors to one clear line and exit code 1."""
    try:
        yield
    except (ConfigError, IngestError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_FATAL)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as e:
        from rag.errors import RagError

        if isinstance(e, RagError):
            click.echo(f"error: {e}", err=True)
            sys.exit(EXIT_FATAL)
        raise


@click.group()
@click.option("--config", "config_path", type=click.Path(path_type=Path), default=None,
              help="config.toml to use (default: ./config.toml if present, else built-in defaults).")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, verbose: int) -> None:
    """Grounded question answering over private documents."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("faiss.loader", "sentence_transformers", "httpx", "transformers"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    ctx.obj = Ctx(config_path)


def _index_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--index", "index_dir", type=click.Path(path_type=Path), default=None,
                        help="Index directory (default: [index].dir of the config).")(f)


@contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str, int, int], None] | None]:
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


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@_index_option
@click.option("--prune", is_flag=True, help="Remove documents whose files are gone.")
@click.option("--tenant", default=None, help="Tenant the documents belong to (access control).")
@click.option("--tag", "tags", multiple=True, help="Tag for the documents (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.pass_obj
def ingest(obj: Ctx, paths: tuple[Path, ...], index_dir: Path | None, prune: bool, tenant: str | None,
           tags: tuple[str, ...], as_json: bool) -> None:
    """Ingest files and folders into the index (incremental; unchanged files are skipped)."""
    from rag import api

    with _errors(), _progress(not as_json and sys.stderr.isatty()) as progress:
        report = api.ingest(list(paths), index_dir, obj.config, prune=prune, tenant=tenant, tags=tags,
                            progress=progress)
    failed = [{"source": f.source, "error": f.error} for f in report.failed]
    if as_json:
        summary = report.summary()
        summary["failed"] = failed
        summary["skipped"] = [{"source": f.source, "error": f.error} for f in report.skipped]
        _echo_json(summary)
    else:
        for f in report.failed:
            click.echo(f"failed: {f.source}: {f.error}", err=True)
        for f in report.skipped:
            click.echo(f"{f.source}: {f.error}", err=True)
        click.echo(
            f"{len(report.added)} added, {len(report.updated)} updated, {len(report.unchanged)} unchanged, "
            f"{len(report.removed)} removed, {len(report.failed)} failed, {len(report.skipped)} skipped; "
            f"chunks +{report.chunks_added} -{report.chunks_removed} (embedded {report.chunks_embedded}), "
            f"{report.documents_total} documents / {report.chunks_total} chunks in {report.index} "
            f"({report.seconds:.1f}s)"
        )
    sys.exit(EXIT_PARTIAL if report.failed else EXIT_OK)


@cli.command()
@click.argument("question")
@_index_option
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

    with _errors(), open_pipeline(index_dir, obj.config) as r:
        hits = r.retrieve(question, k=k, mode=mode, filters=list(filters))
    if as_json:
        _echo_json([h.to_dict() for h in hits])
        return
    for i, h in enumerate(hits, start=1):
        c = h.chunk
        where = c.source + (f" p.{c.page}" if c.page else "") + (f" § {c.section}" if c.section else "")
        click.echo(f"{i:>2}. {h.score:.4f}  {where}")
        click.echo("    " + " ".join(c.text.split())[:240])


@cli.command()
@_index_option
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def stats(obj: Ctx, index_dir: Path | None, as_json: bool) -> None:
    """Documents, chunks, model, size on disk and a consistency check."""
    from rag import api

    with _errors():
        s = api.stats(index_dir, obj.config)
    if as_json:
        _echo_json({**asdict(s), "consistent": s.consistent})
    else:
        click.echo(f"index:      {s.index} (generation {s.generation}, schema {s.schema_version})")
        click.echo(f"documents:  {s.documents}")
        click.echo(f"chunks:     {s.chunks}")
        click.echo(f"model:      {s.embedding_model} (dim {s.dim}, {s.index_type} index)")
        click.echo(f"size:       {s.size_bytes / 2**20:.2f} MiB")
        click.echo("consistent: " + ("yes" if s.consistent else "NO: " + "; ".join(s.problems)))
    sys.exit(EXIT_OK if s.consistent else EXIT_FATAL)


def _llm_overrides(llm: str | None, model: str | None, base_url: str | None, cfg: Config) -> Config:
    name = llm or ("openai" if base_url else cfg.answer.llm)
    changes: dict[str, Any] = {"answer.llm": name}
    if model:
        changes["local.model" if name == "local" else "openai.model"] = model
    if base_url:
        changes["openai.base_url"] = base_url
    return cfg.with_overrides(**changes)


def _print_sources(answer: Any) -> None:
    if answer.refused:
        click.echo(f"(refused: {answer.refusal_reason})", err=True)
        return
    click.echo("\nSources:")
    for c in answer.citations:
        where = c.source + (f", page {c.page}" if c.page else "") + (f", {c.section}" if c.section else "")
        click.echo(f"  [{c.block}] {where}")
        click.echo(f"      \"{' '.join(c.quote.split())[:200]}\"")


def _llm_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed([
        click.option("--llm", type=click.Choice(["local", "openai", "extractive"]), default=None,
                     help="LLM backend (default: answer.llm)."),
        click.option("--model", default=None, help="Model name (local: bundled name or .gguf path; openai: model id)."),
        click.option("--base-url", default=None, help="OpenAI-compatible server URL (implies --llm openai)."),
        click.option("--filter", "filters", multiple=True, help="KEY=VALUE retrieval filter; repeatable."),
        click.option("--verify", is_flag=True, default=None, help="Check each sentence against its cited passages."),
    ]):
        f = opt(f)
    return f


@cli.command()
@click.argument("question")
@_index_option
@_llm_options
@click.option("--json", "as_json", is_flag=True, help="Print the Answer as one JSON object.")
@click.pass_obj
def ask(obj: Ctx, question: str, index_dir: Path | None, llm: str | None, model: str | None, base_url: str | None,
        filters: tuple[str, ...], verify: bool | None, as_json: bool) -> None:
    """Answer a question from the indexed documents, with numbered sources."""
    from rag.api import open_pipeline
    from rag.records import Answer

    with _errors():
        cfg = _llm_overrides(llm, model, base_url, obj.config)
        with open_pipeline(index_dir, cfg) as r:
            if as_json:
                _echo_json(r.ask(question, filters=list(filters), verify=verify).to_dict())
                return
            answer = None
            streamed = False
            for item in r.stream(question, filters=list(filters), verify=verify):
                if isinstance(item, Answer):
                    answer = item
                elif sys.stdout.isatty():
                    click.echo(item, nl=False)
                    streamed = True
            assert answer is not None
            if streamed:
                click.echo("\n" + "-" * 40)
            click.echo(answer.text)
            _print_sources(answer)


@cli.command()
@_index_option
@_llm_options
@click.pass_obj
def chat(obj: Ctx, index_dir: Path | None, llm: str | None, model: str | None, base_url: str | None,
         filters: tuple[str, ...], verify: bool | None) -> None:
    """An interactive session: follow-up questions use the conversation so far. Empty line or Ctrl-D ends."""
    from rag.api import open_pipeline

    history: list[tuple[str, str]] = []
    with _errors():
        cfg = _llm_overrides(llm, model, base_url, obj.config)
        with open_pipeline(index_dir, cfg) as r:
            while True:
                try:
                    question = input("you> ").strip()
                except EOFError:
                    break
                if not question:
                    break
                answer = r.ask(question, history=history, filters=list(filters), verify=verify)
                click.echo(f"rag> {answer.text}")
                _print_sources(answer)
                history.append((question, answer.text))


# --- HTTP server, API keys and audit log (rag/server.py, rag/access.py) ------------------------------
@cli.command()
@_index_option
@click.option("--host", default=None, help="Address to listen on (default: server.host, 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port (default: server.port, 8000).")
@click.option("--llm", type=click.Choice(["local", "openai", "extractive"]), default=None,
              help="LLM backend (default: answer.llm).")
@click.option("--model", default=None, help="Model name (local: bundled name or .gguf path; openai: model id).")
@click.option("--base-url", default=None, help="OpenAI-compatible server URL (implies --llm openai).")
@click.pass_obj
def serve(obj: Ctx, index_dir: Path | None, host: str | None, port: int | None, llm: str | None,
          model: str | None, base_url: str | None) -> None:
    """Serve the index over HTTP: OpenAI-compatible /v1/chat/completions, /v1/ask, uploads, a web page at /."""
    from rag.server import serve as run_server

    with _errors():
        cfg = _llm_overrides(llm, model, base_url, obj.config).with_overrides(index_dir=index_dir)
        run_server(cfg, host=host, port=port)


@cli.group()
def keys() -> None:
    """API keys of the HTTP server (stored hashed in the index)."""


@keys.command("create")
@_index_option
@click.option("--name", required=True, help="Who or what the key is for.")
@click.option("--role", type=click.Choice(["reader", "admin"]), default="reader", show_default=True,
              help="admin may also upload and delete documents.")
@click.option("--tenant", "tenants", multiple=True, required=True,
              help="Tenant whose documents the key may read (repeatable); '*' for every document.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def keys_create(obj: Ctx, index_dir: Path | None, name: str, role: str, tenants: tuple[str, ...],
                as_json: bool) -> None:
    """Create a key and print it once (only its hash is stored)."""
    from rag.access import AccessStore

    with _errors():
        store = AccessStore(index_dir or obj.config.index_dir)
        new = store.create_key(name, role, list(tenants))
        store.close()
    if as_json:
        _echo_json({**new.key.to_dict(), "key": new.token})
        return
    click.echo(f"created {new.key.id} ({new.key.role}, tenants: {', '.join(new.key.tenants)})", err=True)
    click.echo("the key is shown only now; keep it safe:", err=True)
    click.echo(new.token)


@keys.command("list")
@_index_option
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def keys_list(obj: Ctx, index_dir: Path | None, as_json: bool) -> None:
    """The keys (never their secrets), revoked ones included."""
    import time

    from rag.access import AccessStore

    with _errors():
        store = AccessStore(index_dir or obj.config.index_dir)
        found = store.list_keys()
        store.close()
    if as_json:
        _echo_json([k.to_dict() for k in found])
        return
    for k in found:
        state = "revoked " + time.strftime("%Y-%m-%d %H:%M", time.localtime(k.revoked_at)) if k.revoked_at else "active"
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(k.created_at))
        click.echo(f"{k.id}  {k.role:<6}  {','.join(k.tenants):<20}  {created}  {state}  {k.name}")


@keys.command("revoke")
@click.argument("key_id")
@_index_option
@click.pass_obj
def keys_revoke(obj: Ctx, key_id: str, index_dir: Path | None) -> None:
    """Revoke a key at once (running servers refuse it from the next request)."""
    from rag.access import AccessStore

    with _errors():
        store = AccessStore(index_dir or obj.config.index_dir)
        done = store.revoke(key_id)
        store.close()
    if not done:
        click.echo(f"error: no active key {key_id!r} (see: rag keys list)", err=True)
        sys.exit(EXIT_FATAL)
    click.echo(f"revoked {key_id}")


@cli.command()
@_index_option
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1), help="Rows to show.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array, newest first.")
@click.pass_obj
def audit(obj: Ctx, index_dir: Path | None, limit: int, as_json: bool) -> None:
    """The server's audit log: who asked what, the sources cited, refusals and status, newest first."""
    import time

    from rag.access import AccessStore

    with _errors():
        store = AccessStore(index_dir or obj.config.index_dir)
        rows = store.audit(limit)
        store.close()
    if as_json:
        _echo_json([r.to_dict() for r in rows])
        return
    for r in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.at))
        refused = " refused" if r.refused else ""
        click.echo(f"{when}  {r.status}  {r.key_id or '-':<16}  {r.route}{refused}")
        if r.question:
            click.echo(f"    question: {' '.join(r.question.split())[:200]}")
        if r.sources:
            click.echo(f"    sources:  {', '.join(r.sources)}")


# --- evaluation harness (eval/: runs, metrics, reports) ------------------------------------------------
@cli.command("eval")
@click.argument("questions", required=False, type=click.Path(path_type=Path))
@_index_option
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Run directory (default: eval.out). Re-running into it resumes where it stopped.")
@click.option("--llm", type=click.Choice(["local", "openai", "extractive"]), default=None,
              help="LLM backend that answers (default: answer.llm).")
@click.option("--judge", type=click.Choice(["local", "openai"]), default=None,
              help="LLM judge for the claim checks, with the local signals (default: eval.judge; none).")
@click.option("--ragas", is_flag=True, help="Also score with ragas (judge: llm.openai when --llm/--judge is "
              "openai, else the local model served on loopback).")
@click.option("--detector", "measure_detector", is_flag=True,
              help="Also score the claim checker on a labelled faithful/unfaithful set built from the questions.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the first N questions.")
@click.option("--compare", "compare_runs", nargs=2, type=click.Path(path_type=Path), default=None,
              metavar="RUN_A RUN_B", help="Compare two run directories instead of running.")
@click.option("--export-finetune", "export_file", type=click.Path(path_type=Path), default=None,
              help="Write a run's correct and faithful answers as chat JSONL to this file instead of running.")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), default=None,
              help="Run directory for --export-finetune (default: --out, else eval.out).")
@click.option("--json", "as_json", is_flag=True, help="Print metrics (or the comparison) as one JSON object.")
@click.pass_obj
def eval_command(obj: Ctx, questions: Path | None, index_dir: Path | None, out_dir: Path | None, llm: str | None,
                 judge: str | None, ragas: bool, measure_detector: bool, limit: int | None,
                 compare_runs: tuple[Path, Path] | None, export_file: Path | None, run_dir: Path | None,
                 as_json: bool) -> None:
    """Evaluate answers to a question set (JSONL): retrieval, keywords, faithfulness, refusal; writes a report.

    Reference sources in the questions are relative to the ingested docs folder (as `rag ingest DIR` names them).
    """
    from eval.api import evaluate
    from eval.errors import EvalError
    from eval.runner import compare, export_finetune

    try:
        with _errors():
            if compare_runs:
                diff = compare(*compare_runs)
                if as_json:
                    _echo_json(diff)
                    return
                for key, d in diff["metrics"].items():
                    if d["delta"]:
                        click.echo(f"{key:<40} {d['a']!s:>10} -> {d['b']!s:<10} ({d['delta']:+.4f})")
                click.echo(f"{len(diff['changed'])} question(s) changed")
                for c in diff["changed"]:
                    changes = ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in c["changes"].items())
                    click.echo(f"  {c['id']}: {changes}")
                return
            if export_file:
                n = export_finetune(run_dir or out_dir or obj.config.eval.out, export_file)
                click.echo(json.dumps({"written": n, "file": str(export_file)}) if as_json
                           else f"wrote {n} question/answer pair(s) to {export_file}")
                return
            if questions is None:
                raise click.UsageError("give a QUESTIONS.jsonl file (or --compare RUN_A RUN_B, or --export-finetune)")
            if ragas:
                logging.getLogger("instructor").setLevel(logging.CRITICAL)  # ragas's judge retries log per failure
            with _progress(not as_json and sys.stderr.isatty()) as progress:
                summary = evaluate(questions, config=obj.config, index_dir=index_dir, out_dir=out_dir, llm=llm,
                                   judge=judge, ragas=ragas, measure_detector=measure_detector, limit=limit,
                                   progress=progress)
    except EvalError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_FATAL)
    m = summary.metrics
    if as_json:
        _echo_json(m)
    else:
        r, a, ref = m["retrieval"], m["answer"], m["refusal"]

        def f(v: Any) -> str:
            return "-" if v is None else f"{v:.3f}"

        click.echo(f"{m['n']} questions ({m['counts']['errors']} failed)  model {m['config']['model']}")
        click.echo(f"retrieval  hit@1 {f(r['hit@1'])}  hit@5 {f(r['hit@5'])}  hit@10 {f(r['hit@10'])}  "
                   f"mrr@10 {f(r['mrr@10'])}  ndcg@10 {f(r['ndcg@10'])}")
        click.echo(f"answers    keyword accuracy {f(a['keyword_accuracy'])}  token F1 {f(a['token_f1'])}  "
                   f"faithfulness {f(m['faithfulness'])}  hallucination rate {f(m['hallucination_rate'])}")
        click.echo(f"refusal    unanswerable refused {f(ref['unanswerable_refusal_rate'])}  "
                   f"false refusals {f(ref['false_refusal_rate'])}")
        if "detector" in m:
            d = m["detector"]
            click.echo(f"detector   precision {f(d['precision'])}  recall {f(d['recall'])}  f1 {f(d['f1'])}")
        if "ragas" in m:
            g = m["ragas"]
            click.echo("ragas      " + "  ".join(f"{k} {f(g[k])} (NaN {g['nan'][k]}/{g['questions']})"
                                             for k in g["nan"]))
        click.echo(f"report: {summary.files['html']}")
    sys.exit(EXIT_PARTIAL if m["counts"]["errors"] else EXIT_OK)


def main() -> None:
    cli(prog_name="rag")


if __name__ == "__main__":
    main()

"""`rag eval`: contributed to the rag command through the `rag.commands` entry point (pyproject.toml), so the
rag package never imports eval."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from rag.cli.common import EXIT_FATAL, EXIT_OK, EXIT_PARTIAL, Ctx, echo_json, errors, index_option, progress_bar


@click.command("eval")
@click.argument("questions", required=False, type=click.Path(path_type=Path))
@index_option
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
    from eval.config import eval_config
    from eval.errors import EvalError
    from eval.runner import compare, export_finetune

    try:
        with errors():
            if compare_runs:
                diff = compare(*compare_runs)
                if as_json:
                    echo_json(diff)
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
                n = export_finetune(run_dir or out_dir or eval_config(obj.config).out, export_file)
                click.echo(json.dumps({"written": n, "file": str(export_file)}) if as_json
                           else f"wrote {n} question/answer pair(s) to {export_file}")
                return
            if questions is None:
                raise click.UsageError("give a QUESTIONS.jsonl file (or --compare RUN_A RUN_B, or --export-finetune)")
            if ragas:
                logging.getLogger("instructor").setLevel(logging.CRITICAL)  # ragas's judge retries log per failure
            with progress_bar(not as_json and sys.stderr.isatty()) as progress:
                summary = evaluate(questions, config=obj.config, index_dir=index_dir, out_dir=out_dir, llm=llm,
                                   judge=judge, ragas=ragas, measure_detector=measure_detector, limit=limit,
                                   progress=progress)
    except EvalError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_FATAL)
    m = summary.metrics
    if as_json:
        echo_json(m)
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



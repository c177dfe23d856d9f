"""`rag eval` and `rag verify`: contributed to the rag command through the `rag.commands` entry points
(pyproject.toml), so the rag package never imports eval. The only module of eval that prints."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from rag.cli.common import EXIT_FATAL, EXIT_OK, EXIT_PARTIAL, Ctx, echo_json, errors, index_option, progress_bar


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}"


def _echo_detection(report: Any) -> None:
    """The detection table of a DetectionReport (rag verify, rag eval --labelled)."""
    click.echo(f"{report.items} answers ({report.unsupported_answers} with an unsupported sentence), "
               f"{report.sentences} sentences ({report.unsupported_sentences} unsupported)"
               + (f", split {report.split}" if report.split else "") + "; positive class: unsupported")
    if report.checker:
        click.echo(f"checker: {report.checker}")
    click.echo(f"{'':26}{'sentence level':^23}  {'answer level':^23}")
    click.echo(f"{'detector':<26}" + f"{'P':>7} {'R':>7} {'F1':>7}  " * 2 + "failures")
    for name, s in report.detectors.items():
        cells = "".join(f"{_f(p.precision):>7} {_f(p.recall):>7} {_f(p.f1):>7}  " for p in (s.sentence, s.answer))
        click.echo(f"{name:<26}{cells}{s.failures}")
    click.echo("dropping the flagged sentences (human labels): hallucinated answers / answers still given")
    for name, s in report.detectors.items():
        f = s.filtering
        click.echo(f"{name:<26}{f.hallucinated_before}/{f.given_before} ({_f(f.to_dict()['rate_before'])}) -> "
                   f"{f.hallucinated_after}/{f.given_after} ({_f(f.to_dict()['rate_after'])}); "
                   f"correct answers lost {f.correct_lost}")


def _echo_metrics(m: Any, files: dict[str, Path]) -> None:
    r, a, h, ref = m.retrieval, m.answer, m.hallucination, m.refusal
    click.echo(f"{m.counts.questions} questions ({m.counts.errors} errored, counted as failures)  "
               f"model {m.config.get('model', '')}")
    if r.applicable:
        click.echo(f"retrieval  hit@1 {_f(r.hit_at_1)}  hit@5 {_f(r.hit_at_5)}  hit@10 {_f(r.hit_at_10)}  "
                   f"mrr@10 {_f(r.mrr_at_10)}  ndcg@10 {_f(r.ndcg_at_10)}")
    else:
        click.echo(f"retrieval  not applicable: {r.reason}")
    click.echo(f"answers    keyword accuracy {_f(a.keyword_accuracy)}  token F1 {_f(a.token_f1)}  "
               f"faithfulness {_f(a.faithfulness)} ({h.unchecked_answers} unchecked)")
    click.echo(f"hallucination rate {_f(h.rate)} ({h.hallucinated_answers}/{h.answers} answers; answerable "
               f"{_f(h.unsupported_answer_rate)}, unanswerable answered {_f(h.unanswerable_answered_rate)})")
    click.echo(f"refusal    unanswerable refused {_f(ref.unanswerable_refusal_rate)}  "
               f"false refusals {_f(ref.false_refusal_rate)}")
    if ref.curve is not None and ref.curve.configured is not None:
        c = ref.curve.configured
        click.echo(f"refusal curve ({ref.curve.score}, {len(ref.curve.points)} points): at the configured threshold "
                   f"{c.threshold:g}, unanswerable refused {_f(c.unanswerable_refused)}, "
                   f"answerable refused {_f(c.answerable_refused)}")
    if m.synthetic_detector is not None:
        d = m.synthetic_detector
        click.echo(f"synthetic detector set (built with the checker's own rules, not real answers)  precision "
                   f"{_f(d.precision)}  recall {_f(d.recall)}  f1 {_f(d.f1)}")
    if m.labelled_detector is not None:
        click.echo(f"labelled answers ({m.labelled_detector.file}):")
        _echo_detection(m.labelled_detector)
    if m.ragas is not None:
        g = m.ragas
        click.echo("ragas      " + "  ".join(f"{k} {_f(g[k])} (NaN {g['nan'][k]}/{g['questions']})" for k in g["nan"]))
    click.echo(f"report: {files['html']}")


@click.command("eval")
@click.argument("questions", required=False, type=click.Path(path_type=Path))
@index_option
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Run directory (default: eval.out). Re-running into it resumes where it stopped.")
@click.option("--llm", type=click.Choice(["local", "openai", "extractive"]), default=None,
              help="LLM backend that answers (default: answer.llm).")
@click.option("--judge", type=click.Choice(["local", "openai"]), default=None,
              help="LLM that judges the claims (default: eval.judge, else the answering model, as when answering).")
@click.option("--ragas", is_flag=True, help="Also score with ragas (judge: llm.openai when --llm/--judge is "
              "openai, else the local model served on loopback).")
@click.option("--detector", "measure_detector", is_flag=True,
              help="Also score the claim checker on the SYNTHETIC faithful/unfaithful set built from the questions "
                   "with the checker's own rules (an upper bound, not real answers; see --labelled).")
@click.option("--labelled", "labelled", type=click.Path(path_type=Path), default=None,
              help="Also score the claim checker and the baselines on this labelled set of real answers "
                   "(the `rag verify` format).")
@click.option("--labelled-split", default=None, help="Only the labelled items with this `split` (e.g. dev, test).")
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
                 judge: str | None, ragas: bool, measure_detector: bool, labelled: Path | None,
                 labelled_split: str | None, limit: int | None, compare_runs: tuple[Path, Path] | None,
                 export_file: Path | None, run_dir: Path | None, as_json: bool) -> None:
    """Evaluate answers to a question set (JSONL): retrieval, keywords, faithfulness, refusal; writes a report.

    Reference sources in the questions are relative to the ingested docs folder (as `rag ingest DIR` names them).
    """
    from eval.api import evaluate
    from eval.compare import compare
    from eval.config import eval_config
    from eval.errors import EvalError
    from eval.finetune import export_finetune

    try:
        with errors():
            if compare_runs:
                diff = compare(*compare_runs)
                if as_json:
                    echo_json(diff.to_dict())
                    return
                for key, d in diff.metrics.items():
                    if d.delta:
                        click.echo(f"{key:<40} {d.a!s:>10} -> {d.b!s:<10} ({d.delta:+.4f})")
                click.echo(f"{len(diff.changed)} question(s) changed")
                for c in diff.changed:
                    changes = ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in c.changes.items())
                    click.echo(f"  {c.id}: {changes}")
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
                                   judge=judge, ragas=ragas, measure_detector=measure_detector, labelled=labelled,
                                   labelled_split=labelled_split, limit=limit, progress=progress)
    except EvalError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_FATAL)
    m = summary.metrics
    if as_json:
        echo_json(m.to_dict())
    else:
        _echo_metrics(m, summary.files)
    sys.exit(EXIT_PARTIAL if m.counts.errors else EXIT_OK)


@click.command("verify")
@click.argument("items", type=click.Path(path_type=Path))
@click.option("--split", default=None, help="Only the items whose `split` key has this value (dev or test).")
@click.option("--checker", type=click.Choice(["configured", "none"]), default="configured", show_default=True,
              help="configured: the claim checker rag answers with (rag.factory.build_checker); none: baselines only.")
@click.option("--llm", type=click.Choice(["local", "openai", "extractive"]), default=None,
              help="The LLM backend the checker uses as its judge, as when answering (default: answer.llm).")
@click.option("--json", "as_json", is_flag=True, help="Print every figure and count as one JSON object.")
@click.pass_obj
def verify_command(obj: Ctx, items: Path, split: str | None, checker: str, llm: str | None, as_json: bool) -> None:
    """Score unsupported-sentence detection on labelled answers (JSONL; format in eval/README.md).

    Precision, recall and F1 at sentence and at answer level for the claim checker and three baselines
    (flag-everything, not-a-verbatim-substring, the ten-line rule), all on the same items.
    """
    from eval.api import verify_labelled
    from eval.errors import EvalError

    try:
        with errors(as_json), progress_bar(not as_json and sys.stderr.isatty()) as progress:
            report = verify_labelled(items, config=obj.config if checker == "configured" else None, split=split,
                                     checker=checker, llm=llm, progress=progress)
    except EvalError as e:
        if as_json:
            echo_json({"error": {"message": str(e), "code": EXIT_FATAL}})
        else:
            click.echo(f"error: {e}", err=True)
        sys.exit(EXIT_FATAL)
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(f"{report.file}: ", nl=False)
        _echo_detection(report)


def detector_main(argv: list[str] | None = None) -> int:
    """`python -m eval.detector tune|score --dev Q=INDEX ... --test Q=INDEX ... [--out DIR]`: the SYNTHETIC set."""
    import argparse

    from eval.detector import tune_and_report

    ap = argparse.ArgumentParser(prog="python -m eval.detector",
                                 description="Tune / score the claim checker on the SYNTHETIC detector set (built "
                                             "with the checker's own rules; real answers: rag verify).")
    ap.add_argument("command", choices=["tune", "score"])
    ap.add_argument("--dev", nargs="*", default=[], help="QUESTIONS.jsonl=INDEX_DIR pairs to tune on")
    ap.add_argument("--test", nargs="*", default=[], help="QUESTIONS.jsonl=INDEX_DIR pairs to report on")
    ap.add_argument("--out", type=Path, default=None, help="write the labelled items and scores here")
    args = ap.parse_args(argv)
    try:
        report = tune_and_report(args.command, args.dev, args.test, args.out)
    except ValueError as e:
        click.echo(f"error: {e}", err=True)
        return EXIT_FATAL
    click.echo(json.dumps(report, indent=2))
    return EXIT_OK

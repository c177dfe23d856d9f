"""Run reports: metrics.json, report.md and a self-contained report.html (inline SVG, no external resources)."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.curve import RULE, RefusalCurve
from eval.detection import DetectionReport
from eval.metrics import Metrics
from eval.plots import plots
from eval.results import EvalResult
from eval.scores import question_scores

MAX_CURVE_ROWS = 15  # report.md shows at most this many points of the refusal curve (metrics.json has all)


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _metric_rows(m: Metrics) -> list[tuple[str, Any]]:
    r, a, h, ref = m.retrieval, m.answer, m.hallucination, m.refusal
    rows: list[tuple[str, Any]] = [("questions", m.counts.questions), ("errored questions (counted as failures)",
                                                                       m.counts.errors)]
    if r.applicable:
        rows += [("retrieval hit@1", r.hit_at_1), ("retrieval hit@5", r.hit_at_5), ("retrieval hit@10", r.hit_at_10),
                 ("retrieval mrr@10", r.mrr_at_10), ("retrieval ndcg@10", r.ndcg_at_10)]
    else:
        rows.append(("retrieval", f"not applicable: {r.reason}"))
    rows += [("keyword accuracy", a.keyword_accuracy), ("token F1", a.token_f1),
             ("faithfulness (checked answers)", a.faithfulness),
             ("unchecked answers (no claim checked; counted as hallucinated)", h.unchecked_answers),
             ("hallucination rate", h.rate),
             ("  answerable answers with an unsupported or unchecked claim", h.unsupported_answer_rate),
             ("  unanswerable questions answered", h.unanswerable_answered_rate),
             ("unanswerable refusal rate", ref.unanswerable_refusal_rate), ("false refusal rate", ref.false_refusal_rate)]
    if m.synthetic_detector is not None:
        d = m.synthetic_detector
        rows += [("synthetic detector set (built with the checker's own rules; not real answers): "
                  "precision / recall / F1", f"{d.precision:.3f} / {d.recall:.3f} / {d.f1:.3f}")]
    if m.labelled_detector is not None:
        rows += [(f"labelled answers ({m.labelled_detector.file}): {name}, sentence P / R / F1 | answer P / R / F1",
                  _prf_cell(s.sentence) + " | " + _prf_cell(s.answer)) for name, s in m.labelled_detector.detectors.items()]
    ragas = m.ragas or {}
    for k in ("faithfulness", "response_relevancy", "context_precision", "context_recall"):
        if k in ragas:
            rows.append((f"ragas {k} (scored {ragas['scored'][k]}, NaN {ragas['nan'][k]})", ragas[k]))
    return rows


def _prf_cell(p: Any) -> str:
    return " / ".join(_fmt(v) for v in (p.precision, p.recall, p.f1))


def curve_rows(curve: RefusalCurve, limit: int = MAX_CURVE_ROWS) -> list[tuple[str, float | None, float | None]]:
    """(threshold label, unanswerable refused, answerable refused): evenly spaced points, the configured one marked."""
    pts = list(curve.points)
    if len(pts) > limit:
        step = (len(pts) - 1) / (limit - 1)
        pts = [pts[round(i * step)] for i in range(limit)]
    rows = [(p.threshold, f"{p.threshold:.6g}", p.unanswerable_refused, p.answerable_refused) for p in pts]
    if curve.configured is not None:
        c = curve.configured
        rows.append((c.threshold, f"**{c.threshold:.6g} (configured)**", c.unanswerable_refused, c.answerable_refused))
    return [(label, u, a) for _, label, u, a in sorted(rows, key=lambda row: row[0])]


def failed_claims(r: EvalResult) -> list[str]:
    return [f"{v.claim} — {v.reason}" for v in r.verdicts if not v.supported]


def _problem(r: EvalResult) -> str:
    if r.error:
        return "error: " + r.error
    s = question_scores(r)
    q = r.question
    probs = []
    if not q.answerable:
        return "" if r.refused else "answered an unanswerable question"
    if r.refused:
        probs.append(f"refused ({r.refusal_reason})")
    elif not s.keywords_ok:
        probs.append("missing answer keywords " + ", ".join(q.answer_keywords))
    if s.unsupported_claims:
        probs.append(f"{s.unsupported_claims} unsupported claim(s)")
    if s.unchecked:
        probs.append("no claim checked" + (f" ({r.check_error})" if r.check_error else ""))
    if s.first_relevant_rank is None:
        probs.append("no relevant passage in the top 10")
    return "; ".join(probs)


# -- markdown -----------------------------------------------------------------------------------------------------

def _detection_md(d: DetectionReport) -> list[str]:
    lines = ["", f"## Claim detection on labelled answers (`{d.file}`" + (f", split {d.split}" if d.split else "") + ")",
             "", f"{d.items} answers ({d.unsupported_answers} with an unsupported sentence), {d.sentences} sentences "
             f"({d.unsupported_sentences} unsupported). Positive class: unsupported.", "",
             "| detector | sentence P | R | F1 | answer P | R | F1 | failures |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, s in d.detectors.items():
        lines.append(f"| {name} | {_fmt(s.sentence.precision)} | {_fmt(s.sentence.recall)} | {_fmt(s.sentence.f1)} | "
                     f"{_fmt(s.answer.precision)} | {_fmt(s.answer.recall)} | {_fmt(s.answer.f1)} | {s.failures} |")
    return lines


def render_markdown(metrics: Metrics, results: Sequence[EvalResult]) -> str:
    cfg = metrics.config
    lines = ["# Evaluation report", "",
             f"Questions `{cfg.get('questions', '')}` on index `{cfg.get('index', '')}`, answered by "
             f"`{cfg.get('llm', '')}` ({cfg.get('model', '')}); judge: `{cfg.get('judge') or 'local checks'}`.", "",
             "| metric | value |", "| --- | --- |"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in _metric_rows(metrics)]
    lines += ["", "## By question type", "", "| type | n | errors | keyword accuracy | token F1 | faithfulness | refused |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for t, m in metrics.by_type.items():
        lines.append(f"| {t or '(no type)'} | {m.n} | {m.errors} | {_fmt(m.keyword_accuracy)} | {_fmt(m.token_f1)} | "
                     f"{_fmt(m.faithfulness)} | {_fmt(m.refusal_rate)} |")
    curve = metrics.refusal.curve
    if curve is not None:
        lines += ["", f"## Refusal trade-off ({curve.score}; {RULE})", "",
                  f"{curve.unanswerable} unanswerable and {curve.answerable} answerable questions with a score "
                  f"({curve.without_score} without). The score alone: the run's rates above also include the model's "
                  "own refusals and the claim checks.", "",
                  "| threshold | unanswerable refused | answerable refused (false refusal) |", "| --- | --- | --- |"]
        lines += [f"| {t} | {_fmt(u)} | {_fmt(a)} |" for t, u, a in curve_rows(curve)]
    if metrics.labelled_detector is not None:
        lines += _detection_md(metrics.labelled_detector)
    lines += ["", f"Counts: {json.dumps(metrics.counts.to_dict())}", "",
              f"Timings: {json.dumps(dict(metrics.timings))}", ""]
    bad = [r for r in results if _problem(r)]
    lines += ["## Questions with a problem", ""]
    if not bad:
        lines.append("None.")
    for r in bad:
        lines.append(f"- **{r.id}** ({r.question.type or 'no type'}) {r.question.question}")
        lines.append(f"  - problem: {_problem(r)}")
        lines.append(f"  - answer: {' '.join(r.answer.split())[:400]}")
        lines += [f"  - unsupported: {c[:300]}" for c in failed_claims(r)]
    return "\n".join(lines) + "\n"


# -- HTML ---------------------------------------------------------------------------------------------------------

_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}th{background:#f3f3f3}
.bad{background:#fde8e8}.ok{background:#eaf6ea}.small{font-size:12px;color:#555}svg{margin:8px 16px 8px 0}
.q td{max-width:420px}"""


def render_html(metrics: Metrics, results: Sequence[EvalResult]) -> str:
    e = html.escape
    cfg = metrics.config
    rows = "".join(f"<tr><td>{e(k)}</td><td>{e(_fmt(v))}</td></tr>" for k, v in _metric_rows(metrics))
    qrows = []
    for r in results:
        s = question_scores(r)
        cites = "<br>".join(e(c.source + (f" p.{c.page}" if c.page else "")) + f" [{c.block}]"
                            for c in r.citations)
        claims = "<br>".join(e(c) for c in failed_claims(r))
        answer = e(r.error) if r.error else e(r.answer) + (f"<br><span class=small>refused: {e(r.refusal_reason)}"
                                                           "</span>" if r.refused else "")
        cls = "bad" if _problem(r) else "ok"
        qrows.append(
            f"<tr class={cls}><td>{e(r.id)}</td><td>{e(r.question.type)}</td><td>{e(r.question.question)}</td>"
            f"<td>{answer}</td><td>{cites}</td><td>{claims}</td><td>{e(_fmt(s.keywords_ok))}</td>"
            f"<td>{e(_fmt(s.token_f1))}</td><td>{e(_fmt(s.faithfulness))}</td>"
            f"<td>{e(_fmt(s.first_relevant_rank))}</td><td>{e(_fmt(r.answerability))}</td></tr>")
    svgs = "".join(plots(metrics, results))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>rag evaluation report</title><style>{_CSS}</style></head>
<body><h1>Evaluation report</h1>
<p class=small>Questions <code>{e(str(cfg.get('questions', '')))}</code> on index <code>{e(str(cfg.get('index', '')))}
</code>, answered by <code>{e(str(cfg.get('llm', '')))}</code> ({e(str(cfg.get('model', '')))}); judge:
<code>{e(str(cfg.get('judge') or 'local checks'))}</code>.</p>
<h2>Metrics</h2><table><tr><th>metric</th><th>value</th></tr>{rows}</table>
<h2>Plots</h2><div>{svgs}</div>
<h2>Questions</h2><table class=q><tr><th>id</th><th>type</th><th>question</th><th>answer</th><th>citations</th>
<th>unsupported claims</th><th>keywords</th><th>token F1</th><th>faithfulness</th><th>first relevant rank</th>
<th>answerability</th></tr>
{''.join(qrows)}</table>
<p class=small>Definitions of every metric: the docstring of eval/metrics.py; errored questions count as failures
in every rate.</p>
</body></html>
"""


def write_reports(out_dir: str | Path, metrics: Metrics, results: Sequence[EvalResult]) -> dict[str, Path]:
    """Write metrics.json, report.md and report.html into a run directory; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": out / "metrics.json", "markdown": out / "report.md", "html": out / "report.html"}
    contents = {"metrics": json.dumps(metrics.to_dict(), indent=2, ensure_ascii=False) + "\n",
                "markdown": render_markdown(metrics, results), "html": render_html(metrics, results)}
    for key, path in paths.items():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(contents[key], encoding="utf-8")
        tmp.replace(path)
    return paths

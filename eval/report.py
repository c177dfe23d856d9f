"""Run reports: metrics.json, report.md and a self-contained report.html (inline SVG, no external resources)."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.metrics import by_type, question_scores
from eval.results import EvalResult

_COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2")


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3f}"
    return str(v)


def _metric_rows(metrics: dict[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [("questions", metrics.get("n"))]
    for k, v in (metrics.get("retrieval") or {}).items():
        rows.append((f"retrieval {k}", v))
    for k, v in (metrics.get("answer") or {}).items():
        rows.append((k.replace("_", " "), v))
    rows.append(("faithfulness", metrics.get("faithfulness")))
    rows.append(("hallucination rate", metrics.get("hallucination_rate")))
    parts = metrics.get("hallucination") or {}
    rows.append(("  answerable answers with an unsupported claim", parts.get("unsupported_answer_rate")))
    rows.append(("  unanswerable questions answered", parts.get("unanswerable_answered_rate")))
    for k, v in (metrics.get("refusal") or {}).items():
        rows.append((k.replace("_", " "), v))
    for k in ("precision", "recall", "f1"):
        if metrics.get("detector"):
            rows.append((f"detector {k}", metrics["detector"].get(k)))
    ragas = metrics.get("ragas") or {}
    for k in ("faithfulness", "response_relevancy", "context_precision", "context_recall"):
        if k in ragas:
            rows.append((f"ragas {k} (scored {ragas['scored'][k]}, NaN {ragas['nan'][k]})", ragas[k]))
    return rows


def failed_claims(r: EvalResult) -> list[str]:
    return [f"{v.claim} — {v.reason}" for v in r.verdicts if not v.supported]


# -- markdown -----------------------------------------------------------------------------------------------------

def render_markdown(metrics: dict[str, Any], results: Sequence[EvalResult]) -> str:
    cfg = metrics.get("config", {})
    lines = ["# Evaluation report", "",
             f"Questions `{cfg.get('questions', '')}` on index `{cfg.get('index', '')}`, answered by "
             f"`{cfg.get('llm', '')}` ({cfg.get('model', '')}); judge: `{cfg.get('judge') or 'local checks'}`.", "",
             "| metric | value |", "| --- | --- |"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in _metric_rows(metrics)]
    lines += ["", "## By question type", "", "| type | n | keyword accuracy | token F1 | faithfulness | refused |",
              "| --- | --- | --- | --- | --- | --- |"]
    for t, m in by_type(results).items():
        lines.append(f"| {t} | {m['n']} | {_fmt(m['keyword_accuracy'])} | {_fmt(m['token_f1'])} | "
                     f"{_fmt(m['faithfulness'])} | {_fmt(m['refusal_rate'])} |")
    counts = metrics.get("counts", {})
    lines += ["", f"Counts: {json.dumps(counts)}", "", f"Timings: {json.dumps(metrics.get('timings', {}))}", ""]
    bad = [r for r in results if r.error or _problem(r)]
    lines += ["## Questions with a problem", ""]
    if not bad:
        lines.append("None.")
    for r in bad:
        lines.append(f"- **{r.id}** ({r.question.type}) {r.question.question}")
        lines.append(f"  - problem: {_problem(r) or r.error}")
        lines.append(f"  - answer: {' '.join(r.answer.split())[:400]}")
        lines += [f"  - unsupported: {c[:300]}" for c in failed_claims(r)]
    return "\n".join(lines) + "\n"


def _problem(r: EvalResult) -> str:
    if r.error:
        return "error: " + r.error
    s = question_scores(r)
    q = r.question
    if not q.answerable:
        return "" if r.refused else "answered an unanswerable question"
    probs = []
    if r.refused:
        probs.append(f"refused ({r.refusal_reason})")
    elif not s.get("keywords_ok"):
        probs.append("missing answer keywords " + ", ".join(q.answer_keywords))
    if s.get("unsupported_claims"):
        probs.append(f"{s['unsupported_claims']} unsupported claim(s)")
    if s.get("first_relevant_rank") is None:
        probs.append("no relevant passage in the top 10")
    return "; ".join(probs)


# -- SVG plots ----------------------------------------------------------------------------------------------------

def svg_bars(title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]], ymax: float | None = None,
             width: int = 560, height: int = 240) -> str:
    """A grouped bar chart as an inline <svg> (values None are left out)."""
    left, bottom, top = 40, 40, 28
    plot_w, plot_h = width - left - 10, height - bottom - top
    vals = [v for s in series.values() for v in s if v is not None]
    ymax = ymax or max(vals + [1e-9])
    n, k = max(len(labels), 1), max(len(series), 1)
    group_w = plot_w / n
    bar_w = max(2.0, group_w * 0.8 / k)
    parts = [f'<svg width="{width}" height="{height}" role="img" '
             f'aria-label="{html.escape(title)}">',
             f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">{html.escape(title)}</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#333"/>',
             f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" font-size="10">{ymax:g}</text>',
             f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" font-size="10">0</text>']
    for i, label in enumerate(labels):
        x0 = left + i * group_w + group_w * 0.1
        for j, (name, values) in enumerate(series.items()):
            v = values[i] if i < len(values) else None
            if v is None:
                continue
            h = plot_h * min(v, ymax) / ymax
            parts.append(f'<rect x="{x0 + j * bar_w:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 1:.1f}" '
                         f'height="{h:.1f}" fill="{_COLORS[j % len(_COLORS)]}"><title>{html.escape(name)} '
                         f'{html.escape(label)}: {v:.3g}</title></rect>')
        parts.append(f'<text x="{left + (i + 0.5) * group_w:.1f}" y="{top + plot_h + 14}" text-anchor="middle" '
                     f'font-size="10">{html.escape(label)}</text>')
    step = min(150.0, plot_w / k)
    for j, name in enumerate(series):
        parts.append(f'<rect x="{left + j * step:.0f}" y="{height - 14}" width="10" height="10" '
                     f'fill="{_COLORS[j % len(_COLORS)]}"/><text x="{left + j * step + 14:.0f}" y="{height - 5}" '
                     f'font-size="10">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _histogram(values: Sequence[float], bins: int = 10) -> list[float]:
    counts = [0.0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v * bins)))] += 1
    return counts


def plots(results: Sequence[EvalResult]) -> list[str]:
    """Score distributions, metrics by question type, and the rank of the first relevant hit."""
    scores = [(r, question_scores(r)) for r in results if not r.error]
    f1 = [s["token_f1"] for r, s in scores if r.question.answerable]
    faith = [s["faithfulness"] for _, s in scores if s.get("faithfulness") is not None]
    bins = [f"{i / 10:.1f}–{(i + 1) / 10:.1f}".replace("0.", ".") for i in range(10)]
    out = [svg_bars("Score distributions (questions per bin)", bins,
                    {"token F1 (answerable)": _histogram(f1), "faithfulness (answered)": _histogram(faith)})]
    types = by_type(results)
    out.append(svg_bars("Metrics by question type", list(types), {
        "keyword accuracy": [m["keyword_accuracy"] for m in types.values()],
        "token F1": [m["token_f1"] for m in types.values()],
        "faithfulness": [m["faithfulness"] for m in types.values()],
        "refusal rate": [m["refusal_rate"] for m in types.values()]}, ymax=1.0))
    ranks = [s.get("first_relevant_rank") for r, s in scores if r.question.answerable]
    labels = [str(i) for i in range(1, 11)] + ["miss"]
    counts = [float(sum(1 for x in ranks if x == i)) for i in range(1, 11)] + [float(sum(x is None for x in ranks))]
    out.append(svg_bars("Rank of the first relevant hit (answerable questions)", labels, {"questions": counts}))
    return out


# -- HTML ---------------------------------------------------------------------------------------------------------

_CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:8px 0}
td,th{border:1px solid #ccc;padding:4px 6px;vertical-align:top;text-align:left}th{background:#f3f3f3}
.bad{background:#fde8e8}.ok{background:#eaf6ea}.small{font-size:12px;color:#555}svg{margin:8px 16px 8px 0}
.q td{max-width:420px}"""


def render_html(metrics: dict[str, Any], results: Sequence[EvalResult]) -> str:
    e = html.escape
    cfg = metrics.get("config", {})
    rows = "".join(f"<tr><td>{e(k)}</td><td>{e(_fmt(v))}</td></tr>" for k, v in _metric_rows(metrics))
    qrows = []
    for r in results:
        s = question_scores(r)
        cites = "<br>".join(e(c.source + (f" p.{c.page}" if c.page else "")) + f" [{c.block}]"
                            for c in r.citations)
        claims = "<br>".join(e(c) for c in failed_claims(r))
        answer = e(r.error) if r.error else e(r.answer) + (f"<br><span class=small>refused: {e(r.refusal_reason)}"
                                                           "</span>" if r.refused else "")
        cls = "bad" if _problem(r) or r.error else "ok"
        qrows.append(
            f"<tr class={cls}><td>{e(r.id)}</td><td>{e(r.question.type)}</td><td>{e(r.question.question)}</td>"
            f"<td>{answer}</td><td>{cites}</td><td>{claims}</td><td>{e(_fmt(s.get('keywords_ok')))}</td>"
            f"<td>{e(_fmt(s.get('token_f1')))}</td><td>{e(_fmt(s.get('faithfulness')))}</td>"
            f"<td>{e(_fmt(s.get('first_relevant_rank')))}</td></tr>")
    svgs = "".join(plots(results))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>rag evaluation report</title><style>{_CSS}</style></head>
<body><h1>Evaluation report</h1>
<p class=small>Questions <code>{e(str(cfg.get('questions', '')))}</code> on index <code>{e(str(cfg.get('index', '')))}
</code>, answered by <code>{e(str(cfg.get('llm', '')))}</code> ({e(str(cfg.get('model', '')))}); judge:
<code>{e(str(cfg.get('judge') or 'local checks'))}</code>.</p>
<h2>Metrics</h2><table><tr><th>metric</th><th>value</th></tr>{rows}</table>
<h2>Plots</h2><div>{svgs}</div>
<h2>Questions</h2><table class=q><tr><th>id</th><th>type</th><th>question</th><th>answer</th><th>citations</th>
<th>unsupported claims</th><th>keywords</th><th>token F1</th><th>faithfulness</th><th>first relevant rank</th></tr>
{''.join(qrows)}</table>
<p class=small>Definitions of every metric: the docstring of eval/metrics.py.</p>
</body></html>
"""


def write_reports(out_dir: str | Path, metrics: dict[str, Any], results: Sequence[EvalResult]) -> dict[str, Path]:
    """Write metrics.json, report.md and report.html into a run directory; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"metrics": out / "metrics.json", "markdown": out / "report.md", "html": out / "report.html"}
    contents = {"metrics": json.dumps(metrics, indent=2, ensure_ascii=False) + "\n",
                "markdown": render_markdown(metrics, results), "html": render_html(metrics, results)}
    for key, path in paths.items():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(contents[key], encoding="utf-8")
        tmp.replace(path)
    return paths

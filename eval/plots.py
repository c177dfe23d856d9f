"""Inline SVG plots for report.html: grouped bars and the refusal trade-off curve (no external resources)."""

from __future__ import annotations

import html
from collections.abc import Sequence

from eval.curve import RefusalCurve
from eval.metrics import Metrics
from eval.results import EvalResult
from eval.scores import question_scores

_COLORS = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2")


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


def svg_curve(curve: RefusalCurve, width: int = 360, height: int = 320) -> str:
    """The refusal trade-off: false refusals (x) against unanswerable questions refused (y), one point per
    threshold, the configured threshold circled."""
    left, bottom, top, right = 48, 44, 28, 12
    pw, ph = width - left - right, height - top - bottom

    def xy(x: float, y: float) -> str:
        return f"{left + pw * x:.1f},{top + ph * (1 - y):.1f}"

    pts = [(p.answerable_refused, p.unanswerable_refused, p.threshold) for p in curve.points]
    pts = [(x or 0.0, y or 0.0, t) for x, y, t in pts]
    title = f"Refusal trade-off ({curve.score}: refuse when score < threshold)"
    parts = [f'<svg width="{width}" height="{height}" role="img" aria-label="{html.escape(title)}">',
             f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="12">{html.escape(title)}</text>',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>',
             f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle" font-size="10">answerable questions '
             f'refused (false refusal, n={curve.answerable})</text>',
             f'<text x="12" y="{top + ph / 2}" font-size="10" transform="rotate(-90 12 {top + ph / 2})" '
             f'text-anchor="middle">unanswerable refused (n={curve.unanswerable})</text>',
             f'<text x="{left - 4}" y="{top + 4}" text-anchor="end" font-size="10">1</text>',
             f'<text x="{left - 4}" y="{top + ph}" text-anchor="end" font-size="10">0</text>',
             f'<text x="{left + pw}" y="{top + ph + 12}" text-anchor="end" font-size="10">1</text>']
    if pts:
        parts.append(f'<polyline fill="none" stroke="{_COLORS[0]}" stroke-width="1.5" '
                     f'points="{" ".join(xy(x, y) for x, y, _ in sorted(pts))}"/>')
        for x, y, t in pts:
            parts.append(f'<circle cx="{xy(x, y).split(",")[0]}" cy="{xy(x, y).split(",")[1]}" r="2" '
                         f'fill="{_COLORS[0]}"><title>threshold {t:.4g}: unanswerable refused {y:.2f}, '
                         f'false refusal {x:.2f}</title></circle>')
    c = curve.configured
    if c is not None and c.answerable_refused is not None and c.unanswerable_refused is not None:
        cx, cy = xy(c.answerable_refused, c.unanswerable_refused).split(",")
        parts.append(f'<circle cx="{cx}" cy="{cy}" r="6" fill="none" stroke="{_COLORS[3]}" stroke-width="2">'
                     f'<title>configured threshold {c.threshold:.4g}</title></circle>'
                     f'<text x="{float(cx) + 8:.1f}" y="{float(cy) - 8:.1f}" font-size="10" fill="{_COLORS[3]}">'
                     f'configured {c.threshold:.3g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _histogram(values: Sequence[float], bins: int = 10) -> list[float]:
    counts = [0.0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v * bins)))] += 1
    return counts


def plots(metrics: Metrics, results: Sequence[EvalResult]) -> list[str]:
    """Score distributions, metrics by question type, the rank of the first relevant hit, the refusal curve."""
    scores = [(r, question_scores(r)) for r in results]
    f1 = [s.token_f1 or 0.0 for r, s in scores if r.question.answerable]
    faith = [s.faithfulness for _, s in scores if s.faithfulness is not None]
    bins = [f"{i / 10:.1f}–{(i + 1) / 10:.1f}".replace("0.", ".") for i in range(10)]
    out = [svg_bars("Score distributions (questions per bin)", bins,
                    {"token F1 (answerable)": _histogram(f1), "faithfulness (checked answers)": _histogram(faith)})]
    types = metrics.by_type
    out.append(svg_bars("Metrics by question type", [t or "(no type)" for t in types], {
        "keyword accuracy": [m.keyword_accuracy for m in types.values()],
        "token F1": [m.token_f1 for m in types.values()],
        "faithfulness": [m.faithfulness for m in types.values()],
        "refusal rate": [m.refusal_rate for m in types.values()]}, ymax=1.0))
    if metrics.retrieval.applicable:
        ranks = [s.first_relevant_rank for r, s in scores if r.question.answerable]
        labels = [str(i) for i in range(1, 11)] + ["miss"]
        counts = [float(sum(1 for x in ranks if x == i)) for i in range(1, 11)] + [float(sum(x is None for x in ranks))]
        out.append(svg_bars("Rank of the first relevant hit (answerable questions)", labels, {"questions": counts}))
    if metrics.refusal.curve is not None:
        out.append(svg_curve(metrics.refusal.curve))
    return out

"""A standalone HTML report of one evaluation: scorecard, per-table summaries and plots, from aggregates only.

The page is one self-contained file (inline CSS and hand-written SVG, no script, no dependency) built
from the results' details, which hold aggregates only (marginal frequencies, bins, pair scores, ROC
points); it never sees a record. Every string taken from the results is HTML-escaped.
"""
from __future__ import annotations

import html
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from evaluate.fidelity.summary import overall_fidelity
from evaluate.result import EvaluationResult, MetricResult

REAL = "#1f6fb4"
SYNTHETIC = "#f28e2b"
MAX_COLUMN_PLOTS = 400

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1180px;color:#1d2330;padding:0 1rem}
h1{font-size:1.7rem;margin-bottom:.2rem}h2{margin-top:2.2rem;border-bottom:2px solid #e3e6ec;padding-bottom:.3rem}
h3{margin:1.4rem 0 .4rem}table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border-bottom:1px solid #e3e6ec;padding:.28rem .6rem;text-align:left;vertical-align:top}
th{background:#f5f6f9}td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #e3e6ec;border-radius:8px;padding:.8rem 1.1rem;min-width:10rem}
.card .v{font-size:1.8rem;font-weight:600}.muted{color:#6b7385;font-size:.85rem}
.grid{display:flex;flex-wrap:wrap;gap:.8rem}.plot{border:1px solid #eef0f4;border-radius:6px;padding:.4rem}
.legend span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 .8rem;vertical-align:middle}
details{margin:.3rem 0}summary{cursor:pointer}
.bad{color:#b2182b}.good{color:#1a7f37}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return f"{value:.{digits}f}"
    return str(value)


def _color(score: float | None) -> str:
    """Red (0) to yellow (0.5) to green (1)."""
    if score is None or (isinstance(score, float) and math.isnan(score)):
        return "#d9d9d9"
    s = min(1.0, max(0.0, float(score)))
    stops = [(0.0, (215, 48, 39)), (0.5, (254, 224, 139)), (1.0, (26, 152, 80))]
    for (x0, c0), (x1, c1) in zip(stops, stops[1:]):
        if s <= x1:
            t = (s - x0) / (x1 - x0)
            rgb = tuple(round(a + (b - a) * t) for a, b in zip(c0, c1))
            return "#%02x%02x%02x" % rgb
    return "#1a9850"


# ---------------------------------------------------------------------------------------------- SVG pieces


def bar_chart(categories: Sequence[str], real: Sequence[float], synthetic: Sequence[float], *, title: str, width: int = 360) -> str:
    """Horizontal paired bars of category frequencies, real above synthetic."""
    n = len(categories)
    row_h, label_w, top = 18, 120, 22
    height = top + n * row_h + 8
    vmax = max([*real, *synthetic, 1e-12])
    scale = (width - label_w - 50) / vmax
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{_e(title)}">',
           f'<text x="4" y="14" font-size="12" font-weight="600">{_e(title)}</text>']
    for i, (cat, r, s) in enumerate(zip(categories, real, synthetic)):
        y = top + i * row_h
        label = cat if len(cat) <= 18 else cat[:17] + "…"
        out.append(f'<text x="{label_w - 4}" y="{y + 12}" font-size="10" text-anchor="end">{_e(label)}<title>{_e(cat)}</title></text>')
        out.append(f'<rect x="{label_w}" y="{y + 2}" width="{max(r * scale, 0.5):.1f}" height="7" fill="{REAL}"><title>real {r:.4f}</title></rect>')
        out.append(f'<rect x="{label_w}" y="{y + 9}" width="{max(s * scale, 0.5):.1f}" height="7" fill="{SYNTHETIC}"><title>synthetic {s:.4f}</title></rect>')
    out.append("</svg>")
    return "".join(out)


def histogram(edges: Sequence[Any], real: Sequence[float], synthetic: Sequence[float], *, title: str, width: int = 360) -> str:
    """Paired histogram bars of binned frequencies (edges may be numbers or date labels)."""
    n = len(real)
    height, left, bottom, top = 170, 36, 34, 22
    plot_w, plot_h = width - left - 8, height - top - bottom
    vmax = max([*real, *synthetic, 1e-12])
    bw = plot_w / max(n, 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{_e(title)}">',
           f'<text x="4" y="14" font-size="12" font-weight="600">{_e(title)}</text>',
           f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999"/>',
           f'<text x="{left - 4}" y="{top + 8}" font-size="9" text-anchor="end">{vmax:.2f}</text>']
    for i, (r, s) in enumerate(zip(real, synthetic)):
        x = left + i * bw
        hr, hs = r / vmax * plot_h, s / vmax * plot_h
        lo = edges[i] if i < len(edges) else ""
        hi = edges[i + 1] if i + 1 < len(edges) else ""
        out.append(f'<rect x="{x + 0.5:.1f}" y="{top + plot_h - hr:.1f}" width="{max(bw / 2 - 0.5, 0.5):.1f}" height="{hr:.1f}" fill="{REAL}"><title>[{_e(lo)}, {_e(hi)}) real {r:.4f}</title></rect>')
        out.append(f'<rect x="{x + bw / 2:.1f}" y="{top + plot_h - hs:.1f}" width="{max(bw / 2 - 0.5, 0.5):.1f}" height="{hs:.1f}" fill="{SYNTHETIC}"><title>[{_e(lo)}, {_e(hi)}) synthetic {s:.4f}</title></rect>')
    if edges:
        first, last = str(edges[0]), str(edges[-1])
        out.append(f'<text x="{left}" y="{height - 18}" font-size="9">{_e(first)}</text>')
        out.append(f'<text x="{left + plot_w}" y="{height - 18}" font-size="9" text-anchor="end">{_e(last)}</text>')
    out.append("</svg>")
    return "".join(out)


def heatmap(labels: Sequence[str], cells: dict[tuple[str, str], float], *, title: str) -> str:
    """Lower-triangle matrix of pair scores (0 red .. 1 green); hover a cell for its value."""
    n = len(labels)
    cell, label_w, top = 16 if n > 20 else 22, 130, 24
    width = label_w + n * cell + 10
    height = top + n * cell + label_w
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{_e(title)}">',
           f'<text x="4" y="14" font-size="12" font-weight="600">{_e(title)}</text>']
    for i, a in enumerate(labels):
        short = a if len(a) <= 20 else a[:19] + "…"
        out.append(f'<text x="{label_w - 4}" y="{top + i * cell + cell * 0.7:.1f}" font-size="10" text-anchor="end">{_e(short)}</text>')
        x = label_w + i * cell + cell / 2
        y = top + n * cell + 4
        out.append(f'<text x="{x:.1f}" y="{y}" font-size="10" transform="rotate(60 {x:.1f} {y})">{_e(short)}</text>')
        for j, b in enumerate(labels[:i]):
            v = cells.get((a, b), cells.get((b, a)))
            tip = f"{a} / {b}: " + ("not scored" if v is None else f"{v:.3f}")
            out.append(f'<rect x="{label_w + j * cell}" y="{top + i * cell}" width="{cell - 1}" height="{cell - 1}" fill="{_color(v)}"><title>{_e(tip)}</title></rect>')
    out.append("</svg>")
    return "".join(out)


def line_chart(series: Sequence[tuple[str, Sequence[float], Sequence[float]]], *, title: str, width: int = 300) -> str:
    """ROC curves (false positive rate on x, true positive rate on y) with the diagonal of chance."""
    size, pad = width - 50, 36
    palette = ["#1f6fb4", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"]
    height = size + pad + 40 + 14 * len(series)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" aria-label="{_e(title)}">',
           f'<text x="4" y="14" font-size="12" font-weight="600">{_e(title)}</text>',
           f'<rect x="{pad}" y="24" width="{size}" height="{size}" fill="none" stroke="#999"/>',
           f'<line x1="{pad}" y1="{24 + size}" x2="{pad + size}" y2="24" stroke="#bbb" stroke-dasharray="4 3"/>']
    for k, (name, xs, ys) in enumerate(series):
        pts = " ".join(f"{pad + x * size:.1f},{24 + (1 - y) * size:.1f}" for x, y in zip(xs, ys))
        color = palette[k % len(palette)]
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.8"><title>{_e(name)}</title></polyline>')
        out.append(f'<text x="{pad}" y="{24 + size + 30 + 14 * k}" font-size="10" fill="{color}">{_e(name)}</text>')
    out.append(f'<text x="{pad + size / 2}" y="{24 + size + 14}" font-size="9" text-anchor="middle">false positive rate</text>')
    out.append("</svg>")
    return "".join(out)


# ---------------------------------------------------------------------------------------------- sections


def _scorecard(results: Iterable[MetricResult]) -> str:
    rows = []
    for r in results:
        ci = "" if r.ci is None else f"[{_fmt(r.ci.low)}, {_fmt(r.ci.high)}]"
        arrow = "↑ higher is better" if r.goal == "maximize" else "↓ lower is better"
        value = _fmt(r.value) if r.value is not None else '<span class="muted">skipped</span>'
        skipped = ""
        if r.skipped:
            items = "".join(
                f"<li>{_e('.'.join(x for x in (s.table, s.column) if x) or 'all')}: {_e(s.reason)}</li>" for s in r.skipped
            )
            skipped = f"<details><summary>{len(r.skipped)} skipped</summary><ul>{items}</ul></details>"
        notes = "".join(f"<div class='muted'>{_e(n)}</div>" for n in r.notes)
        rows.append(
            f"<tr><td><code>{_e(r.name)}</code></td><td class='num'>{value}</td><td class='num'>{_e(ci)}</td>"
            f"<td>{_e(arrow)}</td><td class='num'>[{_fmt(r.range[0], 2)}, {_fmt(r.range[1], 2)}]</td>"
            f"<td class='num'>{_fmt(r.n)}</td><td>{skipped}{notes}</td></tr>"
        )
    return (
        "<table><tr><th>result</th><th>value</th><th>95% CI</th><th>goal</th><th>range</th><th>n</th>"
        "<th>skipped and notes</th></tr>" + "".join(rows) + "</table>"
    )


def _table_summary(evaluation: EvaluationResult) -> str:
    """Per table: mean column-shape score, mean pair-trend score, detection AUC, rule violation rate."""
    per: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    sources = {
        "fidelity.column_shapes": "column shapes",
        "fidelity.column_pair_trends": "pair trends",
        "fidelity.missing_value_similarity": "missing values",
        "fidelity.detection.logistic": "detection (logistic)",
        "fidelity.detection.gbt": "detection (GBT)",
        "fidelity.rule_violations": "rule violations",
    }
    for name, label in sources.items():
        r = evaluation.get(name)
        if r is None:
            continue
        for d in r.details:
            if "table" in d and isinstance(d.get("value"), (int, float)):
                per[str(d["table"])][label].append(float(d["value"]))
    if not per:
        return "<p class='muted'>No per-table results.</p>"
    labels = [label for label in sources.values() if any(label in v for v in per.values())]
    head = "".join(f"<th>{_e(lbl)}</th>" for lbl in labels)
    body = []
    for table, values in per.items():
        cells = []
        for lbl in labels:
            vals = values.get(lbl, [])
            if not vals:
                cells.append("<td class='num muted'>–</td>")
                continue
            v = sum(vals) / len(vals)
            shade = v if lbl != "rule violations" else 1 - v
            cells.append(f"<td class='num' style='background:{_color(shade)}33'>{_fmt(v)} <span class='muted'>({len(vals)})</span></td>")
        body.append(f"<tr><td>{_e(table)}</td>{''.join(cells)}</tr>")
    return (
        f"<table><tr><th>table</th>{head}</tr>{''.join(body)}</table>"
        "<p class='muted'>Mean over the table's columns, pairs or rules (their number in brackets); "
        "rule violations: share of rows breaking a rule, lower is better.</p>"
    )


def _marginals(evaluation: EvaluationResult) -> str:
    r = evaluation.get("fidelity.column_shapes")
    if r is None or not r.details:
        return "<p class='muted'>Column shapes were not computed.</p>"
    by_table: dict[str, list[str]] = defaultdict(list)
    shown = 0
    for d in r.details:
        if shown >= MAX_COLUMN_PLOTS:
            break
        title = f"{d.get('column')} · {d.get('metric', '').replace('_', ' ')} {_fmt(d.get('value'))}"
        if "frequencies" in d:
            f = d["frequencies"]
            svg = bar_chart([str(c) for c in f["categories"]], f["real"], f["synthetic"], title=title)
        elif "bins" in d:
            b = d["bins"]
            svg = histogram(b["edges"], b["real"], b["synthetic"], title=title)
        else:
            continue
        by_table[str(d.get("table"))].append(f"<div class='plot'>{svg}</div>")
        shown += 1
    parts = [
        f"<p class='legend'>Frequencies of each column, <span style='background:{REAL}'></span>real (train)"
        f"<span style='background:{SYNTHETIC}'></span>synthetic. Categories: the 20 most frequent in the real data, the rest as "
        "<em>other</em>; numbers and dates: up to 20 equal-width bins.</p>"
    ]
    for table, plots in by_table.items():
        parts.append(f"<details open><summary><strong>{_e(table)}</strong> ({len(plots)} columns)</summary><div class='grid'>{''.join(plots)}</div></details>")
    if shown >= MAX_COLUMN_PLOTS:
        parts.append(f"<p class='muted'>Only the first {MAX_COLUMN_PLOTS} columns are plotted.</p>")
    return "".join(parts)


def _pair_heatmaps(evaluation: EvaluationResult) -> str:
    r = evaluation.get("fidelity.column_pair_trends")
    if r is None or not r.details:
        return "<p class='muted'>Column pair trends were not computed.</p>"
    by_table: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
    order: dict[str, list[str]] = defaultdict(list)
    for d in r.details:
        t = str(d.get("table"))
        a, b = str(d.get("column_1")), str(d.get("column_2"))
        by_table[t][(a, b)] = float(d["value"])
        for c in (a, b):
            if c not in order[t]:
                order[t].append(c)
    parts = ["<p class='muted'>Similarity of each pair's trend (correlation similarity for two continuous columns, "
             "contingency similarity otherwise): green = same as in the real data, red = different.</p><div class='grid'>"]
    for t, cells in by_table.items():
        parts.append(f"<div class='plot'>{heatmap(order[t], cells, title=t)}</div>")
    parts.append("</div>")
    corr = [d for d in r.details if d.get("metric") == "correlation_similarity"]
    if corr:
        rows = "".join(
            f"<tr><td>{_e(d['table'])}</td><td>{_e(d['column_1'])}</td><td>{_e(d['column_2'])}</td>"
            f"<td class='num'>{_fmt(d.get('real_correlation'))}</td><td class='num'>{_fmt(d.get('synthetic_correlation'))}</td>"
            f"<td class='num'>{_fmt(d['value'])}</td></tr>"
            for d in sorted(corr, key=lambda d: d["value"])[:30]
        )
        parts.append(
            "<details><summary>Correlations, real vs synthetic (30 least similar)</summary><table><tr><th>table</th>"
            f"<th>column</th><th>column</th><th>real r</th><th>synthetic r</th><th>similarity</th></tr>{rows}</table></details>"
        )
    return "".join(parts)


def _detection(evaluation: EvaluationResult) -> str:
    parts = []
    for name in ("fidelity.detection.logistic", "fidelity.detection.gbt"):
        r = evaluation.get(name)
        if r is None or not r.details:
            continue
        series = [(f"{d['table']} AUC {_fmt(d.get('auc'))}", d["roc"]["fpr"], d["roc"]["tpr"]) for d in r.details if "roc" in d]
        if series:
            parts.append(f"<div class='plot'>{line_chart(series, title=name.split('.')[-1] + ' detector ROC')}</div>")
    if not parts:
        return ""
    return (
        "<h2>Detection</h2><p class='muted'>ROC curves of classifiers telling real from synthetic rows "
        "(out-of-fold); the diagonal is a coin toss, which is what good synthetic data should look like.</p>"
        f"<div class='grid'>{''.join(parts)}</div>"
    )


def _manifest(manifest: dict[str, Any] | None) -> str:
    if not manifest:
        return ""
    rows = "".join(
        f"<tr><th>{_e(k)}</th><td><code>{_e(v if isinstance(v, (str, int, float)) else json.dumps(v, sort_keys=True, default=str))}</code></td></tr>"
        for k, v in manifest.items()
    )
    return f"<h2>Release</h2><table>{rows}</table>"


def _privacy(evaluation: EvaluationResult, policy: dict[str, Any] | None, manifest: dict[str, Any] | None) -> str:
    """Policy verdict with the thresholds crossed, membership-attack ROC curves and the epsilons."""
    parts: list[str] = []
    gen = (manifest or {}).get("generator", {})
    if gen.get("epsilon") is not None:
        parts.append(f"<p>Differentially private generator: epsilon = {_fmt(gen['epsilon'])}, delta = {_fmt(gen.get('delta'))} "
                     "(theoretical, per patient: adding or removing one patient with all of their rows). It covers the "
                     "release; the numbers of this report are computed on the real data and are not covered by it.</p>")
    bound = evaluation.get("privacy.epsilon_lower_bound")
    if bound is not None and bound.value is not None:
        parts.append(f"<p>Empirical epsilon lower bound (one-run canary audit, {_e(bound.n)} canaries): {_fmt(bound.value)}; "
                     f"the audit cannot show more than {_fmt(bound.range[1])}, so a small value does not prove privacy "
                     "and a value at that limit means epsilon may be far higher.</p>")
    elif bound is not None:
        parts.append(f"<p>No empirical epsilon bound: {_e(bound.skipped[0].reason if bound.skipped else 'not run')}.</p>")
    if policy:
        level = policy.get("risk_level", "?")
        color = {"low": "#2e7d32", "medium": "#b26a00", "high": "#c62828"}.get(level, "#333")
        parts.append(f"<p>Overall risk <b style='color:{color}'>{_e(level)}</b> under policy {_e(policy.get('policy'))} "
                     f"(version {_e(policy.get('version'))}).</p>")
        crossed = [v for v in policy.get("verdicts", []) if v.get("status") in ("fail", "warn")]
        if crossed:
            rows = "".join(
                f"<tr><td>{_e(v['status'])}</td><td>{_e(v['metric'])}</td><td>{_e(v['statistic'])}</td>"
                f"<td>{_fmt(v.get('observed'))}</td><td>{_e(v.get('comparison') or '')} {_fmt(v.get('threshold'))}</td></tr>"
                for v in crossed
            )
            parts.append("<table><tr><th>verdict</th><th>result</th><th>statistic</th><th>observed</th>"
                         f"<th>threshold crossed</th></tr>{rows}</table>")
    series = []
    for r in evaluation.results:
        if r.name.startswith("privacy.mia.") and r.name.endswith(".auc"):
            pts = [d for d in r.details if d.get("kind") == "roc"]
            if pts:
                series.append((f"{r.name.split('.')[2]} (AUC {_fmt(r.value)})", [p["fpr"] for p in pts], [p["tpr"] for p in pts]))
    if series:
        parts.append(f"<div class='plot'>{line_chart(series, title='membership-inference ROC')}</div>")
    if not parts:
        return ""
    return "<h2>Privacy verdict</h2>" + "".join(parts)


PRIVACY_CARDS = (
    ("privacy.dcr.share_closer_to_train", "DCR: share closer to train", "0.5 is ideal; a mean, so a few copies barely move it"),
    ("privacy.dcr.near_copy_share", "near-copies of training patients", "estimated share beyond chance; 0 is ideal"),
    ("privacy.exact_copies", "exact copies of training patients", "share of synthetic patients; the policy reads the excess over chance"),
)
_STATUS_COLOR = {"pass": "#2e7d32", "warn": "#b26a00", "fail": "#c62828"}


def _privacy_cards(evaluation: EvaluationResult, policy: dict[str, Any] | None) -> str:
    """Cards of the DCR share, the near-copy share and exact copies: value, CI and the policy's verdict on it, so
    that a card never reads as reassuring when the verdict is not (a share of 0.83 is a failure, and says so)."""
    verdicts = {v.get("metric"): v for v in (policy or {}).get("verdicts", [])}
    out = []
    for name, label, sub in PRIVACY_CARDS:
        r = evaluation.get(name)
        if r is None or r.value is None:
            continue
        v = verdicts.get(name, {})
        status = v.get("status") if v.get("status") in _STATUS_COLOR else None
        ci = "" if r.ci is None else f" [{_fmt(r.ci.low)}, {_fmt(r.ci.high)}]"
        verdict = (f"policy: {status} ({_e(v.get('statistic'))} {_fmt(v.get('observed'))}"
                   + (f", {_e(v.get('comparison'))} {_fmt(v.get('threshold'))})" if v.get("threshold") is not None else ")")
                   if status else "no policy verdict")
        out.append(f"<div class='card'><div class='muted'>{_e(label)}</div><div class='v' style='color:"
                   f"{_STATUS_COLOR.get(status or '', '#333')}'>{_fmt(r.value)}</div><div class='muted'>{_e(ci)}</div>"
                   f"<div class='muted'>{verdict}</div><div class='muted'>{_e(sub)}</div></div>")
    return "".join(out)


def render_report(
    evaluation: EvaluationResult,
    *,
    title: str,
    manifest: dict[str, Any] | None = None,
    policy: dict[str, Any] | None = None,
) -> str:
    """The whole report as one HTML string (write it to a ``.html`` file).

    Sections: headline cards, per-table summary, scorecard of every result by family (with skipped
    columns and notes), marginal plots (real vs synthetic), pair-trend heatmaps, detection ROC curves,
    the release manifest and the library versions.
    """
    overall = overall_fidelity(evaluation)
    families: dict[str, list[MetricResult]] = defaultdict(list)
    for r in evaluation.results:
        families[r.family].append(r)
    cards = [("overall fidelity", overall, "mean of column shapes and pair trends")]
    for name, label in (
        ("fidelity.column_shapes", "column shapes"),
        ("fidelity.column_pair_trends", "column pair trends"),
        ("fidelity.detection.gbt", "detection (GBT)"),
        ("utility.ratio", "utility TSTR / TRTR"),
    ):
        r = evaluation.get(name)
        if r is not None:
            cards.append((label, r.value, name))
    card_html = "".join(
        f"<div class='card'><div class='muted'>{_e(label)}</div><div class='v' style='color:{_color(v) if v is not None else '#999'}'>"
        f"{_fmt(v) if v is not None else '–'}</div><div class='muted'>{_e(sub)}</div></div>"
        for label, v, sub in cards
    ) + _privacy_cards(evaluation, policy)
    sections = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class='muted'>{len(evaluation.results)} results · seed {_e(evaluation.seed)}</p>",
        f"<div class='cards'>{card_html}</div>",
        "<h2>Per table</h2>",
        _table_summary(evaluation),
    ]
    titles = {"fidelity": "Fidelity", "utility": "Utility", "privacy": "Privacy"}
    for family in ("fidelity", "utility", "privacy", *[f for f in families if f not in titles]):
        if families.get(family):
            sections.append(f"<h2>{_e(titles.get(family, family.title()))} results</h2>{_scorecard(families[family])}")
    sections += [
        "<h2>Marginals: real vs synthetic</h2>",
        _marginals(evaluation),
        "<h2>Column pair trends</h2>",
        _pair_heatmaps(evaluation),
        _detection(evaluation),
        _privacy(evaluation, policy, manifest),
        _manifest(manifest),
    ]
    if evaluation.versions:
        versions = ", ".join(f"{_e(k)} {_e(v)}" for k, v in sorted(evaluation.versions.items()))
        sections.append(f"<p class='muted'>Library versions: {versions}</p>")
    sections.append("<p class='muted'>Built from aggregates only: frequencies, bins, pair scores and ROC points; no record.</p>")
    sections.append("</body></html>")
    return "".join(sections)

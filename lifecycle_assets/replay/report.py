"""The replay's report: one self-contained HTML page (inline SVG and CSS, no scripts, nothing
fetched) with quality over time per policy, prediction bias, drift and the promotion timeline
with the gate's decisions. Hover a point for its numbers (SVG `<title>`)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lifecycle_assets.decision import Decision
from lifecycle_assets.files import write_atomic

COLORS = {
    "never": "#6b7280",
    "periodic": "#2563eb",
    "triggered": "#ea580c",
    "shadow": "#7c3aed",
}
DASHES = {"triggered": "7 4", "shadow": "2 3"}  # identical lines stay visible one over the other
DECISION_COLORS = {
    Decision.FIRST_MODEL: "#0891b2",
    Decision.PASS: "#16a34a",
    Decision.FAIL: "#dc2626",
    Decision.FORCED: "#7c3aed",
}
W, H = 860, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 130, 18, 46


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _color(policy: str) -> str:
    return COLORS.get(policy, "#111827")


class _Axes:
    """Maps period indices and values onto the plot area; draws the frame and ticks."""

    def __init__(self, n: int, values: Sequence[float], labels: Sequence[str]) -> None:
        self.n = max(n, 1)
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        if math.isclose(lo, hi):
            lo, hi = lo - 0.5, hi + 0.5
        # Round ticks (1, 2 or 5 times a power of ten) that enclose the data.
        raw = (hi - lo) / 4
        power = 10 ** math.floor(math.log10(raw))
        self.step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
        self.lo = math.floor(lo / self.step) * self.step
        self.hi = math.ceil(hi / self.step) * self.step
        self.labels = labels

    def x(self, i: float) -> float:
        span = W - LEFT - RIGHT
        return LEFT + (span * i / (self.n - 1) if self.n > 1 else span / 2)

    def y(self, v: float) -> float:
        return TOP + (H - TOP - BOTTOM) * (self.hi - v) / (self.hi - self.lo)

    def frame(self, y_label: str) -> list[str]:
        out = [
            f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" '
            f'height="{H - TOP - BOTTOM}" class="area"/>'
        ]
        for k in range(round((self.hi - self.lo) / self.step) + 1):
            v = self.lo + self.step * k
            y = self.y(v)
            out.append(
                f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            )
            out.append(
                f'<text x="{LEFT - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{v:.4g}</text>'
            )
        step = max(1, math.ceil(self.n / 12))
        for i in range(0, self.n, step):
            out.append(
                f'<text x="{self.x(i):.1f}" y="{H - BOTTOM + 16}" class="tick" '
                f'text-anchor="middle">{_e(self.labels[i] if i < len(self.labels) else i)}</text>'
            )
        out.append(
            f'<text x="14" y="{(TOP + H - BOTTOM) / 2:.0f}" class="axis" text-anchor="middle" '
            f'transform="rotate(-90 14 {(TOP + H - BOTTOM) / 2:.0f})">{_e(y_label)}</text>'
        )
        return out


def _svg(name: str, title: str, body: list[str]) -> str:
    return (
        f'<svg class="chart" data-plot="{_e(name)}" viewBox="0 0 {W} {H}" role="img" '
        f'aria-label="{_e(title)}" xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>"
    )


def line_chart(
    name: str,
    title: str,
    series: dict[str, list[float | None]],
    labels: Sequence[str],
    y_label: str,
    reference: tuple[float, str] | None = None,
) -> str:
    """One line per series, broken where a value is missing; an optional reference line."""
    values = [v for vs in series.values() for v in vs if v is not None]
    if reference is not None:
        values.append(reference[0])
    n = max((len(v) for v in series.values()), default=0)
    ax = _Axes(n, values, labels)
    body = ax.frame(y_label)
    if reference is not None:
        y = ax.y(reference[0])
        body.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="ref"/>')
        body.append(f'<text x="{LEFT + 4}" y="{y - 4:.1f}" class="tick">{_e(reference[1])}</text>')
    for k, (label, vs) in enumerate(series.items()):
        color = _color(label)
        run: list[str] = []
        runs: list[list[str]] = []
        for i, v in enumerate(vs):
            if v is None:
                if run:
                    runs.append(run)
                run = []
                continue
            run.append(f"{ax.x(i):.1f},{ax.y(v):.1f}")
        if run:
            runs.append(run)
        for r in runs:
            body.append(
                f'<polyline points="{" ".join(r)}" fill="none" stroke="{color}" stroke-width="2" '
                f'stroke-dasharray="{DASHES.get(label, "none")}" '
                f'class="series" data-series="{_e(label)}"/>'
            )
        for i, v in enumerate(vs):
            if v is not None:
                tip = f"{label} · {labels[i] if i < len(labels) else i}: {v:.4f}"
                body.append(
                    f'<circle cx="{ax.x(i):.1f}" cy="{ax.y(v):.1f}" r="3" fill="{color}">'
                    f"<title>{_e(tip)}</title></circle>"
                )
        ly = TOP + 14 + 18 * k
        body.append(
            f'<line x1="{W - RIGHT + 10}" x2="{W - RIGHT + 30}" y1="{ly - 4}" y2="{ly - 4}" '
            f'stroke="{color}" stroke-width="3"/>'
            f'<text x="{W - RIGHT + 36}" y="{ly}" class="legend">{_e(label)}</text>'
        )
    return _svg(name, title, body)


def timeline(policies: dict[str, dict[str, Any]], labels: Sequence[str]) -> str:
    """One row per policy: each gate decision as a dot (filled when it moved production),
    triggers as triangles, alerts as a red bar, production versions written at promotions."""
    names = list(policies)
    row_h = 54
    height = TOP + row_h * max(len(names), 1) + BOTTOM
    n = max((len(p["periods"]) for p in policies.values()), default=1)
    ax = _Axes(n, [0.0, 1.0], labels)
    body = [
        f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{height - TOP - BOTTOM}" '
        'class="area"/>'
    ]
    step = max(1, math.ceil(n / 12))
    for i in range(0, n, step):
        body.append(
            f'<text x="{ax.x(i):.1f}" y="{height - BOTTOM + 16}" class="tick" '
            f'text-anchor="middle">{_e(labels[i] if i < len(labels) else i)}</text>'
        )
    for r, name in enumerate(names):
        y = TOP + row_h * r + row_h / 2
        body.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y}" y2="{y}" stroke="{_color(name)}" '
            'stroke-width="1" stroke-dasharray="3 3"/>'
            f'<text x="{LEFT - 6}" y="{y + 4}" class="legend" text-anchor="end">{_e(name)}</text>'
        )
        for i, p in enumerate(policies[name]["periods"]):
            x = ax.x(i)
            if p.get("alerts"):
                body.append(
                    f'<rect x="{x - 1.5:.1f}" y="{y - 22}" width="3" height="10" fill="#dc2626">'
                    f"<title>{_e(', '.join(p['alerts']))} alert</title></rect>"
                )
            if p.get("trigger_fired"):
                body.append(
                    f'<path d="M{x:.1f},{y - 20} l5,9 h-10 z" fill="#ea580c" class="trigger">'
                    f"<title>{_e('trigger: ' + '; '.join(p.get('staleness_reasons') or []))}"
                    "</title></path>"
                )
            decision = p.get("decision")
            if decision:
                color = DECISION_COLORS.get(decision, "#111827")
                fill = color if p.get("promoted") else "#ffffff"
                tip = (
                    f"{p['loop_day']}: {decision} — {p.get('challenger')} vs "
                    f"{p.get('incumbent') or 'none'}; {p.get('reason') or ''}"
                )
                body.append(
                    f'<circle cx="{x:.1f}" cy="{y}" r="6" fill="{fill}" stroke="{color}" '
                    f'stroke-width="2" class="decision" data-decision="{_e(decision)}">'
                    f"<title>{_e(tip)}</title></circle>"
                )
            if p.get("promoted") and p.get("production_after"):
                body.append(
                    f'<text x="{x:.1f}" y="{y + 20}" class="tick" text-anchor="middle">'
                    f"{_e(p['production_after'])}</text>"
                )
    lx = W - RIGHT + 10
    for k, (decision, color) in enumerate(DECISION_COLORS.items()):
        ly = TOP + 14 + 18 * k
        body.append(
            f'<circle cx="{lx + 6}" cy="{ly - 4}" r="5" fill="{color}"/>'
            f'<text x="{lx + 16}" y="{ly}" class="legend">{decision}</text>'
        )
    return (
        f'<svg class="chart" data-plot="timeline" viewBox="0 0 {W} {height}" role="img" '
        f'aria-label="promotion timeline" xmlns="http://www.w3.org/2000/svg">'
        + "".join(body)
        + "</svg>"
    )


CSS = """
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f8fafc;color:#0f172a}
main{max-width:920px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 6px}
.sub{color:#475569;margin:0 0 16px}
.wide{overflow-x:auto}td{white-space:nowrap}
table{border-collapse:collapse;width:100%;background:#fff;font-variant-numeric:tabular-nums}
th,td{padding:6px 8px;font-size:14px;border-bottom:1px solid #e2e8f0;text-align:right}
th:first-child,td:first-child{text-align:left}
figure{margin:0;background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:8px}
figcaption{color:#475569;font-size:13px;padding:4px 8px}
.chart{width:100%;height:auto;display:block}
.area{fill:#ffffff;stroke:#cbd5e1}.grid{stroke:#f1f5f9}.ref{stroke:#dc2626;stroke-dasharray:6 4}
.tick{font-size:11px;fill:#64748b}.axis{font-size:12px;fill:#334155}.legend{font-size:12px;fill:#0f172a}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:6px}
.best{font-weight:600}
"""


def estimate_caption(policies: dict[str, dict[str, Any]]) -> str:
    """Per policy: the estimate's median |error| and its interval's coverage."""
    parts = []
    for name, res in policies.items():
        est = res.get("estimate") or {}
        if est.get("periods"):
            coverage = est.get("coverage")
            parts.append(
                f"{name}: median |error| {_fmt(est.get('median_abs_error'))}, interval "
                f"covers {'—' if coverage is None else f'{coverage:.0%}'} of "
                f"{est['periods']} periods"
            )
    return "; ".join(parts) + "." if parts else ""


def render(summary: dict[str, Any]) -> str:
    policies: dict[str, dict[str, Any]] = summary["policies"]
    first: dict[str, Any] = next(iter(policies.values()), {"periods": []})
    labels = [p["data_start"][:10] for p in first["periods"]]
    metric_name = summary["metric"]
    better = "higher" if summary["higher_is_better"] else "lower"
    comparison = summary.get("comparison", {})
    means = comparison.get("mean_quality", {})
    rows = []
    for name, res in policies.items():
        cls = ' class="best"' if comparison.get("best") == name else ""
        rows.append(
            f'<tr{cls}><td><span class="swatch" style="background:{_color(name)}"></span>'
            f"{_e(name)}</td><td>{_fmt(means.get(name))}</td><td>{res['retrains']}</td>"
            f"<td>{res['promotions']}</td><td>{res['rejections']}</td><td>{res['alerts']}</td>"
            f"<td>{res['triggers_fired']}</td><td>{_e(res['final_production'] or '—')}</td>"
            f"<td>{_fmt(res['seconds_per_period'], 1)}</td></tr>"
        )

    def series(key: str) -> dict[str, list[float | None]]:
        return {k: [p.get(key) for p in v["periods"]] for k, v in policies.items()}

    psi_threshold = summary.get("psi_threshold")
    charts = [
        (
            "Quality over time",
            f"Quality ({metric_name}, {better} is better) of what each policy served, per "
            f"{summary['period']}, against every label in the file.",
            line_chart("quality", "quality over time", series("quality"), labels, metric_name),
        ),
        (
            "Prediction bias",
            "Mean prediction − mean label of the served traffic (0 is calibrated on average).",
            line_chart(
                "bias", "prediction bias", series("bias"), labels, "bias", reference=(0.0, "0")
            ),
        ),
        (
            "Drift",
            "The largest per-feature PSI of the period's traffic against the serving "
            "model's training data (the loop's `prediction_drift` asset).",
            line_chart(
                "drift",
                "feature drift",
                series("max_psi"),
                labels,
                "max PSI",
                reference=(psi_threshold, "threshold") if psi_threshold is not None else None,
            ),
        ),
        *(
            [
                (
                    "Quality estimated without labels",
                    f"The loop's label-free estimate of each {summary['period']}'s "
                    f"{metric_name} (its `live_quality`, computed the day the traffic was "
                    "served, before any of its labels: from the calibrated scores, or for "
                    "regression from a model of the error fitted on earlier matured days) "
                    "minus the realised value on every label in the file; 0 is a perfect "
                    "estimate. " + estimate_caption(policies),
                    line_chart(
                        "estimate_error",
                        "estimate error",
                        series("estimate_error"),
                        labels,
                        "estimated − realised",
                        reference=(0.0, "0"),
                    ),
                )
            ]
            if any(v is not None for vs in series("estimate_error").values() for v in vs)
            else []
        ),
        (
            "Promotions and gate decisions",
            "A filled dot moved production (version below), "
            "an open one was refused; ▲ a staleness trigger; red bars alerts.",
            timeline(policies, labels),
        ),
    ]
    figures = "".join(
        f"<h2>{_e(t)}</h2><figure>{svg}<figcaption>{_e(c)}</figcaption></figure>"
        for t, c, svg in charts
    )
    compared = comparison.get("periods_compared") or []
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lifecycle replay: {_e(summary["problem"])}</title>
<style>{CSS}</style></head>
<body><main>
<h1>Lifecycle replay — {_e(summary["problem"])} ({_e(summary["task"])})</h1>
<p class="sub">{summary["requests"]} requests from {_e(Path(summary["data"]).name)} replayed in
{summary["periods"]} {_e(summary["period"])}s (one loop day each, from
{_e(summary["mapping"]["loop_start"])}); serving {_e(summary["serving"])};
{summary["wall_seconds"]} s in all.</p>
<h2>Policies</h2>
<div class="wide"><table><thead><tr><th>policy</th><th>mean {_e(metric_name)}*</th><th>models trained</th>
<th>promotions</th><th>rejections</th><th>alerts</th><th>triggers</th><th>production now</th>
<th>s / period</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>
<p class="sub">* over the {len(compared)} periods in which every policy served a model.</p>
{figures}
</main></body></html>
"""


def write_report(summary: dict[str, Any], path: Path) -> Path:
    write_atomic(path, render(summary))
    return path

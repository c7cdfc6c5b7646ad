"""The loss curve as Markdown for the Dagster UI: an inline SVG line plot plus the numbers.

Dagster 1.13 has no chart metadata type; its UI renders Markdown metadata, images included,
so the plot travels as a `data:` URI (no files, no plotting library).
"""

from __future__ import annotations

import base64


def loss_curve_svg(losses: list[float], width: int = 360, height: int = 140) -> str:
    pad = 28
    lo, hi = min(losses), max(losses)
    span = (hi - lo) or 1.0
    steps = max(len(losses) - 1, 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = pad + (width - 2 * pad) * i / steps
        y = height - pad - (height - 2 * pad) * (v - lo) / span
        return round(x, 1), round(y, 1)

    points = " ".join(f"{x},{y}" for x, y in (xy(i, v) for i, v in enumerate(losses)))
    dots = "".join(
        f'<circle cx="{x}" cy="{y}" r="2.5" fill="#4f43dd"/>'
        for x, y in (xy(i, v) for i, v in enumerate(losses))
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="10">'
        f'<rect width="{width}" height="{height}" fill="white"/>'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        f'stroke="#999"/><line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" '
        f'stroke="#999"/>'
        f'<polyline points="{points}" fill="none" stroke="#4f43dd" stroke-width="2"/>{dots}'
        f'<text x="2" y="{pad + 4}">{hi:.4f}</text>'
        f'<text x="2" y="{height - pad + 4}">{lo:.4f}</text>'
        f'<text x="{width / 2 - 30}" y="{height - 6}">epoch 1 … {len(losses)}</text></svg>'
    )


def loss_curve_markdown(losses: list[float]) -> str:
    """A plot and a table of the mean training loss per epoch."""
    svg = base64.b64encode(loss_curve_svg(losses).encode()).decode()
    rows = "\n".join(f"| {i} | {v:.5f} |" for i, v in enumerate(losses, 1))
    return (
        f"![training loss per epoch](data:image/svg+xml;base64,{svg})\n\n"
        f"| epoch | mean training loss |\n|---:|---:|\n{rows}\n"
    )

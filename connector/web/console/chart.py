"""The overview's activity chart as inline SVG: stacked bars of delivered, skipped and failed per bucket. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

COLOURS = {"delivered": "#2f7d32", "skipped": "#9e9e9e", "failed": "#c62828"}
WIDTH, HEIGHT = 1000, 190
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 26


def activity_svg(series: Mapping[str, Sequence[int]], labels: Sequence[str], title: str) -> str:
    """SVG markup for *series* (equal-length counts per bucket, oldest first); *labels* go under the axis.

    *labels* are spread evenly from the first bucket to the last (e.g. "-60 min", "-30 min", "now").
    """
    names = [n for n in COLOURS if n in series]
    buckets = max((len(series[n]) for n in names), default=0)
    totals = [sum(series[n][i] for n in names) for i in range(buckets)]
    peak = max([*totals, 1])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(buckets, 1)
    bar = max(1.0, step * 0.8)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" class="chart" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#555"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#555"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end" font-size="11">{peak}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end" font-size="11">0</text>',
    ]
    for i in range(buckets):
        y = float(TOP + plot_h)
        for name in names:
            count = series[name][i]
            if count <= 0:
                continue
            h = plot_h * count / peak
            y -= h
            parts.append(
                f'<rect x="{LEFT + i * step + (step - bar) / 2:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{COLOURS[name]}"><title>{count} {name}</title></rect>'
            )
    for j, label in enumerate(labels):
        x = LEFT + (plot_w * j / max(len(labels) - 1, 1))
        anchor = "start" if j == 0 else "end" if j == len(labels) - 1 else "middle"
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 8}" text-anchor="{anchor}" font-size="11">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)

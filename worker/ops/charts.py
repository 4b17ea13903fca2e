"""Small charts as inline SVG, drawn on the server: no script, no build step, no library.

Each chart is polylines over equal time slices, with the largest value on the axis and the
span's ends under it; a ``<title>`` per point says its value when hovered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape

WIDTH, HEIGHT, PAD = 420, 150, 24
TOP = 40  # room for the title and the legend above the plot


@dataclass(frozen=True, slots=True, kw_only=True)
class Line:
    label: str
    color: str
    values: Sequence[float | None]  # None: no value in that slice (a gap)


def line_chart(
    title: str, starts: Sequence[datetime], lines: Sequence[Line], *, unit: str = ""
) -> str:
    top = max((v for line in lines for v in line.values if v is not None), default=0.0)
    top = top or 1.0
    slices = max(1, len(starts) - 1)
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - TOP - PAD

    def x(index: int) -> float:
        return PAD + inner_w * index / slices

    def y(value: float) -> float:
        return TOP + inner_h * (1 - value / top)

    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{PAD}" y="14" class="chart-title">{escape(title)}</text>',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        'stroke="#999"/>',
        f'<text x="{WIDTH - PAD}" y="14" text-anchor="end" class="axis">'
        f"max {_number(top)}{escape(unit)}</text>",
    ]
    if starts:
        parts.append(
            f'<text x="{PAD}" y="{HEIGHT - 8}" class="axis">{starts[0]:%H:%M}</text>'
            f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" text-anchor="end" class="axis">'
            f"{starts[-1]:%H:%M}</text>"
        )
    for position, line in enumerate(lines):
        for run in _runs(line.values):
            points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in run)
            parts.append(
                f'<polyline fill="none" stroke="{line.color}" stroke-width="2" points="{points}"/>'
            )
            parts.extend(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2" fill="{line.color}">'
                f"<title>{escape(line.label)} {_number(v)}{escape(unit)}</title></circle>"
                for i, v in run
            )
        parts.append(
            f'<text x="{PAD + 90 * position}" y="30" fill="{line.color}" '
            f'class="legend">{escape(line.label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _runs(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Consecutive slices with a value: a gap breaks the line rather than dropping to 0."""
    runs: list[list[tuple[int, float]]] = [[]]
    for index, value in enumerate(values):
        if value is None:
            if runs[-1]:
                runs.append([])
        else:
            runs[-1].append((index, value))
    return [run for run in runs if run]


def _number(value: float) -> str:
    return f"{value:.0f}" if value >= 10 or value == int(value) else f"{value:.2f}"

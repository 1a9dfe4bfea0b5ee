"""report.html's two kinds of chart as inline SVG: stacked histograms drawn as filled steps, and
labelled horizontal bars. Pure string building: a page of seven charts takes milliseconds, where
matplotlib took ~0.8 s to import and ~0.7 s to draw them on the client at the end of every build.
"""

from __future__ import annotations

import math
from html import escape

WIDTH, HEIGHT = 720, 300  # px, as the PNGs were (7.5 x 3.2 in at 96 dpi)
TOP, RIGHT, BOTTOM = 12, 18, 44
CHAR = 7  # px per character of 12-px text, for room beside labels
_AXES = 'stroke="#333" stroke-width="1"'


def nice_ticks(lo: float, hi: float, n: int = 6, integer: bool = False) -> list[float]:
    """Round tick values from ``lo`` to ``hi``, about ``n`` of them (steps of 1, 2, 2.5 or 5 x 10^k)."""
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    if integer:
        step = max(1.0, float(math.ceil(step)))
    first = math.ceil(lo / step - 1e-9)
    return [round(k * step, 10) for k in range(first, int(math.floor(hi / step + 1e-9)) + 1)]


def _text(
    x: float, y: float, s: str, anchor: str = "middle", size: int = 12, extra: str = ""
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>'
        f"{escape(s)}</text>"
    )


def _svg(width: float, height: float, body: list[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="sans-serif" role="img">'
        + "".join(body)
        + "</svg>"
    )


class _Scale:
    """Data -> pixels on one axis."""

    def __init__(self, lo: float, hi: float, p0: float, p1: float):
        self.lo, self.span, self.p0, self.p1 = lo, (hi - lo) or 1.0, p0, p1

    def __call__(self, v: float) -> float:
        return self.p0 + (v - self.lo) / self.span * (self.p1 - self.p0)


def stacked_steps(
    edges: list[float], layers: list[tuple[str, str, list[float]]], marks: dict, xlabel: str
) -> str:
    """A stacked histogram over ``edges``: ``layers`` (legend label, colour, counts per bin) bottom
    up, each one filled polygon; ``marks``: label -> x of a dashed vertical line."""
    tops = [sum(c[i] for _, _, c in layers) for i in range(len(edges) - 1)]
    yticks = nice_ticks(0.0, max(max(tops, default=0), 1), 5, integer=True)
    left = 16 + CHAR * max(len(f"{t:g}") for t in yticks) + 14
    x = _Scale(edges[0], edges[-1], left, WIDTH - RIGHT)
    y = _Scale(0.0, max(yticks[-1], max(tops, default=0)), HEIGHT - BOTTOM, TOP)
    body = [_frame(x, y, yticks, nice_ticks(edges[0], edges[-1], 8), xlabel, "rows", left)]
    bottom = [0.0] * len(tops)
    for _, colour, counts in layers:
        top = [b + c for b, c in zip(bottom, counts)]
        upper = [f"{x(e):.1f},{y(t):.1f} {x(e2):.1f},{y(t):.1f}" for e, e2, t in _bins(edges, top)]
        lower = [
            f"{x(e2):.1f},{y(b):.1f} {x(e):.1f},{y(b):.1f}" for e, e2, b in _bins(edges, bottom)
        ]
        body.append(f'<polygon points="{" ".join(upper + lower[::-1])}" fill="{colour}"/>')
        bottom = top
    for label, v in marks.items():
        if v is not None and edges[0] <= v <= edges[-1]:
            body.append(
                f'<line x1="{x(v):.1f}" y1="{TOP}" x2="{x(v):.1f}" y2="{HEIGHT - BOTTOM}" '
                'stroke="black" stroke-dasharray="5,3"/>'
            )
            body.append(_text(x(v) + 3, TOP + 12, f"{label} {v:g}", "start", 10))
    at = [x(v) for v in marks.values() if v is not None]
    body.append(_legend([(label, colour) for label, colour, _ in layers], left, at))
    return _svg(WIDTH, HEIGHT, body)


def _bins(edges: list[float], values: list[float]):
    return zip(edges[:-1], edges[1:], values)


def _frame(x: _Scale, y: _Scale, yticks, xticks, xlabel: str, ylabel: str, left: float) -> str:
    """Both axes, their ticks and labels."""
    y0, parts = HEIGHT - BOTTOM, [_xaxis(x, xticks, xlabel, left, HEIGHT)]
    parts.append(f'<line x1="{left}" y1="{TOP}" x2="{left}" y2="{y0}" {_AXES}/>')
    for t in yticks:
        parts.append(f'<line x1="{left - 4}" y1="{y(t):.1f}" x2="{left}" y2="{y(t):.1f}" {_AXES}/>')
        parts.append(_text(left - 6, y(t) + 4, f"{t:g}", "end"))
    mid = (TOP + y0) / 2
    parts.append(_text(14, mid, ylabel, extra=f' transform="rotate(-90 14 {mid:.1f})"'))
    return "".join(parts)


def _xaxis(x: _Scale, xticks, xlabel: str, left: float, height: float) -> str:
    """The x axis of a chart ``height`` tall: its line, ticks, tick labels and label."""
    y0 = height - BOTTOM
    parts = [f'<line x1="{left}" y1="{y0}" x2="{WIDTH - RIGHT}" y2="{y0}" {_AXES}/>']
    for t in xticks:
        parts.append(f'<line x1="{x(t):.1f}" y1="{y0}" x2="{x(t):.1f}" y2="{y0 + 4}" {_AXES}/>')
        parts.append(_text(x(t), y0 + 16, f"{t:g}"))
    parts.append(_text((left + WIDTH - RIGHT) / 2, height - 6, xlabel))
    return "".join(parts)


def _legend(entries: list[tuple[str, str]], left: float, marks: list[float]) -> str:
    """The legend box, top right, or top left when a dashed line's label would fall under it."""
    if not entries:
        return ""
    w = 28 + CHAR * max(len(label) for label, _ in entries)
    x0: float = WIDTH - RIGHT - w - 6
    if any(x0 - 70 <= m <= x0 + w for m in marks):
        x0 = left + 8
    parts = [
        f'<rect x="{x0:.1f}" y="{TOP + 4}" width="{w}" height="{16 * len(entries) + 6}" '
        'fill="white" fill-opacity="0.8" stroke="#ccc"/>'
    ]
    for i, (label, colour) in enumerate(entries):
        yy = TOP + 10 + 16 * i
        parts.append(f'<rect x="{x0 + 6:.1f}" y="{yy}" width="12" height="10" fill="{colour}"/>')
        parts.append(_text(x0 + 24, yy + 9, label, "start", 11))
    return "".join(parts)


def hbars(labels: list[str], values: list[float], xlabel: str, fmt: str, colours: list[str]) -> str:
    """One horizontal bar per label, top down, each with its value written beside it."""
    left = 12 + CHAR * max(len(s) for s in labels)
    height = TOP + 24 * len(labels) + BOTTOM
    hi = max(max(values, default=0), 1e-9)
    xticks = nice_ticks(0.0, hi * 1.15, 6, integer=fmt == "d")
    x = _Scale(0.0, max(xticks[-1], hi * 1.15), left, WIDTH - RIGHT)
    body = []
    for i, (label, v, colour) in enumerate(zip(labels, values, colours)):
        yy = TOP + 24 * i + 4
        body.append(
            f'<rect x="{left}" y="{yy}" width="{x(v) - left:.1f}" height="16" fill="{colour}"/>'
        )
        body.append(_text(left - 6, yy + 12, label, "end"))
        body.append(_text(x(v) + 4, yy + 12, format(v, fmt), "start", 10))
    body.append(f'<line x1="{left}" y1="{TOP}" x2="{left}" y2="{height - BOTTOM}" {_AXES}/>')
    body.append(_xaxis(x, xticks, xlabel, left, height))
    return _svg(WIDTH, height, body)

"""Small inline-SVG charts for the HTML report: no dependency, no network.

Each function returns one ``<figure id="chart-<id>">`` holding an ``<svg>``
that any browser renders offline; hovering a point or bar shows its value (an
SVG ``<title>``). The x axis is categorical (dates or names, in the order
given), which suits daily KPIs and model versions alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9",
           "#F0E442", "#000000", "#999999")
WIDTH, HEIGHT = 640, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 40, 48
Number = float | int | None


def fmt_number(v: float) -> str:
    """``12345`` -> ``'12.3k'``."""
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{unit}"
    return f"{v:.3g}" if v != int(v) else str(int(v))


def fmt_seconds(v: float) -> str:
    return f"{v:.3g} s" if v < 120 else f"{v / 60:.3g} min"


def fmt_money(v: float) -> str:
    return f"{v:.4g}"


def _nice_max(v: float) -> float:
    if v <= 0 or not math.isfinite(v):
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * exp >= v:
            return m * exp
    return 10 * exp


def _figure(chart_id: str, title: str, body: str, legend: Sequence[str] = (),
            note: str = "", height: int = HEIGHT) -> str:
    items = "".join(
        f'<span class="key"><i style="background:{PALETTE[i % len(PALETTE)]}"></i>'
        f"{escape(name)}</span>" for i, name in enumerate(legend))
    return (f'<figure class="chart" id="chart-{escape(chart_id)}">'
            f"<figcaption>{escape(title)}</figcaption>"
            f'<svg viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
            f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
            f"{body}</svg>"
            + (f'<div class="legend">{items}</div>' if legend else "")
            + (f'<p class="note">{escape(note)}</p>' if note else "")
            + "</figure>")


def _empty(chart_id: str, title: str, message: str) -> str:
    body = (f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" class="empty"/>'
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="muted">'
            f"{escape(message)}</text>")
    return _figure(chart_id, title, body)


def _axes(categories: Sequence[str], top: float, y_fmt: Callable[[float], str]) -> list[str]:
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    parts = []
    for i in range(6):
        value = top * i / 5
        y = TOP + plot_h - plot_h * i / 5
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'class="grid"/><text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{escape(y_fmt(value))}</text>")
    n = len(categories)
    step = max(1, math.ceil(n / 8))
    for i in range(0, n, step):
        x = LEFT + (i + 0.5) * plot_w / n
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
                     f"{escape(str(categories[i])[:12])}</text>")
    parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" '
                 f'y2="{TOP + plot_h}" class="axis"/>')
    return parts


def line_chart(chart_id: str, title: str, categories: Sequence[str],
               series: Mapping[str, Sequence[Number]], *,
               y_fmt: Callable[[float], str] = fmt_number, note: str = "",
               empty: str = "no data yet") -> str:
    """Lines over categorical x, one per series; ``None`` values leave a gap.

    Args:
        chart_id: Unique id; the figure is ``#chart-<chart_id>``.
        title: Caption.
        categories: The x values, in order (e.g. ISO dates).
        series: Name -> one value per category.
        y_fmt: Formats y tick labels and hover values.
        note: A line of explanation under the chart.
        empty: What the chart says when there is nothing to draw.
    """
    values = [v for vs in series.values() for v in vs if v is not None]
    if not categories or not values:
        return _empty(chart_id, title, empty)
    top = _nice_max(max(values))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = len(categories)
    parts = _axes(categories, top, y_fmt)
    for s, (name, vs) in enumerate(series.items()):
        color = PALETTE[s % len(PALETTE)]
        points = [(LEFT + (i + 0.5) * plot_w / n, TOP + plot_h - plot_h * max(v, 0) / top, i, v)
                  for i, v in enumerate(vs) if v is not None]
        runs: list[list[tuple]] = [[]]
        for p in points:
            if runs[-1] and p[2] != runs[-1][-1][2] + 1:
                runs.append([])
            runs[-1].append(p)
        for run in runs:
            if len(run) > 1:
                d = " ".join(f"{x:.1f},{y:.1f}" for x, y, _i, _v in run)
                parts.append(f'<polyline points="{d}" fill="none" stroke="{color}" '
                             f'stroke-width="2"/>')
        radius = 3 if n <= 40 else 1.5  # dots must not merge into a bar on long ranges
        for x, y, i, v in points:
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{color}"><title>'
                         f"{escape(str(categories[i]))} {escape(name)}: {escape(y_fmt(v))}"
                         "</title></circle>")
    return _figure(chart_id, title, "".join(parts), list(series), note)


def bar_chart(chart_id: str, title: str, categories: Sequence[str],
              series: Mapping[str, Sequence[Number]], *, stacked: bool = False,
              y_fmt: Callable[[float], str] = fmt_number, note: str = "",
              empty: str = "no data yet") -> str:
    """Vertical bars per category: grouped side by side, or ``stacked``.

    Args: as :func:`line_chart`, plus ``stacked``.
    """
    values = [v or 0 for vs in series.values() for v in vs]
    if not categories or not values:
        return _empty(chart_id, title, empty)
    if stacked:
        totals = [sum((vs[i] or 0) for vs in series.values()) for i in range(len(categories))]
        top = _nice_max(max(totals))
    else:
        top = _nice_max(max(values))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n, k = len(categories), max(len(series), 1)
    slot = plot_w / n
    bar_w = slot * 0.8 if stacked else slot * 0.8 / k
    parts = _axes(categories, top, y_fmt)
    base = [0.0] * n
    for s, (name, vs) in enumerate(series.items()):
        color = PALETTE[s % len(PALETTE)]
        for i, v in enumerate(vs):
            v = v or 0
            h = plot_h * max(v, 0) / top
            x = LEFT + i * slot + slot * 0.1 + (0 if stacked else s * bar_w)
            y = TOP + plot_h - h - (plot_h * base[i] / top if stacked else 0)
            if stacked:
                base[i] += max(v, 0)
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(bar_w - 1, 1):.1f}" '
                         f'height="{h:.1f}" fill="{color}"><title>{escape(str(categories[i]))} '
                         f"{escape(name)}: {escape(y_fmt(v))}</title></rect>")
    return _figure(chart_id, title, "".join(parts), list(series), note)


def hbar_chart(chart_id: str, title: str, labels: Sequence[str], values: Sequence[float], *,
               y_fmt: Callable[[float], str] = fmt_number, note: str = "",
               empty: str = "no data yet", max_bars: int = 12) -> str:
    """Horizontal bars, largest first, for long labels (e.g. quarantine reasons)."""
    pairs = sorted(zip(labels, values, strict=True), key=lambda p: -p[1])[:max_bars]
    if not pairs:
        return _empty(chart_id, title, empty)
    top = _nice_max(max(v for _l, v in pairs))
    label_w, row_h = 260, 22
    height = int(TOP / 2 + row_h * len(pairs) + 8)
    plot_w = WIDTH - label_w - RIGHT - 48
    parts = []
    for i, (label, v) in enumerate(pairs):
        y = TOP / 2 + i * row_h
        w = plot_w * max(v, 0) / top
        parts.append(
            f'<text x="{label_w - 6}" y="{y + row_h * 0.65:.1f}" text-anchor="end">'
            f"{escape(str(label)[:42])}</text>"
            f'<rect x="{label_w}" y="{y + 2:.1f}" width="{max(w, 1):.1f}" '
            f'height="{row_h - 4:.1f}" fill="{PALETTE[0]}"><title>{escape(str(label))}: '
            f"{escape(y_fmt(v))}</title></rect>"
            f'<text x="{label_w + w + 4:.1f}" y="{y + row_h * 0.65:.1f}">{escape(y_fmt(v))}'
            "</text>")
    return _figure(chart_id, title, "".join(parts), (), note, height)

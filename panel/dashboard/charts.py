"""Traffic charts drawn on the server as inline SVG: no JavaScript, readable without colour.

The drawing is small (480 units wide) so that it scales down to a 390 px phone with its
labels still legible, rather than being clipped or scrolled.
"""

from __future__ import annotations

import math
from datetime import date, datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from mailcore.stats import LABELS, Series

COLOURS = {"received": "#2563eb", "sent": "#16a34a", "system": "#7c3aed",
           "bounced": "#d97706", "rejected": "#dc2626"}
DASHES = {"received": "", "sent": "6 3", "system": "1 3", "bounced": "2 2",
          "rejected": "8 3 2 3"}
WIDTH, HEIGHT = 480, 220
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 10, 26
LABEL_HALF = 20  # about half an x label's width ("Dec 30", "18:00") at the axis font size
HOUR_TICKS = 6  # an x label every this many hours


def _nice_max(value: int) -> int:
    """Return a round number at least value and divisible by 4, for the top of the y axis
    (so the quarter grid lines fall on whole messages)."""
    if value <= 4:
        return 4
    magnitude = 10 ** int(math.log10(value))
    for step in (1, 1.2, 1.6, 2, 4, 6, 8, 10, 12):
        top = round(step * magnitude)
        if value <= top and top % 4 == 0:
            return top
    return -(-value // 4) * 4


def _y(value: float, top: int) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / top)


def _frame(top: int, title: str) -> list[SafeString]:
    parts = [format_html('<title>{}</title>', title)]
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        value = top * fraction
        y = _y(value, top)
        parts.append(format_html(
            '<line x1="{}" x2="{}" y1="{}" y2="{}" class="grid"/>'
            '<text x="{}" y="{}" class="axis" text-anchor="end">{}</text>',
            LEFT, WIDTH - RIGHT, f"{y:.1f}", f"{y:.1f}", LEFT - 6, f"{y + 4:.1f}",
            _count_label(value)))
    return parts


def _count_label(value: float) -> str:
    """Return an axis number short enough for the margin: 800, 1.2k, 16k."""
    if value < 1000:
        return f"{value:g}"
    return f"{value / 1000:.1f}".removesuffix(".0") + "k"


def _x_text(x: float, label: str) -> SafeString:
    """Return an x-axis label centred under x, kept inside the drawing at either end."""
    anchor, x = "middle", x
    if x + LABEL_HALF > WIDTH:
        anchor, x = "end", WIDTH - 1
    elif x - LABEL_HALF < 0:
        anchor, x = "start", 1
    return format_html('<text x="{}" y="{}" class="axis x-label" text-anchor="{}">{}</text>',
                       f"{x:.1f}", HEIGHT - BOTTOM + 16, anchor, label)


def _svg(parts: list[SafeString], label: str) -> SafeString:
    return format_html(
        '<svg viewBox="0 0 {} {}" role="img" aria-label="{}" class="chart-svg">{}</svg>',
        WIDTH, HEIGHT, label, mark_safe("".join(parts)))


def _x_label(bucket: date | datetime) -> str:
    return f"{bucket:%b} {bucket.day}"


def _hour_label(hour: datetime) -> str:
    """Return midnight as its date (the day starts there), any other hour as HH:00."""
    return _x_label(hour) if hour.hour == 0 else f"{hour:%H}:00"


def line_chart(series: Series, title: str) -> SafeString:
    """Return one line per kind over the series' buckets (hours), a tick every 6 hours."""
    n = len(series.labels)
    top = _nice_max(max((max(v) for v in series.counts.values()), default=0))
    plot = WIDTH - LEFT - RIGHT
    step = plot / max(n - 1, 1)
    parts = _frame(top, title)
    ticks = [i for i, label in enumerate(series.labels) if label.hour % HOUR_TICKS == 0]
    every = max(1, math.ceil(len(ticks) / 8))
    for count, i in enumerate(ticks):
        x = LEFT + i * step
        parts.append(format_html('<line x1="{}" x2="{}" y1="{}" y2="{}" class="tick"/>',
                                 f"{x:.1f}", f"{x:.1f}", TOP, HEIGHT - BOTTOM))
        if count % every == 0:
            parts.append(_x_text(x, _hour_label(series.labels[i])))
    for kind, values in series.counts.items():
        points = " ".join(f"{LEFT + i * step:.1f},{_y(v, top):.1f}" for i, v in enumerate(values))
        parts.append(format_html(
            '<polyline points="{}" fill="none" stroke="{}" stroke-width="1.6" '
            'stroke-dasharray="{}" stroke-linejoin="round"><title>{}</title></polyline>',
            points, COLOURS[kind], DASHES[kind], kind))
    return _svg(parts, title)


def bar_chart(series: Series, title: str) -> SafeString:
    """Return stacked bars: one bar per bucket (day), one segment per kind.

    Stacked rather than grouped: 30 days of five bars side by side would be hairlines on
    a phone. Each segment's title gives its number; the page's table has them all.
    """
    n = len(series.labels)
    kinds = list(series.counts)
    days = [sum(series.counts[kind][i] for kind in kinds) for i in range(n)]
    top = _nice_max(max(days, default=0))
    group = (WIDTH - LEFT - RIGHT) / max(n, 1)
    bar = max(group * 0.75, 1)
    parts = _frame(top, title)
    every = max(1, math.ceil(n / 6))
    for i, label in enumerate(series.labels):
        x = LEFT + i * group + (group - bar) / 2
        below = 0
        for kind in kinds:
            value = series.counts[kind][i]
            if not value:
                continue
            y = _y(below + value, top)
            parts.append(format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}">'
                '<title>{} {}: {}</title></rect>',
                f"{x:.1f}", f"{y:.1f}", f"{bar:.1f}", f"{_y(below, top) - y:.1f}",
                COLOURS[kind], _x_label(label), kind, value))
            below += value
        if (n - 1 - i) % every == 0:
            parts.append(_x_text(LEFT + (i + 0.5) * group, _x_label(label)))
    return _svg(parts, title)


def legend(series: Series) -> SafeString:
    return format_html(
        '<ul class="legend">{}</ul>',
        format_html_join("", '<li><span class="swatch" style="background:{}"></span>'
                             '{} <strong>{}</strong></li>',
                         ((COLOURS[k], LABELS[k], t) for k, t in series.totals.items())))

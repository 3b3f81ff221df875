"""SVG primitives shared by report.html's charts (hetc.bundle.charts, hetc.study.uncertainty.charts): escaping, numbers
rounded to 0.1 px (deterministic output), text, rectangles, axes and the bar-chart frame (RowChart)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

PLAN_COLOUR = "#24292f"  # not in DEVICE_PALETTE: the chosen plan never looks like a device
OTHER_COLOUR = "#7f8c9a"
LIMIT_COLOUR = "#c0392b"


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _clip(text: str, limit: int) -> str:
    text = str(text)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _num(value: float) -> str:
    """SVG coordinate: 0.1 px, no '-0'."""
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


def _usd(value) -> str:
    return "-" if value is None else f"${value:,.2f}"


def _ms(value) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def _ratio(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _tint(colour: str, keep: float = 0.25) -> str:
    """The colour mixed with white (keep = share of the colour): a readable background for dark text."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    mix = [round(c * keep + 255 * (1 - keep)) for c in (r, g, b)]
    return "#" + "".join(f"{c:02x}" for c in mix)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 5 x 10^k steps)."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    value = first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < hi:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _tick_label(value: float, unit: str = "") -> str:
    if unit == "$":
        return f"${value:,.0f}" if value >= 10 or value == 0 else f"${value:,.2g}"
    return f"{value:,.0f}" if abs(value) >= 10 or value == 0 else f"{value:.2g}"


def _svg(chart_id: str, width: float, height: float, body: str, label: str) -> str:
    return (f'<svg id="{chart_id}" class="chart" role="img" aria-label="{_esc(label)}" '
            f'xmlns="http://www.w3.org/2000/svg" width="{_num(width)}" height="{_num(height)}" '
            f'viewBox="0 0 {_num(width)} {_num(height)}">{body}</svg>')


def _text(x: float, y: float, text: str, size: int = 12, anchor: str = "start", fill: str = "#1f2328",
          weight: str = "normal") -> str:
    bold = "" if weight == "normal" else f' font-weight="{weight}"'
    return (f'<text x="{_num(x)}" y="{_num(y)}" font-size="{size}" text-anchor="{anchor}" fill="{fill}"{bold}>'
            f'{_esc(text)}</text>')


def _rect(x: float, y: float, w: float, h: float, fill: str, title: str = "", extra: str = "") -> str:
    tip = f"<title>{_esc(title)}</title>" if title else ""
    return (f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(max(w, 0.0))}" height="{_num(h)}" fill="{fill}"'
            f'{extra}>{tip}</rect>')


BAR_LEFT, BAR_RIGHT_PAD, BAR_H, BAR_GAP, CHART_W = 230.0, 110.0, 20.0, 8.0, 900.0


def _x_axis(x0: float, x1: float, y: float, top: float, ticks: Sequence[float], scale, unit: str) -> str:
    parts = [f'<line x1="{_num(x0)}" y1="{_num(y)}" x2="{_num(x1)}" y2="{_num(y)}" stroke="#8c959f"/>']
    for t in ticks:
        x = scale(t)
        parts.append(f'<line x1="{_num(x)}" y1="{_num(top)}" x2="{_num(x)}" y2="{_num(y)}" stroke="#eaeef2"/>')
        parts.append(_text(x, y + 14, _tick_label(t, unit), 11, "middle", "#57606a"))
    return "".join(parts)


@dataclass(frozen=True)
class RowChart:
    """The frame the bar charts share: one row of BAR_H per item down the chart, a linear x axis from ticks[0] to
    ticks[-1] under the rows, and a caption under the axis."""

    ticks: Sequence[float]
    rows: int
    plot_w: float = CHART_W - BAR_LEFT - BAR_RIGHT_PAD
    left: float = BAR_LEFT
    top: float = 10.0

    def x(self, value: float) -> float:
        return self.left + (value - self.ticks[0]) / (self.ticks[-1] - self.ticks[0]) * self.plot_w

    def row_y(self, row: int) -> float:
        return self.top + row * (BAR_H + BAR_GAP)

    @property
    def axis_y(self) -> float:
        return self.row_y(self.rows)

    def axis(self, unit: str) -> str:
        return _x_axis(self.left, self.left + self.plot_w, self.axis_y, self.top, self.ticks, self.x, unit)

    def finish(self, chart_id: str, parts: list[str], caption: str, label: str) -> str:
        """The <svg>: the parts, then the caption centred under the axis."""
        below = _text(self.left + self.plot_w / 2, self.axis_y + 30, caption, 11, "middle", "#57606a")
        return _svg(chart_id, CHART_W, self.axis_y + 40, "".join(parts) + below, label)

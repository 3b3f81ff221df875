"""report.html's section on the decision under uncertainty (docs/uncertainty.md): the verdict sentence, TCO
with error bars per alternative and per baseline (chart-uncertainty: p10-p90 whiskers, p50 dot, nominal
tick), and a tornado of the decisive inputs (chart-tornado: the nominal plan's $/hour with one input at its
p10 and at its p90, the others nominal). The input is a study's JSON results (hetc.study.uncertainty.analysis.study:
plan.json's "uncertainty", or one combination of `hetc sweep --pairs --uncertainty`). Inline SVG only, like
the rest of the report (hetc.bundle.report), every user string escaped.
"""

from __future__ import annotations

from hetc.bundle.svg import (
    BAR_H,
    BAR_LEFT,
    BAR_RIGHT_PAD,
    CHART_W,
    LIMIT_COLOUR,
    PLAN_COLOUR,
    RowChart,
    _clip,
    _esc,
    _num,
    _rect,
    _svg,
    _text,
    _usd,
    nice_ticks,
)

LOW_COLOUR = "#0072B2"  # the tornado's bar with the input at its p10
HIGH_COLOUR = "#E69F00"  # ... at its p90
BASELINE_COLOUR = "#8c959f"
LABEL_CHARS = 34
TORNADO_NOTE_W = 290.0  # px right of the tornado's plot for "swing ...; flips the decision; misses the SLA ..."


def uncertainty_section(study: dict) -> str:
    note = (f"{study['samples']:,} samples, seed {study['seed']}, uncertain inputs: {study['uncertainty']} "
            "(cost-model error bands, prices, power, interest, traffic; docs/uncertainty.md). Whiskers: p10-p90 "
            "of each alternative's TCO re-solved in every sample; dot: p50; tick: nominal.")
    return ("<section><h2>Under uncertainty</h2>"
            f'<p id="uncertainty-verdict"><b>{_esc(study["verdict"])}</b></p><p class="note">{_esc(note)}</p>'
            + bands_svg(study)
            + "<h2>Decisive inputs</h2><p class=\"note\">The nominal plan's $/hour with one input at its p10 "
              "(blue) and at its p90 (orange), every other input nominal; the line is its nominal $/hour.</p>"
            + tornado_svg(study) + "</section>")


def _band_rows(study: dict) -> list[tuple[str, dict, bool]]:
    """(label, row, is a baseline): alternatives most often cheapest first, then the baselines."""
    alternatives = sorted(study["alternatives"],
                          key=lambda r: (-r["p_cheapest"], r["nominal_usd_per_hour"] is None,
                                         r["nominal_usd_per_hour"] or 0.0, r["plan"]))
    return ([(r["plan"], r, False) for r in alternatives]
            + [(r["plan"], r, True) for r in study.get("baselines", [])])


def bands_svg(study: dict) -> str:
    rows = _band_rows(study)
    values = [v for _, r, _ in rows for v in (r["p90_usd_per_hour"], r["nominal_usd_per_hour"]) if v is not None]
    chart = RowChart(nice_ticks(0.0, max(values) if values else 1.0), len(rows),
                     plot_w=CHART_W - BAR_LEFT - BAR_RIGHT_PAD - 60.0)
    parts = [chart.axis("$")]
    for i, (label, row, baseline) in enumerate(rows):
        y = chart.row_y(i)
        mid = y + BAR_H / 2
        parts.append(_text(BAR_LEFT - 8, mid + 4, _clip(label, LABEL_CHARS), 12, "end"))
        low, p50, high = row["p10_usd_per_hour"], row["p50_usd_per_hour"], row["p90_usd_per_hour"]
        if low is None:
            parts.append(_text(BAR_LEFT + 4, mid + 4, "infeasible in every sample", 11, fill=LIMIT_COLOUR))
            continue
        colour = BASELINE_COLOUR if baseline else PLAN_COLOUR
        share = "baseline" if baseline else f"cheapest in {row['p_cheapest']:.0%}"
        tip = f"{label}: p10 {_usd(low)}, p50 {_usd(p50)}, p90 {_usd(high)} per hour; {share}"
        parts.append(f'<g class="band"><title>{_esc(tip)}</title>'
                     f'<line class="errorbar" x1="{_num(chart.x(low))}" y1="{_num(mid)}" x2="{_num(chart.x(high))}" '
                     f'y2="{_num(mid)}" stroke="{colour}" stroke-width="2"/>'
                     + "".join(f'<line x1="{_num(chart.x(v))}" y1="{_num(y + 4)}" x2="{_num(chart.x(v))}" '
                               f'y2="{_num(y + BAR_H - 4)}" stroke="{colour}" stroke-width="2"/>' for v in (low, high))
                     + f'<circle cx="{_num(chart.x(p50))}" cy="{_num(mid)}" r="4" fill="{colour}"/></g>')
        if row["nominal_usd_per_hour"] is not None:
            x = chart.x(row["nominal_usd_per_hour"])
            parts.append(f'<line class="nominal" x1="{_num(x)}" y1="{_num(y + 1)}" x2="{_num(x)}" '
                         f'y2="{_num(y + BAR_H - 1)}" stroke="{LIMIT_COLOUR}" stroke-width="2"/>')
        parts.append(_text(chart.x(high) + 8, mid + 4, f"{share}; {_usd(low)}-{_usd(high)}/h", 11))
    return chart.finish("chart-uncertainty", parts, "$ per hour (whole plan)", "TCO bands under uncertainty")


def tornado_svg(study: dict) -> str:
    rows = study.get("tornado") or []
    nominal = (study.get("nominal_plan") or {}).get("nominal_usd_per_hour")
    if not rows or nominal is None:
        return _svg("chart-tornado", CHART_W, 40, _text(10, 24, "no input moves the nominal plan's cost"),
                    "decisive inputs")
    ends = [v for r in rows for v in (r["nominal_plan_usd_per_hour_p10"], r["nominal_plan_usd_per_hour_p90"])]
    ticks = nice_ticks(min(ends + [nominal]) * 0.95, max(ends + [nominal]) * 1.02)
    chart = RowChart(ticks, len(rows), plot_w=CHART_W - BAR_LEFT - TORNADO_NOTE_W)
    parts = [chart.axis("$")]
    centre = chart.x(nominal)
    for i, row in enumerate(rows):
        y = chart.row_y(i)
        parts.append(_text(BAR_LEFT - 8, y + 14, _clip(row["input"], LABEL_CHARS), 12, "end"))
        for key, colour, end in (("nominal_plan_usd_per_hour_p10", LOW_COLOUR, "p10"),
                                 ("nominal_plan_usd_per_hour_p90", HIGH_COLOUR, "p90")):
            x = chart.x(row[key])
            parts.append(_rect(min(x, centre), y, abs(x - centre), BAR_H, colour,
                               f"{row['input']} at its {end} (x{row['factor_' + end]:.3g}): {_usd(row[key])}/hour",
                               f' class="bar tornado {end}"'))
        flips = row["cheapest_p10"] != row["cheapest_p90"]
        sla = row["nominal_plan_meets_sla_p10"] and row["nominal_plan_meets_sla_p90"]
        note = ("flips the decision" if flips else "") + ("" if sla else ("; " if flips else "") + "misses the SLA at one end")
        right = max(chart.x(row["nominal_plan_usd_per_hour_p10"]), chart.x(row["nominal_plan_usd_per_hour_p90"]), centre)
        parts.append(_text(right + 8, y + 14, f"swing {_usd(row['swing_usd_per_hour'])}/h" + (f"; {note}" if note else ""),
                           11, fill=LIMIT_COLOUR if flips or not sla else "#1f2328"))
    parts.append(f'<line class="limit" x1="{_num(centre)}" y1="{_num(chart.top)}" x2="{_num(centre)}" y2="{_num(chart.axis_y)}" '
                 f'stroke="#1f2328" stroke-width="1.5" stroke-dasharray="4 3"/>')
    return chart.finish("chart-tornado", parts, "the nominal plan's $ per hour", "decisive inputs (tornado)")

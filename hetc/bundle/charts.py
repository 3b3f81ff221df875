"""report.html's charts of a plan and a sweep, each an inline <svg> with a stable id: chart-plan (stages as a graph,
coloured by device class), chart-tco (each stage's cost by component), chart-baselines (homogeneous baselines),
chart-sla (every path against its limit), chart-pareto (cost vs latency with the non-dominated front) and
chart-pd (TCO benefit of every P::D pair relative to the baseline pair). Page assembly is hetc.bundle.report;
the primitives (escaping, 0.1 px coordinates, axes, the bar-chart frame) are hetc.bundle.svg.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

from hetc.bundle.svg import (
    BAR_GAP,
    BAR_H,
    BAR_RIGHT_PAD,
    CHART_W,
    LIMIT_COLOUR,
    OTHER_COLOUR,
    PLAN_COLOUR,
    RowChart,
    _clip,
    _esc,
    _num,
    _rect,
    _svg,
    _text,
    _tick_label,
    _tint,
    _usd,
    _x_axis,
    nice_ticks,
)
from hetc.model.tco import shown_components

# Okabe-Ito colour-blind-safe palette, then a few extra distinct hues; assigned to device ids in sorted order.
DEVICE_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#7F3C8D",
                  "#11A579", "#3969AC", "#F2B701", "#E73F74", "#80BA5A", "#E68310", "#008695", "#CF1C90")
NO_DEVICE_COLOUR = "#9aa0a6"  # input and output stages
COMPONENT_COLOURS = {"capital": "#3969AC", "power": "#F2B701", "overhead": "#7F3C8D", "cloud": "#11A579"}


def device_colours(devices: Iterable[str]) -> dict[str, str]:
    return {dev: DEVICE_PALETTE[i % len(DEVICE_PALETTE)] for i, dev in enumerate(sorted(set(devices)))}



# --------------------------------------------------------------------------------------- plan graph


def _layers(plan: dict) -> dict[str, int]:
    """Column of each stage: the longest chain of forward edges that reaches it (stages are topological)."""
    layer = {s["id"]: 0 for s in plan["stages"]}
    preds: dict[str, list[str]] = {s["id"]: [] for s in plan["stages"]}
    for e in plan.get("edges", []):
        if not e["back_edge"] and e["src"] in layer and e["dst"] in layer:
            preds[e["dst"]].append(e["src"])
    for s in plan["stages"]:
        if preds[s["id"]]:
            layer[s["id"]] = 1 + max(layer[p] for p in preds[s["id"]])
    return layer


NODE_W, NODE_H, COL_W, ROW_H, GRAPH_PAD = 168.0, 60.0, 212.0, 84.0, 24.0


def plan_graph_svg(plan: dict, colours: dict[str, str]) -> str:
    stages = plan["stages"]
    if not stages:
        return _svg("chart-plan", 400, 40, _text(10, 24, "no stages"), "plan graph")
    layer = _layers(plan)
    rows: dict[int, int] = {}
    pos: dict[str, tuple[float, float]] = {}
    for s in stages:
        col = layer[s["id"]]
        row = rows.get(col, 0)
        rows[col] = row + 1
        pos[s["id"]] = (GRAPH_PAD + col * COL_W, GRAPH_PAD + 16 + row * ROW_H)
    back_edges = [e for e in plan.get("edges", []) if e["back_edge"] and e["src"] in pos and e["dst"] in pos]
    width = GRAPH_PAD * 2 + max(layer.values()) * COL_W + NODE_W
    bottom = GRAPH_PAD + 16 + max(rows.values()) * ROW_H - (ROW_H - NODE_H)
    height = bottom + GRAPH_PAD + (26 * len(back_edges) + 8 if back_edges else 0)
    parts = [('<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
              'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#57606a"/></marker></defs>')]
    for e in plan.get("edges", []):
        if e["back_edge"] or e["src"] not in pos or e["dst"] not in pos:
            continue
        (x1, y1), (x2, y2) = pos[e["src"]], pos[e["dst"]]
        sx, sy, tx, ty = x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2
        mid = (sx + tx) / 2
        tip = (f"{e['src']} -> {e['dst']}: {e['transport']}, {e['payload_bytes']:,.0f} bytes, "
               f"{e['predicted_ms']:.2f} ms, probability {e['probability']:g}")
        dash = ' stroke-dasharray="5 3"' if e["probability"] < 1 else ""
        parts.append(f'<path d="M{_num(sx)},{_num(sy)} C{_num(mid)},{_num(sy)} {_num(mid)},{_num(ty)} '
                     f'{_num(tx - 2)},{_num(ty)}" fill="none" stroke="#57606a" stroke-width="1.5"{dash} '
                     f'marker-end="url(#arrow)"><title>{_esc(tip)}</title></path>')
        if e["probability"] < 1:
            parts.append(_text(mid, (sy + ty) / 2 - 4, f"p={e['probability']:g}", 11, "middle", "#57606a"))
    for i, e in enumerate(back_edges):
        (x1, y1), (x2, y2) = pos[e["src"]], pos[e["dst"]]
        # leave the source on its right, run below every stage, enter the target from below
        sx, sy, tx = x1 + NODE_W, y1 + NODE_H / 2, x2 + NODE_W / 2
        out_x = sx + 14
        low = bottom + 16 + 26 * i
        bound = f"loop \u2264{e['max_iterations']}x" if e.get("max_iterations") else "loop"
        loop_tip = f"{e['src']} -> {e['dst']}: {bound}"
        parts.append(f'<path d="M{_num(sx)},{_num(sy)} H{_num(out_x)} V{_num(low)} H{_num(tx)} '
                     f'V{_num(y2 + NODE_H + 2)}" fill="none" stroke="#8250df" stroke-width="1.5" '
                     f'stroke-dasharray="6 3" marker-end="url(#arrow)">'
                     f'<title>{_esc(loop_tip)}</title></path>')
        parts.append(_text((out_x + tx) / 2, low - 4, bound, 11, "middle", "#8250df"))
    for s in stages:
        x, y = pos[s["id"]]
        colour = colours.get(s.get("device") or "", NO_DEVICE_COLOUR)
        if s.get("device"):
            detail = f"{s['replicas']}x tp{s['tp']}" + (f" pp{s['pp']}" if s["pp"] > 1 else "") + f" b{s['batch']}"
            tip = (f"{s['id']} ({s['kind']}) on {s['device']}: {detail}, {s['predicted']['latency_ms']:.1f} ms, "
                   f"{_usd(s['tco']['usd_per_hour'])}/hour")
        else:
            detail, tip = s["kind"], f"{s['id']} ({s['kind']})"
        parts.append(f'<g class="stage" data-device="{_esc(s.get("device") or "")}"><title>{_esc(tip)}</title>')
        parts.append(_rect(x, y, NODE_W, NODE_H, _tint(colour), extra=f' rx="6" stroke="{colour}" stroke-width="1.5"'))
        parts.append(_rect(x, y, 7, NODE_H, colour, extra=' rx="3"'))
        parts.append(_text(x + 14, y + 18, _clip(s["id"], 22), 13, weight="600"))
        parts.append(_text(x + 14, y + 35, _clip(s.get("device") or "-", 24), 11, fill="#424a53"))
        parts.append(_text(x + 14, y + 51, _clip(detail, 24), 11, fill="#424a53"))
        parts.append("</g>")
    return _svg("chart-plan", width, height, "".join(parts), "the plan: stages coloured by device class")


# ------------------------------------------------------------------------------------------ bar charts

def components(plan: dict, tco: dict) -> list[tuple[str, str, float]]:
    """(name, label, $/hour) of the TCO components the plan's pricing shows, in stacking order."""
    return shown_components(tco, plan["tco"].get("pricing"))


def tco_svg(plan: dict) -> str:
    stages = [s for s in plan["stages"] if s.get("device") and (s["tco"]["usd_per_hour"] or 0) > 0]
    if not stages:
        return _svg("chart-tco", CHART_W, 40, _text(10, 24, "no stage costs anything"), "TCO per stage")
    chart = RowChart(nice_ticks(0.0, max(s["tco"]["usd_per_hour"] for s in stages)), len(stages))
    parts = [chart.axis("$")]
    for i, s in enumerate(stages):
        y = chart.row_y(i)
        parts.append(_text(chart.left - 8, y + 14, _clip(f"{s['id']} ({s['device']})", 34), 12, "end"))
        start = 0.0
        for name, label, value in components(plan, s["tco"]):  # stacked in COMPONENTS order
            parts.append(_rect(chart.x(start), y, chart.x(start + value) - chart.x(start), BAR_H,
                               COMPONENT_COLOURS[name], f"{s['id']}: {label} {_usd(value)}/hour", f' class="bar {name}"'))
            start += value
        parts.append(_text(chart.x(start) + 6, y + 14, f"{_usd(s['tco']['usd_per_hour'])}/h", 11))
    return chart.finish("chart-tco", parts, "$ per hour",
                        "TCO per stage: " + ", ".join(label for _, label, _ in components(plan, plan["tco"])))


def baselines_svg(plan: dict, colours: dict[str, str]) -> str:
    rows = [("this plan", plan["tco"]["usd_per_hour"], PLAN_COLOUR, None)]
    for b in plan.get("baselines", []):
        rows.append((f"all on {b['device']}", b["usd_per_hour"] if b["feasible"] else None,
                     colours.get(b["device"], OTHER_COLOUR), None if b["feasible"] else (b.get("reason") or "")))
    costs = [r[1] for r in rows if r[1] is not None]
    chart = RowChart(nice_ticks(0.0, max(costs) if costs else 1.0), len(rows))
    parts = [chart.axis("$")]
    base = plan["tco"]["usd_per_hour"]
    for i, (label, cost, colour, reason) in enumerate(rows):
        y = chart.row_y(i)
        parts.append(_text(chart.left - 8, y + 14, _clip(label, 34), 12, "end", weight="600" if i == 0 else "normal"))
        if cost is None:
            parts.append(_text(chart.left + 4, y + 14, _clip(f"infeasible: {reason}", 90), 11, fill=LIMIT_COLOUR))
            continue
        parts.append(_rect(chart.left, y, chart.x(cost) - chart.left, BAR_H, colour, f"{label}: {_usd(cost)}/hour",
                           ' class="bar"'))
        note = f"{_usd(cost)}/h" + (f"  (plan = {base / cost:.2f}x)" if i and cost else "")
        parts.append(_text(chart.x(cost) + 6, y + 14, note, 11))
    return chart.finish("chart-baselines", parts, "$ per hour", "homogeneous baselines")


MIN_SEGMENT_PX = 2.0  # consecutive stages narrower than this share one bar segment


def _visible_groups(segments: list[tuple[str, float]], width) -> list[list[tuple[str, float]]]:
    """Consecutive (stage, ms) segments grouped until each group is at least MIN_SEGMENT_PX wide: a path
    through thousands of stages draws at most a few hundred rectangles, not one per stage."""
    groups: list[list[tuple[str, float]]] = []
    current: list[tuple[str, float]] = []
    ms = 0.0
    for segment in segments:
        current.append(segment)
        ms += segment[1]
        if width(ms) >= MIN_SEGMENT_PX:
            groups.append(current)
            current, ms = [], 0.0
    if current:
        groups.append(current)
    return groups


def sla_svg(plan: dict, colours: dict[str, str]) -> str:
    paths = plan.get("paths", [])  # the slowest of the plan's paths (hetc.placement.MAX_REPORTED_PATHS)
    if not paths:
        return _svg("chart-sla", CHART_W, 40, _text(10, 24, "no paths"), "SLA per path")
    by_id = {s["id"]: s for s in plan["stages"]}
    limit = plan["slo"].get("latency_ms")
    ticks = nice_ticks(0.0, max([p["latency_ms"] for p in paths] + ([limit] if limit else [])))
    left, plot_w, top, block = 20.0, CHART_W - 20.0 - BAR_RIGHT_PAD - 40, 10.0, 46.0

    def scale(v: float) -> float:
        return left + v / ticks[-1] * plot_w

    axis_y = top + len(paths) * block
    parts = [_x_axis(left, left + plot_w, axis_y, top, ticks, scale, "")]
    for i, p in enumerate(paths):
        y = top + i * block
        parts.append(_text(left, y + 12, _clip(" \u2192 ".join(p["stages"][:60]), 120), 12))
        bar_y = y + 18
        segments = [(sid, by_id[sid]["predicted"]["latency_ms"] * by_id[sid]["invocations"]["worst"])
                    for sid in p["stages"] if sid in by_id]
        covered = sum(ms for _, ms in segments)
        if covered <= p["latency_ms"] + 1e-6:
            x = left
            for group in _visible_groups(segments, lambda ms: scale(ms) - left):
                ms = sum(m for _, m in group)
                device = max(group, key=lambda seg: seg[1])[0]  # the group takes its longest stage's colour
                title = (f"{group[0][0]}: {ms:,.1f} ms on this path" if len(group) == 1 else
                         f"{len(group)} stages, {group[0][0]} to {group[-1][0]}: {ms:,.1f} ms on this path")
                w = scale(ms) - left
                parts.append(_rect(x, bar_y, w, BAR_H, colours.get(by_id[device].get("device") or "", OTHER_COLOUR),
                                   title, ' class="bar" stroke="#fff" stroke-width="0.5"'))
                x += w
            rest = p["latency_ms"] - covered
            if rest > 1e-6:
                parts.append(_rect(x, bar_y, scale(rest) - left, BAR_H, OTHER_COLOUR,
                                   f"transfers: {rest:,.1f} ms", ' class="bar"'))
        else:
            parts.append(_rect(left, bar_y, scale(p["latency_ms"]) - left, BAR_H, OTHER_COLOUR,
                               f"path: {p['latency_ms']:,.1f} ms", ' class="bar"'))
        if p.get("limit_ms") is not None:
            status = (f"slack {p['slack_ms']:,.1f} ms" if p["meets"] else f"over by {-p['slack_ms']:,.1f} ms")
        else:
            status = "no limit"
        parts.append(_text(scale(p["latency_ms"]) + 6, bar_y + 14, f"{p['latency_ms']:,.0f} ms, {status}", 11,
                           fill="#1a7f37" if p["meets"] else LIMIT_COLOUR))
    if limit:
        x = scale(limit)
        limit_tip = f"limit {limit:,.0f} ms ({plan['slo'].get('percentile') or 'p99'})"
        parts.append(f'<line class="limit" x1="{_num(x)}" y1="{_num(top)}" x2="{_num(x)}" y2="{_num(axis_y)}" '
                     f'stroke="{LIMIT_COLOUR}" stroke-width="2" stroke-dasharray="6 4"><title>{_esc(limit_tip)}</title></line>')
    parts.append(_text(left + plot_w / 2, axis_y + 30, "milliseconds (worst path: loops at their bound)", 11,
                       "middle", "#57606a"))
    height = axis_y + 40
    hidden = plan.get("paths_total", len(paths)) - len(paths)
    if hidden > 0:
        note = f"{hidden:,} faster paths not drawn (each at most {min(p['latency_ms'] for p in paths):,.1f} ms)"
        parts.append(_text(left, height, note, 11, fill="#57606a"))
        height += 16
    return _svg("chart-sla", CHART_W, height, "".join(parts), "SLA per path with slack")


# -------------------------------------------------------------------------------------------- Pareto


def pareto_points(plan: dict, sweep: Sequence[dict] | None) -> list[dict]:
    """(label, latency_ms, usd_per_hour, kind) of every plan we know both numbers for."""
    points = []
    paths = plan.get("paths") or []
    if paths:
        points.append({"label": "this plan", "latency_ms": max(p["latency_ms"] for p in paths),
                       "usd_per_hour": plan["tco"]["usd_per_hour"], "kind": "plan"})
    for b in plan.get("baselines", []):
        if b["feasible"] and b.get("critical_path_ms") is not None:
            points.append({"label": f"all on {b['device']}", "latency_ms": b["critical_path_ms"],
                           "usd_per_hour": b["usd_per_hour"], "kind": "baseline"})
    several_params = len({_params_text(r.get("params", {})) for r in sweep or []}) > 1
    for row in sweep or []:
        if row.get("status") != "ok" or row.get("critical_path_ms") is None or row.get("usd_per_hour") is None:
            continue
        if "pair" in row:
            label = f"{row['pair']}" + (" (hetc)" if row.get("choice") == "hetc" else "")
        else:
            label = _params_text(row.get("params", {})) or f"#{row.get('index')}"
        if row.get("params") and "pair" in row and several_params:
            label = f"{label} [{_params_text(row['params'])}]"
        points.append({"label": label, "latency_ms": row["critical_path_ms"], "usd_per_hour": row["usd_per_hour"],
                       "kind": "sweep"})
    return points


def pareto_front(points: Sequence[dict]) -> list[dict]:
    """Points no other point beats on both cost and latency, by increasing latency."""
    front: list[dict] = []
    for p in sorted(points, key=lambda q: (q["latency_ms"], q["usd_per_hour"], q["label"])):
        if not front or p["usd_per_hour"] < front[-1]["usd_per_hour"] - 1e-12:
            front.append(p)
    return front


def pareto_svg(plan: dict, sweep: Sequence[dict] | None) -> str:
    points = pareto_points(plan, sweep)
    if not points:
        return _svg("chart-pareto", CHART_W, 40, _text(10, 24, "no feasible plan to plot"), "cost vs latency")
    limit = plan["slo"].get("latency_ms")
    lat = [p["latency_ms"] for p in points] + ([limit] if limit else [])
    cost = [p["usd_per_hour"] for p in points]
    x_ticks = nice_ticks(0.0, max(lat) * 1.05)
    y_ticks = nice_ticks(0.0, max(cost) * 1.08)
    left, top, w, h = 70.0, 16.0, CHART_W - 70.0 - 190.0, 330.0

    def sx(v: float) -> float:
        return left + v / x_ticks[-1] * w

    def sy(v: float) -> float:
        return top + h - v / y_ticks[-1] * h

    parts = [_x_axis(left, left + w, top + h, top, x_ticks, sx, "")]
    for t in y_ticks:
        parts.append(f'<line x1="{_num(left)}" y1="{_num(sy(t))}" x2="{_num(left + w)}" y2="{_num(sy(t))}" '
                     f'stroke="#eaeef2"/>')
        parts.append(_text(left - 6, sy(t) + 4, _tick_label(t, "$"), 11, "end", "#57606a"))
    parts.append(f'<line x1="{_num(left)}" y1="{_num(top)}" x2="{_num(left)}" y2="{_num(top + h)}" stroke="#8c959f"/>')
    if limit:
        parts.append(f'<line class="limit" x1="{_num(sx(limit))}" y1="{_num(top)}" x2="{_num(sx(limit))}" '
                     f'y2="{_num(top + h)}" stroke="{LIMIT_COLOUR}" stroke-width="1.5" stroke-dasharray="6 4"/>')
        parts.append(_text(sx(limit) - 4, top + 12, f"latency limit {limit:,.0f} ms", 11, "end", LIMIT_COLOUR))
    front = pareto_front(points)
    if len(front) > 1:
        steps = [f"{_num(sx(front[0]['latency_ms']))},{_num(sy(front[0]['usd_per_hour']))}"]
        for prev, cur in itertools.pairwise(front):
            steps.append(f"{_num(sx(cur['latency_ms']))},{_num(sy(prev['usd_per_hour']))}")
            steps.append(f"{_num(sx(cur['latency_ms']))},{_num(sy(cur['usd_per_hour']))}")
        parts.append(f'<polyline class="front" points="{" ".join(steps)}" fill="none" stroke="{PLAN_COLOUR}" '
                     f'stroke-width="2"/>')
    on_front = {id(p) for p in front}
    fills = {"plan": PLAN_COLOUR, "baseline": "#0072B2", "sweep": "#E69F00"}
    order = {"plan": 0, "baseline": 1, "sweep": 2}
    labelled: list[tuple[float, float]] = []  # label anchors so far: a label too close to one is left out
    for p in sorted(points, key=lambda q: (order[q["kind"]], q["label"])):
        x, y = sx(p["latency_ms"]), sy(p["usd_per_hour"])
        if (id(p) in on_front or p["kind"] != "sweep") and all(abs(x - lx) > 60 or abs(y - ly) > 14
                                                               for lx, ly in labelled):
            labelled.append((x, y))
            parts.append(_text(x + 9, y + 4, _clip(p["label"], 30), 11))
    for p in sorted(points, key=lambda q: (-order[q["kind"]], q["label"])):  # the chosen plan drawn on top
        x, y = sx(p["latency_ms"]), sy(p["usd_per_hour"])
        tip = f"{p['label']}: {_usd(p['usd_per_hour'])}/hour, {p['latency_ms']:,.0f} ms"
        radius = 7 if p["kind"] == "plan" else 5
        parts.append(f'<circle class="point {p["kind"]}" cx="{_num(x)}" cy="{_num(y)}" r="{radius}" '
                     f'fill="{fills[p["kind"]]}" stroke="#fff" stroke-width="1.5"><title>{_esc(tip)}</title></circle>')
    parts.append(_text(left + w / 2, top + h + 32, "critical path latency (ms)", 11, "middle", "#57606a"))
    parts.append(f'<text x="14" y="{_num(top + h / 2)}" font-size="11" fill="#57606a" text-anchor="middle" '
                 f'transform="rotate(-90 14 {_num(top + h / 2)})">$ per hour</text>')
    legend_x = left + w + 24
    for i, (kind, label) in enumerate((("plan", "chosen plan"), ("baseline", "homogeneous baseline"),
                                       ("sweep", "sweep point"))):
        parts.append(f'<circle cx="{_num(legend_x)}" cy="{_num(top + 10 + i * 20)}" r="5" fill="{fills[kind]}"/>')
        parts.append(_text(legend_x + 10, top + 14 + i * 20, label, 11))
    parts.append(f'<line x1="{_num(legend_x - 6)}" y1="{_num(top + 70)}" x2="{_num(legend_x + 6)}" '
                 f'y2="{_num(top + 70)}" stroke="{PLAN_COLOUR}" stroke-width="2"/>')
    parts.append(_text(legend_x + 10, top + 74, "Pareto front", 11))
    return _svg("chart-pareto", CHART_W, top + h + 44, "".join(parts), "cost vs latency with the Pareto front")


# ------------------------------------------------------------------------------------------ P::D bars


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()))


def pd_svg(rows: Sequence[dict], colours: dict[str, str]) -> str:
    pair_rows = [r for r in rows if "pair" in r]
    groups: dict[int, list[dict]] = {}
    for r in pair_rows:
        groups.setdefault(r.get("variant", 0), []).append(r)
    benefits = [r["benefit"] for r in pair_rows if r.get("benefit") is not None]
    ticks = nice_ticks(0.0, max(benefits + [1.0]) * 1.05)
    left, plot_w, top = 300.0, CHART_W - 300.0 - BAR_RIGHT_PAD, 10.0

    def scale(v: float) -> float:
        return left + v / ticks[-1] * plot_w

    parts = []
    y = top
    for variant in sorted(groups):
        group = groups[variant]
        title = _params_text(group[0].get("params", {}))
        parts.append(_text(10, y + 14, f"{title or 'as specified'} (baseline {group[0].get('baseline', '')} = 1.0)",
                           12, weight="600"))
        y += 24
        for r in group:
            hetc = r.get("choice") == "hetc"
            label = ("hetc: " if hetc else "") + r["pair"]
            parts.append(_text(left - 30, y + 14, _clip(label, 44), 12, "end", weight="600" if hetc else "normal"))
            for k, dev in enumerate((r.get("prefill_device"), r.get("decode_device"))):
                parts.append(_rect(left - 24 + k * 11, y + 5, 9, 10, colours.get(dev or "", OTHER_COLOUR),
                                   f"{'prefill' if k == 0 else 'decode'}: {dev}"))
            if r.get("benefit") is None:
                reason = r.get("reason") or "no baseline to compare with"
                parts.append(_text(left + 4, y + 14, _clip(("infeasible: " if r["status"] != "ok" else "") + reason, 80),
                                   11, fill=LIMIT_COLOUR))
            else:
                is_base = r["pair"] == r.get("baseline") and not hetc
                fill = PLAN_COLOUR if hetc else ("#8c959f" if is_base else "#0072B2")
                parts.append(_rect(left, y, scale(r["benefit"]) - left, BAR_H, fill,
                                   f"{label}: {r['benefit']:.2f}x, LLM {_usd(r['llm_usd_per_hour'])}/hour",
                                   ' class="bar pd"'))
                parts.append(_text(scale(r["benefit"]) + 6, y + 14,
                                   f"{r['benefit']:.2f}x  ({_usd(r['llm_usd_per_hour'])}/h)", 11))
            y += BAR_H + BAR_GAP
        y += 10
    axis_y = y
    parts.insert(0, _x_axis(left, left + plot_w, axis_y, top, ticks, scale, ""))
    one = scale(1.0)
    parts.append(f'<line class="limit" x1="{_num(one)}" y1="{_num(top)}" x2="{_num(one)}" y2="{_num(axis_y)}" '
                 f'stroke="#1f2328" stroke-width="1.5" stroke-dasharray="4 3"/>')
    parts.append(_text(left + plot_w / 2, axis_y + 30, "TCO benefit relative to the baseline pair (higher is cheaper)",
                       11, "middle", "#57606a"))
    return _svg("chart-pd", CHART_W, axis_y + 40, "".join(parts), "P::D TCO benefit")


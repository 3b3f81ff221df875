"""What `hetc compile` prints: the plan as rich tables (stages, cost, SLA paths, baselines, --explain)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from hetc.console import make_console, verdict
from hetc.model.tco import shown_components

SHOWN_STAGES = 40  # rows of the stage table; a larger plan shows its costliest stages
SHOWN_PATHS = 5  # the slowest paths printed; plan.json and report.html have more
ROUTE_ENDS = 4  # a longer route prints its first and last stages only
EXPLAIN_BASIS = ("$/h in plan: the op's $/hour on the plan table's basis (owned devices first, sunk capital not "
                 "charged); the chosen candidate's is its stage's $/hour, another's adds the plan's TCO change "
                 "if only this op moved to it")


def shown_rows(rows: list[dict], rank) -> list[dict]:
    """The SHOWN_STAGES rows of least `rank(row)` (the first on ties), in their own order: a terminal table of a
    plan of thousands of stages."""
    first = set(sorted(range(len(rows)), key=lambda i: (rank(rows[i]), i))[:SHOWN_STAGES])
    return [row for i, row in enumerate(rows) if i in first]


def _route(stages: list[str]) -> str:
    if len(stages) <= 2 * ROUTE_ENDS + 1:
        return " -> ".join(stages)
    return " -> ".join([*stages[:ROUTE_ENDS], f"({len(stages) - 2 * ROUTE_ENDS} more)", *stages[-ROUTE_ENDS:]])


def _ms(value) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _usd(value) -> str:
    return "-" if value is None else f"${value:,.2f}"


def print_summary(plan: dict, output, explain: bool = False, result=None, console: Console | None = None) -> None:
    console = console or make_console()
    if not plan:
        console.print(f"no plan: the pass pipeline does not run place; bundle (IR only) written to {output}")
        return
    stages = Table(title=f"{plan['name']}: plan  (P::D {plan.get('pd') or '-'})", title_justify="left")
    for col in ("stage", "device", "replicas x tp", "batch", "latency ms", "expected/worst", "$/hour"):
        stages.add_column(col, justify="right" if col not in ("stage", "device") else "left", overflow="fold")
    work = [s for s in plan["stages"] if s["kind"] not in ("input", "output")]
    if len(work) > SHOWN_STAGES:
        stages.caption = f"the {SHOWN_STAGES} costliest of {len(work):,} stages; plan.json has them all"
        work = shown_rows(work, lambda s: -s["tco"]["usd_per_hour"])
    for s in work:
        stages.add_row(s["id"], s["device"] or "-", f"{s['replicas']} x {s['tp']}", str(s["batch"]),
                       _ms(s["predicted"]["latency_ms"]),
                       f"{s['invocations']['expected']:.2f}/{s['invocations']['worst']:g}",
                       _usd(s["tco"]["usd_per_hour"]))
    console.print(stages)
    tco = plan["tco"]
    per_tokens = f", {_usd(tco['usd_per_1m_tokens'])} per 1M output tokens" if tco.get("usd_per_1m_tokens") else ""
    parts = ", ".join(f"{label} {_usd(value)}" for _, label, value in shown_components(tco, tco.get("pricing")))
    console.print(f"TCO {_usd(tco['usd_per_hour'])}/hour ({parts}); {_usd(tco['usd_per_1m_requests'])} per 1M "
                  f"requests{per_tokens}")
    basis = plan["traffic"].get("rate_basis")
    if basis:
        console.print(f"sized for {basis}")
    for path in plan["paths"][:SHOWN_PATHS]:
        limit = f" of {_ms(path['limit_ms'])} ms (slack {_ms(path['slack_ms'])} ms)" if path["limit_ms"] else ""
        lower = "".join(f"; {p} {_ms(a['latency_ms'])} ms of {_ms(a['limit_ms'])} ms"
                        for p, a in (path.get("percentiles") or {}).items())
        top = plan["slo"].get("percentile") if lower else ""
        console.print(f"path {_route(path['stages'])}: {top + ' ' if top else ''}{_ms(path['latency_ms'])} ms{limit}"
                      f"{lower}", verdict(path["meets"], "meets", "misses"))
    if plan["paths_total"] > SHOWN_PATHS:
        console.print(f"... and {plan['paths_total'] - SHOWN_PATHS:,} faster paths (plan.json lists the "
                      f"{len(plan['paths'])} slowest)")
    if plan["baselines"]:
        base = Table(title="homogeneous baselines (every accelerator op on one class)", title_justify="left")
        for col in ("device", "$/hour", "this plan / baseline", "note"):
            base.add_column(col, overflow="fold")
        for b in plan["baselines"]:
            ratio = f"{b['relative_cost']:.2f}" if b["relative_cost"] is not None else "-"
            base.add_row(b["device"], _usd(b["usd_per_hour"]), ratio, "" if b["feasible"] else b["reason"] or "")
        console.print(base)
    if plan.get("uncertainty"):
        _print_uncertainty(plan["uncertainty"], console)
    if explain and result is not None:
        _print_explain(result, console)
    console.print(f"bundle written to {output}")


def _band(row: dict) -> str:
    return f"{_usd(row['p10_usd_per_hour'])} / {_usd(row['p50_usd_per_hour'])} / {_usd(row['p90_usd_per_hour'])}"


def _print_uncertainty(study: dict, console: Console) -> None:
    """--uncertainty: the alternatives' win probabilities and TCO bands, the baselines' bands, the deployed
    plan's band and SLA risk, and the verdict (plan.json "uncertainty"; docs/uncertainty.md)."""
    title = (f"under uncertainty ({study['samples']:,} samples, seed {study['seed']}, {study['uncertainty']}): "
             + ("alternatives" if study["rows"] == "alternatives" else "plans the samples chose, by P::D"))
    table = Table(title=title, title_justify="left")
    for col in ("plan", "nominal $/hour", "P(cheapest)", "p10 / p50 / p90 $/hour"):
        table.add_column(col, justify="left" if col == "plan" else "right", overflow="fold")
    for row in sorted(study["alternatives"], key=lambda r: (-r["p_cheapest"], r["nominal_usd_per_hour"] or 1e300)):
        table.add_row(row["plan"], _usd(row["nominal_usd_per_hour"]), f"{row['p_cheapest']:.1%}", _band(row))
    for row in study["baselines"]:
        table.add_row(row["plan"], _usd(row["nominal_usd_per_hour"]), "-", _band(row))
    console.print(table)
    nominal = study["nominal_plan"]
    if nominal:
        console.print(f"this plan: {_band(nominal)} per hour (p10 / p50 / p90), misses the SLA in "
                      f"{nominal['p_sla_violated']:.1%} of samples, regret p90 {_usd(nominal['regret_p90'])}/hour")
    robust = study["robust_plan"]
    if robust and nominal and robust["plan"] != nominal["plan"]:
        console.print(f"robust plan: {robust['plan']}, {_usd(robust['nominal_usd_per_hour'])}/hour nominal, SLA met "
                      f"in {robust['p_sla_met']:.1%} (hetc uncertainty SPEC --objective robust)")
    console.print(study["verdict"])


def _print_explain(result, console: Console) -> None:
    rows = (result.placement or {}).get("explain", [])
    if rows:
        console.print(EXPLAIN_BASIS)
    for op in rows:
        table = Table(title=f"{op['op']} ({op['kind']}): candidates", title_justify="left")
        for col in ("candidate", "status", "replicas", "path ms", "$/h in plan", "plan delta $/h", "why"):
            table.add_column(col, overflow="fold")
        for c in op["candidates"]:
            delta = c.get("delta_tco_usd_per_hour")
            table.add_row(c["candidate"], c["status"], str(c["replicas"]), _ms(c["path_ms"]),
                          _usd(c.get("usd_per_hour")), "-" if delta is None else f"{delta:+,.2f}", c["reason"])
        console.print(table)

"""What `hetc compile` prints: the plan as rich tables (stages, cost, SLA paths, baselines, --explain)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _ms(value) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _usd(value) -> str:
    return "-" if value is None else f"${value:,.2f}"


def print_summary(plan: dict, output, explain: bool = False, result=None, console: Console | None = None) -> None:
    console = console or Console(highlight=False)
    stages = Table(title=f"{plan['name']}: plan  (P::D {plan.get('pd') or '-'})", title_justify="left")
    for col in ("stage", "device", "replicas x tp", "batch", "latency ms", "expected/worst", "$/hour"):
        stages.add_column(col, justify="right" if col not in ("stage", "device") else "left")
    for s in plan["stages"]:
        if s["kind"] in ("input", "output"):
            continue
        stages.add_row(s["id"], s["device"] or "-", f"{s['replicas']} x {s['tp']}", str(s["batch"]),
                       _ms(s["predicted"]["latency_ms"]),
                       f"{s['invocations']['expected']:.2f}/{s['invocations']['worst']:g}",
                       _usd(s["tco"]["usd_per_hour"]))
    console.print(stages)
    tco = plan["tco"]
    per_tokens = f", {_usd(tco['usd_per_1m_tokens'])} per 1M output tokens" if tco.get("usd_per_1m_tokens") else ""
    console.print(f"TCO {_usd(tco['usd_per_hour'])}/hour (capital {_usd(tco['capital_usd_per_hour'])}, power "
                  f"{_usd(tco['power_usd_per_hour'])}); {_usd(tco['usd_per_1m_requests'])} per 1M requests{per_tokens}")
    for path in plan["paths"]:
        status = "[green]meets[/green]" if path["meets"] else "[red]misses[/red]"
        limit = f" of {_ms(path['limit_ms'])} ms (slack {_ms(path['slack_ms'])} ms)" if path["limit_ms"] else ""
        console.print(f"path {' -> '.join(path['stages'])}: {_ms(path['latency_ms'])} ms{limit} {status}")
    if plan["baselines"]:
        base = Table(title="homogeneous baselines (every accelerator op on one class)", title_justify="left")
        for col in ("device", "$/hour", "this plan / baseline", "note"):
            base.add_column(col)
        for b in plan["baselines"]:
            ratio = f"{b['relative_cost']:.2f}" if b["relative_cost"] is not None else "-"
            base.add_row(b["device"], _usd(b["usd_per_hour"]), ratio, "" if b["feasible"] else (b["reason"] or ""))
        console.print(base)
    if explain and result is not None:
        _print_explain(result, console)
    console.print(f"bundle written to {output}")


def _print_explain(result, console: Console) -> None:
    from hetc.frontend import value_from_attr

    attr = result.module.attributes.get("hetc.placement")
    rows = value_from_attr(attr).get("explain", []) if attr is not None else []
    for op in rows:
        table = Table(title=f"{op['op']} ({op['kind']}): candidates", title_justify="left")
        for col in ("candidate", "status", "replicas", "path ms", "$/hour", "delta $/h", "why"):
            table.add_column(col)
        for c in op["candidates"]:
            delta = c.get("delta_tco_usd_per_hour")
            table.add_row(c["candidate"], c["status"], str(c["replicas"]), _ms(c["path_ms"]), _usd(c["usd_per_hour"]),
                          "-" if delta is None else f"{delta:+,.2f}", c["reason"])
        console.print(table)

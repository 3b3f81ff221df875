"""From one plan to another without dropping below the load: per stage keep / scale up / scale down / move,
the devices to add and release, the cost delta, and an ordered list of steps.

Order: every addition first (new replicas of scaled-up stages, the replacement replicas of moved and
reconfigured stages), then traffic shifts to the replacements, then drains (replaced and surplus replicas).
Capacity is tracked per stage through the steps (replicas x the plan's predicted throughput per replica); a drain
never takes a stage below the need `rate x expected calls per request`, and `safe` says whether that held.

Migration cost (an assumption, stated in docs/replan.md): a moved or reconfigured stage runs old and new
replicas side by side while the new ones load weights and warm up and the old ones drain; we count
MIGRATION_HOURS of the new placement's $/hour as double capacity.
"""

from __future__ import annotations

from typing import Any

MIGRATION_HOURS = 1.0  # hours of double capacity per replaced stage (image pull + weight load + drain)


def _shape(stage: dict[str, Any]) -> tuple:
    """What a replica is: changing any of it replaces the replicas (new ones started before old ones drain)."""
    return stage["device"], stage["tp"], stage["pp"], stage.get("devices_per_replica", 1), stage["batch"]


REPLACED = ("move", "reconfigure")  # new replicas started, traffic shifted, old ones drained


def _capacity(stage: dict[str, Any] | None, replicas: int | None = None) -> float | None:
    if stage is None:
        return 0.0
    per_replica = stage["predicted"].get("throughput_rps")
    return None if per_replica is None else per_replica * (stage["replicas"] if replicas is None else replicas)


def _devices(stage: dict[str, Any], replicas: int) -> int:
    return replicas * stage.get("devices_per_replica", 1)


def stage_actions(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    old_stages = {s["id"]: s for s in old["stages"] if s.get("device")}
    actions = []
    for stage in new["stages"]:
        if not stage.get("device") or stage.get("service", {}).get("type") in ("none", "transfer"):
            continue  # inputs, outputs and KV links: no servers of their own
        before = old_stages.get(stage["id"])
        if before is None:
            action = "add"
        elif _shape(before) != _shape(stage):
            action = "move" if before["device"] != stage["device"] else "reconfigure"
        elif stage["replicas"] > before["replicas"]:
            action = "scale up"
        elif stage["replicas"] < before["replicas"]:
            action = "scale down"
        else:
            action = "keep"
        actions.append({"stage": stage["id"], "action": action, "from": _placement(before), "to": _placement(stage),
                        "usd_per_hour_delta": stage["tco"]["usd_per_hour"] - _usd(before)})
    new_ids = {s["id"] for s in new["stages"]}
    for sid, before in old_stages.items():  # stages the new plan no longer has
        if sid not in new_ids and before.get("service", {}).get("type") not in ("none", "transfer"):
            actions.append({"stage": sid, "action": "remove", "from": _placement(before), "to": None,
                            "usd_per_hour_delta": -_usd(before)})
    return actions


def _placement(stage: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if stage is None else {"device": stage["device"], "replicas": stage["replicas"], "tp": stage["tp"],
                                       "batch": stage["batch"], "devices": _devices(stage, stage["replicas"])}


def _usd(stage: dict[str, Any] | None) -> float:
    return stage["tco"]["usd_per_hour"] if stage else 0.0


def migrate(old: dict[str, Any], new: dict[str, Any], need_rps: float | None = None) -> dict[str, Any]:
    """The migration from plan `old` to plan `new` at `need_rps` agent requests per second (default: the
    rate `new` was planned for). JSON-ready and deterministic."""
    if need_rps is None:  # an offline plan has no request rate: its planned equivalent, else no floor
        need_rps = new["traffic"].get("requests_per_s") or new["traffic"].get("planned_requests_per_s") or 0.0
    old_stages = {s["id"]: s for s in old["stages"]}
    new_stages = {s["id"]: s for s in new["stages"]}
    actions = stage_actions(old, new)
    need = {a["stage"]: need_rps * new_stages[a["stage"]]["invocations"]["expected"] if a["to"] else 0.0
            for a in actions}
    # capacity[stage] = [old part, new part], in calls per second (None: a stage without a throughput figure)
    capacity = {a["stage"]: [_capacity(old_stages.get(a["stage"])), 0.0] for a in actions}
    steps, lowest = [], {}

    def step(text: str, stage: str, old_part=None, new_part=None, drain: bool = False) -> None:
        cap = capacity[stage]
        if old_part is not None:
            cap[0] = old_part
        if new_part is not None:
            cap[1] = new_part
        total = None if cap[0] is None or cap[1] is None else cap[0] + cap[1]
        row = {"step": len(steps) + 1, "text": text, "stage": stage, "drain": drain,
               "capacity_rps": None if total is None else round(total, 3), "need_rps": round(need[stage], 3)}
        if drain and total is not None:
            lowest[stage] = min(lowest.get(stage, total), total)
        steps.append(row)

    for a in actions:  # 1. add capacity
        stage, to = new_stages.get(a["stage"]), a["to"]
        if a["action"] == "scale up":
            step(f"scale up {a['stage']} on {to['device']}: {a['from']['replicas']} -> {to['replicas']} replicas "
                 f"(+{to['devices'] - a['from']['devices']} devices)", a["stage"], old_part=_capacity(stage))
        elif a["action"] in (*REPLACED, "add"):
            step(f"start {a['stage']} on {to['device']}: {to['replicas']} replicas x tp{to['tp']} b{to['batch']} "
                 f"(+{to['devices']} devices); wait until ready", a["stage"], new_part=_capacity(stage))
    for a in actions:  # 2. shift traffic, 3. drain what the new plan does not keep
        if a["action"] in REPLACED:
            step(f"shift {a['stage']} traffic from the old replicas to the new", a["stage"])
    for a in actions:
        stage = new_stages.get(a["stage"])
        if a["action"] in REPLACED:
            step(f"drain and stop the old replicas of {a['stage']} on {a['from']['device']} (-{a['from']['devices']} devices)",
                 a["stage"], old_part=0.0, drain=True)
        elif a["action"] == "remove":
            step(f"drain and stop {a['stage']} on {a['from']['device']} (-{a['from']['devices']} devices): the new "
                 "plan has no such stage", a["stage"], old_part=0.0, drain=True)
        elif a["action"] == "scale down":
            step(f"drain {a['from']['replicas'] - a['to']['replicas']} replicas of {a['stage']} on "
                 f"{a['to']['device']}: {a['from']['replicas']} -> {a['to']['replicas']} "
                 f"(-{a['from']['devices'] - a['to']['devices']} devices)", a["stage"], old_part=_capacity(stage),
                 drain=True)
    below = sorted(s for s, low in lowest.items() if low + 1e-9 < need[s])
    old_devices = {d["device"]: d["count"] for d in old.get("devices", [])}
    new_devices = {d["device"]: d["count"] for d in new.get("devices", [])}
    classes = sorted(set(old_devices) | set(new_devices))
    moved = [a for a in actions if a["action"] in REPLACED]
    migration_usd = sum(new_stages[a["stage"]]["tco"]["usd_per_hour"] for a in moved) * MIGRATION_HOURS
    saving = old["tco"]["usd_per_hour"] - new["tco"]["usd_per_hour"]
    return {
        "need_rps": round(need_rps, 4),
        "stages": actions,
        "steps": steps,
        "safe": not below,
        "below_need": below,
        "devices": {"add": {d: new_devices.get(d, 0) - old_devices.get(d, 0) for d in classes
                            if new_devices.get(d, 0) > old_devices.get(d, 0)},
                    "release": {d: old_devices.get(d, 0) - new_devices.get(d, 0) for d in classes
                                if old_devices.get(d, 0) > new_devices.get(d, 0)}},
        "usd_per_hour": {"old": old["tco"]["usd_per_hour"], "new": new["tco"]["usd_per_hour"],
                         "delta": new["tco"]["usd_per_hour"] - old["tco"]["usd_per_hour"]},
        "migration_cost": {"usd": round(migration_usd, 4), "double_capacity_hours": MIGRATION_HOURS,
                           "moved_stages": [a["stage"] for a in moved],
                           "payback_hours": round(migration_usd / saving, 2) if moved and saving > 0 else None},
    }


def _placement_text(place: dict[str, Any] | None) -> str:
    return f"{place['device']} {place['replicas']}x tp{place['tp']} b{place['batch']}" if place else "-"


def migration_text(m: dict[str, Any]) -> str:
    """The migration in words."""
    lines = [f"migration at {m['need_rps']:g} requests/s:"]
    for a in m["stages"]:
        before, after = _placement_text(a["from"]), _placement_text(a["to"])
        lines.append(f"  {a['stage']}: {a['action']}" + ("" if a["action"] == "keep" else f" ({before} -> {after})"))
    usd = m["usd_per_hour"]
    lines.append(f"  cost: ${usd['old']:,.2f}/hour -> ${usd['new']:,.2f}/hour "
                 f"({'+' if usd['delta'] >= 0 else '-'}${abs(usd['delta']):,.2f}/hour)")
    for verb in ("add", "release"):
        if m["devices"][verb]:
            lines.append(f"  devices to {verb}: " + ", ".join(f"{n} x {d}" for d, n in m["devices"][verb].items()))
    if m["migration_cost"]["moved_stages"]:
        lines.append(f"  migration cost: ${m['migration_cost']['usd']:,.2f} "
                     f"({m['migration_cost']['double_capacity_hours']:g} h of double capacity per replaced stage"
                     + (f"; paid back in {m['migration_cost']['payback_hours']:g} h)"
                        if m["migration_cost"]["payback_hours"] is not None else ")"))
    lines.append("  steps:" if m["steps"] else "  steps: none")
    lines += [f"    {s['step']}. {s['text']}" for s in m["steps"]]
    sim = m.get("simulated")
    if sim:
        verdict = "meets the SLA" if sim["meets_sla"] else "WARNING: misses the SLA: " + "; ".join(
            sim["failed"] or [f"{sim['dropped']} requests dropped"])
        lines.append(f"  simulated at {sim['rate_rps']:g} requests/s for {sim['duration_s']:g} s "
                     f"({sim['requests']} requests): {verdict}")
    if not m["safe"]:
        lines.append("  WARNING: a drain takes " + ", ".join(m["below_need"]) + " below the observed need")
    return "\n".join(lines) + "\n"

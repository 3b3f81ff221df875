"""The report of a finished simulation: latency, TTFT and TBT percentiles, one check per SLA target,
dropped requests and why, per-stage utilisation and waits, and the placement's analytic capacity."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hetc.study.simulate.engine import Simulation
from hetc.study.simulate.stages import SERVICE_BATCH, SERVICE_CONTINUOUS, SERVICE_NONE

SPEC_PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p99.9": 99.9}


def analytic_capacity(plan: dict[str, Any]) -> tuple[float | None, str | None]:
    """The placement's predicted capacity: min over stages of replicas * throughput_rps / expected invocations."""
    best: tuple[float | None, str | None] = (None, None)
    for stage in plan["stages"]:
        throughput = stage["predicted"].get("throughput_rps")
        expected = stage["invocations"]["expected"]
        if stage["service"]["type"] == "none" or not throughput or expected <= 0:
            continue
        capacity = stage["replicas"] * throughput / expected
        if best[0] is None or capacity < best[0]:
            best = (capacity, stage["id"])
    return best


def _percentiles(values: np.ndarray) -> dict[str, float] | None:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return None
    # inverted_cdf: the smallest measured value with at least that fraction of requests at or below it, so a
    # percentile is within its target exactly when that fraction of requests meets the target
    p50, p90, p99 = np.percentile(values, [50, 90, 99], method="inverted_cdf")
    return {"p50": rounded(p50), "p90": rounded(p90), "p99": rounded(p99), "mean": rounded(values.mean()),
            "max": rounded(values.max())}


def rounded(value: float, digits: int = 3) -> float:
    return float(round(float(value), digits))


def latency_targets(slo: dict[str, Any]) -> dict[str, float]:
    """Every end-to-end latency percentile target of the plan's SLO, e.g. {"p50": 800, "p99": 2500}."""
    targets = dict(slo.get("latency_percentiles_ms") or {})
    if slo.get("latency_ms") is not None:
        targets.setdefault(slo["percentile"], slo["latency_ms"])
    return dict(sorted(targets.items(), key=lambda item: SPEC_PERCENTILES[item[0]]))


def _checks(slo: dict[str, Any], metrics: dict[str, np.ndarray], dropped: np.ndarray) -> list[dict[str, Any]]:
    """One row per SLA target: the measured percentile (dropped requests count as never answering) and
    the fraction of requests within the target; a target is met when that fraction reaches the percentile."""
    rows = []
    wanted = [("latency_ms", name, ms) for name, ms in latency_targets(slo).items()]
    wanted += [(key, slo["percentile"], slo[key]) for key in ("ttft_ms", "tbt_ms") if slo.get(key) is not None]
    for metric, name, target in wanted:
        values = np.where(dropped, np.inf, metrics[metric])
        values = values[~np.isnan(values)]  # TTFT/TBT: only requests that made an LLM call
        required = SPEC_PERCENTILES[name] / 100.0
        if values.size == 0:
            continue
        measured = float(np.percentile(values, SPEC_PERCENTILES[name], method="inverted_cdf"))
        attainment = float(np.count_nonzero(values <= target)) / values.size
        rows.append({"metric": metric, "percentile": name, "target_ms": float(target),
                     "measured_ms": rounded(measured) if math.isfinite(measured) else None,
                     "attainment": rounded(attainment, 5), "required": required,
                     "meets": attainment >= required})
    return rows


def _dropped(sim: Simulation) -> tuple[np.ndarray, dict[str, int]]:
    """Requests that did not complete, and why (the event budget, or tokens left waiting at a stage)."""
    done = ~np.isnan(np.asarray(sim.done_ms, dtype=float))
    reasons: dict[str, int] = {}
    if done.all():
        return ~done, reasons
    waiting = {request: stage for request, stage in sorted(sim.joins)}
    for request in np.flatnonzero(~done).tolist():
        if sim.events >= sim.max_events:
            reason = f"the event budget ({sim.max_events:,} events) ran out first"
        elif request in waiting:
            reason = f"left waiting for inputs at stage {sim.stages[waiting[request]].id}"
        else:
            reason = "left waiting inside a loop"
        reasons[reason] = reasons.get(reason, 0) + 1
    return ~done, reasons


def summarise(plan: dict[str, Any], sim: Simulation, *, arrivals: str, rate: float | None, window_s: float,
            seed: int) -> dict[str, Any]:
    arrival = np.asarray(sim.arrival_ms)
    done = np.asarray(sim.done_ms)
    latency = done - arrival
    ttft = np.asarray(sim.ttft_ms)
    tbt = np.asarray(sim.tbt_ms)
    slo = plan["slo"]
    n = sim.n_requests
    dropped, reasons = _dropped(sim)
    metrics = {"latency_ms": latency, "ttft_ms": ttft, "tbt_ms": tbt}
    checks = _checks(slo, metrics, dropped)
    # a request meets the SLA when it meets every target judged at the SLO's percentile (goodput counts them)
    meets = ~dropped
    for row in checks:
        if row["percentile"] == slo["percentile"]:
            values = metrics[row["metric"]]
            meets &= (values <= row["target_ms"]) | (np.isnan(values) & (row["metric"] != "latency_ms"))
    tail = [row["attainment"] for row in checks if row["percentile"] == slo["percentile"]]
    attainment = min(tail) if tail else (float(np.count_nonzero(~dropped)) / n if n else 0.0)
    required = SPEC_PERCENTILES[slo["percentile"]] / 100.0
    makespan_ms = float(np.nanmax(done)) if n and not dropped.all() else 0.0
    stages = []
    for stage in sim.stages:
        if stage.service_type == SERVICE_NONE:
            continue
        capacity_ms = stage.servers * makespan_ms
        busy_ms = stage.busy_ms
        if stage.service_type == SERVICE_CONTINUOUS:  # occupancy of the batch slots, not "a step is running"
            capacity_ms *= stage.max_batch
            busy_ms = stage.seq_ms
        row = {
            "id": stage.id,
            "kind": stage.kind,
            "replicas": stage.replicas,
            "visits_per_request": rounded(stage.visits / n if n else 0.0, 4),
            "utilisation": rounded(busy_ms / capacity_ms if capacity_ms > 0 else 0.0, 4),
            "mean_wait_ms": rounded(stage.wait_ms / stage.visits if stage.visits else 0.0),
            "max_wait_ms": rounded(stage.max_wait_ms),
            "wait_ms_per_request": rounded(stage.wait_ms / n if n else 0.0),
            "max_queue": stage.max_queue,
        }
        if stage.service_type == SERVICE_BATCH:
            row["mean_batch"] = rounded(stage.batch_items / stage.batches if stage.batches else 0.0)
        elif stage.service_type == SERVICE_CONTINUOUS:
            row["mean_batch"] = rounded(stage.seq_ms / stage.busy_ms if stage.busy_ms else 0.0)
        stages.append(row)
    hot = sorted(stages, key=lambda s: (-s["wait_ms_per_request"], -s["utilisation"], s["id"]))
    bottleneck = hot[0] if hot else None
    capacity, capacity_stage = analytic_capacity(plan)
    return {
        "plan": plan["name"],
        "arrivals": arrivals,
        "seed": seed,
        "rate_rps": rounded(rate, 4) if rate is not None else None,
        "window_s": rounded(window_s, 4),
        "requests": n,
        "completed": int(np.count_nonzero(~dropped)),
        "dropped": {"count": int(np.count_nonzero(dropped)), "reasons": reasons},
        "events": sim.events,
        "simulated_s": rounded(makespan_ms / 1e3, 4),
        "latency_ms": _percentiles(latency),
        "ttft_ms": _percentiles(ttft),
        "tbt_ms": _percentiles(tbt),
        "slo": dict(slo),
        "sla_attainment": rounded(attainment, 5),
        "required_attainment": required,
        "checks": checks,
        "meets_sla": bool(n > 0 and not dropped.any() and all(row["meets"] for row in checks)),
        "goodput_rps": rounded(int(meets.sum()) / window_s, 4) if window_s > 0 else None,
        "stages": stages,
        "bottleneck": None if bottleneck is None else {
            "stage": bottleneck["id"], "wait_ms_per_request": bottleneck["wait_ms_per_request"],
            "utilisation": bottleneck["utilisation"]},
        "hot_spots": [s["id"] for s in hot if s["wait_ms_per_request"] > 0][:3],
        "analytic": {"capacity_rps": None if capacity is None else rounded(capacity, 4), "stage": capacity_stage},
    }

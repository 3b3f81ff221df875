"""The simulator's entry points: check the options, draw the arrivals (Poisson or a trace), run, summarise
(simulate); bisect the highest rate that meets the SLA (sweep_rate)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from hetc.errors import HetcError, Loc
from hetc.study.simulate.engine import EVENTS_PER_S, MAX_EVENTS, Simulation
from hetc.study.simulate.summary import analytic_capacity, rounded, summarise
from hetc.study.simulate.trace import Trace


def planned_rate(plan: dict[str, Any]) -> float | None:
    """The request rate the plan was sized for: the spec's requests_per_s, or for offline work (`requests` +
    `deadline_h`, `tokens_per_day`) the rate the planner derived from its volume; None if neither."""
    traffic = plan["traffic"]
    rate = traffic.get("requests_per_s")
    return rate if rate is not None else traffic.get("planned_requests_per_s")


def _check_inputs(plan: dict[str, Any], rate_rps: float | None, duration_s: float, seed: int,
                  trace: Trace | None) -> None:
    """Refuse options that make no sense or would run for hours (exit 2 with the reason)."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise HetcError(f"--seed must be a non-negative whole number, got {seed!r}", Loc("--seed"))
    if trace is None:
        rate = rate_rps if rate_rps is not None else planned_rate(plan)
        if rate is None:
            raise HetcError("no request rate: pass --rate (the plan has no traffic.requests_per_s nor "
                            "traffic.planned_requests_per_s)", Loc("plan.json"))
        where = Loc("--rate") if rate_rps is not None else Loc("plan.json", 0, 0)
        if not (math.isfinite(rate) and rate > 0):
            raise HetcError(f"the request rate must be a positive finite number, got {rate!r}", where)
        if not (math.isfinite(duration_s) and duration_s > 0):
            raise HetcError(f"--duration must be a positive finite number of seconds, got {duration_s!r}",
                            Loc("--duration"))
        requests = rate * duration_s
    else:
        requests = float(trace.arrival_s.size)
    if requests > MAX_EVENTS:
        raise HetcError(f"{requests:.3g} requests to simulate: at most {MAX_EVENTS:,} events are simulated per run "
                        f"(about {MAX_EVENTS / EVENTS_PER_S:.0f} s of CPU); lower --rate or --duration",
                        Loc("hetc simulate"))
    per_request = _events_per_request(plan)
    if requests * per_request > MAX_EVENTS:
        raise HetcError(f"this run needs at least {requests * per_request:.3g} events ({per_request:.3g} per request: "
                        f"stage visits and decode steps); at most {MAX_EVENTS:,} are simulated per run (about "
                        f"{MAX_EVENTS / EVENTS_PER_S:.0f} s of CPU); lower --rate or --duration, or the plan's "
                        "output_tokens", Loc("hetc simulate"))


def _events_per_request(plan: dict[str, Any]) -> float:
    """A lower bound on events per request: one per stage visit, a decode step per max_batch tokens."""
    events = 1.0
    for stage in plan["stages"]:
        service = stage["service"]
        visits = float(stage["invocations"]["expected"])
        if service["type"] == "continuous":
            events += visits * max(1.0, float(service.get("output_tokens", 1)) / max(1, int(service.get("max_batch", 1))))
        elif service["type"] != "none":
            events += visits
    return events


def simulate(plan: dict[str, Any], *, rate_rps: float | None = None, duration_s: float = 60.0, seed: int = 0,
             trace: Trace | None = None, progress: Callable[[int, int], None] | None = None,
             max_events: int = MAX_EVENTS) -> dict[str, Any]:
    """Simulate a validated plan; return a JSON-ready report (see docs/plan.md, "hetc simulate")."""
    _check_inputs(plan, rate_rps, duration_s, seed, trace)
    n_stages = len(plan["stages"])
    arrival_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2 * n_stages + 1)[-1])
    if trace is not None:
        arrival_s, input_tokens, output_tokens = trace.arrival_s, trace.input_tokens, trace.output_tokens
        arrivals = "trace"
        window_s = float(arrival_s[-1] - arrival_s[0]) if arrival_s.size > 1 else 0.0
        rate = arrival_s.size / window_s if window_s > 0 else None
    else:
        rate = rate_rps if rate_rps is not None else planned_rate(plan)
        expected = rate * duration_s
        gaps = arrival_rng.exponential(1.0 / rate, int(expected + 10 * math.sqrt(expected) + 100))
        arrival_s = np.cumsum(gaps)
        arrival_s = arrival_s[arrival_s < duration_s]
        input_tokens = np.zeros(arrival_s.size, dtype=np.int64)
        output_tokens = np.zeros(arrival_s.size, dtype=np.int64)
        arrivals = "poisson"
        window_s = duration_s
    sim = Simulation(plan, arrival_s, input_tokens, output_tokens, seed, progress, max_events)
    sim.run()
    return summarise(plan, sim, arrivals=arrivals, rate=rate, window_s=window_s, seed=seed)


def sweep_rate(plan: dict[str, Any], *, duration_s: float = 60.0, seed: int = 0, relative_tolerance: float = 0.02,
               on_step: Callable[[float, bool], None] | None = None) -> dict[str, Any]:
    """Bisect the highest Poisson rate at which the simulated plan meets its SLA; compare with the analytic capacity.

    The same seed at every rate (common random numbers) keeps the search monotone in practice.
    """
    capacity, capacity_stage = analytic_capacity(plan)
    start = capacity or planned_rate(plan) or 1.0
    runs: list[dict[str, Any]] = []

    def meets(rate: float) -> bool:
        report = simulate(plan, rate_rps=rate, duration_s=duration_s, seed=seed)
        runs.append({"rate_rps": rounded(rate, 4), "meets_sla": report["meets_sla"],
                     "sla_attainment": report["sla_attainment"], "latency_p99_ms": (report["latency_ms"] or {}).get("p99"),
                     "bottleneck": (report["bottleneck"] or {}).get("stage")})
        if on_step is not None:
            on_step(rate, report["meets_sla"])
        return report["meets_sla"]

    low, high = 0.0, None
    rate = start
    for _ in range(12):  # bracket: grow until a rate fails, or shrink until one holds
        if meets(rate):
            low = rate
            if high is not None:
                break
            rate *= 1.5
        else:
            high = rate
            if low > 0:
                break
            rate /= 2.0
    if high is None:
        high = rate
    while low > 0 and high - low > relative_tolerance * low:
        middle = 0.5 * (low + high)
        if meets(middle):
            low = middle
        else:
            high = middle
    return {
        "plan": plan["name"],
        "seed": seed,
        "duration_s": duration_s,
        "capacity_rps": rounded(low, 4),
        "first_failing_rps": rounded(high, 4),
        "analytic_capacity_rps": None if capacity is None else rounded(capacity, 4),
        "analytic_stage": capacity_stage,
        "ratio_to_analytic": rounded(low / capacity, 4) if capacity else None,
        "planned_rps": planned_rate(plan),
        "runs": runs,
    }

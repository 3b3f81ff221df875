"""Why: the reasons a problem has no plan (phase limits, the fastest path, the inventory, forbidden device
pairs), and per op every candidate with its cost and why the chosen one won."""

from __future__ import annotations

import math

from hetc.placement.evaluate import _device_counts, _longest_path_to, _Model, _paths, replicas_needed
from hetc.placement.exact import _build_milp, _run_milp
from hetc.placement.heuristic import _Search
from hetc.placement.model import (
    EPS_MS,
    CandidateExplanation,
    OpExplanation,
    PlacementProblem,
    PlacementResult,
)


def explain_infeasible(problem: PlacementProblem, *, time_limit_s: float = 30.0) -> list[str]:
    """Why no plan meets the limits: ops whose every candidate misses a phase limit (with the best value),
    the path whose fastest achievable latency exceeds the end-to-end limit, classes short of devices for the
    request rate, or the limit and the inventory together. [] when the problem is feasible."""
    m = _Model(problem)
    lines = []
    for v, op in enumerate(problem.ops):
        if m.cands[v]:
            continue
        if not op.candidates:
            lines.append(f"op {op.id}: has no candidate device in the pool")
            continue
        limits = {**problem.phase_limits, **op.limits}
        for key in sorted(limits):
            values = [(c.metrics[key], c.describe()) for c in op.candidates if key in c.metrics]
            if values and min(values)[0] > limits[key] + 1e-9:
                value, where = min(values)
                lines.append(
                    f"op {op.id}: no candidate meets {key} <= {limits[key]:g}; best achievable {value:g} "
                    f"({where}), over by {value - limits[key]:g}"
                )
        if not any(line.startswith(f"op {op.id}:") for line in lines):
            why = ", ".join(reason for _, reason in m.excluded[v])
            lines.append(f"op {op.id}: every candidate misses a phase limit jointly ({why})")
    if lines:
        return lines

    hard_limit = m.limit is not None and m.lam is None
    latency_ok = True
    if hard_limit:
        fastest = _run_milp(m, _build_milp(m, objective="latency", inventory=False), time_limit_s=time_limit_s)
        if fastest.choice is not None:
            paths = _paths(m, fastest.choice)
            if paths.critical_ms > m.limit + EPS_MS:
                latency_ok = False
                sink = max(m.sinks, key=lambda v: paths.finish[v])
                route = " -> ".join(_longest_path_to(m, fastest.choice, paths, sink))
                prefix = "" if fastest.status == "optimal" else "at least "
                best_ms = paths.critical_ms if fastest.status == "optimal" else (fastest.bound or 0.0)
                placed = ", ".join(
                    f"{m.op_id(v)} on {m.cands[v][fastest.choice[v]].device}" for v in range(m.n)
                )
                lines.append(
                    f"path {route}: best achievable latency on the pool is {prefix}{best_ms:g} ms, limit "
                    f"{m.limit:g} ms (over by {best_ms - m.limit:g} ms; fastest plan: {placed})"
                )

    shortfall = _run_milp(m, _build_milp(m, objective="shortfall", latency_limit=False), time_limit_s=time_limit_s)
    inventory_ok = True
    if shortfall.choice is not None and shortfall.objective is not None and shortfall.objective > 1e-6:
        inventory_ok = False
        counts = _device_counts(m, shortfall.choice)
        for d in m.used_devices:
            cap = m.devices[d].capacity
            if cap is not None and counts[d] > cap:
                lines.append(
                    f"inventory: serving {m.rate:g} requests/s needs at least {counts[d]} {d} devices in the "
                    f"least-device plan, the pool has {cap} (short by {counts[d] - cap})"
                )
        if not any(line.startswith("inventory") for line in lines):
            lines.append(f"inventory: the pool is short by {shortfall.objective:g} devices for {m.rate:g} requests/s")

    if shortfall.choice is None or lines:  # no plan at all, or the forbidden pairs may be why
        lines += _forbidden_reasons(m)

    if hard_limit and latency_ok and inventory_ok:
        within = _run_milp(m, _build_milp(m, objective="latency"), time_limit_s=time_limit_s)
        if within.choice is not None:
            paths = _paths(m, within.choice)
            if paths.critical_ms > m.limit + EPS_MS:
                sink = max(m.sinks, key=lambda v: paths.finish[v])
                route = " -> ".join(_longest_path_to(m, within.choice, paths, sink))
                lines.append(
                    f"path {route}: within the inventory the best achievable latency is {paths.critical_ms:g} "
                    f"ms, limit {m.limit:g} ms (over by {paths.critical_ms - m.limit:g} ms); the latency "
                    f"limit and the inventory cannot both hold"
                )
    return lines


def _forbidden_reasons(m: _Model) -> list[str]:
    """The reasons of the forbidden device pairs some candidates of an edge's ends could form, once each."""
    reasons: list[str] = []
    for edge in m.edges:
        src_devices = {c.device for c in m.cands[edge.src]}
        dst_devices = {c.device for c in m.cands[edge.dst]}
        for (a, b), why in sorted(edge.edge.forbidden.items()):
            line = f"{why} (edge {m.op_id(edge.src)} -> {m.op_id(edge.dst)})"  # the reason first: tables clip
            if a in src_devices and b in dst_devices and line not in reasons:
                reasons.append(line)
    return reasons


def explain_placement(problem: PlacementProblem, result: PlacementResult) -> list[OpExplanation]:
    """Per op, every candidate with its cost and latency and why the chosen one won: the TCO change and the
    critical path if only that op were swapped in the chosen plan. Costs are on the plan's basis (see
    CandidateExplanation.usd_per_hour), so the chosen candidate's equals the op's cost in the plan."""
    m = _Model(problem)
    chosen: list[int] | None = None
    if result.feasible and result.ops:
        by_index = {p.op: p.candidate_index for p in result.ops}
        chosen = [next(k for k, c in enumerate(m.cands[v]) if c.index == by_index[m.op_id(v)])
                  for v in range(m.n)]
    s = _Search(m, chosen) if chosen is not None else None
    in_plan = {p.op: p.usd_per_hour for p in result.ops} if chosen is not None else {}
    explanations = []
    for v, op in enumerate(problem.ops):
        rows: list[CandidateExplanation] = []
        excluded = dict(m.excluded[v])
        kept = {c.index: k for k, c in enumerate(m.cands[v])}
        for i, cand in enumerate(op.candidates):
            replicas = replicas_needed(m.rate, op.load, cand.throughput_rps)
            devices = replicas * cand.devices_per_replica
            path_ms = cand.latency_ms * op.worst_invocations

            def row(status: str, usd: float | None, delta: float | None, critical: float | None, reason: str,
                    i=i, cand=cand, replicas=replicas, devices=devices, path_ms=path_ms) -> CandidateExplanation:
                return CandidateExplanation(i, cand, status, replicas, devices, path_ms, usd, delta, critical, reason)

            if i in excluded:
                rows.append(row("excluded", None, None, None, f"excluded: {excluded[i]}"))
                continue
            k = kept[i]
            if s is None:
                rows.append(row("alternative", None, None, None, "no feasible plan"))
                continue
            if k == s.choice[v]:
                rows.append(row("chosen", in_plan[op.id], 0.0, s.paths.critical_ms, ""))
                continue
            delta = s.delta_tco(v, k)
            critical = s.critical_after(v, k)
            if math.isinf(delta):
                reason = "exceeds the inventory"
            elif not math.isfinite(m.penalty(critical)):
                reason = f"breaks the SLA: critical path {critical:g} ms > limit {m.limit:g} ms"
            else:
                change = delta + m.penalty(critical) - m.penalty(s.paths.critical_ms)
                if change > 0:
                    reason = f"costs {change:+.6g} $/h more"
                elif change < 0:
                    reason = f"cheaper alone by {-change:.6g} $/h (the plan is not a local optimum here)"
                else:
                    reason = "ties with the chosen candidate"
            finite = not math.isinf(delta)
            rows.append(row("alternative", in_plan[op.id] + delta if finite else None, delta if finite else None,
                            critical, reason))
        rows = _chosen_reason(rows)
        explanations.append(OpExplanation(op.id, op.kind, op.role, tuple(rows)))
    return explanations


def _chosen_reason(rows: list[CandidateExplanation]) -> list[CandidateExplanation]:
    alternatives = [r for r in rows if r.status == "alternative"]
    out = []
    for r in rows:
        if r.status != "chosen":
            out.append(r)
            continue
        cheaper = [a for a in alternatives
                   if a.delta_tco_usd_per_hour is not None and a.delta_tco_usd_per_hour < -1e-12]
        if not alternatives:
            reason = "the only candidate within the phase limits"
        elif not cheaper:
            reason = "the cheapest candidate"
        elif all(a.reason.startswith(("breaks", "exceeds")) for a in cheaper):
            reason = "cheaper candidates break the SLA or the inventory"
        else:
            reason = "lowest plan TCO once transfers, shared inventory and the SLA are counted"
        out.append(CandidateExplanation(r.index, r.candidate, r.status, r.replicas, r.devices, r.path_ms,
                                        r.usd_per_hour, r.delta_tco_usd_per_hour, r.critical_path_ms,
                                        f"chosen: {reason}"))
    return out

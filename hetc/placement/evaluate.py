"""The problem compiled for the solvers (ids resolved, phase limits applied, per-candidate numbers
precomputed) and the evaluation of a plan: path times, TCO, and the PlacementResult that reports it."""

from __future__ import annotations

import functools
import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from hetc.placement.model import (
    EPS_MS,
    SECONDS_PER_HOUR,
    Candidate,
    DeviceUsage,
    Edge,
    EdgePlacement,
    OpNode,
    OpPlacement,
    PathLatency,
    PlacementProblem,
    PlacementResult,
)

# Source-to-sink paths a result lists (the slowest, one per sink): a graph of thousands of ops has thousands of
# sinks, each path as long as the graph, and listing them all made plans quadratic in size.
MAX_REPORTED_PATHS = 40


@dataclass(frozen=True)
class _Cand:
    index: int  # in the op's candidate list
    cand: Candidate
    device: str
    replicas: int
    devices: int
    path_ms: float
    fixed_usd_per_hour: float


@dataclass(frozen=True)
class _EdgeM:
    src: int
    dst: int
    edge: Edge
    # (src_device, dst_device) -> (path ms, usd/hour), only non-zero pairs
    pairs: dict[tuple[str, str], tuple[float, float]]

    def ms(self, a: str, b: str) -> float:
        pair = self.pairs.get((a, b))
        return pair[0] if pair else 0.0

    def usd_per_hour(self, a: str, b: str) -> float:
        pair = self.pairs.get((a, b))
        return pair[1] if pair else 0.0


def replicas_needed(request_rate_rps: float, load: float, throughput_rps: float) -> int:
    """Replicas that serve rate * load invocations/s, at least 1."""
    if math.isinf(throughput_rps):
        return 1
    need = request_rate_rps * load / throughput_rps
    return max(1, math.ceil(need - 1e-9 * max(1.0, need)))


def _phase_violation(cand: Candidate, limits: list[tuple[str, float]]) -> str | None:
    """The first phase limit (`limits`: sorted (metric, limit) pairs) the candidate's metrics exceed."""
    for key, limit in limits:
        value = cand.metrics.get(key)
        if value is not None and value > limit + 1e-9:
            return f"{key} {value:g} > limit {limit:g}"
    return None


class _Model:
    """The problem with ids resolved, phase limits applied, and per-candidate numbers precomputed."""

    def __init__(self, problem: PlacementProblem):
        self.problem = problem
        self._validate()
        rate = problem.request_rate_rps
        self.rate = rate
        self.n = len(problem.ops)
        self.index = {op.id: i for i, op in enumerate(problem.ops)}
        self.devices = {d.name: d for d in problem.devices}
        self.limit = problem.latency_limit_ms
        self.lam = problem.soft_sla_lambda
        self.cands: list[list[_Cand]] = []
        self.excluded: list[list[tuple[int, str]]] = []
        # Ops of one shape share their candidate list (hetc.placement.problem builds it once per shape): their
        # _Cand lists are the same when load and limits are too, so they are built once and shared (read only).
        shared: dict[tuple, tuple[list[_Cand], list[tuple[int, str]], Sequence[Candidate]]] = {}
        plan_limits = sorted(problem.phase_limits.items())  # most ops have no limits of their own
        for op in problem.ops:
            limits = sorted({**problem.phase_limits, **op.limits}.items()) if op.limits else plan_limits
            key = (id(op.candidates), op.load, op.worst_invocations, tuple(limits))
            if key not in shared:  # the entry holds the candidate list, so its id is not reused meanwhile
                shared[key] = (*self._op_candidates(op, limits), op.candidates)
            kept, dropped, _ = shared[key]
            self.cands.append(kept)
            self.excluded.append(dropped)
        self.edges: list[_EdgeM] = []
        self.preds: list[list[int]] = [[] for _ in range(self.n)]
        self.succs: list[list[int]] = [[] for _ in range(self.n)]
        for edge in problem.edges:
            pairs = {}
            for (a, b), (ms, usd) in sorted(edge.transfers.items()):
                if ms or usd:
                    pairs[(a, b)] = (ms * edge.worst_traversals, usd * edge.load * rate * SECONDS_PER_HOUR)
            e = len(self.edges)
            self.edges.append(_EdgeM(self.index[edge.src], self.index[edge.dst], edge, pairs))
            self.preds[self.index[edge.dst]].append(e)
            self.succs[self.index[edge.src]].append(e)
        self.topo = self._toposort()
        self.topo_position = [0] * self.n  # where each op sits in `topo`: incremental path updates
        for i, v in enumerate(self.topo):
            self.topo_position[v] = i
        self.sinks = [v for v in range(self.n) if not self.succs[v]]
        self.used_devices = sorted({c.device for cs in self.cands for c in cs})
        # Per op, the edges in and out that can change the plan when the op moves: those with a transfer
        # charge (the others add 0 to a TCO change) and those with forbidden device pairs (the others allow
        # every move). The heuristic looks at these alone, in the same order.
        charged = [any(usd for _, usd in edge.pairs.values()) for edge in self.edges]
        self.charged_in = [[e for e in self.preds[v] if charged[e]] for v in range(self.n)]
        self.charged_out = [[e for e in self.succs[v] if charged[e]] for v in range(self.n)]
        self.forbidding_in = [[e for e in self.preds[v] if self.edges[e].edge.forbidden] for v in range(self.n)]
        self.forbidding_out = [[e for e in self.succs[v] if self.edges[e].edge.forbidden] for v in range(self.n)]
        # A class's $/hour at a device count: asked for the same few counts again and again by the heuristic.
        self.device_cost = functools.lru_cache(maxsize=None)(
            lambda device, count: self.devices[device].cost_usd_per_hour(count))

    def _op_candidates(self, op: OpNode, limits: list[tuple[str, float]]
                       ) -> tuple[list[_Cand], list[tuple[int, str]]]:
        """The op's candidates within its phase limits, with their numbers; and (index, why) of the others."""
        rate = self.rate
        kept: list[_Cand] = []
        dropped: list[tuple[int, str]] = []
        for i, cand in enumerate(op.candidates):
            why = _phase_violation(cand, limits)
            if why is not None:
                dropped.append((i, why))
                continue
            replicas = replicas_needed(rate, op.load, cand.throughput_rps)
            kept.append(
                _Cand(
                    index=i,
                    cand=cand,
                    device=cand.device,
                    replicas=replicas,
                    devices=replicas * cand.devices_per_replica,
                    path_ms=cand.latency_ms * op.worst_invocations,
                    fixed_usd_per_hour=cand.usd_per_invocation * op.load * rate * SECONDS_PER_HOUR,
                )
            )
        return kept, dropped

    def _validate(self) -> None:
        p = self.problem
        if not p.ops:
            raise ValueError("placement problem has no ops")
        if not (p.request_rate_rps > 0 and math.isfinite(p.request_rate_rps)):
            raise ValueError(f"request_rate_rps must be positive, got {p.request_rate_rps}")
        names = [d.name for d in p.devices]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate device classes in {names}")
        for d in p.devices:
            if d.usd_per_hour < 0 or d.owned_usd_per_hour < 0 or d.owned < 0:
                raise ValueError(f"device {d.name}: negative price or count")
            if d.max_bought is not None and d.max_bought < 0:
                raise ValueError(f"device {d.name}: negative max_bought")
            if d.owned_usd_per_hour > d.usd_per_hour:
                raise ValueError(f"device {d.name}: sunk price above the bought price")
        ids = {op.id for op in p.ops}
        if len(ids) != len(p.ops):
            raise ValueError("duplicate op ids")
        pool = set(names)
        checked: dict[int, Sequence[Candidate]] = {}  # candidate lists already checked (shared by ops of a shape)
        for op in p.ops:
            if op.load < 0 or op.worst_invocations < 0:
                raise ValueError(f"op {op.id}: negative load or worst_invocations")
            if id(op.candidates) in checked:
                continue
            checked[id(op.candidates)] = op.candidates
            for cand in op.candidates:
                if cand.device not in pool:
                    raise ValueError(f"op {op.id}: candidate device {cand.device!r} is not in the pool")
                if not cand.throughput_rps > 0 or cand.latency_ms < 0 or cand.usd_per_invocation < 0:
                    raise ValueError(f"op {op.id}: candidate {cand.describe()} has invalid numbers")
                if cand.tp < 1 or cand.pp < 1 or cand.batch < 1:
                    raise ValueError(f"op {op.id}: candidate {cand.describe()} has tp/pp/batch < 1")
        for edge in p.edges:
            for end in (edge.src, edge.dst):
                if end not in ids:
                    raise ValueError(f"edge {edge.src}->{edge.dst}: unknown op {end!r}")
            for ms, usd in edge.transfers.values():
                if ms < 0 or usd < 0:
                    raise ValueError(f"edge {edge.src}->{edge.dst}: negative transfer")
        if p.soft_sla_lambda is not None and p.soft_sla_lambda < 0:
            raise ValueError("soft_sla_lambda must be >= 0")

    def _toposort(self) -> list[int]:
        indegree = [len(self.preds[v]) for v in range(self.n)]
        ready = [v for v in range(self.n) if indegree[v] == 0]  # a heap: op order breaks ties (deterministic)
        order: list[int] = []
        while ready:
            v = heapq.heappop(ready)
            order.append(v)
            for e in self.succs[v]:
                w = self.edges[e].dst
                indegree[w] -= 1
                if indegree[w] == 0:
                    heapq.heappush(ready, w)
        if len(order) != self.n:
            cyclic = sorted(self.problem.ops[v].id for v in range(self.n) if indegree[v] > 0)
            raise ValueError(f"placement graph has a cycle through {cyclic}; summarise loops first")
        return order

    def op_id(self, v: int) -> str:
        return self.problem.ops[v].id

    def standalone_usd_per_hour(self, c: _Cand) -> float:
        return c.devices * self.devices[c.device].usd_per_hour + c.fixed_usd_per_hour

    def penalty(self, latency_ms: float) -> float:
        """Objective charge for a critical path of `latency_ms`: 0, lambda * excess, or inf (hard)."""
        if self.limit is None or latency_ms <= self.limit + EPS_MS:
            return 0.0
        if self.lam is None:
            return math.inf
        return self.lam * (latency_ms - self.limit)


def restricted(problem: PlacementProblem, keep: list[list[int]]) -> PlacementProblem:
    """The problem with each op limited to the given original candidate indices. Ops that shared a candidate
    list and keep the same indices share the restricted list (so _Model builds its candidates once)."""
    ops = []
    lists: dict[tuple[int, tuple[int, ...]], tuple[list[Candidate], Sequence[Candidate]]] = {}
    for op, indices in zip(problem.ops, keep, strict=True):
        key = (id(op.candidates), tuple(indices))
        if key not in lists:  # the entry holds the original list, so its id is not reused meanwhile
            lists[key] = ([op.candidates[i] for i in indices], op.candidates)
        ops.append(replace(op, candidates=lists[key][0]))
    return replace(problem, ops=ops)


# ------------------------------------------------------------------------------------- plan evaluation


@dataclass
class _Paths:
    finish: list[float]  # F[v]: longest source path through the end of v
    tail: list[float]  # B[v]: longest path after v to a sink (excluding v)
    critical_ms: float


def _start_of(m: _Model, chosen: list[_Cand], finish: list[float], v: int, device: str) -> float:
    """The latest arrival of v's inputs with v on `device`, from its predecessors' finish times (`chosen[u]` is
    op u's candidate)."""
    start = 0.0
    for e in m.preds[v]:
        edge = m.edges[e]
        pair = edge.pairs.get((chosen[edge.src].device, device)) if edge.pairs else None
        arrive = finish[edge.src] + (pair[0] if pair else 0.0)
        if arrive > start:
            start = arrive
    return start


def _finish_of(m: _Model, chosen: list[_Cand], finish: list[float], v: int, c: _Cand | None = None) -> float:
    """F[v] from the finish times of v's predecessors (v on candidate `c` if given, else on chosen[v])."""
    c = chosen[v] if c is None else c
    return _start_of(m, chosen, finish, v, c.device) + c.path_ms


def _tail_on(m: _Model, chosen: list[_Cand], tail: list[float], v: int, device: str) -> float:
    """B[v] from the tails of v's successors, with v on `device`."""
    best = 0.0
    for e in m.succs[v]:
        edge = m.edges[e]
        w = chosen[edge.dst]
        pair = edge.pairs.get((device, w.device)) if edge.pairs else None
        after = (pair[0] if pair else 0.0) + w.path_ms + tail[edge.dst]
        if after > best:
            best = after
    return best


def _tail_of(m: _Model, chosen: list[_Cand], tail: list[float], v: int, c: _Cand | None = None) -> float:
    """B[v] from the tails of v's successors (with v on candidate `c` if given)."""
    return _tail_on(m, chosen, tail, v, (chosen[v] if c is None else c).device)


def _chosen(m: _Model, choice: list[int]) -> list[_Cand]:
    return [m.cands[v][choice[v]] for v in range(m.n)]


def _paths(m: _Model, choice: list[int]) -> _Paths:
    chosen = _chosen(m, choice)
    finish = [0.0] * m.n
    for v in m.topo:
        finish[v] = _finish_of(m, chosen, finish, v)
    tail = [0.0] * m.n
    for v in reversed(m.topo):
        tail[v] = _tail_of(m, chosen, tail, v)
    return _Paths(finish, tail, max(finish[v] for v in m.sinks))


def _update_paths(m: _Model, chosen: list[_Cand], paths: _Paths, v: int) -> None:
    """Bring `paths` up to date after op v changed candidate. Only ops whose inputs changed are recomputed:
    F of v, its successors and the descendants whose F changes (in topological order); B of v, its
    predecessors and the ancestors whose B changes (in reverse order). Each value is computed by the same
    code from the same inputs as in `_paths`, so the result is identical to a full recomputation."""
    position, finish, tail = m.topo_position, paths.finish, paths.tail
    heap = [position[v]] + [position[m.edges[e].dst] for e in m.succs[v]]
    queued = set(heap)
    heapq.heapify(heap)
    sink_changed = False
    while heap:
        w = m.topo[heapq.heappop(heap)]
        value = _finish_of(m, chosen, finish, w)
        if value == finish[w]:
            continue
        finish[w] = value
        sink_changed = sink_changed or not m.succs[w]
        for e in m.succs[w]:
            i = position[m.edges[e].dst]
            if i not in queued:
                queued.add(i)
                heapq.heappush(heap, i)
    heap = [-position[v]] + [-position[m.edges[e].src] for e in m.preds[v]]
    queued = set(heap)
    heapq.heapify(heap)
    while heap:
        w = m.topo[-heapq.heappop(heap)]
        value = _tail_of(m, chosen, tail, w)
        if value == tail[w]:
            continue
        tail[w] = value
        for e in m.preds[w]:
            i = -position[m.edges[e].src]
            if i not in queued:
                queued.add(i)
                heapq.heappush(heap, i)
    if sink_changed:
        paths.critical_ms = max(finish[u] for u in m.sinks)


def _longest_avoiding(m: _Model, chosen: list[_Cand], paths: _Paths) -> list[float]:
    """Per op v, the longest source-to-sink path that does not pass through v, in O(m log m) for all ops.

    With ops at their topological positions, a path avoiding v either ends before v's position (at most the
    finish time of a sink placed before v), starts after it (a source placed after v: its latency plus
    tail), or jumps over it along an edge a -> b with pos(a) < pos(v) < pos(b) (finish of a, the transfer,
    b and b's tail). Each of these paths avoids v, and every path avoiding v is one of them."""
    n, position, finish, tail = m.n, m.topo_position, paths.finish, paths.tail
    before = [0.0] * (n + 1)  # before[i]: the longest path ending at a sink placed before position i
    for i, v in enumerate(m.topo):
        before[i + 1] = max(before[i], finish[v] if not m.succs[v] else 0.0)
    after = [0.0] * (n + 1)  # after[i]: the longest path from a source placed at position i or later
    for i in range(n - 1, -1, -1):
        v = m.topo[i]
        after[i] = max(after[i + 1], chosen[v].path_ms + tail[v] if not m.preds[v] else 0.0)
    starting: list[list[tuple[float, int]]] = [[] for _ in range(n)]  # edges by their source's position
    for edge in m.edges:
        a, b = edge.src, edge.dst
        if position[b] - position[a] > 1:
            length = finish[a] + edge.ms(chosen[a].device, chosen[b].device) + chosen[b].path_ms + tail[b]
            starting[position[a]].append((-length, position[b]))
    result = [0.0] * n
    jumping: list[tuple[float, int]] = []  # (-length, end position) of the edges that started before
    for i, v in enumerate(m.topo):
        while jumping and jumping[0][1] <= i:
            heapq.heappop(jumping)  # lazily: edges ending here or earlier no longer jump over position i
        over = -jumping[0][0] if jumping else 0.0
        result[v] = max(before[i], after[i + 1], over)
        for item in starting[i]:
            heapq.heappush(jumping, item)
    return result


def _device_counts(m: _Model, choice: list[int]) -> dict[str, int]:
    counts = {d: 0 for d in m.used_devices}
    for v in range(m.n):
        c = m.cands[v][choice[v]]
        counts[c.device] += c.devices
    return counts


def _tco(m: _Model, choice: list[int]) -> float:
    total = sum(m.devices[d].cost_usd_per_hour(k) for d, k in _device_counts(m, choice).items())
    total += sum(m.cands[v][choice[v]].fixed_usd_per_hour for v in range(m.n))
    for edge in m.edges:
        total += edge.usd_per_hour(m.cands[edge.src][choice[edge.src]].device, m.cands[edge.dst][choice[edge.dst]].device)
    return total


def _build_result(
    m: _Model,
    choice: list[int],
    solver: str,
    status: str,
    solve_time_s: float,
    lower_bound: float | None,
) -> PlacementResult:
    counts = _device_counts(m, choice)
    device_cost = {d: m.devices[d].cost_usd_per_hour(k) for d, k in counts.items()}
    paths = _paths(m, choice)
    owned_left = {d: m.devices[d].owned for d in counts}
    op_rows = []
    for v in range(m.n):
        c = m.cands[v][choice[v]]
        op = m.problem.ops[v]
        dev = m.devices[c.device]
        owned = min(c.devices, owned_left[c.device])
        owned_left[c.device] -= owned
        op_rows.append(
            OpPlacement(
                op=op.id,
                kind=op.kind,
                role=op.role,
                candidate_index=c.index,
                candidate=c.cand,
                replicas=c.replicas,
                devices=c.devices,
                owned_devices=owned,
                device_usd_per_hour=owned * dev.owned_usd_per_hour + (c.devices - owned) * dev.usd_per_hour,
                invocation_usd_per_hour=c.fixed_usd_per_hour,
                path_ms=c.path_ms,
                finish_ms=paths.finish[v],
            )
        )
    edge_rows = []
    for edge in m.edges:
        a = m.cands[edge.src][choice[edge.src]].device
        b = m.cands[edge.dst][choice[edge.dst]].device
        edge_rows.append(EdgePlacement(edge.edge.src, edge.edge.dst, a, b, edge.ms(a, b), edge.usd_per_hour(a, b),
                                       edge.edge.transfer(a, b)[0]))
    usage = []
    for d in m.used_devices:
        if counts[d]:
            owned, bought = m.devices[d].split(counts[d])
            usage.append(DeviceUsage(d, owned, bought, device_cost[d]))
    path_rows = []
    previous: dict[int, int | None] = {}  # shared by every sink: each op's critical predecessor found once
    slowest = sorted(range(len(m.sinks)), key=lambda i: (-paths.finish[m.sinks[i]], i))[:MAX_REPORTED_PATHS]
    for sink in (m.sinks[i] for i in slowest):
        latency = paths.finish[sink]
        slack = None if m.limit is None else m.limit - latency
        route = _longest_path_to(m, choice, paths, sink, previous)
        path_rows.append(PathLatency(m.op_id(sink), route, latency, slack))
    critical = path_rows[0]  # the first sink wins ties
    # the ops' own costs add up to the device classes' (a class beyond its capacity makes both inf)
    tco = sum(device_cost.values()) + sum(r.invocation_usd_per_hour for r in op_rows)
    tco += sum(r.usd_per_hour for r in edge_rows)
    excess = 0.0 if m.limit is None else max(0.0, paths.critical_ms - m.limit)
    penalty = m.penalty(paths.critical_ms)
    feasible = math.isfinite(tco) and math.isfinite(penalty)
    objective = tco + (penalty if math.isfinite(penalty) else 0.0)
    gap = None
    if lower_bound is not None and feasible:
        lower_bound = min(lower_bound, objective)
        gap = 0.0 if objective <= 0 else max(0.0, (objective - lower_bound) / objective)
    return PlacementResult(
        feasible=feasible,
        status=status if feasible else "infeasible",
        solver=solver,
        request_rate_rps=m.rate,
        latency_limit_ms=m.limit,
        ops=tuple(op_rows),
        edges=tuple(edge_rows),
        devices=tuple(usage),
        paths=tuple(path_rows),
        sinks=len(m.sinks),
        critical_path=critical.path,
        critical_path_ms=critical.latency_ms,
        tco_usd_per_hour=tco,
        sla_excess_ms=excess,
        objective=objective,
        lower_bound=lower_bound,
        gap=gap,
        solve_time_s=solve_time_s,
    )


def _critical_predecessor(m: _Model, choice: list[int], paths: _Paths, v: int) -> int | None:
    """The first predecessor of v whose arrival sets v's start time (None for a source)."""
    dv = m.cands[v][choice[v]].device
    start = paths.finish[v] - m.cands[v][choice[v]].path_ms
    for e in m.preds[v]:
        edge = m.edges[e]
        arrive = paths.finish[edge.src] + edge.ms(m.cands[edge.src][choice[edge.src]].device, dv)
        if arrive >= start - EPS_MS:
            return edge.src
    return None


def _longest_path_to(m: _Model, choice: list[int], paths: _Paths, sink: int,
                     previous: dict[int, int | None] | None = None) -> tuple[str, ...]:
    """The longest path ending at `sink`. `previous` caches critical predecessors across calls."""
    if previous is None:
        previous = {}
    path = [sink]
    v: int | None = sink
    while True:
        if v not in previous:
            previous[v] = _critical_predecessor(m, choice, paths, v)
        v = previous[v]
        if v is None:
            break
        path.append(v)
    return tuple(m.op_id(u) for u in reversed(path))


def _infeasible_result(problem: PlacementProblem, solver: str, status: str, solve_time_s: float,
                       reasons: list[str]) -> PlacementResult:
    return PlacementResult(
        feasible=False,
        status=status,
        solver=solver,
        request_rate_rps=problem.request_rate_rps,
        latency_limit_ms=problem.latency_limit_ms,
        solve_time_s=solve_time_s,
        reasons=tuple(reasons),
    )

"""TCO-optimal placement of granular ops under an end-to-end SLA (paper-method.md section 3).

A library independent of the IR: the `place` pass builds a `PlacementProblem` from the IR and the cost
model's numbers, calls `solve`, and writes the `PlacementResult` back. docs/placement.md describes the
problem, the mixed-integer program, the heuristic and the measured size threshold of `solver="auto"`.

Units are in the names: _ms (milliseconds), _rps (per second), _usd_per_hour, _usd (dollars).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

SECONDS_PER_HOUR = 3600.0

# `solver="auto"` uses the exact MILP when the problem has at most this many (op, candidate) binaries after
# phase-limit filtering, else the heuristic. Measured with bench/placement.py (docs/placement.md, "Sizes"):
# fork-join graphs take HiGHS ~5 s at 800 binaries and ~14 s at 1,600, and hit a 60 s limit at 4,000, while
# the heuristic stays within 0.2% of the exact plan; chains are easy at any size.
AUTO_EXACT_MAX_BINARIES = 2000
# Source-to-sink paths a result lists (the slowest, one per sink): a graph of thousands of ops has thousands of
# sinks, each path as long as the graph, and listing them all made plans quadratic in size.
MAX_REPORTED_PATHS = 40
# Whether heuristic baselines run the LP relaxation (a start point and a bound no one reads).
LP_BOUND_FOR_BASELINES = False
# Time limit of the exact solver; on expiry its best plan is returned with HiGHS's gap (status "time_limit").
DEFAULT_TIME_LIMIT_S = 60.0
# Relative MIP gap at which HiGHS stops; small so the exact solver really is exact for tests and reports.
MIP_REL_GAP = 1e-7
# Latency comparisons tolerate this much rounding (ms); cost comparisons 1e-9 relative.
EPS_MS = 1e-6

SolverName = Literal["exact", "heuristic", "auto"]


# ----------------------------------------------------------------------------------------------- problem


@dataclass(frozen=True)
class DeviceClass:
    """A hardware class of the pool, with its price and inventory.

    Prices are per device-hour and come from the cost model (capital recovery + power, or a cloud rental
    price). Owned devices are used before any are bought; when owned capital is sunk they cost only
    `sunk_usd_per_hour` (power). Devices the plan does not use cost nothing (idle power is not counted).
    """

    name: str
    usd_per_hour: float
    # Cost of one owned device-hour when its capital is sunk (power only); None = owned devices are not sunk
    # and cost usd_per_hour like bought ones.
    sunk_usd_per_hour: float | None = None
    owned: int = 0
    # How many more may be bought; None = unlimited, 0 = the pool is exactly the owned devices.
    max_bought: int | None = None
    # False for CPUs: homogeneous baselines vary the accelerator class only.
    accelerator: bool = True

    @property
    def owned_usd_per_hour(self) -> float:
        return self.usd_per_hour if self.sunk_usd_per_hour is None else self.sunk_usd_per_hour

    @property
    def capacity(self) -> int | None:
        return None if self.max_bought is None else self.owned + self.max_bought

    def split(self, devices: int) -> tuple[int, int]:
        """(owned, bought) devices when the plan uses `devices` of this class (owned first)."""
        owned = min(devices, self.owned)
        return owned, devices - owned

    def cost_usd_per_hour(self, devices: int) -> float:
        """Cost of using `devices` of this class; math.inf beyond the capacity."""
        cap = self.capacity
        if cap is not None and devices > cap:
            return math.inf
        owned, bought = self.split(devices)
        return owned * self.owned_usd_per_hour + bought * self.usd_per_hour


@dataclass(frozen=True)
class Candidate:
    """One way to run an op: device class, parallelism, batch, and what the cost model predicts for it."""

    device: str
    latency_ms: float  # time one invocation adds to a request's path
    throughput_rps: float  # invocations/s one replica serves at `batch`; math.inf = one replica always suffices
    tp: int = 1
    pp: int = 1
    batch: int = 1
    # Cost per invocation on top of device-hours (the paper's worked example prices work per token).
    usd_per_invocation: float = 0.0
    # Predicted figures (ttft_ms, tbt_ms, memory_gb, ...). A key also present in the problem's (or op's)
    # phase limits is checked: the candidate is excluded when metrics[key] > limit. Others are reported.
    metrics: Mapping[str, float] = field(default_factory=dict)
    label: str = ""  # free text for reports, e.g. the engine or precision

    @property
    def devices_per_replica(self) -> int:
        return self.tp * self.pp

    def describe(self) -> str:
        text = f"{self.device} tp{self.tp} pp{self.pp} b{self.batch}"
        return f"{text} {self.label}" if self.label else text


@dataclass(frozen=True)
class OpNode:
    """A granular op. Loops and branches are summarised by the caller into `load` and `worst_invocations`."""

    id: str
    candidates: Sequence[Candidate]
    kind: str = ""
    role: str = ""  # "prefill" / "decode" give the P::D notation; anything else is ignored there
    load: float = 1.0  # expected invocations per request (loop iterations, branch probabilities): throughput, cost
    worst_invocations: float = 1.0  # invocations on the latency path (loops at their bound)
    limits: Mapping[str, float] = field(default_factory=dict)  # per-op phase limits; override the problem's


@dataclass(frozen=True)
class Edge:
    """Data from `src` to `dst`. `transfers[(src_device, dst_device)] = (ms, usd)` per traversal; a missing
    pair costs nothing (the caller lists every pair that moves data over a link, typically pairs of
    different classes; same-class hand-offs stay in process or on the scale-up fabric)."""

    src: str
    dst: str
    transfers: Mapping[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    load: float = 1.0  # expected traversals per request (cost)
    worst_traversals: float = 1.0  # traversals on the latency path
    # (src_device, dst_device) -> why no plan may put src on the one and dst on the other (no KV path)
    forbidden: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def transfer(self, src_device: str, dst_device: str) -> tuple[float, float]:
        return self.transfers.get((src_device, dst_device), (0.0, 0.0))


@dataclass(frozen=True)
class PlacementProblem:
    ops: Sequence[OpNode]
    edges: Sequence[Edge]  # a DAG over op ids
    devices: Sequence[DeviceClass]  # every class a candidate names
    request_rate_rps: float
    latency_limit_ms: float | None = None  # end-to-end, on every source-to-sink path; None = none
    phase_limits: Mapping[str, float] = field(default_factory=dict)  # e.g. {"ttft_ms": 250, "tbt_ms": 20}
    # Soft SLA: $/hour charged per ms the critical path exceeds latency_limit_ms; None = hard limit.
    soft_sla_lambda: float | None = None


# ------------------------------------------------------------------------------------------------ result


@dataclass(frozen=True)
class OpPlacement:
    op: str
    kind: str
    role: str
    candidate_index: int  # index into the op's `candidates`
    candidate: Candidate
    replicas: int
    devices: int  # replicas * devices_per_replica
    # Owned devices go to the ops in problem order (each takes what is left, up to its need); the plan
    # prices each op's own devices: owned_devices at the owned price, the rest at the bought price.
    owned_devices: int
    device_usd_per_hour: float  # owned_devices * owned price + (devices - owned_devices) * bought price
    invocation_usd_per_hour: float  # usd_per_invocation * load * rate * 3600
    path_ms: float  # latency_ms * worst_invocations
    finish_ms: float  # longest path from a source to the end of this op

    @property
    def usd_per_hour(self) -> float:
        return self.device_usd_per_hour + self.invocation_usd_per_hour


@dataclass(frozen=True)
class EdgePlacement:
    src: str
    dst: str
    src_device: str
    dst_device: str
    path_ms: float  # transfer ms * worst_traversals
    usd_per_hour: float  # transfer usd * load * rate * 3600


@dataclass(frozen=True)
class DeviceUsage:
    device: str
    owned: int
    bought: int
    usd_per_hour: float


@dataclass(frozen=True)
class PathLatency:
    sink: str
    path: tuple[str, ...]  # the longest path ending at `sink`
    latency_ms: float
    slack_ms: float | None  # limit - latency (negative = over the limit); None without a limit


@dataclass(frozen=True)
class PlacementResult:
    feasible: bool
    status: str  # optimal | time_limit | heuristic | infeasible | no_solution
    solver: str  # exact | heuristic
    request_rate_rps: float
    latency_limit_ms: float | None
    ops: tuple[OpPlacement, ...] = ()
    edges: tuple[EdgePlacement, ...] = ()
    devices: tuple[DeviceUsage, ...] = ()
    paths: tuple[PathLatency, ...] = ()  # the MAX_REPORTED_PATHS slowest, one per sink, slowest first
    sinks: int = 0  # how many sinks (so paths) the plan has
    critical_path: tuple[str, ...] = ()
    critical_path_ms: float = 0.0
    tco_usd_per_hour: float = 0.0  # devices + per-invocation + transfer costs
    sla_excess_ms: float = 0.0  # soft mode: how far the critical path exceeds the limit (the slack used)
    objective: float = 0.0  # tco + lambda * sla_excess_ms
    lower_bound: float | None = None  # a proven lower bound on `objective` (LP relaxation or MIP dual bound)
    gap: float | None = None  # (objective - lower_bound) / objective
    solve_time_s: float = 0.0
    reasons: tuple[str, ...] = ()  # why infeasible

    @property
    def usd_per_request(self) -> float:
        return self.tco_usd_per_hour / (self.request_rate_rps * SECONDS_PER_HOUR)

    @property
    def latency_slack_ms(self) -> float | None:
        if self.latency_limit_ms is None:
            return None
        return self.latency_limit_ms - self.critical_path_ms

    def op(self, op_id: str) -> OpPlacement:
        for placement in self.ops:
            if placement.op == op_id:
                return placement
        raise KeyError(op_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready and deterministic: leaves out solve_time_s."""
        return {
            "feasible": self.feasible,
            "status": self.status,
            "solver": self.solver,
            "request_rate_rps": self.request_rate_rps,
            "latency_limit_ms": self.latency_limit_ms,
            "tco_usd_per_hour": self.tco_usd_per_hour,
            "usd_per_request": self.usd_per_request,
            "objective": self.objective,
            "sla_excess_ms": self.sla_excess_ms,
            "lower_bound": self.lower_bound,
            "gap": self.gap,
            "critical_path": list(self.critical_path),
            "critical_path_ms": self.critical_path_ms,
            "latency_slack_ms": self.latency_slack_ms,
            "pd": pd_notation(self),
            "ops": [
                {
                    "op": p.op,
                    "kind": p.kind,
                    "role": p.role,
                    "candidate_index": p.candidate_index,
                    "device": p.candidate.device,
                    "tp": p.candidate.tp,
                    "pp": p.candidate.pp,
                    "batch": p.candidate.batch,
                    "replicas": p.replicas,
                    "devices": p.devices,
                    "owned_devices": p.owned_devices,
                    "latency_ms": p.candidate.latency_ms,
                    "path_ms": p.path_ms,
                    "finish_ms": p.finish_ms,
                    "device_usd_per_hour": p.device_usd_per_hour,
                    "invocation_usd_per_hour": p.invocation_usd_per_hour,
                    "metrics": dict(sorted(p.candidate.metrics.items())),
                }
                for p in self.ops
            ],
            "edges": [vars(e).copy() for e in self.edges],
            "devices": [vars(d).copy() for d in self.devices],
            "paths": [
                {"sink": p.sink, "path": list(p.path), "latency_ms": p.latency_ms, "slack_ms": p.slack_ms}
                for p in self.paths
            ],
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class Baseline:
    """The best plan with every accelerator-capable op on one accelerator class."""

    device: str
    result: PlacementResult | None  # None when some op has no candidate on this class
    reasons: tuple[str, ...] = ()  # why infeasible

    @property
    def feasible(self) -> bool:
        return self.result is not None and self.result.feasible


@dataclass(frozen=True)
class CandidateExplanation:
    index: int
    candidate: Candidate
    status: str  # chosen | alternative | excluded
    replicas: int
    devices: int
    path_ms: float
    # What this op costs in the chosen plan, on the plan table's basis (owned devices first, sunk capital
    # not charged): the chosen candidate's stage $/hour; another candidate's is that plus the plan's TCO
    # change if only this op moved to it. None when not evaluated (excluded, over the inventory, no plan).
    usd_per_hour: float | None
    delta_tco_usd_per_hour: float | None  # swapping only this op in the chosen plan (None if not evaluated)
    critical_path_ms: float | None  # the plan's critical path after that swap
    reason: str


@dataclass(frozen=True)
class OpExplanation:
    op: str
    kind: str
    role: str
    candidates: tuple[CandidateExplanation, ...]


# ------------------------------------------------------------------------------------ compiled problem


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


def _phase_violation(cand: Candidate, limits: Mapping[str, float]) -> str | None:
    for key in sorted(limits):
        value = cand.metrics.get(key)
        if value is not None and value > limits[key] + 1e-9:
            return f"{key} {value:g} > limit {limits[key]:g}"
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
        for op in problem.ops:
            limits = {**problem.phase_limits, **op.limits}
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
        for op in p.ops:
            if op.load < 0 or op.worst_invocations < 0:
                raise ValueError(f"op {op.id}: negative load or worst_invocations")
            for cand in op.candidates:
                if cand.device not in names:
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
        ready = [v for v in range(self.n) if indegree[v] == 0]
        order: list[int] = []
        while ready:
            ready.sort()  # deterministic: op order breaks ties
            v = ready.pop(0)
            order.append(v)
            for e in self.succs[v]:
                w = self.edges[e].dst
                indegree[w] -= 1
                if indegree[w] == 0:
                    ready.append(w)
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

    def restricted(self, keep: list[list[int]]) -> PlacementProblem:
        """The problem with each op limited to the given original candidate indices."""
        ops = []
        for op, indices in zip(self.problem.ops, keep, strict=True):
            ops.append(
                OpNode(
                    id=op.id,
                    candidates=[op.candidates[i] for i in indices],
                    kind=op.kind,
                    role=op.role,
                    load=op.load,
                    worst_invocations=op.worst_invocations,
                    limits=op.limits,
                )
            )
        p = self.problem
        return PlacementProblem(
            ops, p.edges, p.devices, p.request_rate_rps, p.latency_limit_ms, p.phase_limits, p.soft_sla_lambda
        )


# ------------------------------------------------------------------------------------- plan evaluation


@dataclass
class _Paths:
    finish: list[float]  # F[v]: longest source path through the end of v
    tail: list[float]  # B[v]: longest path after v to a sink (excluding v)
    critical_ms: float


def _finish_of(m: _Model, chosen: list[_Cand], finish: list[float], v: int, c: _Cand | None = None) -> float:
    """F[v] from the finish times of v's predecessors (`chosen[u]` is op u's candidate; v's is `c` if given)."""
    c = chosen[v] if c is None else c
    start = 0.0
    for e in m.preds[v]:
        edge = m.edges[e]
        pair = edge.pairs.get((chosen[edge.src].device, c.device)) if edge.pairs else None
        arrive = finish[edge.src] + (pair[0] if pair else 0.0)
        if arrive > start:
            start = arrive
    return start + c.path_ms


def _tail_of(m: _Model, chosen: list[_Cand], tail: list[float], v: int, c: _Cand | None = None) -> float:
    """B[v] from the tails of v's successors (with v on candidate `c` if given)."""
    dv = (chosen[v] if c is None else c).device
    best = 0.0
    for e in m.succs[v]:
        edge = m.edges[e]
        w = chosen[edge.dst]
        pair = edge.pairs.get((dv, w.device)) if edge.pairs else None
        after = (pair[0] if pair else 0.0) + w.path_ms + tail[edge.dst]
        if after > best:
            best = after
    return best


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
    import heapq

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
    import heapq

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
        edge_rows.append(EdgePlacement(edge.edge.src, edge.edge.dst, a, b, edge.ms(a, b), edge.usd_per_hour(a, b)))
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


# ------------------------------------------------------------------------------------------------ MILP


@dataclass
class _Milp:
    c: Any
    integrality: Any
    lb: Any
    ub: Any
    rows: list[tuple[dict[int, float], float, float]]
    x_start: list[int]  # first x column of each op
    z_col: int | None  # makespan variable (latency objective)
    excess_cols: list[int]  # elastic inventory columns


def _build_milp(
    m: _Model,
    *,
    objective: Literal["tco", "latency", "shortfall"] = "tco",
    inventory: bool = True,
    latency_limit: bool = True,
) -> _Milp:
    """The placement MILP (docs/placement.md, "Exact"). Columns: x[op, cand] binary; owned/bought devices
    per class; y[edge, a, b] >= 1 when src is on a and dst on b (only pairs with a transfer); T[op] the
    latest finish of op on any path; the soft-SLA slack or, for `objective="latency"`, the makespan Z."""
    import numpy as np

    cost: list[float] = []
    lb: list[float] = []
    ub: list[float] = []
    integ: list[int] = []

    def column(c: float, lo: float, hi: float, integer: bool) -> int:
        cost.append(c)
        lb.append(lo)
        ub.append(hi)
        integ.append(1 if integer else 0)
        return len(cost) - 1

    rows: list[tuple[dict[int, float], float, float]] = []
    want_tco = objective == "tco"
    x_start = []
    for v in range(m.n):
        x_start.append(len(cost))
        for c in m.cands[v]:
            column(c.fixed_usd_per_hour if want_tco else 0.0, 0.0, 1.0, True)
        rows.append(({x_start[v] + k: 1.0 for k in range(len(m.cands[v]))}, 1.0, 1.0))

    # Devices per class: sum(devices * x) = owned + bought (+ shortfall when elastic).
    excess_cols = []
    for d in m.used_devices:
        dev = m.devices[d]
        row: dict[int, float] = {}
        for v in range(m.n):
            for k, c in enumerate(m.cands[v]):
                if c.device == d:
                    row[x_start[v] + k] = float(c.devices)
        if dev.owned:
            row[column(dev.owned_usd_per_hour if want_tco else 0.0, 0.0, dev.owned, False)] = -1.0
        bought_ub = math.inf if (dev.max_bought is None or not inventory) else dev.max_bought
        row[column(dev.usd_per_hour if want_tco else 0.0, 0.0, bought_ub, False)] = -1.0
        if objective == "shortfall" and dev.max_bought is not None:
            excess = column(1.0, 0.0, math.inf, False)
            excess_cols.append(excess)
            row[excess] = -1.0
        rows.append((row, 0.0, 0.0))

    # Transfer pair indicators y >= d_src,a + d_dst,b - 1.
    need_latency = objective == "latency" or (latency_limit and m.limit is not None)
    edge_pairs: list[list[tuple[int, float]]] = []  # per edge: (y column, path ms)
    for edge in m.edges:
        pairs = []
        src_devices = {c.device for c in m.cands[edge.src]}
        dst_devices = {c.device for c in m.cands[edge.dst]}
        for (a, b), (ms, usd) in edge.pairs.items():
            if a not in src_devices or b not in dst_devices:
                continue
            if not usd and not (need_latency and ms):
                continue
            y = column(usd if want_tco else 0.0, 0.0, 1.0, False)
            row = {y: -1.0}
            for k, c in enumerate(m.cands[edge.src]):
                if c.device == a:
                    row[x_start[edge.src] + k] = 1.0
            for k, c in enumerate(m.cands[edge.dst]):
                if c.device == b:
                    row[x_start[edge.dst] + k] = row.get(x_start[edge.dst] + k, 0.0) + 1.0
            rows.append((row, -math.inf, 1.0))
            pairs.append((y, ms))
        edge_pairs.append(pairs)
        for a, b in sorted(edge.edge.forbidden):  # x_src,a + x_dst,b <= 1
            if a in src_devices and b in dst_devices:
                row = {x_start[edge.src] + k: 1.0 for k, c in enumerate(m.cands[edge.src]) if c.device == a}
                row.update({x_start[edge.dst] + k: 1.0 for k, c in enumerate(m.cands[edge.dst]) if c.device == b})
                rows.append((row, -math.inf, 1.0))

    z_col = None
    if need_latency:
        t_col = [column(0.0, 0.0, math.inf, False) for _ in range(m.n)]
        for v in range(m.n):  # T[v] >= own latency
            row = {x_start[v] + k: c.path_ms for k, c in enumerate(m.cands[v]) if c.path_ms}
            row[t_col[v]] = -1.0
            rows.append((row, -math.inf, 0.0))
        for e, edge in enumerate(m.edges):  # T[dst] >= T[src] + transfer + own latency
            row = {x_start[edge.dst] + k: c.path_ms for k, c in enumerate(m.cands[edge.dst]) if c.path_ms}
            row[t_col[edge.src]] = 1.0
            row[t_col[edge.dst]] = -1.0
            for y, ms in edge_pairs[e]:
                if ms:
                    row[y] = ms
            rows.append((row, -math.inf, 0.0))
        if objective == "latency":
            z_col = column(1.0, 0.0, math.inf, False)
            for v in m.sinks:
                rows.append(({t_col[v]: 1.0, z_col: -1.0}, -math.inf, 0.0))
        else:
            slack = None
            if m.lam is not None:
                slack = column(m.lam if want_tco else 0.0, 0.0, math.inf, False)
            for v in m.sinks:
                row = {t_col[v]: 1.0}
                if slack is not None:
                    row[slack] = -1.0
                rows.append((row, -math.inf, m.limit))

    return _Milp(np.array(cost), np.array(integ), np.array(lb), np.array(ub), rows, x_start, z_col, excess_cols)


@dataclass
class _MilpOutcome:
    status: str  # optimal | time_limit | infeasible | no_solution
    choice: list[int] | None
    objective: float | None
    bound: float | None
    message: str


@contextlib.contextmanager
def _native_stdout_silenced() -> Iterator[None]:
    """HiGHS (1.x inside scipy) prints some debug lines with C printf even with display off; they would
    corrupt `hetc ... --json` on stdout, so file descriptor 1 points at /dev/null during a solve."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 (embedded interpreters)
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _run_milp(m: _Model, model: _Milp, *, relax: bool = False, time_limit_s: float = DEFAULT_TIME_LIMIT_S
              ) -> _MilpOutcome:
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_array

    data, row_idx, col_idx, lo, hi = [], [], [], [], []
    for r, (coeffs, row_lo, row_hi) in enumerate(model.rows):
        for col in sorted(coeffs):
            row_idx.append(r)
            col_idx.append(col)
            data.append(coeffs[col])
        lo.append(row_lo)
        hi.append(row_hi)
    matrix = csr_array((data, (row_idx, col_idx)), shape=(len(model.rows), len(model.c)))
    integrality = np.zeros_like(model.integrality) if relax else model.integrality
    with _native_stdout_silenced():
        res = milp(
            model.c,
            integrality=integrality,
            bounds=Bounds(model.lb, model.ub),
            constraints=[LinearConstraint(matrix, np.array(lo), np.array(hi))],
            options={"time_limit": time_limit_s, "mip_rel_gap": MIP_REL_GAP, "presolve": True},
        )
    if res.status == 2:
        return _MilpOutcome("infeasible", None, None, None, res.message)
    if res.x is None:
        return _MilpOutcome("no_solution", None, None, None, res.message)
    choice = []
    for v in range(m.n):
        values = res.x[model.x_start[v]: model.x_start[v] + len(m.cands[v])]
        choice.append(int(np.argmax(values)))
    bound = getattr(res, "mip_dual_bound", None)
    if relax:
        bound = float(res.fun)
    status = "optimal" if res.status == 0 else "time_limit"
    return _MilpOutcome(status, choice, float(res.fun), None if bound is None else float(bound), res.message)


def _solve_exact(m: _Model, time_limit_s: float) -> PlacementResult:
    start = time.perf_counter()
    outcome = _run_milp(m, _build_milp(m), time_limit_s=time_limit_s)
    elapsed = time.perf_counter() - start
    if outcome.choice is None:
        status = "infeasible" if outcome.status == "infeasible" else "no_solution"
        reasons = explain_infeasible(m.problem) if status == "infeasible" else [
            f"the exact solver found no plan within {time_limit_s:g} s ({outcome.message})"
        ]
        return _infeasible_result(m.problem, "exact", status, elapsed, reasons)
    result = _build_result(m, outcome.choice, "exact", outcome.status, elapsed, outcome.bound)
    # The plan is re-evaluated independently of the MILP; a mismatch would be a modelling bug.
    if abs(result.objective - outcome.objective) > 1e-6 * max(1.0, abs(result.objective)):
        raise AssertionError(f"placement MILP objective {outcome.objective} != evaluated {result.objective}")
    return result


def lp_lower_bound(problem: PlacementProblem) -> float | None:
    """The LP relaxation's optimum: a lower bound on the objective of every plan (None if LP-infeasible)."""
    m = _Model(problem)
    if any(not cs for cs in m.cands):
        return None
    outcome = _run_milp(m, _build_milp(m), relax=True)
    return outcome.bound


# ------------------------------------------------------------------------------------------- heuristic


class _Search:
    """Incremental state for the heuristic: choice per op, devices per class, path arrays."""

    def __init__(self, m: _Model, choice: list[int]):
        self.m = m
        self.choice = list(choice)
        self.chosen = _chosen(m, self.choice)  # the candidate of each op, kept in step with `choice`
        self.counts = _device_counts(m, self.choice)
        self.refresh()

    def refresh(self) -> None:
        self.paths = _paths(self.m, self.choice)
        self.avoiding: list[float] | None = None  # per op, the longest path avoiding it (computed on demand)

    def cand(self, v: int, k: int | None = None) -> _Cand:
        return self.m.cands[v][self.choice[v] if k is None else k]

    def allowed(self, v: int, k: int) -> bool:
        """Does op v on candidate k keep every edge of v off its forbidden device pairs?"""
        m, device = self.m, self.cand(v, k).device
        return (all((self.cand(m.edges[e].src).device, device) not in m.edges[e].edge.forbidden for e in m.preds[v])
                and all((device, self.cand(m.edges[e].dst).device) not in m.edges[e].edge.forbidden
                        for e in m.succs[v]))

    def delta_tco(self, v: int, k: int) -> float:
        """TCO change when op v moves to candidate k (inf when it breaks the inventory or puts an edge on a
        forbidden device pair)."""
        m = self.m
        old, new = self.cand(v), self.cand(v, k)
        if not self.allowed(v, k):
            return math.inf
        delta = new.fixed_usd_per_hour - old.fixed_usd_per_hour
        changes = {old.device: -old.devices}
        changes[new.device] = changes.get(new.device, 0) + new.devices
        for d, change in changes.items():
            dev = m.devices[d]
            after = dev.cost_usd_per_hour(self.counts[d] + change)
            if math.isinf(after):
                return math.inf
            delta += after - dev.cost_usd_per_hour(self.counts[d])
        for e in m.preds[v]:
            edge = m.edges[e]
            du = self.cand(edge.src).device
            delta += edge.usd_per_hour(du, new.device) - edge.usd_per_hour(du, old.device)
        for e in m.succs[v]:
            edge = m.edges[e]
            dw = self.cand(edge.dst).device
            delta += edge.usd_per_hour(new.device, dw) - edge.usd_per_hour(old.device, dw)
        return delta

    def through(self, v: int, k: int | None = None) -> float:
        """Longest source-to-sink path through v with v on candidate k (the others unchanged). Exact."""
        c = self.cand(v, k)
        return (_finish_of(self.m, self.chosen, self.paths.finish, v, c)
                + _tail_of(self.m, self.chosen, self.paths.tail, v, c))

    def critical_after(self, v: int, k: int) -> float:
        """The critical path after moving v to k: the longer of the paths through v (exact, `through`) and
        the longest path avoiding v, which the move leaves unchanged."""
        new = self.through(v, k)
        current = self.paths.critical_ms
        if new >= current - EPS_MS or self.through(v) < current - EPS_MS:
            return max(new, current)
        if self.avoiding is None:
            self.avoiding = _longest_avoiding(self.m, self.chosen, self.paths)
        return max(new, self.avoiding[v])

    def move(self, v: int, k: int, update_paths: bool = True) -> None:
        old, new = self.cand(v), self.cand(v, k)
        self.counts[old.device] -= old.devices
        self.counts[new.device] += new.devices
        self.choice[v] = k
        self.chosen[v] = new
        self.avoiding = None
        if update_paths:
            _update_paths(self.m, self.chosen, self.paths, v)

    def over_capacity(self) -> list[str]:
        return [d for d, k in sorted(self.counts.items())
                if self.m.devices[d].capacity is not None and k > self.m.devices[d].capacity]


def _cheapest_choice(m: _Model) -> list[int]:
    """Per op, the candidate cheapest on its own (inf beyond a class's capacity); faster breaks ties."""
    def key(v: int, k: int) -> tuple[float, float, int]:
        c = m.cands[v][k]
        return (m.devices[c.device].cost_usd_per_hour(c.devices) + c.fixed_usd_per_hour, c.path_ms, k)

    return [min(range(len(m.cands[v])), key=lambda k: key(v, k)) for v in range(m.n)]


def _fastest_choice(m: _Model) -> list[int]:
    return [min(range(len(cs)), key=lambda k: (cs[k].path_ms, m.standalone_usd_per_hour(cs[k]), k))
            for cs in m.cands]


def _repair_inventory(s: _Search) -> bool:
    """Move ops off over-full classes: the least TCO increase per device freed first."""
    m = s.m
    for _ in range(10 * m.n + 10):
        full = s.over_capacity()
        if not full:
            return True
        best = None
        for v in range(m.n):
            old = s.cand(v)
            if old.device not in full:
                continue
            for k, new in enumerate(m.cands[v]):
                if not s.allowed(v, k):
                    continue
                # The over-full class is charged at its bought price per device freed.
                price = m.devices[old.device].usd_per_hour
                if new.device == old.device:
                    freed = old.devices - new.devices
                    if freed <= 0:
                        continue
                    delta = -freed * price
                else:
                    if new.device in full:
                        continue
                    dev = m.devices[new.device]
                    after = dev.cost_usd_per_hour(s.counts[new.device] + new.devices)
                    if math.isinf(after):
                        continue
                    freed = old.devices
                    delta = after - dev.cost_usd_per_hour(s.counts[new.device]) - freed * price
                delta += new.fixed_usd_per_hour - old.fixed_usd_per_hour
                key = (delta / freed, v, k)
                if best is None or key < best:
                    best = key
        if best is None:
            return False
        s.move(best[1], best[2])
    return not s.over_capacity()


def _forbidden_in(m: _Model, choice: list[int]) -> bool:
    return any((m.cands[e.src][choice[e.src]].device, m.cands[e.dst][choice[e.dst]].device) in e.edge.forbidden
               for e in m.edges)


def _repair_forbidden(s: _Search) -> bool:
    """Ops in topological order: one whose class makes a forbidden pair with a predecessor's moves to its
    cheapest allowed candidate (the successors are visited later). False when an op has none."""
    m = s.m
    if not any(e.edge.forbidden for e in m.edges):
        return True
    for v in m.topo:
        if all((s.cand(m.edges[e].src).device, s.cand(v).device) not in m.edges[e].edge.forbidden
               for e in m.preds[v]):
            continue
        allowed = [k for k, c in enumerate(m.cands[v])
                   if all((s.cand(m.edges[e].src).device, c.device) not in m.edges[e].edge.forbidden
                          for e in m.preds[v])]
        if not allowed:
            return False
        s.move(v, min(allowed, key=lambda k: (m.standalone_usd_per_hour(m.cands[v][k]), k)), update_paths=False)
    s.refresh()
    return not _forbidden_in(m, s.choice)


def _repair_latency(s: _Search, latency_first: bool) -> None:
    """Greedy upgrades of ops on critical paths: the least TCO increase per ms saved first (or the most ms
    saved when `latency_first`). In soft mode an upgrade is bought only while it costs less than lambda/ms.
    Lazy greedy: moves wait in a heap under the key they had when pushed; a popped move is re-evaluated and
    applied only if it is still at least as good as the next one, else pushed back with its new key."""
    import heapq

    m = s.m
    for _ in range(50):
        if m.limit is None or s.paths.critical_ms <= m.limit + EPS_MS:
            return
        heap = [key for v in m.topo for key in _upgrade_keys(s, v, latency_first)]
        heapq.heapify(heap)
        progressed = False
        while heap and s.paths.critical_ms > m.limit + EPS_MS:
            key = heapq.heappop(heap)
            v, k = key[2], key[3]
            fresh = _upgrade_key(s, v, k, latency_first)
            if fresh is None:
                continue
            if heap and fresh[:2] > heap[0][:2] and fresh[:2] != key[:2]:
                heapq.heappush(heap, fresh)
                continue
            s.move(v, k)
            progressed = True
            for again in _upgrade_keys(s, v, latency_first):
                heapq.heappush(heap, again)
        if not progressed:
            return


def _upgrade_key(s: _Search, v: int, k: int, latency_first: bool) -> tuple[float, float, int, int] | None:
    """Sort key of moving critical op v to k, or None when that does not shorten a critical path within the
    inventory (or, in soft mode, costs at least lambda per ms saved)."""
    m = s.m
    if k == s.choice[v]:
        return None
    current = s.through(v)
    if current < s.paths.critical_ms - EPS_MS:
        return None
    saved = current - s.through(v, k)
    if saved <= EPS_MS:
        return None
    delta = s.delta_tco(v, k)
    if math.isinf(delta):
        return None
    ratio = delta / saved
    if m.lam is not None and ratio >= m.lam:
        return None
    return (-saved, ratio, v, k) if latency_first else (ratio, -saved, v, k)


def _upgrade_keys(s: _Search, v: int, latency_first: bool) -> list[tuple[float, float, int, int]]:
    keys = (_upgrade_key(s, v, k, latency_first) for k in range(len(s.m.cands[v])))
    return [key for key in keys if key is not None]


def _improve(s: _Search, max_passes: int = 50, sweep: bool | None = None) -> None:
    """Local search: per op, the single-candidate change that lowers TCO + SLA penalty most, until none.

    With a hard SLA a move needs only the paths through the moved op, and ops are visited in topological
    order: a visited op's finish time is recomputed from its predecessors' (all visited), and its successors'
    tails still hold (they depend on ops not yet visited). So the paths are brought up to date once per pass,
    not after every move (which costs the whole downstream cone: quadratic on large graphs). Soft SLAs need
    the critical path after each move and update incrementally."""
    m = s.m
    sweep = m.lam is None if sweep is None else sweep  # (tests compare both ways under a hard SLA)
    for _ in range(max_passes):
        improved = False
        for v in m.topo:
            if sweep:
                s.paths.finish[v] = _finish_of(m, s.chosen, s.paths.finish, v)
            current_penalty = m.penalty(s.paths.critical_ms)
            best = None
            for k in range(len(m.cands[v])):
                if k == s.choice[v]:
                    continue
                delta = s.delta_tco(v, k)
                if math.isinf(delta):
                    continue
                if delta >= -1e-9 and (m.lam is None or s.through(v, k) >= s.through(v) - EPS_MS):
                    continue  # neither cheaper nor able to lower the penalty
                if m.lam is None:
                    if m.limit is not None and s.through(v, k) > m.limit + EPS_MS:
                        continue
                    gain = delta
                else:
                    gain = delta + m.penalty(s.critical_after(v, k)) - current_penalty
                if gain < -1e-9 * max(1.0, abs(delta)) and (best is None or (gain, k) < best):
                    best = (gain, k)
            if best is not None:
                s.move(v, best[1], update_paths=not sweep)
                if sweep:
                    s.paths.finish[v] = _finish_of(m, s.chosen, s.paths.finish, v)
                improved = True
        if sweep:
            s.refresh()
        if not improved:
            return


def _swap(s: _Search, max_downgrades: int = 100, max_rounds: int = 20, max_checks: int = 2000) -> bool:
    """Pair moves that single moves cannot make when the SLA binds: a cheaper, slower candidate for one op
    paid for in latency by a faster candidate for another. Downgrades are tried most-saving first; for each,
    upgrades in order of their TCO increase until the pair stops paying. Returns True if anything moved."""
    m = s.m
    moved = False
    for _ in range(max_rounds):
        current_tco = _tco(m, s.choice)
        current = current_tco + m.penalty(s.paths.critical_ms)
        downs, ups = [], []
        for v in m.topo:
            for k in range(len(m.cands[v])):
                if k == s.choice[v]:
                    continue
                delta = s.delta_tco(v, k)
                if math.isinf(delta):
                    continue
                if delta < -1e-9:
                    downs.append((delta, v, k))
                elif s.through(v, k) < s.through(v) - EPS_MS:
                    ups.append((delta, v, k))
        downs.sort()
        ups.sort()
        accepted = False
        checks = 0
        for down_delta, v1, k1 in downs[:max_downgrades]:
            old1 = s.choice[v1]
            s.move(v1, k1)
            for up_delta, v2, k2 in ups:
                if down_delta + up_delta >= 0 and m.lam is None:
                    break  # every later upgrade costs more (hard SLA: no penalty to win back)
                if v2 == v1:
                    continue
                if m.lam is None and m.limit is not None and s.through(v2, k2) > m.limit + EPS_MS:
                    continue  # paths through v2 would still break the hard limit
                delta2 = s.delta_tco(v2, k2)
                if math.isinf(delta2):
                    continue
                checks += 1
                if checks > max_checks:
                    break
                after = s.critical_after(v2, k2)
                objective = current_tco + down_delta + delta2 + m.penalty(after)
                if objective < current - 1e-9 * max(1.0, abs(current)):
                    s.move(v2, k2)
                    accepted = True
                    break
            if accepted:
                break
            s.move(v1, old1)
            if checks > max_checks:
                break
        if not accepted:
            return moved
        moved = True
        _improve(s)
    return moved


def _solve_heuristic(m: _Model, lp_relaxation: bool = True) -> PlacementResult:
    """docs/placement.md, "Heuristic": three starts (LP-relaxation rounding, cheapest, fastest), each
    repaired for inventory and latency and improved by local search; the best plan wins. The LP optimum is
    the reported lower bound. Without `lp_relaxation` (the costliest step: simplex grows faster than the
    graph) only the other two starts run and no bound is reported."""
    start = time.perf_counter()
    relaxed = _run_milp(m, _build_milp(m), relax=True) if lp_relaxation else None
    starts = []
    if relaxed is not None and relaxed.choice is not None:
        starts.append((relaxed.choice, False))
    starts += [(_cheapest_choice(m), False), (_fastest_choice(m), True)]
    best: list[int] | None = None
    best_objective = math.inf
    for initial, latency_first in starts:
        s = _Search(m, initial)
        if not _repair_forbidden(s) or not _repair_inventory(s):
            continue
        _repair_latency(s, latency_first)
        if not math.isfinite(m.penalty(s.paths.critical_ms)):
            continue
        _improve(s)
        objective = _objective(m, s.choice)
        if objective < best_objective - 1e-9 * max(1.0, abs(objective)):
            best, best_objective = list(s.choice), objective
    if best is not None:
        s = _Search(m, best)
        _swap(s)  # the costliest step, so only on the best start
        best = s.choice
    elapsed = time.perf_counter() - start
    if best is None:
        reasons = explain_infeasible(m.problem)
        if reasons:
            return _infeasible_result(m.problem, "heuristic", "infeasible", elapsed, reasons)
        return _infeasible_result(m.problem, "heuristic", "no_solution", elapsed,
                                  ["the heuristic found no feasible plan; the exact solver may find one"])
    return _build_result(m, best, "heuristic", "heuristic", elapsed, relaxed.bound if relaxed else None)


def _objective(m: _Model, choice: list[int]) -> float:
    return _tco(m, choice) + m.penalty(_paths(m, choice).critical_ms)


# ---------------------------------------------------------------------------------------------- public


def solve(
    problem: PlacementProblem,
    solver: SolverName = "auto",
    *,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    lp_bound: bool = True,
) -> PlacementResult:
    """The minimum-TCO plan. `auto` = exact up to AUTO_EXACT_MAX_BINARIES (op, candidate) pairs, else the
    heuristic (with the LP-relaxation bound and its gap, unless `lp_bound` is False). Infeasible problems
    return a result with feasible=False and `reasons` (the caller raises InfeasibleError)."""
    if solver not in ("exact", "heuristic", "auto"):
        raise ValueError(f"unknown solver {solver!r}; expected exact, heuristic or auto")
    m = _Model(problem)
    if any(not cs for cs in m.cands):
        return _infeasible_result(problem, "heuristic" if solver == "heuristic" else "exact", "infeasible",
                                  0.0, explain_infeasible(problem))
    if solver == "auto":
        binaries = sum(len(cs) for cs in m.cands)
        solver = "exact" if binaries <= AUTO_EXACT_MAX_BINARIES else "heuristic"
    if solver == "exact":
        return _solve_exact(m, time_limit_s)
    return _solve_heuristic(m, lp_relaxation=lp_bound)


def pd_notation(result: PlacementResult) -> str:
    """The paper's P::D notation: prefill device class(es) :: decode device class(es); '' without both."""
    prefill = sorted({p.candidate.device for p in result.ops if p.role == "prefill"})
    decode = sorted({p.candidate.device for p in result.ops if p.role == "decode"})
    if not prefill or not decode:
        return ""
    return f"{'+'.join(prefill)}::{'+'.join(decode)}"


def homogeneous_baselines(
    problem: PlacementProblem, solver: SolverName = "auto", *, time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    solve_with=None,
) -> list[Baseline]:
    """For each accelerator class, the best plan with every op that has an accelerator candidate on that
    class (ops with only non-accelerator candidates keep them). Sorted by class name. `solve_with(problem,
    solve_one)` wraps each solve when the caller plans more than the problem says (percentile targets)."""
    m = _Model(problem)
    accelerators = sorted(
        d for d in {c.device for op in problem.ops for c in op.candidates} if m.devices[d].accelerator
    )
    baselines = []
    for accel in accelerators:
        keep: list[list[int]] = []
        missing = []
        for op in problem.ops:
            uses_accel = any(m.devices[c.device].accelerator for c in op.candidates)
            if uses_accel:
                indices = [i for i, c in enumerate(op.candidates) if c.device == accel]
                if not indices:
                    missing.append(op.id)
            else:
                indices = list(range(len(op.candidates)))
            keep.append(indices)
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            baselines.append(Baseline(accel, None, (f"no candidate on {accel} for op(s) {', '.join(missing[:5])}{more}",)))
            continue
        # only a baseline's cost is reported, not its gap: the heuristic skips the LP relaxation
        def solve_one(restricted: PlacementProblem) -> PlacementResult:
            return solve(restricted, solver, time_limit_s=time_limit_s, lp_bound=LP_BOUND_FOR_BASELINES)

        restricted = m.restricted(keep)
        result = solve_with(restricted, solve_one) if solve_with else solve_one(restricted)
        baselines.append(Baseline(accel, result, result.reasons))
    return baselines


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

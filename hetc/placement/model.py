"""The placement library's data model: the problem (ops, candidates, edges, device classes, limits) and the
result (each op's candidate, devices, paths, cost), plus explanations. No IR, no solver.

Units are in the names: _ms (milliseconds), _rps (per second), _usd_per_hour, _usd (dollars).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SECONDS_PER_HOUR = 3600.0
# Latency comparisons tolerate this much rounding (ms); cost comparisons 1e-9 relative.
EPS_MS = 1e-6


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
    transfer_ms: float = 0.0  # one transfer (what each traversal waits)


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
    # Where lower_bound comes from ("mip dual bound", "lp relaxation"), or why there is none.
    bound: str = ""
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
            "bound": self.bound,
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


def pd_notation(result: PlacementResult) -> str:
    """The paper's P::D notation: prefill device class(es) :: decode device class(es); '' without both."""
    prefill = sorted({p.candidate.device for p in result.ops if p.role == "prefill"})
    decode = sorted({p.candidate.device for p in result.ops if p.role == "decode"})
    if not prefill or not decode:
        return ""
    return f"{'+'.join(prefill)}::{'+'.join(decode)}"

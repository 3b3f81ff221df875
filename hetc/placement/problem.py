"""From decomposed IR to a hetc.placement.PlacementProblem.

Reads the SLA, traffic and hardware settings the frontend put on the graph, runs the flow analysis,
asks hetc.placement.candidates for each op's candidates on the device pool, prices device classes with hetc.model.tco,
and prices every cross-device edge (KV cache over the shared link, other payloads over the NICs).
"""

from __future__ import annotations

import itertools
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path

from xdsl.traits import SymbolTable

from hetc.dialects import agent as A
from hetc.dialects import task as T
from hetc.dialects.interfaces import DECODE, Costed, MovesKV
from hetc.errors import Diagnostic, HetcError, InfeasibleError, Loc
from hetc.flow import analyse
from hetc.hwdb.loader import load_hwdb
from hetc.locations import op_loc
from hetc.model import costmodel as cm
from hetc.model.kvpaths import (
    DEFAULT_LEVEL,
    KVPathTable,
    links_per_replica,
    load_kv_paths,
    moves_per_s,
    path_engine,
    transfer_cost,
)
from hetc.model.tco import TcoParams, device_hour_usd
from hetc.placement import candidates as C
from hetc.placement.model import DeviceClass, Edge, OpNode, PlacementProblem
from hetc.placement.percentiles import (
    PercentileTarget,
    meet_percentiles,
    percentile_invocations,
    percentile_value,
)
from hetc.placement.solver import solve
from hetc.spec.frontend import arch_from_attr, attr_from_value, value_from_attr

SECONDS_PER_DAY = 86_400.0


# Sub-agents planned as a unit: up to this many combinations of their device classes are all solved; beyond,
# a coordinate search over the units of at most MAX_UNIT_SEARCH_ROUNDS rounds (classes x units solves each).
MAX_UNIT_COMBINATIONS = 64
MAX_UNIT_SEARCH_ROUNDS = 3


@dataclass
class BuiltProblem:
    problem: PlacementProblem
    ops: dict[str, T.TaskOp]  # op id (sym name) -> op
    db: object
    rate_basis: str  # offline work: how the planned rate follows from the job's volume; "" online
    units: dict[str, list[str]]  # sub-agent planned as a unit -> its op ids
    percentile_targets: list[PercentileTarget] = field(default_factory=list)
    pool: list = field(default_factory=list)  # the hardware pool's device classes (priced or not), for --explain
    by_id: dict[str, OpNode] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.by_id = {o.id: o for o in self.problem.ops}

    def problem_op(self, op_id: str) -> OpNode:
        return self.by_id[op_id]


def _settings(graph: A.GraphOp) -> tuple[dict, dict, dict]:
    def get(key):
        attr = graph.attributes.get(key)
        return value_from_attr(attr) if attr is not None else {}

    return get("hetc.slo"), get("hetc.traffic"), get("hetc.hardware")


# module -> {model reference: (the agent.model op, the attributes its ModelInfo is read from, that ModelInfo)}.
# Placement asks for an op's model tens of thousands of times on a large graph (candidates, KV moves per device
# pair). An entry holds while its op is still in the module and keeps the very same (immutable) attributes.
_MODEL_INFO: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _model(module, op) -> C.ModelInfo:
    models = _MODEL_INFO.setdefault(module, {})
    cached = models.get(op.model)
    if cached is not None and cached[0].parent_op() is module and all(
            mine is now for mine, now in zip(cached[1], _model_attrs(cached[0]), strict=True)):
        return cached[2]
    model = SymbolTable.lookup_symbol(module, op.model)
    if not isinstance(model, A.ModelOp):
        raise HetcError(f"unknown model {op.model} used by {op.sym_name.data}", op_loc(op))
    info = C.ModelInfo(arch_from_attr(model.arch, model.sym_name.data), model.precision.data, model.kv_precision.data)
    models[op.model] = (model, _model_attrs(model), info)
    return info


def _model_attrs(model) -> tuple:
    return model.arch, model.sym_name, model.precision, model.kv_precision


def record_database(module, name: str, extra, db) -> None:
    """The compile driver's choice of hardware database, recorded once on the module for every stage."""
    module.attributes["hetc.target"] = T.TargetAttr(name, [str(e) for e in extra], db.sha256)


def record_kv_paths(module, level: str, extra) -> None:
    """The compile driver's KV-path level and table (--kv-paths, --kv-paths-extra), recorded on the module."""
    table = load_kv_paths([Path(e) for e in extra])
    module.attributes["hetc.kvpaths"] = attr_from_value({"level": level, "name": table.name, "extra": list(extra)})


def module_kv_paths(module) -> tuple[KVPathTable, str]:
    """The KV-path table and level this compile plans with; IR that records none uses the bundled table at
    the default level (released)."""
    recorded = module.attributes.get("hetc.kvpaths")
    info = value_from_attr(recorded) if recorded is not None else {"level": DEFAULT_LEVEL, "extra": []}
    return load_kv_paths([Path(e) for e in info.get("extra", [])]), info["level"]


def module_database(module):
    """The one hardware database of this compile: the one the module records (`hetc.target`); IR that records
    none (hetc opt on hand-written IR) is priced with the bundled default, which is then recorded. A recorded
    sha256 that no longer matches the database stops the compile; a hand-written target without one gets it."""
    target = T.module_target(module)
    if target is None:
        target = T.TargetAttr("default")
    db = load_hwdb(target.hwdb.data, target.extra_files())
    if target.sha256.data and db.sha256 != target.sha256.data:
        raise HetcError(f"the hardware database '{target.hwdb.data}' changed since this IR was made (sha256 "
                        f"{target.sha256.data[:12]}..., now {db.sha256[:12]}...); compile the spec again",
                        Loc("hetc.target"))
    record_database(module, target.hwdb.data, target.extra_files(), db)
    return db


def output_tokens_per_request(flow) -> float:
    """Generated tokens per request: every decode's output tokens times its expected invocations."""
    return sum(op.output_tokens.value.data * flow.load[op] for op in flow.ops if _costed(op).role == DECODE)


def planned_rate(traffic: dict, flow, graph) -> tuple[float, str]:
    """The request rate the plan sustains and, for offline work, how it follows from the job's volume."""
    if traffic.get("requests_per_s") is not None:
        return traffic["requests_per_s"], ""
    if traffic.get("requests") is not None and traffic.get("deadline_h") is not None:
        rate = traffic["requests"] / (traffic["deadline_h"] * 3600.0)
        return rate, (f"offline: {traffic['requests']:,.0f} requests within {traffic['deadline_h']:g} h = "
                      f"{rate:.4g} requests/s")
    if traffic.get("tokens_per_day") is not None:
        tokens = output_tokens_per_request(flow)
        if tokens <= 0:
            raise HetcError("traffic: tokens_per_day sizes offline work by generated tokens, and this graph "
                            "generates none (no llm node with output_tokens); give requests and deadline_h",
                            op_loc(graph))
        rate = traffic["tokens_per_day"] / SECONDS_PER_DAY / tokens
        return rate, (f"offline: {traffic['tokens_per_day']:,.0f} tokens a day / {tokens:,.4g} tokens per request "
                      f"= {rate:.4g} requests/s")
    raise HetcError("traffic: offline work needs its volume (tokens_per_day, or requests and deadline_h)",
                    op_loc(graph))


def build_problem(module, graph: A.GraphOp, db, soft_lambda: float | None) -> BuiltProblem:
    slo, traffic, hardware = _settings(graph)
    pricing = hardware.get("pricing", "ownership")
    pool_ids = hardware.get("pool") or list(db.devices)
    pool = [db.devices[d] for d in pool_ids if d in db.devices]
    devices = [d for d in pool if d.has_price(pricing)]
    if not devices:
        raise HetcError(f"no device in the hardware pool has a price for pricing '{pricing}'", op_loc(graph))
    limits = C.Limits(slo.get("ttft_ms"), slo.get("tbt_ms"))
    flow = analyse(graph)
    ops: dict[str, T.TaskOp] = {}
    nodes: list[OpNode] = []
    errors: list[Diagnostic] = []
    by_shape: dict[tuple, list] = {}  # ops of one kind, model and shape have the same candidates
    for op in flow.ops:
        shape = _shape(op)
        if shape not in by_shape:
            by_shape[shape] = _candidates(module, op, devices, limits)
        cands = by_shape[shape]
        name = op.sym_name.data
        ops[name] = op
        if not cands:
            errors.append(Diagnostic(op_loc(op), _no_candidate_reason(module, op, devices, limits)))
        nodes.append(OpNode(name, cands, kind=op.kind, role=_costed(op).role, load=flow.load[op],
                            worst_invocations=flow.worst[op]))
    if errors:
        raise InfeasibleError(errors)
    device_ids = {c.device for n in nodes for c in n.candidates}
    node_by_id = {n.id: n for n in nodes}
    kv_paths = module_kv_paths(module)
    edges = []
    kv_memo: dict[tuple, object] = {}  # KV moves of one model and size cost the same: priced once (_shape)
    for e in flow.edges:
        if e.back_edge:
            continue  # loop iterations are counted in the ops' invocation numbers
        transfers, forbidden = {}, {}
        src_node, dst_node = node_by_id[e.src.sym_name.data], node_by_id[e.dst.sym_name.data]
        for a in sorted({c.device for c in src_node.candidates}):
            for b in sorted({c.device for c in dst_node.candidates}):
                if a == b:
                    continue  # same class: in process or on the scale-up fabric of one deployment
                if e.kv is None:
                    ms = _transfer_ms(module, e, db.devices[a], db.devices[b], kv_paths)
                else:
                    key = (_shape(e.kv), a, b)
                    if key not in kv_memo:
                        kv_memo[key] = _transfer_ms(module, e, db.devices[a], db.devices[b], kv_paths)
                    ms = kv_memo[key]
                if isinstance(ms, str):
                    forbidden[(a, b)] = ms
                else:
                    transfers[(a, b)] = (ms, 0.0)
        edges.append(Edge(src_node.id, dst_node.id, transfers, load=flow.traversals[e],
                          worst_traversals=flow.worst[e.dst], forbidden=forbidden))
        if e.kv is not None:
            _size_kv_links(module, e.kv, edges[-1], node_by_id, db, kv_paths, kv_memo)
    nodes = [node_by_id[n.id] for n in nodes]
    params = TcoParams.from_hwdb(db)
    inventory = hardware.get("inventory", {})
    classes = []
    for dev_id in sorted(device_ids):
        dev = db.devices[dev_id]
        inv = inventory.get(dev_id, {})
        price = device_hour_usd(dev, pricing, params).total
        sunk = device_hour_usd(dev, pricing, params, sunk=True).total if inv.get("sunk") else None
        classes.append(DeviceClass(dev_id, price, sunk, owned=int(inv.get("count", 0)), accelerator=dev.kind != "cpu"))
    rate, basis = planned_rate(traffic, flow, graph)
    problem = PlacementProblem(
        ops=nodes, edges=edges, devices=classes, request_rate_rps=rate,
        latency_limit_ms=slo.get("latency_ms"),  # offline jobs may still have a deadline
        phase_limits={k: v for k, v in (("ttft_ms", limits.ttft_ms), ("tbt_ms", limits.tbt_ms)) if v is not None},
        soft_sla_lambda=soft_lambda)
    units: dict[str, list[str]] = {}
    for name, op in ops.items():
        if "hetc.unit" in op.attributes:
            units.setdefault(op.attributes["hetc.unit"].data, []).append(name)
    targets = [PercentileTarget(p, limit, percentile_invocations(flow, percentile_value(p)))
               for p, limit in sorted((slo.get("percentiles") or {}).items())
               if p != slo.get("percentile") and limit is not None]
    return BuiltProblem(problem, ops, db, basis, units, targets, pool)


def _shape(op) -> tuple:
    """What an op's cost depends on: its kind and properties, not its name."""
    return op.name, tuple((k, v) for k, v in op.properties.items() if k not in ("sym_name", "node"))


def solve_placement(built: BuiltProblem, solver: str):
    """The cheapest plan that meets every percentile target. The solvers plan the highest percentile's
    limit; a lower percentile's target that the plan misses tightens that limit in proportion and the
    problem is solved again (at most MAX_PERCENTILE_ROUNDS times; docs/placement.md, "Percentiles")."""
    return meet_percentiles(built.percentile_targets, built.problem,
                            lambda problem: _solve_with_units(built, problem, solver))


def _solve_with_units(built: BuiltProblem, problem, solver: str):
    """The cheapest plan; a sub-agent marked plan_as_unit puts all its accelerator work on one class. Up to
    MAX_UNIT_COMBINATIONS combinations of classes for the units are all solved and the cheapest feasible
    plan wins; beyond that a coordinate search (see _search_unit_classes) chooses them."""
    accelerators = sorted(d.name for d in problem.devices if d.accelerator)
    if not built.units or not accelerators:  # a unit of CPU-only work needs no choice of class
        return solve(problem, solver)
    units = sorted(built.units)
    results: dict[tuple[str, ...], object] = {}

    def plan(combo: tuple[str, ...]):
        if combo not in results:
            results[combo] = solve(_units_on(built, problem, dict(zip(units, combo, strict=True))), solver)
        return results[combo]

    if len(accelerators) ** len(units) <= MAX_UNIT_COMBINATIONS:
        for combo in itertools.product(accelerators, repeat=len(units)):
            plan(combo)
    else:
        _search_unit_classes(units, accelerators, plan)
    return min(results.values(), key=_plan_rank)


def _plan_rank(result) -> tuple[bool, float]:
    return (not result.feasible, result.objective if result.feasible else 0.0)


def _search_unit_classes(units: list[str], accelerators: list[str], plan) -> None:
    """Too many combinations to try them all: start from the best plan with every unit on one class, then
    move one unit at a time to the class that makes the plan cheapest, until no single move helps (at most
    MAX_UNIT_SEARCH_ROUNDS rounds). The result is a local optimum over the units' classes."""
    best = min((tuple([c] * len(units)) for c in accelerators), key=lambda combo: _plan_rank(plan(combo)))
    for _ in range(MAX_UNIT_SEARCH_ROUNDS):
        improved = False
        for i in range(len(units)):
            for c in accelerators:
                combo = best[:i] + (c,) + best[i + 1:]
                if _plan_rank(plan(combo)) < _plan_rank(plan(best)):
                    best, improved = combo, True
        if not improved:
            return


def _units_on(built: BuiltProblem, problem, chosen: dict[str, str]):
    """The problem with each unit's accelerator ops restricted to candidates on its chosen class."""
    classes = {d.name: d.accelerator for d in problem.devices}
    unit_of = {op: unit for unit, ops in built.units.items() for op in ops}
    ops = []
    for op in problem.ops:
        unit = unit_of.get(op.id)
        if unit is not None and any(classes[c.device] for c in op.candidates):
            op = replace(op, candidates=[c for c in op.candidates if c.device == chosen[unit]])
        ops.append(op)
    return replace(problem, ops=ops)


def _transfer_ms(module, edge, src, dst, kv_paths: tuple[KVPathTable, str]) -> float | str:
    """Ms of one traversal; a KV edge goes by its pair's path at the level (a str: why there is none)."""
    if edge.kv is not None:
        move = kv_move_ms(module, edge.kv, src, dst, kv_paths)
        return move if move is not None else kv_paths[0].why_not(src, dst, kv_engine(module, edge.kv),
                                                                 kv_paths[1])
    link_gbs = min(src.scaleout_gbs, dst.scaleout_gbs)
    return (edge.payload_bytes / (link_gbs * 1e9) + max(src.scaleout_latency_us, dst.scaleout_latency_us) * 1e-6) * 1e3


def kv_engine(module, op) -> str:
    """The KV-path table's engine for an LLM op's model."""
    return path_engine(_model(module, op).arch.engine)


def kv_move_ms(module, op, src, dst, kv_paths: tuple[KVPathTable, str]) -> float | None:
    """One request's KV move for the LLM `op` (prefill or KV transfer) from src to dst along the pair's path at
    the level (hetc.model.kvpaths.transfer_cost; GPU-direct = bytes over the slower NIC + latency); None: no path."""
    table, level = kv_paths
    path = table.lookup(src, dst, kv_engine(module, op), level)
    if path is None:
        return None
    return transfer_cost(path, kv_cache_bytes(module, op), src, dst).seconds * 1e3


def kv_cache_bytes(module, op) -> float:
    """One request's KV cache for the LLM `op` (prefill or KV transfer)."""
    info = _model(module, op)
    tokens = (op.tokens if op.has_trait(MovesKV) else op.input_tokens).value.data
    return cm.kv_bytes(info.arch, info.kv_precision, tokens)


def kv_link_peak_rps(module, op, src, dst, devices_per_replica: int, kv_paths: tuple[KVPathTable, str]
                     ) -> float | None:
    """KV moves per second from src to dst that the links of one replica of `devices_per_replica` devices
    carry at full use (hetc.model.kvpaths.moves_per_s, the figures the plan's transfer stage gives the
    simulator); None: no path at the level."""
    table, level = kv_paths
    path = table.lookup(src, dst, kv_engine(module, op), level)
    if path is None:
        return None
    return moves_per_s(path, kv_cache_bytes(module, op), src, dst, links_per_replica(path, devices_per_replica))


def _size_kv_links(module, kv_op, edge: Edge, node_by_id: dict[str, OpNode], db, kv_paths, memo: dict) -> None:
    """Treat the links of a cross-class KV move as a capacity (docs/cost-model.md, "KV-link capacity"): each
    prefill candidate sends, and each decode candidate receives, its KV caches over the links of its own
    replicas, so its planning throughput is at most TARGET_UTILISATION of the moves per second those links
    carry. The decode's (prefill's) class is chosen later, so the slowest move to (from) another class the
    edge allows bounds it, as ttft_overhead_ms does for TTFT. A split whose links are short then needs more
    replicas (priced as devices) and the solver weighs it against other placements."""
    src_node, dst_node = node_by_id[edge.src], node_by_id[edge.dst]
    # Edges alike (the same KV move between ops of shared candidate lists, the same forbidden pairs) get the
    # same bounded lists: ops of one shape keep sharing them, and the solvers build their numbers once
    key = ("links", _shape(kv_op), id(src_node.candidates), id(dst_node.candidates), tuple(sorted(edge.forbidden)))
    if key in memo:
        src_bounded, dst_bounded, _, _ = memo[key]
        node_by_id[edge.src] = replace(src_node, candidates=src_bounded)
        node_by_id[edge.dst] = replace(dst_node, candidates=dst_bounded)
        return
    src_devices = sorted({c.device for c in src_node.candidates})
    dst_devices = sorted({c.device for c in dst_node.candidates})
    peaks: dict[tuple[str, str, int], float | None] = {}

    def slowest(cand, pairs) -> float | None:
        rates = []
        for a, b in pairs:
            if a == b or (a, b) in edge.forbidden:
                continue  # same class: no move between classes; forbidden: never planned
            key = (a, b, cand.devices_per_replica)
            if key not in peaks:
                peaks[key] = kv_link_peak_rps(module, kv_op, db.devices[a], db.devices[b], cand.devices_per_replica,
                                              kv_paths)
            if peaks[key] is not None:
                rates.append(peaks[key])
        return min(rates, default=None)

    src_bounded = [C.kv_link_bound(c, slowest(c, [(c.device, b) for b in dst_devices])) for c in src_node.candidates]
    dst_bounded = [C.kv_link_bound(c, slowest(c, [(a, c.device) for a in src_devices])) for c in dst_node.candidates]
    memo[key] = (src_bounded, dst_bounded, src_node.candidates, dst_node.candidates)  # the lists keep their ids
    node_by_id[edge.src] = replace(src_node, candidates=src_bounded)
    node_by_id[edge.dst] = replace(dst_node, candidates=dst_bounded)


def ttft_overhead_ms(module, op, devices, limits: C.Limits, prefill) -> float:
    """What TTFT adds to a prefill on the `prefill` device: the first decode step (at most the TBT limit) and
    the KV cache's move to the decode devices: the slowest move, priced by its path, from `prefill` to another
    accelerator class of the pool that has a KV path at the compile's level (conservative: the decode
    class is chosen later)."""
    kv_paths = module_kv_paths(module)
    moves = (kv_move_ms(module, op, prefill, b, kv_paths) for b in devices if b.kind != "cpu" and b.id != prefill.id)
    return (limits.tbt_ms or 0.0) + max((ms for ms in moves if ms is not None), default=0.0)


@dataclass
class _CostContext:
    """What a Costed op prices itself with (hetc/dialects/interfaces.py, CostContext)."""

    module: object
    devices: list
    limits: C.Limits
    estimate = C

    def model(self, op) -> C.ModelInfo:
        return _model(self.module, op)

    def pool(self) -> str:
        return ", ".join(d.id for d in self.devices)

    def ttft_overhead_ms(self, op, device) -> float:
        return ttft_overhead_ms(self.module, op, self.devices, self.limits, device)

    def phase_miss_reason(self, op, metric: str, limit: float | None, ms_of) -> str:
        """Why an LLM phase has no candidate: its model fits no device of the pool, or the best achievable
        `metric` (ms_of(device, tp): None when it does not fit) misses the limit."""
        info = self.model(op)
        usable = [d for d in self.devices if C.can_run(d, info.precision, info.arch.active_params())]
        achievable = [ms for dev in usable for tp in cm.valid_tp(dev, info.arch) if (ms := ms_of(dev, tp)) is not None]
        if not achievable or limit is None:
            return (f"{op.sym_name.data}: {info.arch.name} ({info.precision}) runs on no device of the pool "
                    f"({self.pool()}): it does not fit even at the largest tensor-parallel degree, or the device "
                    f"lacks {info.precision} compute, or it is a CPU and the model has more than "
                    f"{C.CPU_MODEL_PARAMS_MAX / 1e9:g}B parameters")
        best = min(achievable)
        return (f"{op.sym_name.data}: misses {metric} {limit:g} ms on every device of the pool; the best achievable "
                f"is {best:.1f} ms ({best - limit:+.1f} ms)")


def _costed(op):
    costed = op.get_trait(Costed)
    if costed is None:
        raise HetcError(f"place: no cost model for {op.name}", op_loc(op))
    return costed


def _candidates(module, op, devices, limits: C.Limits):
    return _costed(op).candidates(op, _CostContext(module, devices, limits))


def _no_candidate_reason(module, op, devices, limits: C.Limits) -> str:
    return _costed(op).no_candidate_reason(op, _CostContext(module, devices, limits))

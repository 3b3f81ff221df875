"""From decomposed IR to a hetc.placement.PlacementProblem.

Reads the SLA, traffic and hardware settings the frontend put on the graph, runs the flow analysis,
asks hetc.candidates for each op's candidates on the device pool, prices device classes with hetc.tco,
and prices every cross-device edge (KV cache over the shared link, other payloads over the NICs).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from xdsl.traits import SymbolTable

from hetc import candidates as C
from hetc import costmodel as cm
from hetc.dialects import agent as A
from hetc.dialects import task as T
from hetc.errors import Diagnostic, HetcError, InfeasibleError
from hetc.flow import analyse
from hetc.frontend import arch_from_attr, value_from_attr
from hetc.hwdb.loader import load_hwdb
from hetc.pipeline import op_loc
from hetc.placement import DeviceClass, Edge, OpNode, PlacementProblem
from hetc.tco import TcoParams, device_hour_usd

# Offline specs (objective: tokens_per_dollar) have no request rate; we plan for a rate high enough that
# rounding replicas up costs little, and report $ per 1M tokens (which does not depend on the rate).
OFFLINE_PLANNING_RATE_RPS = 1000.0


# Sub-agents planned as a unit: up to this many combinations of their device classes are all solved; beyond,
# a coordinate search over the units of at most MAX_UNIT_SEARCH_ROUNDS rounds (classes x units solves each).
MAX_UNIT_COMBINATIONS = 64
MAX_UNIT_SEARCH_ROUNDS = 3


@dataclass
class BuiltProblem:
    problem: PlacementProblem
    ops: dict[str, T.TaskOp]  # op id (sym name) -> op
    db: object
    offline: bool
    units: dict[str, list[str]]  # sub-agent planned as a unit -> its op ids
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


def _model(module, op) -> C.ModelInfo:
    model = SymbolTable.lookup_symbol(module, op.model)
    if not isinstance(model, A.ModelOp):
        raise HetcError(f"unknown model {op.model} used by {op.sym_name.data}", op_loc(op))
    return C.ModelInfo(arch_from_attr(model.arch), model.precision.data, model.kv_precision.data)


def build_problem(module, graph: A.GraphOp, hwdb: str, hwdb_extra: list[str], soft_lambda: float | None
                  ) -> BuiltProblem:
    db = load_hwdb(hwdb, hwdb_extra)
    slo, traffic, hardware = _settings(graph)
    pricing = hardware.get("pricing", "ownership")
    pool_ids = hardware.get("pool") or list(db.devices)
    devices = [db.devices[d] for d in pool_ids if d in db.devices and db.devices[d].has_price(pricing)]
    if not devices:
        raise HetcError(f"no device in the hardware pool has a price for pricing '{pricing}'", op_loc(graph))
    limits = C.Limits(slo.get("ttft_ms"), slo.get("tbt_ms"))
    flow = analyse(graph)
    ops: dict[str, T.TaskOp] = {}
    nodes: list[OpNode] = []
    errors: list[Diagnostic] = []
    by_shape: dict[tuple, list] = {}  # ops of one kind, model and shape have the same candidates
    for op in flow.ops:
        shape = (op.name, tuple((k, v) for k, v in op.properties.items() if k not in ("sym_name", "node")))
        if shape not in by_shape:
            by_shape[shape] = _candidates(module, op, devices, limits)
        cands = by_shape[shape]
        name = op.sym_name.data
        ops[name] = op
        if not cands:
            errors.append(Diagnostic(op_loc(op), _no_candidate_reason(module, op, devices, limits)))
        role = op.KIND if op.KIND in ("prefill", "decode") else ""
        nodes.append(OpNode(name, cands, kind=op.KIND, role=role, load=flow.load[op],
                            worst_invocations=flow.worst[op]))
    if errors:
        raise InfeasibleError(errors)
    device_ids = {c.device for n in nodes for c in n.candidates}
    node_by_id = {n.id: n for n in nodes}
    edges = []
    for e in flow.edges:
        if e.back_edge:
            continue  # loop iterations are counted in the ops' invocation numbers
        transfers = {}
        src_node, dst_node = node_by_id[e.src.sym_name.data], node_by_id[e.dst.sym_name.data]
        for a in sorted({c.device for c in src_node.candidates}):
            for b in sorted({c.device for c in dst_node.candidates}):
                if a == b:
                    continue  # same class: in process or on the scale-up fabric of one deployment
                transfers[(a, b)] = (_transfer_ms(module, e, db.devices[a], db.devices[b]), 0.0)
        edges.append(Edge(src_node.id, dst_node.id, transfers, load=flow.traversals[e],
                          worst_traversals=flow.worst[e.dst]))
    params = TcoParams.from_hwdb(db)
    inventory = hardware.get("inventory", {})
    classes = []
    for dev_id in sorted(device_ids):
        dev = db.devices[dev_id]
        inv = inventory.get(dev_id, {})
        price = device_hour_usd(dev, pricing, params).total
        sunk = device_hour_usd(dev, pricing, params, sunk=True).total if inv.get("sunk") else None
        classes.append(DeviceClass(dev_id, price, sunk, owned=int(inv.get("count", 0)), accelerator=dev.kind != "cpu"))
    rate = traffic.get("requests_per_s")
    offline = rate is None
    problem = PlacementProblem(
        ops=nodes, edges=edges, devices=classes, request_rate_rps=rate or OFFLINE_PLANNING_RATE_RPS,
        latency_limit_ms=slo.get("latency_ms"),  # offline jobs may still have a deadline
        phase_limits={k: v for k, v in (("ttft_ms", limits.ttft_ms), ("tbt_ms", limits.tbt_ms)) if v is not None},
        soft_sla_lambda=soft_lambda)
    units: dict[str, list[str]] = {}
    for name, op in ops.items():
        if "hetc.unit" in op.attributes:
            units.setdefault(op.attributes["hetc.unit"].data, []).append(name)
    return BuiltProblem(problem, ops, db, offline, units)


def solve_placement(built: BuiltProblem, solver: str):
    """The cheapest plan; a sub-agent marked plan_as_unit puts all its accelerator work on one class. Up to
    MAX_UNIT_COMBINATIONS combinations of classes for the units are all solved and the cheapest feasible
    plan wins; beyond that a coordinate search (see _search_unit_classes) chooses them."""
    from hetc.placement import solve

    problem = built.problem
    accelerators = sorted(d.name for d in problem.devices if d.accelerator)
    if not built.units or not accelerators:  # a unit of CPU-only work needs no choice of class
        return solve(problem, solver)
    units = sorted(built.units)
    results: dict[tuple[str, ...], object] = {}

    def plan(combo: tuple[str, ...]):
        if combo not in results:
            results[combo] = solve(_units_on(built, dict(zip(units, combo, strict=True))), solver)
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


def _units_on(built: BuiltProblem, chosen: dict[str, str]):
    """The problem with each unit's accelerator ops restricted to candidates on its chosen class."""
    from dataclasses import replace

    classes = {d.name: d.accelerator for d in built.problem.devices}
    unit_of = {op: unit for unit, ops in built.units.items() for op in ops}
    ops = []
    for op in built.problem.ops:
        unit = unit_of.get(op.id)
        if unit is not None and any(classes[c.device] for c in op.candidates):
            op = replace(op, candidates=[c for c in op.candidates if c.device == chosen[unit]])
        ops.append(op)
    return replace(built.problem, ops=ops)


def _transfer_ms(module, edge, src, dst) -> float:
    if edge.kv is not None:
        info = _model(module, edge.kv)
        return cm.kv_transfer_s(info.arch, info.kv_precision, edge.kv.tokens.value.data, src, dst,
                                same_chassis=False) * 1e3
    link_gbs = min(src.scaleout_gbs, dst.scaleout_gbs)
    return (edge.payload_bytes / (link_gbs * 1e9) + max(src.scaleout_latency_us, dst.scaleout_latency_us) * 1e-6) * 1e3


def ttft_overhead_ms(module, op, devices, limits: C.Limits) -> float:
    """What TTFT adds to a prefill: the first decode step (at most the TBT limit) and the KV cache's move to
    the decode devices (the slowest move between two accelerator classes of the pool)."""
    info = _model(module, op)
    accelerators = [d for d in devices if d.kind != "cpu"]
    kv_ms = max((cm.kv_transfer_s(info.arch, info.kv_precision, op.input_tokens.value.data, a, b, False) * 1e3
                 for a in accelerators for b in accelerators if a.id != b.id), default=0.0)
    return (limits.tbt_ms or 0.0) + kv_ms


def _candidates(module, op, devices, limits: C.Limits):
    if isinstance(op, T.PrefillOp):
        return C.prefill_candidates(_model(module, op), devices, op.input_tokens.value.data, limits,
                                    ttft_overhead_ms(module, op, devices, limits))
    if isinstance(op, T.DecodeOp):
        return C.decode_candidates(_model(module, op), devices, op.input_tokens.value.data,
                                   op.output_tokens.value.data, limits)
    if isinstance(op, T.EncoderOp):
        return C.encoder_candidates(_model(module, op), devices, op.input_tokens.value.data,
                                    op.output_tokens.value.data)
    if isinstance(op, T.EmbedOp):
        return C.encoder_candidates(_model(module, op), devices, op.tokens.value.data, 0)
    if isinstance(op, T.RerankOp):
        return C.encoder_candidates(_model(module, op), devices, op.tokens.value.data, 0)
    if isinstance(op, T.TTSOp):
        return C.tts_candidates(_model(module, op), devices, op.audio_seconds.value.data)
    if isinstance(op, T.VectorSearchOp):
        return C.vector_search_candidates(devices, op.n_vectors.value.data, op.dim.value.data,
                                          op.precision.data, op.index.data)
    if isinstance(op, T.ToolLookupOp):
        return C.tool_candidates(devices, op.latency_ms.value.data, op.request_kb.value.data,
                                 op.response_kb.value.data)
    if isinstance(op, T.ComputeOp):
        return C.cpu_candidates(devices, op.cpu_ms.value.data)
    if isinstance(op, T.StoreOp):
        return C.tool_candidates(devices, op.latency_ms.value.data, 0.0, 0.0)
    raise HetcError(f"place: no cost model for {op.name}", op_loc(op))


def _no_candidate_reason(module, op, devices, limits: C.Limits) -> str:
    name = op.sym_name.data
    pool = ", ".join(d.id for d in devices)
    if isinstance(op, (T.ToolLookupOp, T.ComputeOp, T.StoreOp)):
        return f"{name}: needs a CPU in the hardware pool ({pool})"
    if isinstance(op, (T.PrefillOp, T.DecodeOp)):
        info = _model(module, op)
        best = math.inf
        metric = "ttft_ms" if isinstance(op, T.PrefillOp) else "tbt_ms"
        limit = limits.ttft_ms if isinstance(op, T.PrefillOp) else limits.tbt_ms
        extra = ttft_overhead_ms(module, op, devices, limits) if isinstance(op, T.PrefillOp) else 0.0
        fits_anywhere = False
        usable = [d for d in devices if C.can_run(d, info.precision, info.arch.active_params())]
        for dev in usable:
            for tp in cm.valid_tp(dev, info.arch):
                if isinstance(op, T.PrefillOp):
                    est = cm.prefill(info.arch, dev, info.precision, tp, 1, 1, op.input_tokens.value.data,
                                     info.kv_precision)
                    ms = est.latency_s * 1e3 + extra
                else:
                    est = cm.decode(info.arch, dev, info.precision, info.kv_precision, tp, 1, 1,
                                    op.input_tokens.value.data, op.output_tokens.value.data)
                    ms = est.tbt_s * 1e3
                if est.fits:
                    fits_anywhere = True
                    best = min(best, ms)
        if not fits_anywhere or limit is None:
            return (f"{name}: {info.arch.name} ({info.precision}) runs on no device of the pool ({pool}): it does "
                    f"not fit even at the largest tensor-parallel degree, or the device lacks {info.precision} "
                    f"compute, or it is a CPU and the model has more than {C.CPU_MODEL_PARAMS_MAX / 1e9:g}B parameters")
        return (f"{name}: misses {metric} {limit:g} ms on every device of the pool; the best achievable is "
                f"{best:.1f} ms ({best - limit:+.1f} ms)")
    return f"{name}: no device of the pool ({pool}) can run it (memory)"

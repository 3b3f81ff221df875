"""`place`: choose a device class, parallelism, batch and replica count for every granular op.

Builds a hetc.placement problem from the decomposed IR (flow analysis for loop and branch counts,
hetc.placement.candidates for the cost model's numbers, hetc.model.tco for prices), solves it for minimum TCO under the
SLA, and writes the answer back: `placement = #task.device<...>` and `estimate = #task.estimate<...>` on every task op.
The plan-wide summary (cost, critical path, P::D, homogeneous baselines) is the pass's report to the compile
driver (hetc.passes.common.pass_report), which hands it to plan.json: it is not IR.
An infeasible spec stops compilation with exit code 3 and the reasons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, SymbolRefAttr
from xdsl.passes import ModulePass
from xdsl.traits import SymbolTable

from hetc.dialects import agent as A
from hetc.dialects import task as T
from hetc.dialects.interfaces import Costed, RunsWithPhase
from hetc.errors import Diagnostic, HetcError, InfeasibleError
from hetc.flow import moves_kv, placeable, producers
from hetc.locations import op_loc
from hetc.passes.common import record_pass_report
from hetc.placement import explain_placement, homogeneous_baselines, pd_notation
from hetc.placement.percentiles import meet_percentiles, percentile_latencies
from hetc.placement.problem import build_problem, module_database, solve_placement


@dataclass(frozen=True)
class PlacePass(ModulePass):
    name = "place"
    # No option names a hardware database: place prices with the one the module records (hetc.target).
    solver: str = "auto"
    soft_sla: float = 0.0  # lambda in $/hour per ms over the limit; 0 = hard SLA
    explain: bool = False

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        graph = main_graph(op)
        if self.solver not in ("auto", "exact", "heuristic"):
            raise HetcError(f"place: solver must be auto, exact or heuristic, got {self.solver!r}", op_loc(graph))
        db = module_database(op)
        built = build_problem(op, graph, db, self.soft_sla or None)
        if not built.problem.ops:  # nothing to run (inputs wired straight to outputs): an empty plan
            record_pass_report(op, self.name, {
                "solver": "none", "status": "empty", "tco_usd_per_hour": 0.0, "critical_path": [],
                "critical_path_ms": 0.0, "pd": "", "request_rate_rps": built.problem.request_rate_rps,
                "rate_basis": built.rate_basis, "devices": [], "paths": [], "paths_total": 0, "edges": [],
                "baselines": []})
            return
        result = solve_placement(built, self.solver)
        if not result.feasible:
            raise InfeasibleError([_diag(graph, line) for line in (result.reasons or ("no feasible placement",))])
        # Attributes are immutable: ops placed alike share one (building them was a tenth of place on large graphs)
        devices: dict[tuple, T.DeviceAttr] = {}
        estimates: dict[tuple, T.EstimateAttr] = {}
        for placement in result.ops:
            task_op = built.ops[placement.op]
            cand = placement.candidate
            device = (cand.device, placement.replicas, cand.tp, cand.pp, cand.batch, built.db.devices[cand.device].kind)
            if device not in devices:
                devices[device] = T.DeviceAttr(*device)
            task_op.attributes["placement"] = devices[device]
            values = {"latency_ms": cand.latency_ms, "throughput_rps": cand.throughput_rps,
                      "load": built.problem_op(placement.op).load,
                      "worst": built.problem_op(placement.op).worst_invocations,
                      "usd_per_hour": placement.usd_per_hour, "owned_devices": placement.owned_devices,
                      **dict(cand.metrics)}
            estimate = (*values.items(), *(math.copysign(1.0, v) for v in values.values()))  # -0.0 prints apart
            if estimate not in estimates:
                estimates[estimate] = T.EstimateAttr.from_values(values)
            task_op.attributes["estimate"] = estimates[estimate]
        _place_followers(graph)
        targets = built.percentile_targets
        baselines = homogeneous_baselines(built.problem, self.solver,
                                          solve_with=lambda problem, solve_one: meet_percentiles(targets, problem, solve_one))
        percentiles = {t.percentile: percentile_latencies(built.problem, result, t.invocations)
                       for t in built.percentile_targets}
        summary = {
            "solver": result.solver, "status": result.status, "tco_usd_per_hour": result.tco_usd_per_hour,
            "critical_path": list(result.critical_path), "critical_path_ms": result.critical_path_ms,
            "gap": result.gap, "bound": result.bound, "pd": pd_notation(result), "request_rate_rps": result.request_rate_rps,
            "rate_basis": built.rate_basis,
            "devices": [{"device": d.device, "owned": d.owned, "bought": d.bought, "usd_per_hour": d.usd_per_hour}
                        for d in result.devices],
            "paths": [{"sink": p.sink, "path": list(p.path), "latency_ms": p.latency_ms, "slack_ms": p.slack_ms,
                       "percentiles": {pct: at[p.sink] for pct, at in percentiles.items()}}
                      for p in result.paths],
            "paths_total": result.sinks,
            "edges": [{"src": e.src, "dst": e.dst, "src_device": e.src_device, "dst_device": e.dst_device,
                       "path_ms": e.path_ms, "transfer_ms": e.transfer_ms, "usd_per_hour": e.usd_per_hour}
                      for e in result.edges],
            "baselines": [{"device": b.device, "feasible": b.feasible,
                           "usd_per_hour": b.result.tco_usd_per_hour if b.feasible else None,
                           "critical_path_ms": b.result.critical_path_ms if b.feasible else None,
                           "reason": "; ".join(b.reasons) if not b.feasible else None} for b in baselines],
        }
        if self.explain:
            summary["explain"] = [
                {"op": e.op, "kind": e.kind, "candidates": [
                    {"candidate": c.candidate.describe(), "status": c.status, "replicas": c.replicas,
                     "devices": c.devices, "path_ms": c.path_ms, "usd_per_hour": c.usd_per_hour,
                     "delta_tco_usd_per_hour": c.delta_tco_usd_per_hour, "reason": c.reason}
                    for c in e.candidates] + _excluded_classes(built, built.ops[e.op])}
                for e in explain_placement(built.problem, result)]
        record_pass_report(op, self.name, summary)


def _excluded_classes(built, task_op) -> list[dict]:
    """--explain rows for the pool's device classes the op may not be placed on (Costed.excluded_devices)."""
    return [{"candidate": device, "status": "excluded", "replicas": 0, "devices": 0, "path_ms": None,
             "usd_per_hour": None, "delta_tco_usd_per_hour": None, "reason": f"excluded: {why}"}
            for device, why in task_op.get_trait(Costed).excluded_devices(task_op, built.pool)]


def _diag(graph, message: str):
    return Diagnostic(op_loc(graph), message)


def main_graph(module: ModuleOp) -> A.GraphOp:
    ref = module.attributes.get("hetc.main")
    graph = SymbolTable.lookup_symbol(module, ref) if isinstance(ref, SymbolRefAttr) else None
    if graph is None:
        graphs = [o for o in module.body.block.ops if isinstance(o, A.GraphOp) and "hetc.subagent" not in o.attributes]
        if len(graphs) != 1:
            raise HetcError("module has no main agent.graph (set hetc.main or keep exactly one graph)")
        graph = graphs[0]
    return graph


def _place_followers(graph: A.GraphOp) -> None:
    """Gate, merge and KV-transfer ops run with the phase they belong to, found by the SSA links
    decompose-llm makes: a gate's routing feeds its phase op, a merge reads its phase op's result."""
    for o in graph.walk():
        if isinstance(o, T.TaskOp) and o.has_trait(RunsWithPhase):
            phase = _phase_of(o)
            if phase is not None and phase.placement() is not None:
                o.attributes["placement"] = phase.placement()
    _place_kv_transfers(graph)


def _phase_of(op: T.TaskOp) -> T.TaskOp | None:
    """The phase op of the same node that a gate's routing feeds or a merge reads (through the phase's
    all-reduce when the IR is placed again after partition)."""
    def runs_the_phase(other) -> bool:
        costed = other.get_trait(Costed) if isinstance(other, T.TaskOp) else None
        return costed is not None and costed.role == op.phase.data and other.node == op.node

    near = [use.operation for use in op.result.uses] + [value.owner for value in op.inputs]
    near += [value.owner for other in near if isinstance(other, T.TaskOp) for value in other.operands]
    return next((other for other in near if runs_the_phase(other)), None)


def _place_kv_transfers(graph: A.GraphOp) -> None:
    """A KV transfer lands on the first op that reads the cache: an LLM's on its decode, a kv_cache node's on
    the op reading it (through loops and branches: a cache read inside a loop is a block argument of the loop
    body), which may be another KV transfer placed first; one read by no placed op lands with the op that
    writes it."""
    kv_ops = [o for o in graph.walk() if moves_kv(o)]
    readers = _kv_readers(graph)
    for _ in range(len(kv_ops) + 1):  # a chain of caches is placed from its reader back
        changed = False
        for o in kv_ops:
            if o.placement() is not None:
                continue
            placed = [r for r in readers.get(o, []) if r.placement() is not None]
            if placed:
                o.attributes["placement"] = placed[0].placement()
                changed = True
        if not changed:
            break
    for o in kv_ops:
        if o.placement() is None:
            writers = [src for src, *_ in producers(o.inputs[0]) if src.placement() is not None]
            if writers:
                o.attributes["placement"] = writers[0].placement()


def _kv_readers(graph: A.GraphOp) -> dict:
    """KV transfer op -> the ops that read its cache (placeable ops and other KV transfers), in program order."""
    def stop(op) -> bool:
        return moves_kv(op) or placeable(op)

    readers: dict = {}
    for op in graph.walk():
        if not stop(op):
            continue
        for operand in op.operands:
            for src, *_ in producers(operand, stop=stop):
                if moves_kv(src) and src is not op and op not in readers.setdefault(src, []):
                    readers[src].append(op)
    return readers


"""Flow analysis of a decomposed graph: which ops run how often, and what moves between them.

For every placeable task op: `load` (expected invocations per request, for throughput and cost) and
`worst` (invocations on the latency path: loops at their bound). Both come from hetc/loops.py on the
plan's stage graph, the semantics the simulator runs (docs/spec.md, "Loops"): branches of a stage are
one draw, a loop goes on while any of its back edges fires, work only a spent back edge needs is skipped.
Pass-through ops (branch, KV transfer, MoE gate and merge) are not placed themselves; data edges are
traced through them to the placeable ops that produce and consume the data."""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

from xdsl.dialects.builtin import ArrayAttr, IntegerAttr
from xdsl.ir import BlockArgument, Operation, OpResult, SSAValue

from hetc.dialects import agent as A
from hetc.dialects import task as T
from hetc.dialects.interfaces import Costed, MovesKV, ResultPayload, default_payload_bytes
from hetc.errors import HetcError
from hetc.locations import op_loc
from hetc.loops import Edge as LoopEdge
from hetc.loops import LoopError, LoopGraph


def placeable(op: Operation) -> bool:
    """Placed on its own (a Costed task op); the other task ops run with a neighbour (pass-through)."""
    return isinstance(op, T.TaskOp) and op.has_trait(Costed)


def moves_kv(op: Operation) -> bool:
    return isinstance(op, T.TaskOp) and op.has_trait(MovesKV)


@dataclass(frozen=True)
class FlowEdge:
    src: Operation  # a placeable op
    dst: Operation
    payload_bytes: float
    kv: Operation | None = None  # the task.kv_transfer the edge crosses (prefill -> decode)
    probability: float = 1.0
    back_edge: bool = False
    max_iterations: int | None = None


@dataclass
class Flow:
    ops: list[Operation] = field(default_factory=list)  # placeable, in program order
    load: dict[Operation, float] = field(default_factory=dict)  # of every stage op (placeable and KV moves)
    worst: dict[Operation, float] = field(default_factory=dict)
    traversals: dict[FlowEdge, float] = field(default_factory=dict)  # expected live deliveries per request
    edges: list[FlowEdge] = field(default_factory=list)
    sources: list[A.InputOp] = field(default_factory=list)
    sinks: list[A.OutputOp] = field(default_factory=list)


def payload_bytes(value: SSAValue) -> float:
    """Bytes of one request's value: as its producing op states (ResultPayload), a graph input by its
    tokens or audio seconds, anything else by its type's default (hetc/dialects/interfaces.py)."""
    while True:  # a loop: a chain of filters passing their input on may be long
        owner = value.owner
        if isinstance(owner, A.InputOp):
            tokens, seconds = owner.tokens, owner.audio_seconds
            return default_payload_bytes(value, tokens.value.data if tokens is not None else None,
                                         seconds.value.data if seconds is not None else None)
        trait = owner.get_trait(ResultPayload) if isinstance(owner, Operation) else None
        if trait is None:
            return default_payload_bytes(value)
        passed = trait.passed_on(owner)
        if passed is None:
            return trait.result_bytes(owner, value)
        value = passed


def producers(value: SSAValue, stop=placeable
              ) -> list[tuple[Operation, float, Operation | None, bool, int | None]]:
    """The placeable ops a value comes from, traced through pass-through ops, branches and loops:
    [(producer, probability along the way, task.kv_transfer crossed, back edge?, loop bound)].
    Iterative: a chain of pass-through ops as long as the graph does not recurse."""
    out = []
    seen: set[SSAValue] = set()
    todo: list[tuple[SSAValue, float, Operation | None, bool, int | None]] = [(value, 1.0, None, False, None)]
    while todo:
        value, prob, kv, back, bound = todo.pop()
        if value in seen:
            continue
        seen.add(value)
        if isinstance(value, BlockArgument):
            loop = value.block.parent_op()
            if isinstance(loop, A.LoopOp):
                n_in = len(loop.inputs)
                if value.index < n_in:
                    todo.append((loop.inputs[value.index], prob, kv, back, bound))
                else:
                    fb = loop.body.block.last_op.feedback[value.index - n_in]
                    todo.append((fb, prob, kv, True, loop_bound(loop, value.index - n_in)))
            continue
        assert isinstance(value, OpResult)
        op = value.op
        if stop(op):
            out.append((op, prob, kv, back, bound))
        elif isinstance(op, A.LoopOp):
            todo.append((op.body.block.last_op.exits[value.index], prob, kv, back, bound))
        elif isinstance(op, A.BranchOp):
            todo.append((op.inputs[0], prob * op.probability.value.data, kv, back, bound))
        elif isinstance(op, T.TaskOp):  # placed with a neighbour: trace through it
            crossed = op if moves_kv(op) else kv
            todo.extend((operand, prob, crossed, back, bound) for operand in reversed(op.operands))
        # agent.input: a source
    return out


def loop_bound(loop: A.LoopOp, feedback: int) -> int:
    """The bound of one back edge: the frontend records each (`feedback_bounds`), else the loop's."""
    bound = loop.max_iterations.value.data  # at most the spec's limit: agent.loop's verifier checks it
    bounds = loop.attributes.get("feedback_bounds")
    if isinstance(bounds, ArrayAttr) and len(bounds.data) == len(loop.body.block.last_op.feedback):
        each = bounds.data[feedback]
        if isinstance(each, IntegerAttr) and 1 <= each.value.data <= bound:
            return each.value.data
    return bound


def is_stage(op: Operation) -> bool:
    """Ops that are stages of the plan (and of the simulator): placeable ops, inputs, KV moves."""
    return placeable(op) or moves_kv(op) or isinstance(op, A.InputOp)


def stage_graph(graph: A.GraphOp) -> tuple[list[Operation], list[tuple[Operation, Operation, SSAValue, float,
                                                                        Operation | None, bool, int | None]]]:
    """The plan's stages (and outputs) in program order and its edges, one per (src, dst, back edge?)
    as hetc/bundle/plan.py writes them: [(src, dst, operand, probability, kv crossed, back edge?, bound)]."""
    ops = [op for op in graph.walk() if is_stage(op) or isinstance(op, A.OutputOp)]
    edges = []
    seen = set()
    for dst in ops:
        for operand in dst.operands:
            for src, prob, kv, back, bound in producers(operand, stop=is_stage):
                if (src, dst, back) not in seen:
                    seen.add((src, dst, back))
                    edges.append((src, dst, operand, prob, kv, back, bound))
    return ops, edges


# graph -> (its stage graph: stage ops and loop edges, the visits hetc.loops found for it). The place pass and
# the plan both analyse the graph, and partition between them adds only pass-through ops: the stage graph is
# the same, and the loop analysis (a large share of either on big graphs) is a function of it alone.
_LAST_VISITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _visits(graph: A.GraphOp) -> tuple[dict[Operation, float], dict[Operation, float], dict[tuple, float]]:
    """Expected and worst visits per stage, and expected traversals per (src, dst, back edge?), by the loop
    semantics of hetc/loops.py (the simulator's)."""
    ops, edges = stage_graph(graph)
    index = {op: i for i, op in enumerate(ops)}
    kept = [(src, dst, back) for src, dst, _, _, _, back, _ in edges if src in index]
    loop_edges = [(index[src], index[dst], prob, back, bound or 0)
                  for src, dst, _, prob, _, back, bound in edges if src in index]
    last = _LAST_VISITS.get(graph)
    if last is not None and last[1] == loop_edges and len(last[0]) == len(ops) and all(
            a is b for a, b in zip(last[0], ops, strict=True)):
        expected, worst, moved = last[2]
    else:
        try:
            loops = LoopGraph(len(ops), [LoopEdge(*edge) for edge in loop_edges])
            expected, worst, moved = loops.expected_visits(), loops.worst_visits(), loops.expected_traversals()
        except LoopError as exc:
            raise HetcError(f"graph @{graph.sym_name.data}: {exc}", op_loc(graph)) from None
        _LAST_VISITS[graph] = (ops, loop_edges, (expected, worst, moved))
    return ({op: expected[i] for op, i in index.items()}, {op: worst[i] for op, i in index.items()},
            dict(zip(kept, moved, strict=True)))


def analyse(graph: A.GraphOp) -> Flow:
    flow = Flow()
    load, worst, moved = _visits(graph)
    for op in graph.walk():
        if isinstance(op, A.InputOp):
            flow.sources.append(op)
        elif isinstance(op, A.OutputOp):
            flow.sinks.append(op)
        elif is_stage(op):  # KV moves too: the plan gives every stage its visits
            flow.load[op] = load[op]
            flow.worst[op] = worst[op]
            if placeable(op):
                flow.ops.append(op)
    for dst in flow.ops:
        for operand in dst.operands:
            for src, prob, kv, back, bound in producers(operand):
                edge = FlowEdge(src, dst, payload_bytes(operand), kv, prob, back, bound)
                flow.edges.append(edge)
                # a move prefill -> decode is the KV stage's edge into the decode
                flow.traversals[edge] = moved.get((kv if kv is not None else src, dst, back), 0.0)
    return flow

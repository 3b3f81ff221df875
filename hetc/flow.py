"""Flow analysis of a decomposed graph: which ops run how often, and what moves between them.

For every placeable task op: `load` (expected invocations per request: branch probabilities times
expected loop iterations, for throughput and cost) and `worst` (invocations on the latency path: loops at
their bound). A loop body runs at most 1 + max_iterations times; with q the probability that a feedback
value is produced in an iteration, it runs 1 + q + ... + q^N times in expectation. Ops whose results only
feed the back edge (the loop's tool call) run at most N times: the last iteration exits instead.
Pass-through ops (branch, KV transfer, MoE gate and merge) are not placed themselves; data edges are
traced through them to the placeable ops that produce and consume the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xdsl.ir import BlockArgument, Operation, OpResult, SSAValue

from hetc.dialects import agent as A
from hetc.dialects import task as T

# Ops that are placed with another op rather than on their own.
PASS_THROUGH = (T.KVTransferOp, T.GateOp, T.MergeOp, T.AllReduceOp, T.TransferOp)

# Bytes per request of each payload when the producer does not say (assumptions, docs/placement.md):
BYTES_PER_TOKEN = 4  # UTF-8 text, about 4 bytes per token
AUDIO_BYTES_PER_S = 32_000  # 16 kHz, 16-bit mono PCM
DOCUMENT_BYTES = 2_000  # one retrieved chunk
JSON_BYTES = 1_000


def placeable(op: Operation) -> bool:
    return isinstance(op, T.TaskOp) and not isinstance(op, PASS_THROUGH)


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
    load: dict[Operation, float] = field(default_factory=dict)
    worst: dict[Operation, float] = field(default_factory=dict)
    edges: list[FlowEdge] = field(default_factory=list)
    sources: list[A.InputOp] = field(default_factory=list)
    sinks: list[A.OutputOp] = field(default_factory=list)


def payload_bytes(value: SSAValue) -> float:
    owner = value.owner
    t = value.type
    if isinstance(t, A.AudioType):
        seconds = getattr(owner, "audio_seconds", None)
        return (seconds.value.data if seconds is not None else 10.0) * AUDIO_BYTES_PER_S
    if isinstance(t, A.DocumentsType):
        if isinstance(owner, T.ToolLookupOp):
            return owner.response_kb.value.data * 1000
        top_k = getattr(owner, "top_k", None)
        return (top_k.value.data if top_k is not None else 1) * DOCUMENT_BYTES
    if isinstance(t, (A.TextType, A.TokensType)):
        for name in ("output_tokens", "tokens"):
            tokens = getattr(owner, name, None)
            if tokens is not None and hasattr(tokens, "value"):
                return max(1, tokens.value.data) * BYTES_PER_TOKEN
        return 256 * BYTES_PER_TOKEN
    if isinstance(t, A.EmbeddingType):
        return 1024 * 4
    return JSON_BYTES


def producers(value: SSAValue, seen: frozenset = frozenset(), stop=placeable
              ) -> list[tuple[Operation, float, Operation | None, bool, int | None]]:
    """The placeable ops a value comes from, traced through pass-through ops, branches and loops:
    [(producer, probability along the way, task.kv_transfer crossed, back edge?, loop bound)]."""
    if value in seen:
        return []
    seen = seen | {value}
    if isinstance(value, BlockArgument):
        loop = value.block.parent_op()
        if isinstance(loop, A.LoopOp):
            n_in = len(loop.inputs)
            if value.index < n_in:
                return producers(loop.inputs[value.index], seen, stop)
            term = loop.body.block.last_op
            fb = term.feedback[value.index - n_in]
            bound = loop.max_iterations.value.data
            return [(p, prob, kv, True, bound) for p, prob, kv, _, _ in producers(fb, seen, stop)]
        return []
    assert isinstance(value, OpResult)
    op = value.op
    if stop(op):
        return [(op, 1.0, None, False, None)]
    if isinstance(op, A.LoopOp):
        term = op.body.block.last_op
        return producers(term.exits[value.index], seen, stop)
    if isinstance(op, A.BranchOp):
        p = op.probability.value.data
        return [(src, prob * p, kv, back, b) for src, prob, kv, back, b in producers(op.inputs[0], seen, stop)]
    if isinstance(op, PASS_THROUGH):
        out = []
        for operand in op.operands:
            for src, prob, kv, back, b in producers(operand, seen, stop):
                out.append((src, prob, op if isinstance(op, T.KVTransferOp) else kv, back, b))
        return out
    return []  # agent.input: a source


class _Analyser:
    def __init__(self) -> None:
        self.flow = Flow()
        self.value_prob: dict[SSAValue, float] = {}

    # --- probabilities and invocation counts
    def run_block(self, block, expected: float, worst: float) -> None:
        for op in block.ops:
            if isinstance(op, A.LoopOp):
                self.run_loop(op, expected, worst)
                continue
            if isinstance(op, A.InputOp):
                self.flow.sources.append(op)
                self.value_prob[op.result] = 1.0
                continue
            if isinstance(op, A.OutputOp):
                self.flow.sinks.append(op)
                continue
            p = self._op_prob(op)
            if isinstance(op, A.BranchOp):
                p *= op.probability.value.data
            for r in op.results:
                self.value_prob[r] = p
            if placeable(op):
                self.flow.ops.append(op)
                self.flow.load[op] = expected * self._op_prob(op)
                self.flow.worst[op] = worst

    def _op_prob(self, op: Operation) -> float:
        probs = [self.value_prob.get(v) for v in op.operands]
        probs = [p for p in probs if p is not None]
        return max(probs) if probs else 1.0

    def run_loop(self, loop: A.LoopOp, expected: float, worst: float) -> None:
        block = loop.body.block
        n_in = len(loop.inputs)
        entry = max([self.value_prob.get(v, 1.0) for v in loop.inputs] or [1.0])
        for i, arg in enumerate(block.args):
            self.value_prob[arg] = self.value_prob.get(loop.inputs[i], 1.0) / entry if i < n_in else None
        bound = loop.max_iterations.value.data
        # first pass: probabilities inside one iteration, to learn q
        probe = _Analyser()
        probe.value_prob = dict(self.value_prob)
        probe.run_block(block, 1.0, 1.0)
        term = block.last_op
        q = max([probe.value_prob.get(v, 0.0) or 0.0 for v in term.feedback] or [0.0])
        full = sum(q ** k for k in range(bound + 1))
        short = sum(q ** k for k in range(bound))
        feedback_only = _feedback_only(block)
        start = len(self.flow.ops)
        self.run_block(block, expected * entry * full, worst * (bound + 1))
        for op in self.flow.ops[start:]:
            if op in feedback_only and op.parent_block() is block:
                self.flow.load[op] *= short / full
                self.flow.worst[op] = worst * bound
        term_probs = [self.value_prob.get(v, 1.0) for v in term.exits]
        for r, p in zip(loop.results, term_probs, strict=True):
            self.value_prob[r] = (p or 1.0) * entry


def _feedback_only(block) -> set[Operation]:
    """Ops of a loop body from which no exit value is reachable (they only feed the next iteration)."""
    term = block.last_op
    reaches_exit: set[Operation] = set()
    stack = [v.owner for v in term.exits if isinstance(v, OpResult)]
    while stack:
        op = stack.pop()
        if op in reaches_exit or op.parent_block() is not block:
            continue
        reaches_exit.add(op)
        stack.extend(v.owner for v in op.operands if isinstance(v, OpResult))
    return {op for op in block.ops if op not in reaches_exit and op is not term}


def analyse(graph: A.GraphOp) -> Flow:
    analyser = _Analyser()
    analyser.run_block(graph.body.block, 1.0, 1.0)
    flow = analyser.flow
    consumers = [op for op in graph.walk() if placeable(op) or isinstance(op, A.OutputOp)]
    for dst in consumers:
        if not placeable(dst):
            continue
        for operand in dst.operands:
            for src, prob, kv, back, bound in producers(operand):
                flow.edges.append(FlowEdge(src, dst, payload_bytes(operand), kv, prob, back, bound))
    return flow

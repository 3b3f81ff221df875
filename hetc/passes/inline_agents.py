"""`inline-agents`: replace every agent.call by a copy of the callee's body.

The callee's agent.input ops take the call's operands (in order) and the operands of its agent.output
ops become the call's results. Inlined ops are renamed `<call>/<op>` so names stay unique, and ops of a
sub-agent marked plan_as_unit carry `hetc.unit = "<call>"` for placement. A unit inside a unit belongs to the
outer one; a unit inside a callee that is no unit becomes `<call>/<unit>`, one unit per copy; in whichever
order the calls are inlined. Callees left without callers are erased.
"""

from __future__ import annotations

from dataclasses import dataclass

from xdsl.context import Context
from xdsl.dialects.builtin import ModuleOp, StringAttr
from xdsl.passes import ModulePass
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.traits import SymbolTable

from hetc.dialects import agent as A


def _inline_call(module: ModuleOp, call: A.CallOp) -> list[A.CallOp]:
    """Inline one call; the calls the inlined body holds, in program order."""
    callee = SymbolTable.lookup_symbol(module, call.callee)
    assert isinstance(callee, A.GraphOp)
    body = callee.clone().body.block
    prefix = call.sym_name.data
    enclosing = call.attributes.get("hetc.unit")  # the call was inlined into a unit before: its body belongs to it
    unit = enclosing.data if isinstance(enclosing, StringAttr) else \
        prefix if call.plan_as_unit is not None and call.plan_as_unit.value.data != 0 else None
    inputs = [op for op in body.ops if isinstance(op, A.InputOp)]
    for op, value in zip(inputs, call.inputs, strict=True):
        op.result.replace_all_uses_with(value)
    results = []
    for op in list(body.ops):
        if isinstance(op, A.InputOp):
            body.erase_op(op)
        elif isinstance(op, A.OutputOp):
            results.append(op.inputs[0])
            body.erase_op(op)
    for op in body.ops:
        for nested in op.walk():
            if isinstance(nested, A.NodeOp):
                nested.sym_name = StringAttr(f"{prefix}/{nested.sym_name.data}")
            if unit is not None:
                nested.attributes["hetc.unit"] = StringAttr(unit)
            elif isinstance(inner := nested.attributes.get("hetc.unit"), StringAttr):
                # a unit inlined into the callee before: each copy of the callee is its own unit
                nested.attributes["hetc.unit"] = StringAttr(f"{prefix}/{inner.data}")
    moved = list(body.ops)
    for op in moved:
        op.detach()
    Rewriter.insert_op(moved, InsertPoint.before(call))
    for old, new in zip(call.results, results, strict=True):
        old.replace_all_uses_with(new)
    call.detach()
    call.erase()
    return [nested for op in moved for nested in op.walk() if isinstance(nested, A.CallOp)]


@dataclass(frozen=True)
class InlineAgentsPass(ModulePass):
    name = "inline-agents"

    def apply(self, ctx: Context, op: ModuleOp) -> bool:
        """Whether the module changed (hetc.pipeline verifies it again only then)."""
        # Calls are inlined in program order, a call's inlined body (and the calls in it) where the call was: a
        # stack, so the module is walked once, not once per call
        pending = [o for o in op.walk() if isinstance(o, A.CallOp)][::-1]
        changed = bool(pending)
        while pending:
            pending += _inline_call(op, pending.pop())[::-1]
        for graph in [o for o in op.body.block.ops if isinstance(o, A.GraphOp)]:
            if "hetc.subagent" in graph.attributes:  # every call site is inlined now
                op.body.block.erase_op(graph)
                changed = True
        return changed

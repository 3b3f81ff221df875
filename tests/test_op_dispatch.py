"""No stage of the compiler tests what kind an op is: each op states its behaviour through its interfaces
(hetc/dialects/interfaces.py; issue 13, "Done when": no isinstance / kind-string dispatch on op kinds outside
the ops and their interfaces). This test reads the source of hetc/, hetc/passes/ and hetc/targets/ and fails on:

- `isinstance(x, T.PrefillOp)` and the like: a test of one task op kind, or of one agent node kind (agent.llm,
  agent.tool, ...: decompositions match those with rewrite patterns, not isinstance). The task op base class
  and the graph's structure (agent.graph, input, output, branch, loop, call, model) are not op kinds;
- `.KIND`, the kind strings the ops used to carry;
- in a module that handles task ops (it imports the task dialect), a comparison with a task op's kind string
  (`kind == "decode"`, `kind in ("prefill", "decode")`) or a table keyed by them.

Readers of plan.json (hetc/runtime, the exporters' stage tables) read its stage `kind`, a published data
field, not an op: they are outside the third rule because they do not import the task dialect.
"""

from __future__ import annotations

import ast
from pathlib import Path

from hetc.dialects import agent as A
from hetc.dialects import task as T

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("hetc", "passes", "targets")

# partition's communication ops (task.allreduce, task.transfer) are the structure of a partitioned graph, which
# the pass that inserts them recognises to stay idempotent; a nested agent (`agent`: agent.call) is structure too
PARTITION_STRUCTURE = {"AllReduceOp", "TransferOp"}
TASK_OP_CLASSES = {op.__name__ for op in T.TASK_OPS} - PARTITION_STRUCTURE
NODE_KIND_CLASSES = {op.__name__ for op in A.Agent.operations
                     if issubclass(op, A.NodeOp) and op.SPEC_KIND not in ("", "input", "output", "agent")}
KIND_CLASSES = TASK_OP_CLASSES | NODE_KIND_CLASSES
TASK_KINDS = {op.name.removeprefix("task.") for op in T.TASK_OPS} | {"tool_compute"}


def _class_names(node: ast.expr) -> list[str]:
    """The class names an isinstance's second argument names (`T.DecodeOp`, `DecodeOp`, tuples of them)."""
    if isinstance(node, ast.Tuple):
        return [name for elt in node.elts for name in _class_names(elt)]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.Name):
        return [node.id]
    return []


def _kind_strings(node: ast.expr) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value] if node.value in TASK_KINDS else []
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [s for elt in node.elts for s in _kind_strings(elt)]
    return []


def _handles_task_ops(tree: ast.Module) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            names = {alias.name for alias in node.names}
            if node.module in ("hetc.dialects.task", "dialects.task") or (
                    node.module in ("hetc.dialects", "dialects") and "task" in names):
                return True
    return False


def dispatch_on_op_kinds(source: str, path: str) -> list[str]:
    """Every place in `source` that dispatches on an op kind, as `path:line: what`."""
    tree = ast.parse(source, path)
    task_module = _handles_task_ops(tree)
    found = []
    for node in ast.walk(tree):
        where = f"{path}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance" \
                and len(node.args) == 2:
            found += [f"{where}: isinstance on {name}" for name in _class_names(node.args[1]) if name in KIND_CLASSES]
        elif isinstance(node, ast.Attribute) and node.attr == "KIND":
            found.append(f"{where}: .KIND")
        elif task_module and isinstance(node, ast.Compare):
            found += [f"{where}: compares with the op kind {s!r}"
                      for operand in (node.left, *node.comparators) for s in _kind_strings(operand)]
        elif task_module and isinstance(node, ast.Dict):
            found += [f"{where}: a table keyed by the op kind {s!r}" for key in node.keys if key is not None
                      for s in _kind_strings(key)]
    return found


def test_no_stage_dispatches_on_op_kinds():
    found = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            found += dispatch_on_op_kinds(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert found == [], "dispatch on op kinds outside the ops' interfaces:\n" + "\n".join(found)


def test_the_check_finds_each_form_of_dispatch():
    # the forms this redesign removed (hetc/placement_problem.py, plan.py, codegen.py, flow.py before it)
    source = '''
from hetc.dialects import task as T
if isinstance(op, T.PrefillOp): pass
if isinstance(op, (T.ToolLookupOp, T.MemoryStoreOp)): pass
if isinstance(op, A.LLMOp): pass
role = op.KIND
if kind in ("prefill", "decode"): pass
if stage["kind"] == "tool_compute": pass
CALLED = {("vector_search", "cpu"): 1}
TABLE = {"embed": 1}
'''
    found = dispatch_on_op_kinds(source, "x.py")
    assert [f.split(": ", 1)[1] for f in found] == [
        "isinstance on PrefillOp", "isinstance on ToolLookupOp", "isinstance on MemoryStoreOp", "isinstance on LLMOp",
        ".KIND", "compares with the op kind 'prefill'", "compares with the op kind 'decode'",
        "compares with the op kind 'tool_compute'", "a table keyed by the op kind 'vector_search'",
        "a table keyed by the op kind 'embed'",
    ]


def test_structure_and_the_task_base_class_are_not_op_kinds():
    source = '''
from hetc.dialects import task as T
if isinstance(op, (T.TaskOp, A.GraphOp, A.InputOp, A.OutputOp, A.BranchOp, A.LoopOp, A.CallOp, A.ModelOp)): pass
if node.kind == "llm": pass
'''
    assert dispatch_on_op_kinds(source, "x.py") == []
    # a plan reader (no task dialect) reads plan.json's stage kinds
    assert dispatch_on_op_kinds('if stage["kind"] == "decode": pass\n', "x.py") == []


def test_the_plan_schema_knows_every_stage_kind_the_ops_make():
    import json

    schema = json.loads((ROOT / "hetc" / "schemas" / "plan.schema.json").read_text())
    from hetc.dialects.interfaces import Costed, MovesKV

    kinds = set(schema["$defs"]["stage"]["properties"]["kind"]["enum"])
    # the ops that become stages: those placed on their own, and KV moves once placed
    stages = {op.name.removeprefix("task.") for op in T.TASK_OPS if op.has_trait(Costed) or op.has_trait(MovesKV)}
    assert stages | {"tool_compute", "input", "output"} <= kinds

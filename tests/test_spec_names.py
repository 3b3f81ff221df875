"""Node ids and the names hetc derives from them never collide (issue 12): `x` and `x.prefill` together
crashed placement with `duplicate op ids`."""

from __future__ import annotations

from pathlib import Path

import pytest

from hetc.bundle.schema import validate_plan
from hetc.compiler import CompileOptions, compile_spec
from hetc.errors import HetcError
from hetc.spec.loader import load_spec

HEAD = """hetc: 1
name: names
traffic: {requests_per_s: 1}
slo: {latency_ms: 80000}
models:
  chat: {preset: llama-3-8b}
nodes:
  in: {kind: input}
  out: {kind: output}
"""


def write(tmp_path: Path, nodes: str, edges: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(HEAD + nodes + "edges:\n" + edges)
    return path


@pytest.mark.parametrize("nodes, edges, message", [
    ("  x: {kind: llm, model: chat}\n  x.prefill: {kind: compute, cpu_ms: 1}\n",
     "  - in -> x -> x.prefill -> out\n",
     r"spec.yaml:11:3: error: node id 'x.prefill' collides with the names hetc gives the ops of node 'x' "
     r"\(line 10\): 'x.<part>'"),
    ("  a/b: {kind: compute, cpu_ms: 1}\n"
     "  a: {kind: agent, graph: {nodes: {i: {kind: input}, b: {kind: compute, cpu_ms: 1}, o: {kind: output}},"
     " edges: [i -> b -> o]}}\n",
     "  - in -> a/b -> a -> out\n",
     r"spec.yaml:10:3: error: node id 'a/b' collides with the names hetc gives the nodes inside of node 'a'"),
])
def test_ids_that_collide_with_derived_names_are_rejected(tmp_path: Path, nodes: str, edges: str, message: str):
    with pytest.raises(HetcError, match=message):
        load_spec(write(tmp_path, nodes, edges))


def test_ids_that_differ_only_in_case_or_punctuation_get_distinct_stage_ids(tmp_path: Path):
    ids = ["A", "a", "x y", "x-y", "x.y", "x_y"]
    nodes = "".join(f"  '{i}': {{kind: compute, cpu_ms: 1}}\n" for i in ids)
    edges = "".join(f"  - in -> {i} -> out\n" for i in ids)
    result = compile_spec(str(write(tmp_path, nodes, edges)), CompileOptions(codegen=False))
    stages = {s["node"]: s["id"] for s in result.plan["stages"]}
    assert set(ids) <= set(stages)
    assert len(set(stages.values())) == len(stages)
    validate_plan(result.plan, "plan.json")

"""Input that deserves an error, or works, and never crashes: graphs thousands of nodes deep, deeply nested
JSON, YAML and IR, malformed pass pipelines (issue 12: no recursion on graph depth anywhere)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hetc.bundle.schema import load_plan
from hetc.compiler import CompileOptions, compile_spec
from hetc.errors import HetcError
from hetc.pipeline import PipelineRun, parse_ir_file, print_module
from hetc.spec.frontend import spec_to_module
from hetc.spec.loader import load_spec

ROOT = Path(__file__).resolve().parent.parent


def chain_spec(path: Path, n: int, loop: bool = False) -> Path:
    """input -> c0 -> ... -> c{n-1} -> output; with loop, c{n-1} -> c0 closes one loop over the whole chain."""
    lines = ["hetc: 1", "name: chain", "traffic: {requests_per_s: 1}", "slo: {latency_ms: 80000000}", "nodes:",
             "  in: {kind: input}"]
    lines += [f"  c{i}: {{kind: compute, cpu_ms: 0.01}}" for i in range(n)]
    lines += ["  out: {kind: output}", "edges:", "  - in -> c0"]
    lines += [f"  - c{i} -> c{i + 1}" for i in range(n - 1)]
    lines.append(f"  - c{n - 1} -> out")
    if loop:
        lines.append(f"  - c{n - 1} -> c0: {{max_iterations: 2}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hetc.cli", *args], capture_output=True, text=True, timeout=300)


def test_10000_node_chain_reads_and_decomposes(tmp_path: Path):
    """The frontend's payload inference walked the chain recursively (RecursionError at 1,000 nodes)."""
    module = spec_to_module(load_spec(chain_spec(tmp_path / "chain.yaml", 10_000)))
    PipelineRun(spec="inline-agents,decompose-llm,decompose-tools,decompose-nodes").run(module)
    assert print_module(module).count("task.compute") == 10_000


def test_10000_node_loop_reads(tmp_path: Path):
    """One loop around a 10,000-node chain: its body is ordered in linear time, without recursion."""
    module = spec_to_module(load_spec(chain_spec(tmp_path / "chain.yaml", 10_000, loop=True)))
    assert print_module(module).count("agent.compute") == 10_000


def test_1000_node_chain_validates_and_compiles(tmp_path: Path):
    path = chain_spec(tmp_path / "chain.yaml", 1000)
    validated = run_cli("validate", str(path))
    assert validated.returncode == 0, validated.stderr
    assert "1002 nodes" in validated.stdout
    result = compile_spec(str(path), CompileOptions(codegen=False))
    assert sum(stage["node"].startswith("c") for stage in result.plan["stages"]) == 1000


def test_deeply_nested_plan_json_is_a_located_error(tmp_path: Path):
    (tmp_path / "plan.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(HetcError, match=r"plan.json:1:65: error: JSON nested deeper than 64 levels"):
        load_plan(tmp_path)


def test_deeply_nested_yaml_is_a_located_error(tmp_path: Path):
    path = tmp_path / "deep.yaml"
    path.write_text("hetc: 1\nname: " + "[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(HetcError, match="deep.yaml:2:.*nesting deeper than 64"):
        load_spec(path)


def test_deeply_nested_ir_is_a_located_error(tmp_path: Path):
    path = tmp_path / "deep.mlir"
    path.write_text('builtin.module attributes {x = ' + "[" * 5000 + "]" * 5000 + "} {\n}\n")
    with pytest.raises(HetcError, match=r"deep.mlir:1:\d+: error: the IR nests brackets deeper than 256"):
        parse_ir_file(str(path))


def test_binary_ir_is_a_located_error(tmp_path: Path):
    path = tmp_path / "noise.mlir"
    path.write_bytes(b"builtin.module {\n\xb7\x00\xff}")
    with pytest.raises(HetcError, match=r"noise.mlir:2:1: error: the IR file is not valid UTF-8"):
        parse_ir_file(str(path))


@pytest.mark.parametrize("passes, message", [
    ("place{x=1", r"bad pass pipeline 'place\{x=1' \(at column 10\): Malformed pass arguments"),
    ("nope", r"Unrecognized passes"),
])
def test_bad_pass_pipeline_is_exit_2_without_traceback(tmp_path: Path, passes: str, message: str):
    ir = tmp_path / "empty.mlir"
    ir.write_text("builtin.module {\n}\n")
    result = run_cli("opt", str(ir), "-p", passes)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1
    import re

    assert re.search(message, result.stderr), result.stderr


def test_agent_files_nested_too_deep_are_a_located_error(tmp_path: Path):
    """Each included agent file is one level of recursion in the loader and frontend: bounded, with a message."""
    for level in range(400):
        (tmp_path / f"a{level}.yaml").write_text(
            f"hetc: 1\nname: a{level}\nnodes:\n  i: {{kind: input}}\n"
            f"  sub: {{kind: agent, file: a{level + 1}.yaml}}\n  o: {{kind: output}}\nedges: [i -> sub -> o]\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text("hetc: 1\nname: top\ntraffic: {requests_per_s: 1}\nnodes:\n  i: {kind: input}\n"
                    "  sub: {kind: agent, file: a0.yaml}\n  o: {kind: output}\nedges: [i -> sub -> o]\n")
    with pytest.raises(HetcError, match=r"a31.yaml:5:\d+: error: agent files nest deeper than 32 levels"):
        load_spec(spec)

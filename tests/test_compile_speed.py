"""What keeps a large compile fast without changing its result: shared work (candidate lists, attributes,
loop analysis, model lookups), the heuristic's per-class move evaluation, and the collector's setting during a
compile. Speed itself is measured by bench/compile_scaling.py, never here."""

from __future__ import annotations

import gc
import math
import random
from pathlib import Path

import pytest

from hetc.placement import Candidate, DeviceClass, Edge, OpNode, PlacementProblem

ROOT = Path(__file__).resolve().parents[1]

SMALL_SPEC = """\
hetc: 1
name: twins
slo: {latency_ms: {p99: 60000}}
traffic: {requests_per_s: 2}
models:
  chat: {preset: llama-3-8b, precision: fp8}
hardware: {pool: [intel-xeon-8480, nvidia-h100-sxm]}
nodes:
  q: {kind: input, produces: text, tokens: 256}
  a: {kind: tool, latency_ms: 200, response_kb: 8}
  b: {kind: tool, latency_ms: 200, response_kb: 8}
  c: {kind: llm, model: chat, input_tokens: 512, output_tokens: 64}
  d: {kind: llm, model: chat, input_tokens: 512, output_tokens: 64}
  out: {kind: output}
edges:
  - q -> a
  - q -> b
  - a -> c
  - b -> d
  - c -> out
  - d -> out
"""


def _compile(tmp_path, spec: Path | None = None, **options):
    """The compile of `spec` (the small spec above by default), without code generation."""
    from hetc.compiler import CompileOptions, compile_spec

    if spec is None:
        spec = tmp_path / "spec.yaml"
        spec.write_text(SMALL_SPEC)
    return compile_spec(str(spec), CompileOptions(codegen=False, **options))


# --------------------------------------------------------------------------------------------- heuristic


def _problem_with_forbidden_pairs(rng: random.Random) -> PlacementProblem:
    """A random DAG whose classes have inventories and capacities, whose edges charge for transfers and
    forbid some device pairs: every case _Moves distinguishes."""
    names = ["d0", "d1", "d2"]
    devices = [DeviceClass(n, round(rng.uniform(0.5, 6.0), 2), None, rng.choice([0, 0, 2]),
                           rng.choice([None, None, 3, 8])) for n in names]
    n_ops = rng.randint(6, 14)
    shared = [Candidate(rng.choice(names), round(rng.uniform(1, 50), 1), round(rng.uniform(0.5, 8), 2),
                        tp=rng.choice([1, 2])) for _ in range(4)]
    ops = []
    for i in range(n_ops):
        cands = shared if rng.random() < 0.3 else [
            Candidate(rng.choice(names), round(rng.uniform(1, 50), 1), round(rng.uniform(0.5, 8), 2),
                      tp=rng.choice([1, 1, 2]), usd_per_invocation=rng.choice([0.0, 0.0002]))
            for _ in range(rng.randint(1, 5))]
        ops.append(OpNode(f"op{i}", cands, load=rng.choice([1.0, 0.5, 2.0]), worst_invocations=rng.choice([1.0, 2.0])))
    edges = []
    for i in range(1, n_ops):
        for j in rng.sample(range(i), min(i, rng.randint(1, 2))):
            transfers = {(a, b): (round(rng.uniform(0, 9), 1), rng.choice([0.0, 0.0, 0.0003]))
                         for a in names for b in names if a != b and rng.random() < 0.8}
            forbidden = {(a, b): "no path" for a in names for b in names if a != b and rng.random() < 0.15}
            edges.append(Edge(f"op{j}", f"op{i}", transfers, load=rng.choice([1.0, 2.0]), forbidden=forbidden))
    return PlacementProblem(ops, edges, devices, 2.0, round(rng.uniform(50, 200), 1))


def test_moves_give_the_tco_change_and_path_a_full_evaluation_gives():
    """_Moves works a candidate's TCO change and path out per device class; each must be what evaluating the
    whole plan before and after the move gives (inf where the move breaks a capacity or a forbidden pair)."""
    from hetc.placement.evaluate import _Model, _paths, _tco
    from hetc.placement.heuristic import _Moves, _Search

    rng = random.Random(13)
    checked = infinite = 0
    for _ in range(80):
        m = _Model(_problem_with_forbidden_pairs(rng))
        s = _Search(m, [rng.randrange(len(cs)) for cs in m.cands])
        before = _tco(m, s.choice)
        if math.isinf(before):
            continue  # a start beyond a capacity: every move's TCO is inf
        for v in range(m.n):
            moves = _Moves(s, v)
            assert moves.through() == s.paths.finish[v] + s.paths.tail[v]
            for k in range(len(m.cands[v])):
                moved = list(s.choice)
                moved[v] = k
                after = _tco(m, moved)
                pairs = [(m.cands[e.src][moved[e.src]].device, m.cands[e.dst][moved[e.dst]].device)
                         in e.edge.forbidden for e in (m.edges[i] for i in m.preds[v] + m.succs[v])]
                delta = moves.delta_tco(k)
                if any(pairs) or math.isinf(after):
                    assert math.isinf(delta)
                    infinite += 1
                else:
                    assert delta == pytest.approx(after - before, rel=1e-9, abs=1e-9)
                    checked += 1
                paths = _paths(m, moved)
                assert moves.through(k) == paths.finish[v] + paths.tail[v]
                assert moves.delta_tco(k) == s.delta_tco(v, k) or math.isinf(delta)
    assert checked > 500 and infinite > 50


def test_ops_alike_share_their_candidates_in_the_solver_model_and_baselines():
    """Ops of one shape share a candidate list; the solver's model builds theirs once and restricted problems
    (the homogeneous baselines) keep them shared."""
    from hetc.placement.evaluate import _Model, restricted

    cands = [Candidate("cpu", 5.0, 10.0), Candidate("gpu", 1.0, 40.0)]
    ops = [OpNode(f"op{i}", cands) for i in range(3)] + [OpNode("other", list(cands), load=2.0)]
    edges = [Edge("op0", "op1"), Edge("op1", "op2"), Edge("op2", "other")]
    problem = PlacementProblem(ops, edges, [DeviceClass("cpu", 1.0, accelerator=False), DeviceClass("gpu", 3.0)], 1.0)
    m = _Model(problem)
    assert m.cands[0] is m.cands[1] is m.cands[2]
    assert m.cands[3] is not m.cands[0]  # another load: other replica counts
    only_gpu = restricted(problem, [[1], [1], [1], [1]])
    assert only_gpu.ops[0].candidates is only_gpu.ops[1].candidates is only_gpu.ops[2].candidates
    r = _Model(only_gpu)
    assert r.cands[0] is r.cands[1] and [c.cand for c in r.cands[0]] == [cands[1]]


# ----------------------------------------------------------------------------------------------- compile


def test_a_compile_collects_young_garbage_less_often_and_restores_the_setting(tmp_path, monkeypatch):
    import hetc.compiler as compiler

    seen = []
    build = compiler.spec_to_module

    def spying(spec):
        seen.append(gc.get_threshold())
        return build(spec)

    monkeypatch.setattr(compiler, "spec_to_module", spying)
    before = gc.get_threshold()
    _compile(tmp_path)
    assert seen == [tuple(max(a, b) for a, b in zip(compiler.COMPILE_GC_THRESHOLD, before, strict=True))]
    assert gc.get_threshold() == before
    gc.set_threshold(0)  # automatic collection off: a compile leaves it off
    try:
        seen.clear()
        _compile(tmp_path)
        assert seen[0][0] == 0
    finally:
        gc.set_threshold(*before)


def test_ops_placed_alike_share_their_placement_attributes(tmp_path):
    from hetc.dialects import task as T
    from hetc.passes.place import main_graph

    result = _compile(tmp_path, passes="inline-agents,decompose-llm,decompose-tools,decompose-nodes,place")
    ops = {op.sym_name.data: op for op in main_graph(result.module).walk() if isinstance(op, T.TaskOp)}
    twins = [(ops[f"a.{suffix}"], ops[f"b.{suffix}"]) for suffix in ("lookup",) if f"a.{suffix}" in ops]
    twins += [(ops["c.prefill"], ops["d.prefill"]), (ops["c.decode"], ops["d.decode"])]
    for one, other in twins:
        assert one.attributes["placement"] is other.attributes["placement"]
        assert one.attributes["estimate"] is other.attributes["estimate"]


def test_the_plan_reuses_the_loop_analysis_of_place_until_the_stage_graph_changes(tmp_path, monkeypatch):
    """place and the plan analyse the same stage graph (partition adds pass-through ops only): the loop
    analysis runs once. A changed stage graph (another branch probability) is analysed afresh."""
    import hetc.flow as flow
    from hetc.dialects import agent as A
    from hetc.passes.common import f64
    from hetc.passes.place import main_graph

    built = []
    real = flow.LoopGraph

    def counting(n, edges):
        built.append(n)
        return real(n, edges)

    monkeypatch.setattr(flow, "LoopGraph", counting)
    result = _compile(tmp_path, ROOT / "examples" / "supervisor.yaml")
    assert len(built) == 1
    graph = main_graph(result.module)
    first = flow.analyse(graph)
    assert len(built) == 1
    branch = next(op for op in graph.walk() if isinstance(op, A.BranchOp))
    branch.properties["probability"] = f64(branch.probability.value.data / 2)
    second = flow.analyse(graph)
    assert len(built) == 2
    assert second.load != first.load


def test_a_model_changed_between_compiles_of_one_module_is_read_again(tmp_path):
    """The placement caches what it reads from an agent.model op; a model given another precision is
    priced with the new one."""
    from xdsl.dialects.builtin import StringAttr

    from hetc.dialects import agent as A
    from hetc.dialects.task import TaskOp
    from hetc.placement.problem import _model

    result = _compile(tmp_path, passes="inline-agents,decompose-llm")
    module = result.module
    op = next(o for o in module.walk() if isinstance(o, TaskOp) and "model" in o.properties)
    assert _model(module, op).precision == "fp8"
    model = next(o for o in module.body.block.ops if isinstance(o, A.ModelOp))
    model.properties["precision"] = StringAttr("bf16")
    assert _model(module, op).precision == "bf16"


@pytest.mark.parametrize(("spec", "inlined"), [(None, False), (ROOT / "examples" / "supervisor.yaml", True)])
def test_the_pipeline_verifies_again_after_a_pass_that_changed_the_module_only(tmp_path, monkeypatch, spec, inlined):
    """A hetc pass returns whether it changed the module; one that left it as it was (inline-agents on a graph
    without agent.call, a decomposition with nothing to decompose) is not verified again. xDSL's own passes
    return None: always verified."""
    import hetc.pipeline as pipeline

    verified = []
    real = pipeline.verify
    monkeypatch.setattr(pipeline, "verify", lambda module, stage: (verified.append(stage), real(module, stage)))
    _compile(tmp_path, spec, passes="inline-agents,decompose-llm,decompose-llm,decompose-tools,decompose-nodes,place,dce")
    assert verified[0] == "parsed" and verified[-2:] == ["place", "dce"]
    assert ("inline-agents" in verified) == inlined
    assert verified.count("decompose-llm") == 1  # the second run finds no agent.llm left

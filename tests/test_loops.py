"""One loop semantics (hetc/loops.py) for the planner and the simulator: the planner's expected visits
(plan.json `invocations.expected`) and the simulator's measured visits agree on hand-checked graphs, on the
examples and on fuzzed graphs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_simulate import LOOP_WITH_SIDE_EXITS, edge, tiny_plan

from hetc.compiler import CompileOptions, compile_spec
from hetc.loops import Edge, LoopError, LoopGraph
from hetc.study.simulate import simulate, stage_graph

EXAMPLES = Path(__file__).parent.parent / "examples"
FIXED = {"type": "fixed", "latency_ms": 1.0}


def visits_by_id(plan: dict, report: dict) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    expected = {s["id"]: s["invocations"]["expected"] for s in plan["stages"]}
    worst = {s["id"]: s["invocations"]["worst"] for s in plan["stages"]}
    measured = {s["id"]: s["visits_per_request"] for s in report["stages"]}
    return expected, worst, measured


def assert_visits_agree(plan: dict, report: dict) -> None:
    """Measured visits per request within 5 standard errors of the plan's expectation. Visits of a stage lie
    in [0, worst], so their variance is at most worst * expected."""
    expected, worst, measured = visits_by_id(plan, report)
    n = report["requests"]
    for stage_id, got in measured.items():
        tolerance = 5 * math.sqrt(max(worst[stage_id] * expected[stage_id], 1e-12) / n) + 1e-3
        assert got == pytest.approx(expected[stage_id], abs=tolerance), stage_id


def with_expected_visits(plan: dict) -> dict:
    """A hand-built plan's invocations, computed as the compiler does (hetc/loops.py on the stage graph)."""
    graph = stage_graph(plan)
    expected, worst = graph.expected_visits(), graph.worst_visits()
    for stage, e, w in zip(plan["stages"], expected, worst, strict=True):
        stage["invocations"] = {"expected": e, "worst": w}
    return plan


# ------------------------------------------------------------------------------------- hand-checked


def test_several_back_edges_into_one_cycle_share_its_count():
    """The supervisor's shape: one draw sends it to a researcher (0.5) or an analyst (0.3); either returns
    to it, at most 2 more rounds in all (not 2 per back edge). Per round it goes on with 0.8."""
    plan = tiny_plan([("sup", FIXED), ("res", FIXED), ("ana", FIXED)],
                     [edge("in", "sup"), edge("sup", "res", 0.5), edge("sup", "ana", 0.3), edge("sup", "out"),
                      edge("res", "sup", loop=2), edge("ana", "sup", loop=2)])
    with_expected_visits(plan)
    expected, worst, _ = visits_by_id(plan, {"stages": []})
    assert expected["sup"] == pytest.approx(1 + 0.8 + 0.64)
    # the last round cannot loop again: no delegation then (the work would be thrown away)
    assert expected["res"] == pytest.approx(0.5 * (1 + 0.8))
    assert worst == {"in": 1, "sup": 3, "res": 2, "ana": 2, "out": 1}
    report = simulate(plan, rate_rps=1.0, duration_s=4000, seed=2)
    assert report["completed"] == report["requests"]
    assert_visits_agree(plan, report)


def test_supervisor_example_planner_and_simulator_agree():
    """Regression: the planner priced the supervisor 1.75 times per request, the simulator ran it 2.9 times."""
    plan = compile_spec(str(EXAMPLES / "supervisor.yaml"), CompileOptions(codegen=False)).plan
    expected, _, _ = visits_by_id(plan, {"stages": []})
    assert expected["supervisor.decode"] == pytest.approx(2.44)
    assert expected["supervisor.kv"] == pytest.approx(2.44)  # a KV move runs with its prefill
    report = simulate(plan, rate_rps=1.0, duration_s=1500, seed=4)
    assert report["completed"] == report["requests"] and report["dropped"]["count"] == 0
    assert_visits_agree(plan, report)


# the same models and hardware as test_simulate's spec, with two latency percentile targets
TOOL_LOOP_IN_RETRY_LOOP = LOOP_WITH_SIDE_EXITS.split("nodes:")[0].replace(
    "name: side-exits", "name: retry\nslo: {latency_ms: {p50: 20000, p99: 60000}}") + """\
nodes:
  q: {kind: input, produces: text, tokens: 64}
  planner: {kind: llm, model: chat, input_tokens: 512, output_tokens: 32}
  executor: {kind: llm, model: chat, input_tokens: 512, output_tokens: 32}
  tool: {kind: tool, latency_ms: 50}
  critic: {kind: llm, model: chat, input_tokens: 512, output_tokens: 16}
  answer: {kind: output}
edges:
  - q -> planner -> executor
  - executor -> tool: {probability: 0.6}
  - tool -> executor: {max_iterations: 3}
  - executor -> critic
  - critic -> planner: {probability: 0.5, max_iterations: 2}
  - critic -> answer
"""


def test_tool_loop_inside_a_retry_loop_completes_every_request(tmp_path):
    """Regression: 75 of 327 requests completed and the SLA line contradicted the percentiles."""
    spec = tmp_path / "retry.yaml"
    spec.write_text(TOOL_LOOP_IN_RETRY_LOOP)
    plan = compile_spec(str(spec), CompileOptions(codegen=False)).plan
    report = simulate(plan, rate_rps=2.0, duration_s=1000, seed=1)
    assert report["completed"] == report["requests"] > 1500 and report["dropped"]["count"] == 0
    assert_visits_agree(plan, report)
    latency = {row["percentile"]: row for row in report["checks"] if row["metric"] == "latency_ms"}
    assert set(latency) == {"p50", "p99"}
    for name, row in latency.items():  # the verdict follows the percentile shown
        assert row["meets"] == (row["measured_ms"] <= row["target_ms"]), name
    assert report["meets_sla"] == all(row["meets"] for row in report["checks"])


def test_a_branch_into_the_middle_of_a_loop():
    """`mid` is entered from outside (a branch) or from the header; the loop runs when either is live."""
    plan = tiny_plan([("pre", FIXED), ("head", FIXED), ("mid", FIXED), ("chk", FIXED)],
                     [edge("in", "pre"), edge("pre", "head", 0.5), edge("pre", "mid", 0.25),
                      edge("head", "mid"), edge("mid", "chk"), edge("chk", "head", 0.4, loop=3),
                      edge("chk", "out")])
    with_expected_visits(plan)
    expected, _, _ = visits_by_id(plan, {"stages": []})
    # pass 0 runs chk when head or mid is entered (0.75); later passes start at head
    assert expected["chk"] == pytest.approx(0.75 * (1 + 0.4 + 0.16 + 0.064))
    assert expected["head"] == pytest.approx(0.5 + 0.75 * (0.4 + 0.16 + 0.064))
    report = simulate(plan, rate_rps=1.0, duration_s=4000, seed=3)
    assert report["completed"] == report["requests"]
    assert_visits_agree(plan, report)


def test_a_loop_whose_header_is_inside_another_loop_nests_in_it():
    """in -> 1 -> 2 -> 3 -> 4 -> 5 with 3 -> 1 (max 2) and 4 -> 2 (max 1): the loop at 2 runs inside the
    loop at 1, twice per outer pass; the outer loop makes 3 passes."""
    back = [Edge(3, 1, back=True, bound=2), Edge(4, 2, back=True, bound=1)]
    graph = LoopGraph(6, [Edge(0, 1), Edge(1, 2), Edge(2, 3), Edge(3, 4), Edge(4, 5)] + back)
    outer, inner = graph.loops
    assert outer.body == {1, 2, 3, 4} and inner.body == {2, 3, 4} and inner.parent == outer.index
    assert graph.expected_visits() == [1.0, 3.0, 6.0, 6.0, 6.0, 1.0]
    assert graph.worst_visits() == [1.0, 3.0, 6.0, 6.0, 6.0, 1.0]


def test_a_stage_only_a_back_edge_feeds_runs_only_when_it_fires():
    """draft -> check -> out, check -> fix (0.3, max 2), fix -> check: the fix-up runs when the back edge
    fires (0.3 + 0.09 times), not when the request arrives; the planner and the simulator agree, also when
    the loop runs again inside a loop around it (then the fix-up is skipped in each first pass)."""
    plan = tiny_plan([("draft", FIXED), ("fix", FIXED), ("check", FIXED)],
                     [edge("in", "draft"), edge("draft", "check"), edge("check", "out"),
                      edge("check", "fix", 0.3, loop=2), edge("fix", "check")])
    with_expected_visits(plan)
    expected, worst, _ = visits_by_id(plan, {"stages": []})
    assert expected["fix"] == pytest.approx(0.3 + 0.09) and worst["fix"] == 2.0
    assert expected["check"] == pytest.approx(1.39) and worst["check"] == 3.0
    report = simulate(plan, rate_rps=5.0, duration_s=400, seed=3)
    assert report["completed"] == report["requests"]
    assert_visits_agree(plan, report)
    nested = tiny_plan([("draft", FIXED), ("fix", FIXED), ("check", FIXED)],
                       [edge("in", "draft"), edge("draft", "check"), edge("check", "out"),
                        edge("check", "fix", 0.3, loop=2), edge("fix", "check"), edge("check", "draft", 0.5, loop=1)])
    with_expected_visits(nested)
    report = simulate(nested, rate_rps=5.0, duration_s=400, seed=3)
    assert report["completed"] == report["requests"]
    assert_visits_agree(nested, report)


def test_loops_that_feed_each_other_are_one_loop():
    """s0 -> s3 -> s0 and s1 -> s2 -> s4 -> s1 share no stage, but s0 feeds s4 and s2 feeds s3: neither loop
    can finish a pass before the other, so they are one loop (hypothesis found this refused as "do not
    nest"). s1 is fed only by its back edge: skipped in the first pass."""
    plan = tiny_plan([(name, FIXED) for name in ("s0", "s1", "s2", "s3", "s4")],
                     [edge("in", "s0"), edge("s0", "s3"), edge("s0", "s4"), edge("s1", "s2"), edge("s2", "s3"),
                      edge("s2", "s4"), edge("s3", "s0", loop=1), edge("s4", "s1", loop=1), edge("s3", "out"),
                      edge("s4", "out")])
    graph = stage_graph(plan)
    assert len(graph.loops) == 1
    with_expected_visits(plan)
    expected, _, _ = visits_by_id(plan, {"stages": []})
    assert [expected[s] for s in ("s0", "s1", "s2", "s3", "s4")] == [2.0, 1.0, 1.0, 2.0, 2.0]
    report = simulate(plan, rate_rps=5.0, duration_s=100, seed=1)
    assert report["completed"] == report["requests"]
    assert_visits_agree(plan, report)


def test_loops_overlapping_without_nesting_are_one_loop():
    """Two loops entered separately share stage 2: one loop with both headers, one count."""
    plan = tiny_plan([(f"s{i}", FIXED) for i in range(5)],
                     [edge("in", "s0"), edge("in", "s1"), edge("s0", "s2"), edge("s1", "s2"), edge("s2", "s3"),
                      edge("s2", "s4"), edge("s3", "s0", 0.5, loop=2), edge("s4", "s1", 0.5, loop=1),
                      edge("s3", "out"), edge("s4", "out")])
    graph = stage_graph(plan)
    assert len(graph.loops) == 1 and graph.loops[0].bound == 2 and len(graph.loops[0].back) == 2
    with_expected_visits(plan)
    report = simulate(plan, rate_rps=1.0, duration_s=3000, seed=5)
    assert report["completed"] == report["requests"]
    assert_visits_agree(plan, report)


def test_ten_thousand_stage_chains_do_not_recurse():
    n = 10_000
    edges = [Edge(i, i + 1, 0.5 if i == 0 else 1.0) for i in range(n - 1)]
    graph = LoopGraph(n, edges)
    visits = graph.expected_visits()
    assert visits[0] == 1.0 and visits[-1] == pytest.approx(0.5)
    n = 2_000  # deeper than Python's recursion limit; validating a 10,000-stage plan's schema takes half a minute
    stages = [(f"s{i}", {"type": "fixed", "latency_ms": 0.0}) for i in range(n)]
    plan = tiny_plan(stages, [edge("in", "s0")] + [edge(f"s{i}", f"s{i + 1}", 0.5 if i == 0 else 1.0)
                                                    for i in range(n - 1)] + [edge(f"s{n - 1}", "out")])
    report = simulate(plan, rate_rps=1.0, duration_s=8, seed=0)  # skips cascade down the whole chain
    assert report["completed"] == report["requests"] > 0


# ------------------------------------------------------------------------------------------- examples


@pytest.mark.parametrize("name", ["voice-agent", "supervisor", "coding-agent", "rag-assistant", "moe-agent"])
def test_examples_planner_and_simulator_agree(name):
    plan = compile_spec(str(EXAMPLES / f"{name}.yaml"), CompileOptions(codegen=False)).plan
    rate = plan["traffic"]["requests_per_s"] or 1.0
    requests = 300 if name == "coding-agent" else 1500  # the coding agent decodes long patches: many steps
    report = simulate(plan, rate_rps=rate, duration_s=requests / rate, seed=7)
    assert report["completed"] == report["requests"]
    assert_visits_agree(plan, report)


# ------------------------------------------------------------------------------------------- property


@st.composite
def loop_graphs(draw):
    """Random stage graphs: a forward DAG over n stages, branch probabilities, back edges along it."""
    n = draw(st.integers(2, 7))
    names = [f"s{i}" for i in range(n)]
    edges = [edge("in", names[0])]
    succ: dict[int, set[int]] = {i: set() for i in range(n)}
    for i in range(n - 1):  # a stage may lead only back into its loop (a tool call)
        succ[i] |= draw(st.sets(st.integers(i + 1, n - 1), min_size=0, max_size=2))
    budget = {i: 1.0 for i in range(n)}
    out_edges = []
    for i in range(n):
        for j in sorted(succ[i]):
            out_edges.append((i, j, False))
    reach = {i: {i} for i in range(n)}
    for i in reversed(range(n)):
        for j in succ[i]:
            reach[i] |= reach[j]
    for _ in range(draw(st.integers(1, 3))):
        j = draw(st.integers(0, n - 1))
        i = draw(st.sampled_from(sorted(reach[j])))
        if (i, j, True) not in out_edges:
            out_edges.append((i, j, True))
    for i, j, back in out_edges:
        p = draw(st.sampled_from([1.0, 1.0, 0.3, 0.5, 0.7]))
        p = p if p <= budget[i] + 1e-9 else 1.0
        if p < 1.0:
            budget[i] -= p
        bound = draw(st.integers(1, 3)) if back else None
        edges.append(edge(names[i], names[j], p, loop=bound))
    for i in range(n):
        if not any(src == i for src, _, _ in out_edges):
            edges.append(edge(names[i], "out"))
    return tiny_plan([(name, FIXED) for name in names], edges)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=loop_graphs(), seed=st.integers(0, 3))
def test_expected_visits_match_simulated_visits_on_fuzzed_graphs(plan, seed):
    with_expected_visits(plan)
    report = simulate(plan, rate_rps=10.0, duration_s=100.0, seed=seed)
    assert report["completed"] == report["requests"] and report["dropped"]["count"] == 0
    assert_visits_agree(plan, report)


def test_edge_traffic_is_what_the_edge_carries():
    """The placement priced an edge's transfers as dst visits x edge probability (0.4 x 0.624 searches for
    the voice agent's decode -> search, 2.44 for each supervisor back edge); an edge carries its live tokens."""
    from hetc.dialects import agent as A
    from hetc.flow import analyse

    module = compile_spec(str(EXAMPLES / "voice-agent.yaml"), CompileOptions(codegen=False)).module
    graph = next(op for op in module.body.block.ops if isinstance(op, A.GraphOp))
    flow = analyse(graph)
    moved = {(e.src.sym_name.data, e.dst.sym_name.data): flow.traversals[e] for e in flow.edges}
    assert moved[("llm.decode", "search.lookup")] == pytest.approx(0.4 + 0.16 + 0.064)
    assert moved[("search.lookup", "llm.prefill")] == pytest.approx(0.624)  # the back edge
    assert moved[("stt", "llm.prefill")] == pytest.approx(1.0)
    assert moved[("llm.decode", "tts")] == pytest.approx(1.0)


# ------------------------------------------------------------------------------ merged tokens are exact


class PerEdgeTokens(LoopGraph):
    """The plain reading of the semantics: every token stays on its edge until delivered (exponential in
    the edges in flight, so only for small graphs)."""

    MERGE_BY_DESTINATION = False


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=loop_graphs())
def test_merging_tokens_by_destination_changes_no_figure(plan):
    merged = stage_graph(plan)
    plain = PerEdgeTokens(merged.n, merged.edges)
    assert merged.expected_visits() == pytest.approx(plain.expected_visits(), abs=1e-12)
    assert merged.expected_traversals() == pytest.approx(plain.expected_traversals(), abs=1e-12)


def test_many_independent_branches_into_one_join_stay_exact():
    """A chain whose every stage may also report to one final stage (probability 0.5): 2 ** 3,000 ways the
    reports can arrive, one question for the final stage (did any?). It runs 1 - 0.5 ** k times for k
    reporting stages when the chain's end does not feed it; the per-edge reading refuses this graph."""
    n = 3_000
    final = n - 1
    edges = [Edge(i, i + 1) for i in range(n - 2)] + [Edge(i, final, 0.5) for i in range(n - 1)]
    visits = LoopGraph(n, edges).expected_visits()
    assert visits[final] == pytest.approx(1 - 0.5 ** (n - 1))
    small = [Edge(i, i + 1) for i in range(20)] + [Edge(i, 22, 0.5) for i in range(21)] + [Edge(21, 22, 0.5)]
    assert LoopGraph(23, small).expected_visits()[22] == pytest.approx(1 - 0.5 ** 22)
    with pytest.raises(LoopError, match="combinations of branches"):
        PerEdgeTokens(23, small).expected_visits()


def test_a_wide_branchy_graph_in_written_order_stays_small():
    """A layered graph like bench/compile_scaling.py's: each stage reads one of the 6 before it, a third of
    them also one more with probability 0.5, and every stage nobody reads reports to the last one. Taken in
    written order only a few stages wait at once; a depth-first order left thousands waiting (refused)."""
    import random

    rng = random.Random(3)
    n = 4_000
    edges, read, branched = [], set(), set()
    for i in range(1, n - 1):
        src = rng.randrange(max(0, i - 6), i)
        edges.append(Edge(src, i))
        read.add(src)
        other = rng.randrange(max(0, i - 6), i)
        if other != src and other not in branched and rng.random() < 0.3:
            edges.append(Edge(other, i, 0.5))  # at most one branch per stage: probabilities sum to <= 1
            read.add(other)
            branched.add(other)
    edges += [Edge(v, n - 1) for v in range(n - 1) if v not in read]
    merged, plain = LoopGraph(n, edges), PerEdgeTokens(n, edges)
    assert merged.expected_visits() == pytest.approx(plain.expected_visits(), abs=1e-12)
    assert merged.expected_traversals() == pytest.approx(plain.expected_traversals(), abs=1e-12)

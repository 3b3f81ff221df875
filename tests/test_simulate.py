"""Discrete-event simulator: SLA at the planned rate, violation and bottleneck at 2x, determinism,
traces, branch/loop semantics, rate sweep."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hetc.bundle.schema import load_plan, validate_plan
from hetc.errors import HetcError
from hetc.study.simulate import analytic_capacity, load_trace, simulate, sweep_rate

DATA = Path(__file__).parent / "data" / "plans"


@pytest.fixture(scope="module")
def voice() -> dict:
    return load_plan(DATA / "voice_agent.json")


@pytest.fixture(scope="module")
def rag() -> dict:
    return load_plan(DATA / "rag_router.json")


def tiny_plan(stages: list[tuple[str, dict]], edges: list[dict], slo_ms: float | None = None) -> dict:
    """A minimal valid plan: input -> given stages -> output, fixed services on a CPU."""
    def stage(stage_id: str, kind: str, service: dict) -> dict:
        io = kind in ("input", "output")
        return {"id": stage_id, "node": stage_id, "kind": kind, "device": None if io else "intel-xeon-8480",
                "vendor": None if io else "intel", "device_kind": None if io else "cpu",
                "target": "none" if io else "cpu", "replicas": 1, "tp": 1, "pp": 1, "batch": 1,
                "devices_per_replica": 0 if io else 1, "engine": None if io else "cpu-runtime", "model": None,
                "kernels": [], "service": service,
                "predicted": {"latency_ms": 0, "throughput_rps": None, "utilisation": None, "memory_gb": 0},
                "invocations": {"expected": 1, "worst": 1},
                "tco": {"usd_per_hour": 0, "capital_usd_per_hour": 0, "power_usd_per_hour": 0, "devices": 0,
                        "owned_devices": 0}}
    all_stages = [stage("in", "input", {"type": "none"})]
    all_stages += [stage(sid, "compute", service) for sid, service in stages]
    all_stages.append(stage("out", "output", {"type": "none"}))
    plan = {"schema_version": 1, "name": "tiny", "pd": None,
            "provenance": {"hetc_version": "0", "spec_sha256": "0" * 64, "hwdb": "t", "hwdb_sha256": "0" * 64,
                           "solver": "none", "pipeline": ""},
            "slo": {"latency_ms": slo_ms, "percentile": "p99", "ttft_ms": None, "tbt_ms": None},
            "traffic": {"requests_per_s": 1, "objective": None},
            "stages": all_stages, "edges": edges, "paths": [], "paths_total": 0,
            "tco": {"usd_per_hour": 0, "usd_per_1m_requests": None, "usd_per_1m_tokens": None,
                    "capital_usd_per_hour": 0, "power_usd_per_hour": 0},
            "baselines": [], "devices": []}
    return validate_plan(plan)


def edge(src: str, dst: str, p: float = 1.0, ms: float = 0.0, loop: int | None = None) -> dict:
    return {"src": src, "dst": dst, "payload_bytes": 0, "transport": "in-process", "predicted_ms": ms,
            "probability": p, "max_iterations": loop, "back_edge": loop is not None}


# --------------------------------------------------------------------------------- SLA and bottleneck


def test_voice_agent_meets_its_sla_at_the_planned_rate(voice):
    report = simulate(voice, duration_s=60, seed=1)
    assert report["rate_rps"] == 40 and report["arrivals"] == "poisson"
    assert report["completed"] == report["requests"] > 2000
    assert report["meets_sla"] and report["sla_attainment"] >= 0.99
    assert report["latency_ms"]["p99"] <= voice["slo"]["latency_ms"]
    assert report["ttft_ms"]["p99"] <= voice["slo"]["ttft_ms"]
    assert report["tbt_ms"]["p99"] <= voice["slo"]["tbt_ms"]
    decode = next(s for s in report["stages"] if s["id"] == "llm.decode")
    assert 0 < decode["mean_batch"] <= 64 and 0 < decode["utilisation"] < 1
    # TBT of a decode is the step time: base + per-sequence cost at the running batch
    assert report["tbt_ms"]["max"] <= 9 + 0.1 * 64 + 1e-9


def test_twice_the_planned_rate_violates_and_names_the_bottleneck(voice):
    report = simulate(voice, rate_rps=80, duration_s=60, seed=1)
    assert not report["meets_sla"] and report["sla_attainment"] < 0.5
    assert report["bottleneck"]["stage"] == "llm.decode" == report["analytic"]["stage"]
    assert report["hot_spots"][0] == "llm.decode"
    decode = next(s for s in report["stages"] if s["id"] == "llm.decode")
    assert decode["mean_batch"] > 55 and decode["max_queue"] > 100  # saturated, queue growing
    assert report["goodput_rps"] < 80 * 0.5


def test_rag_plan_meets_its_sla_and_every_request_completes_through_the_join(rag):
    report = simulate(rag, duration_s=60, seed=3)
    assert report["meets_sla"]
    assert report["completed"] == report["requests"]
    visits = {s["id"]: s["visits_per_request"] for s in report["stages"]}
    assert visits["retrieve"] + visits["web-search.lookup"] == pytest.approx(1.0)
    assert visits["retrieve"] == pytest.approx(0.7, abs=0.04)
    assert visits["llm.prefill"] == pytest.approx(1.0)


def test_loop_iterations_are_drawn_per_request(voice):
    report = simulate(voice, rate_rps=20, duration_s=200, seed=5)
    visits = {s["id"]: s["visits_per_request"] for s in report["stages"]}
    # 1 + 0.4 + 0.4^2 + 0.4^3 = 1.624 LLM calls, the search loop bounded at 3 iterations
    assert visits["llm.decode"] == pytest.approx(1.624, abs=0.05)
    assert visits["search.lookup"] == pytest.approx(0.624, abs=0.05)
    assert visits["tts"] == pytest.approx(1.0)


def test_analytic_capacity_is_the_tightest_stage(voice):
    capacity, stage = analytic_capacity(voice)
    assert stage == "llm.decode"
    assert capacity == pytest.approx(64 / (48 * 0.0154) / 1.624, rel=1e-3)


# --------------------------------------------------------------------------------- exact small cases


def test_deterministic_loop_runs_to_its_bound():
    plan = tiny_plan([("a", {"type": "fixed", "latency_ms": 10}), ("b", {"type": "fixed", "latency_ms": 10})],
                     [edge("in", "a"), edge("a", "b", ms=1.0), edge("b", "out"), edge("b", "a", loop=2)])
    report = simulate(plan, rate_rps=0.5, duration_s=20, seed=0)
    # three passes of a -> b (10 + 1 + 10 ms); arrivals 2 s apart never queue
    assert report["latency_ms"]["p50"] == report["latency_ms"]["max"] == pytest.approx(63.0)
    assert {s["id"]: s["visits_per_request"] for s in report["stages"]} == {"a": 3.0, "b": 3.0}


def test_fifo_queue_with_one_server_matches_hand_computation():
    plan = tiny_plan([("a", {"type": "fixed", "latency_ms": 100})], [edge("in", "a"), edge("a", "out")])
    trace = load_trace_text("arrival_s\n0\n0\n0.05\n1\n")
    report = simulate(plan, trace=trace, seed=0)
    # finish at 100, 200, 300, 1100 ms -> latencies 100, 200, 250, 100
    assert report["latency_ms"]["max"] == pytest.approx(250.0)
    assert report["latency_ms"]["mean"] == pytest.approx((100 + 200 + 250 + 100) / 4)
    assert report["stages"][0]["max_queue"] == 2


def test_lognormal_tool_latency_has_the_declared_median_and_p99():
    plan = tiny_plan([("tool", {"type": "fixed", "latency_ms": 300, "latency_p99_ms": 900, "concurrency": 10000})],
                     [edge("in", "tool"), edge("tool", "out")])
    report = simulate(plan, rate_rps=200, duration_s=100, seed=2)
    assert report["latency_ms"]["p50"] == pytest.approx(300, rel=0.03)
    assert report["latency_ms"]["p99"] == pytest.approx(900, rel=0.08)


# --------------------------------------------------------------------------------- determinism, traces


def test_same_seed_same_numbers_and_another_seed_differs(voice):
    first = simulate(voice, rate_rps=45, duration_s=30, seed=11)
    assert json.dumps(first, sort_keys=True) == json.dumps(simulate(copy.deepcopy(voice), rate_rps=45,
                                                                    duration_s=30, seed=11), sort_keys=True)
    assert simulate(voice, rate_rps=45, duration_s=30, seed=12)["latency_ms"] != first["latency_ms"]


def load_trace_text(text: str, suffix: str = ".csv"):
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=suffix, delete=False) as handle:
        handle.write(text)
    return load_trace(handle.name)


def test_trace_drives_arrivals_and_token_lengths(voice, tmp_path):
    rng = np.random.default_rng(0)
    arrivals = np.cumsum(rng.exponential(1 / 30, 600))
    short = tmp_path / "short.csv"
    short.write_text("arrival_s,input_tokens,output_tokens\n" +
                     "".join(f"{a:.6f},512,16\n" for a in arrivals))
    long = tmp_path / "long.jsonl"
    long.write_text("".join(json.dumps({"arrival_s": round(a, 6), "input_tokens": 2048, "output_tokens": 96}) + "\n"
                            for a in arrivals))
    short_report = simulate(voice, trace=load_trace(short), seed=0)
    long_report = simulate(voice, trace=load_trace(long), seed=0)
    assert short_report["arrivals"] == "trace" and short_report["requests"] == 600
    assert short_report["rate_rps"] == pytest.approx(30, rel=0.1)
    # 96 output tokens take about 6x as long to decode as 16; 4x the prompt costs 4x the prefill items
    assert long_report["latency_ms"]["p50"] > 3 * short_report["latency_ms"]["p50"]
    prefill = {r["id"]: r for r in long_report["stages"]}["llm.prefill"]
    assert prefill["utilisation"] > 2 * {r["id"]: r for r in short_report["stages"]}["llm.prefill"]["utilisation"]


def test_bad_trace_lines_are_reported_with_their_line(tmp_path):
    cases = {
        "arrival_s,output_tokens\n0.1,5\n0.05,5\n": ":3:1: error: arrival_s 0.05 is earlier",
        "arrival_s,output_tokens\n0.1,five\n": ":2:1: error: output_tokens: expected a whole number",
        "arrival_s,colour\n0.1,red\n": "unknown trace field 'colour'",
        "arrival_s\n0.1,2\n": ":2:1: error: expected 1 comma-separated values",
    }
    for index, (text, expected) in enumerate(cases.items()):
        path = tmp_path / f"t{index}.csv"
        path.write_text(text)
        with pytest.raises(HetcError, match=expected.replace("(", r"\(")):
            load_trace(path)
    bad_json = tmp_path / "t.jsonl"
    bad_json.write_text('{"arrival_s": 1}\n{"arrival_s": \n')
    with pytest.raises(HetcError, match=":2:"):
        load_trace(bad_json)


# --------------------------------------------------------------------------------- sweep and CLI


def test_sweep_finds_a_capacity_near_the_analytic_prediction(voice):
    sweep = sweep_rate(voice, duration_s=40, seed=1, relative_tolerance=0.05)
    assert voice["traffic"]["requests_per_s"] < sweep["capacity_rps"] < sweep["first_failing_rps"]
    assert sweep["analytic_stage"] == "llm.decode"
    assert 0.75 < sweep["ratio_to_analytic"] <= 1.05
    assert any(not run["meets_sla"] for run in sweep["runs"]) and any(run["meets_sla"] for run in sweep["runs"])


def test_simulate_command_json_and_errors(tmp_path):
    from hetc.cli.deploy import simulate_command

    runner = CliRunner()
    result = runner.invoke(simulate_command, [str(DATA / "voice_agent.json"), "--rate", "80", "--duration", "20",
                                              "--seed", "4", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)["simulation"]
    assert report["meets_sla"] is False and report["bottleneck"]["stage"] == "llm.decode"
    text = runner.invoke(simulate_command, [str(DATA / "voice_agent.json"), "--duration", "10", "--quiet"])
    assert text.exit_code == 0 and "bottleneck" in text.output and "meets" in text.output
    bad = runner.invoke(simulate_command, [str(DATA / "voice_agent.json"), "--rate", "-1"])
    assert bad.exit_code == 2 and "rate must be a positive finite number" in bad.output


LOOP_WITH_SIDE_EXITS = """\
hetc: 1
name: side-exits
traffic: {requests_per_s: 2}
models:
  chat: {preset: llama-3-8b, precision: bf16}
hardware:
  pool: [intel-xeon-8480, nvidia-h100-sxm]
nodes:
  q: {kind: input, produces: text, tokens: 64}
  prep: {kind: compute, cpu_ms: 2}
  head: {kind: tool, latency_ms: 20}
  mid: {kind: tool, latency_ms: 20}
  check: {kind: compute, cpu_ms: 5}
  note: {kind: llm, model: chat, input_tokens: 256, output_tokens: 32}
  side: {kind: compute, cpu_ms: 1}
  answer: {kind: output}
edges:
  - q -> prep -> head -> mid -> check
  - prep -> mid: {probability: 0.5}
  - head -> check
  - check -> head: {probability: 0.25, max_iterations: 2}
  - head -> note -> answer
  - mid -> side -> answer
  - check -> answer
"""


ALWAYS_ENTERED = "- q -> prep -> head -> mid -> check"


# entered by a branch that may skip the loop (and `mid`) altogether: the skipped back-edge source ends the loop
# before `mid`'s skip reaches `side`, which must still get it
BRANCH_ENTERED = "- q -> prep\n  - prep -> head: {probability: 0.5}\n  - head -> mid -> check"


@pytest.mark.parametrize("entry", [ALWAYS_ENTERED, BRANCH_ENTERED],
                         ids=["always-entered", "entered-by-a-branch"])
def test_loop_results_leave_once_and_joins_inside_loops_see_only_loop_inputs_again(tmp_path, entry):
    """A loop whose back edge leaves `check`: `head` and `mid` feed stages outside the loop (their results
    leave once, when the loop ends: the LLM must not get a second sequence of the same request while the
    first decodes), and `mid` joins an input from outside the loop (later passes bring only the loop's own).
    Every request completes, and each stage runs as often as the plan's flow analysis expects."""
    from hetc.compiler import CompileOptions, compile_spec

    spec = tmp_path / "spec.yaml"
    text = LOOP_WITH_SIDE_EXITS.replace(ALWAYS_ENTERED, entry)
    if entry == BRANCH_ENTERED:
        text = text.replace("prep -> mid: {probability: 0.5}", "prep -> mid: {probability: 0.25}")
    spec.write_text(text)
    plan = compile_spec(str(spec), CompileOptions(codegen=False)).plan
    report = simulate(plan, rate_rps=2.0, duration_s=3000.0, seed=3)
    assert report["completed"] == report["requests"] > 5000
    # also when the loop's header is skipped while the rest of its body runs (entered by a branch)
    expected = {s["id"]: s["invocations"]["expected"] for s in plan["stages"]}
    for stage in report["stages"]:
        assert stage["visits_per_request"] == pytest.approx(expected[stage["id"]], rel=0.05), stage["id"]
    if entry == ALWAYS_ENTERED:
        assert expected["head.lookup"] > 1.2 and expected["note.decode"] == 1.0


# --------------------------------------------------------------------------- SLA checks, drops, CI gate


def test_every_latency_percentile_target_is_checked():
    """Regression: only the highest percentile was checked (a p50 of 5,271 ms against 3,000 ms "met")."""
    plan = tiny_plan([("a", {"type": "fixed", "latency_ms": 100, "latency_p99_ms": 400})],
                     [edge("in", "a"), edge("a", "out")], slo_ms=1000)
    plan["slo"]["latency_percentiles_ms"] = {"p50": 50.0, "p99": 1000.0}
    report = simulate(validate_plan(plan), rate_rps=1.0, duration_s=500, seed=1)
    rows = {row["percentile"]: row for row in report["checks"]}
    assert rows["p99"]["meets"] and not rows["p50"]["meets"]
    assert rows["p50"]["measured_ms"] == report["latency_ms"]["p50"] > 50
    assert report["meets_sla"] is False
    plan["slo"]["latency_percentiles_ms"] = {"p50": 150.0, "p99": 1000.0}
    assert simulate(plan, rate_rps=1.0, duration_s=500, seed=1)["meets_sla"] is True


def test_verdict_follows_the_percentiles_shown():
    """A percentile within its target is a met target (the shown percentile and the fraction agree)."""
    plan = tiny_plan([("a", {"type": "fixed", "latency_ms": 100, "latency_p99_ms": 300})],
                     [edge("in", "a"), edge("a", "out")], slo_ms=250)
    for seed in range(4):
        report = simulate(plan, rate_rps=0.5, duration_s=300, seed=seed)
        row = report["checks"][0]
        assert row["measured_ms"] == report["latency_ms"]["p99"]
        assert row["meets"] == (row["measured_ms"] <= 250) == report["meets_sla"]


def test_requests_cut_off_by_the_event_budget_are_reported_as_dropped(tmp_path):
    plan = tiny_plan([("a", {"type": "fixed", "latency_ms": 10})], [edge("in", "a"), edge("a", "out")], slo_ms=1000)
    report = simulate(plan, rate_rps=10.0, duration_s=100, seed=0, max_events=500)
    dropped = report["dropped"]
    assert dropped["count"] > 0 and report["completed"] + dropped["count"] == report["requests"]
    assert list(dropped["reasons"]) == ["the event budget (500 events) ran out first"]
    assert report["meets_sla"] is False and report["checks"][0]["attainment"] < 1


def test_check_exits_4_when_an_sla_target_is_violated(tmp_path):
    from hetc.cli.deploy import simulate_command

    runner = CliRunner()
    bundle = str(DATA / "voice_agent.json")
    violated = runner.invoke(simulate_command, [bundle, "--rate", "80", "--duration", "20", "--check", "--quiet"])
    assert violated.exit_code == 4 and "SLA violated" in violated.output and "VIOLATES" in violated.output
    assert runner.invoke(simulate_command, [bundle, "--rate", "80", "--duration", "20", "--quiet"]).exit_code == 0
    met = runner.invoke(simulate_command, [bundle, "--duration", "20", "--check", "--json"])
    assert met.exit_code == 0 and json.loads(met.output)["simulation"]["meets_sla"] is True


@pytest.mark.parametrize("args, message", [
    (["--rate", "1e9"], "requests to simulate: at most"),
    (["--rate", "inf"], "rate must be a positive finite number"),
    (["--rate", "nan"], "rate must be a positive finite number"),
    (["--duration", "inf"], "--duration must be a positive finite number"),
    (["--seed", "-1"], "--seed must be a non-negative whole number"),
])
def test_hostile_options_are_refused_with_a_reason(args, message):
    from hetc.cli.deploy import simulate_command

    result = CliRunner().invoke(simulate_command, [str(DATA / "voice_agent.json"), "--quiet", *args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


def test_hostile_plans_are_refused_or_bounded(voice):
    huge_rate = copy.deepcopy(voice)
    huge_rate["traffic"]["requests_per_s"] = 1e12
    with pytest.raises(HetcError, match="requests to simulate"):
        simulate(huge_rate, duration_s=60)
    long_decode = copy.deepcopy(voice)
    decode = next(s for s in long_decode["stages"] if s["kind"] == "decode")
    decode["service"]["output_tokens"] = 10**9
    with pytest.raises(HetcError, match="events .* per request"):
        simulate(long_decode, duration_s=60)
    many_replicas = copy.deepcopy(voice)  # replicas are created when needed, not all up front
    for stage in many_replicas["stages"]:
        stage["replicas"] = 10**12
    report = simulate(many_replicas, duration_s=5)
    assert report["completed"] == report["requests"] > 0


def test_loop_bounds_above_the_spec_limit_are_refused_in_the_ir(tmp_path, capsys):
    """Regression: `max_iterations >= 1e9` in IR given to `hetc opt` hung in flow.py."""
    from hetc.cli import main

    def run(args):
        try:
            main([str(a) for a in args])
        except SystemExit as exc:
            return exc.code
        return 0

    assert run(["compile", Path(__file__).parent.parent / "examples/voice-agent.yaml", "-o", tmp_path / "b", "-q",
                "--passes", "inline-agents,decompose-llm", "--dump-ir", "decompose-llm"]) == 0
    ir = tmp_path / "b" / "ir" / "02-decompose-llm.mlir"
    text = ir.read_text()
    assert "max_iterations = 3 : i64" in text
    ir.write_text(text.replace("max_iterations = 3 : i64", "max_iterations = 1000000000 : i64"))
    capsys.readouterr()
    assert run(["opt", ir, "-p", "decompose-tools,decompose-nodes,place{solver=heuristic}"]) == 2
    # agent.loop's verifier refuses it, with the op's location, before any pass loops over it
    assert "agent.loop @llm.loop: max_iterations = 1000000000 is above 10000" in capsys.readouterr().err


def test_the_terminal_shows_the_busiest_stages_of_a_large_plan_and_json_all(tmp_path):
    """A plan of thousands of stages printed a row each (three quarters of `hetc simulate` on 10,000 nodes):
    the table holds the SHOWN_STAGES busiest, in plan order; --json keeps every stage."""
    from hetc.bundle.summary import SHOWN_STAGES
    from hetc.cli.deploy import simulate_command

    n = SHOWN_STAGES + 20
    ids = [f"s{i:02d}" for i in range(n)]  # s03 is ten times slower than the rest: the busiest
    stages = [(sid, {"type": "fixed", "latency_ms": 50.0 if sid == "s03" else 5.0}) for sid in ids]
    edges = [edge("in", ids[0])] + [edge(a, b) for a, b in itertools.pairwise(ids)] + [edge(ids[-1], "out")]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(tiny_plan(stages, edges)))
    result = CliRunner().invoke(simulate_command, [str(path), "--duration", "20", "--quiet"])
    assert result.exit_code == 0, result.output
    shown = [sid for sid in ids if f"│ {sid} " in result.output]
    assert len(shown) == SHOWN_STAGES and "s03" in shown and shown == sorted(shown)
    assert f"the {SHOWN_STAGES} busiest of {n:,} stages" in result.output
    every = json.loads(CliRunner().invoke(simulate_command, [str(path), "--duration", "20", "--json"]).output)
    assert len(every["simulation"]["stages"]) == n  # the work stages (input and output are not queues)

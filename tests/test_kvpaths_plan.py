"""Plans by KV path (issue 19, parts 2-4): forbidden device pairs in both solvers, the P::D edge priced by its
pair's path in a compiled plan, --kv-paths levels in compile and sweep, and the export configured by the path."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import pytest
from test_compile import run

from hetc.bundle.schema import load_plan
from hetc.compiler import CompileOptions, compile_spec
from hetc.errors import HetcError
from hetc.hwdb.loader import load_hwdb
from hetc.model.kvpaths import load_kv_paths
from hetc.placement import Candidate, DeviceClass, Edge, OpNode, PlacementProblem, solve

DB = load_hwdb()
ROOT = Path(__file__).resolve().parent.parent
PLANS = Path(__file__).parent / "data" / "plans"


# ------------------------------------------------------------------------------------ forbidden pairs

def _two_phase_problem(forbidden: dict) -> PlacementProblem:
    """Prefill cheapest on A, decode cheapest on B (per-invocation prices), A->B forbidden when asked."""
    prefill = OpNode("p", [Candidate("A", 10.0, 100.0, usd_per_invocation=1e-6),
                           Candidate("B", 10.0, 100.0, usd_per_invocation=5e-6)], kind="prefill", role="prefill")
    decode = OpNode("d", [Candidate("A", 10.0, 100.0, usd_per_invocation=4e-6),
                          Candidate("B", 10.0, 100.0, usd_per_invocation=1e-6)], kind="decode", role="decode")
    edge = Edge("p", "d", {("A", "B"): (1.0, 0.0), ("B", "A"): (1.0, 0.0)}, forbidden=forbidden)
    return PlacementProblem([prefill, decode], [edge], [DeviceClass("A", 2.0), DeviceClass("B", 2.0)],
                            request_rate_rps=1.0, latency_limit_ms=100.0)


def _brute_force(problem: PlacementProblem) -> tuple[float, tuple[str, str]]:
    forbidden = problem.edges[0].forbidden
    best = None
    for a, b in itertools.product(*(op.candidates for op in problem.ops)):
        if (a.device, b.device) in forbidden:
            continue
        cost = 2.0 * 2 + (a.usd_per_invocation + b.usd_per_invocation) * 3600  # one device-hour per op
        if best is None or cost < best[0]:
            best = (cost, (a.device, b.device))
    return best


@pytest.mark.parametrize("solver", ["exact", "heuristic"])
def test_solvers_never_use_a_forbidden_pair(solver):
    free = solve(_two_phase_problem({}), solver)
    assert [p.candidate.device for p in free.ops] == ["A", "B"]  # the cheap pair when allowed
    problem = _two_phase_problem({("A", "B"): "no released vllm path moves a KV cache from A to B"})
    result = solve(problem, solver)
    assert result.feasible
    devices = tuple(p.candidate.device for p in result.ops)
    assert devices != ("A", "B")
    cost, best = _brute_force(problem)
    assert devices == best and result.tco_usd_per_hour == pytest.approx(cost)


@pytest.mark.parametrize("solver", ["exact", "heuristic"])
def test_only_forbidden_pairs_left_is_infeasible_with_the_reason(solver):
    problem = _two_phase_problem({("A", "B"): "no released vllm path moves a KV cache from A to B"})
    ops = [OpNode(op.id, [c for c in op.candidates if c.device == ("A" if op.id == "p" else "B")], kind=op.kind,
                  role=op.role) for op in problem.ops]
    result = solve(PlacementProblem(ops, problem.edges, problem.devices, 1.0, 100.0), solver)
    assert not result.feasible
    assert any("no released vllm path moves a KV cache from A to B" in r for r in result.reasons)


def test_heuristic_repairs_a_forbidden_start():
    """The heuristic's cheapest start is the forbidden pair; it must move off it, not return it."""
    from hetc.placement.evaluate import _Model
    from hetc.placement.heuristic import _cheapest_choice

    problem = _two_phase_problem({("A", "B"): "why"})
    m = _Model(problem)
    start = _cheapest_choice(m)
    assert [m.cands[v][k].device for v, k in enumerate(start)] == ["A", "B"]
    assert tuple(p.candidate.device for p in solve(problem, "heuristic").ops) != ("A", "B")


# ---------------------------------------------------------------------------------- compiled plans

POOL_SPEC = """\
hetc: 1
name: kv-pair
slo: {{latency_ms: {{p99: 30000}}, ttft_ms: {ttft}, tbt_ms: 40}}
traffic: {{requests_per_s: 20}}
hardware: {{pool: [{pool}], pricing: ownership}}
models:
  chat: {{preset: llama-3-70b, precision: fp8}}
nodes:
  q: {{kind: input, produces: text}}
  llm: {{kind: llm, model: chat, input_tokens: 2048, output_tokens: 256}}
  a: {{kind: output}}
edges:
  - q -> llm -> a
"""


def _spec(tmp_path, pool: str, ttft: int = 1000, inventory: str = "") -> str:
    path = tmp_path / f"spec-{pool.replace(', ', '-')}.yaml"
    text = POOL_SPEC.format(pool=pool, ttft=ttft)
    if inventory:
        text = text.replace("pricing: ownership}", f"pricing: ownership, inventory: {{{inventory}}}}}")
    path.write_text(text)
    return str(path)


def _run(args, capsys) -> tuple[int, str]:
    code, out, err = run(args, capsys)
    return code, out + err


# Gaudi 3 prefill with B200 decode is this pool's cheapest plan when the Gaudi 3s are already paid for (sunk):
# the host-staged pair then does not hinge on how close the cost model puts the two devices' prefill costs.
GAUDI_B200 = ("intel-gaudi3, nvidia-b200", "intel-gaudi3: {count: 8, sunk: true}")


def _compile(spec: str, level: str):
    return compile_spec(spec, CompileOptions(kv_paths=level, codegen=False))


def _kv_bytes() -> float:
    # Llama 3 70B, FP8 KV cache, 2,048 tokens: 2 (K, V) * 80 layers * 8 KV heads * 128 dims * 1 byte * 2,048
    return 2 * 80 * 8 * 128 * 1 * 2048


def _stage(plan: dict, kind: str) -> dict:
    return next(s for s in plan["stages"] if s["kind"] == kind)


def _kv_edge_ms(plan: dict) -> float:
    return next(e["predicted_ms"] for e in plan["edges"] if e["src"] == "llm.prefill" and e["dst"] == "llm.decode"
                or e["src"] == "llm.prefill" and e["dst"].startswith("llm.kv"))


def test_gpu_direct_edge_priced_by_hand_in_a_compiled_plan(tmp_path):
    # eight H100s already paid for (sunk): the prefill uses them, the decode is cheaper on one B200
    spec = _spec(tmp_path, "nvidia-h100-sxm, nvidia-b200", inventory="nvidia-h100-sxm: {count: 8, sunk: true}")
    plan = _compile(spec, "released").plan
    prefill, decode = _stage(plan, "prefill"), _stage(plan, "decode")
    assert (prefill["device"], decode["device"]) == ("nvidia-h100-sxm", "nvidia-b200"), plan["pd"]
    h100, b200 = DB.devices[prefill["device"]], DB.devices[decode["device"]]
    expected_ms = (_kv_bytes() / (min(h100.scaleout_gbs, b200.scaleout_gbs) * 1e9)
                   + max(h100.scaleout_latency_us, b200.scaleout_latency_us) * 1e-6) * 1e3
    kv = next(s for s in plan["stages"] if s["kind"] == "kv_transfer")
    assert kv["predicted"]["latency_ms"] == pytest.approx(expected_ms, rel=1e-9)
    assert decode["kv_path"]["id"] == "vllm-nixl-cuda" and decode["kv_path"]["transport"] == "gpu_direct_rdma"
    assert plan["provenance"]["kv_paths"] == {"level": "released", "table": "default"}


def test_host_staged_edge_priced_by_hand_in_a_compiled_plan(tmp_path):
    plan = _compile(_spec(tmp_path, GAUDI_B200[0], inventory=GAUDI_B200[1]), "experimental").plan
    prefill, decode = _stage(plan, "prefill"), _stage(plan, "decode")
    assert (prefill["device"], decode["device"]) == ("intel-gaudi3", "nvidia-b200"), plan["pd"]
    gaudi3, b200 = DB.devices["intel-gaudi3"], DB.devices["nvidia-b200"]
    size = _kv_bytes()
    network = size / (min(gaudi3.scaleout_gbs, b200.scaleout_gbs) * 1e9) + \
        max(gaudi3.scaleout_latency_us, b200.scaleout_latency_us) * 1e-6
    d2h = size / (gaudi3.host_link_gbs * 1e9)  # the Gaudi end copies into pinned host memory...
    permute = 2 * size / (gaudi3.mem_bw_gbs * gaudi3.eff_bw * 1e9)  # ...after an NHD -> HND permute
    kv = next(s for s in plan["stages"] if s["kind"] == "kv_transfer")
    assert kv["predicted"]["latency_ms"] == pytest.approx((network + d2h + permute) * 1e3, rel=1e-9)
    assert decode["kv_path"]["id"] == "vllm-gaudi-hetero-to-cuda" and decode["kv_path"]["status"] == "experimental"
    # TTFT counts the same per-path move
    assert prefill["predicted"]["ttft_ms"] == pytest.approx(
        prefill["predicted"]["latency_ms"] + kv["predicted"]["latency_ms"] + decode["predicted"]["tbt_ms"])


def test_the_level_changes_the_plan_and_released_says_why(tmp_path):
    """Gaudi3 -> B200 is the cheap pair of this pool; at released it has no path, so the plan differs."""
    spec = _spec(tmp_path, GAUDI_B200[0], inventory=GAUDI_B200[1])
    experimental = _compile(spec, "experimental").plan
    assert experimental["pd"] == "intel-gaudi3::nvidia-b200"
    released = _compile(spec, "released").plan
    assert released["pd"] != "intel-gaudi3::nvidia-b200"
    assert released["tco"]["usd_per_hour"] > experimental["tco"]["usd_per_hour"]
    assert released["provenance"]["kv_paths"]["level"] == "released"


def test_no_path_at_the_level_is_infeasible_with_the_reason(tmp_path, capsys):
    """A pair whose only path is a proof of concept: planning it at released fails and names the path."""
    from hetc.study.sweep import SweepOptions, run_pairs

    spec = _spec(tmp_path, "intel-gaudi3, amd-mi300x, nvidia-h100-sxm")
    rows = run_pairs(spec, "gaudi3,mi300x", "h100::h100", [], SweepOptions(kv_paths="released"),
                     with_report_plan=False).rows
    row = next(r for r in rows if r["pair"] == "intel-gaudi3::amd-mi300x")
    assert row["status"] == "infeasible" and row["kv_path_status"] == "proof of concept"
    assert "no released vllm path moves a KV cache from intel-gaudi3 to amd-mi300x; proof of concept: " \
        "host-dram-proof-of-concept" in row["reason"]
    anyrow = next(r for r in run_pairs(spec, "gaudi3,mi300x", "h100::h100", [], SweepOptions(kv_paths="any"),
                                       with_report_plan=False).rows if r["pair"] == row["pair"])
    assert anyrow["status"] == "ok" and anyrow["kv_level_needed"] == "any"
    code, out = _run(["sweep", spec, "--pairs", "gaudi3,mi300x", "--baseline", "h100::h100", "--json", "-q"],
                     capsys)
    assert code == 0
    cli_row = next(r for r in json.loads(out)["rows"] if r["pair"] == row["pair"])
    assert cli_row["status"] == "infeasible" and cli_row["kv_level"] == "released"


# ------------------------------------------------------------------------------------------- export

def test_every_exported_pd_pair_carries_the_connector_its_path_needs():
    from hetc.bundle.kubernetes import kubernetes_manifests
    from hetc.bundle.vllm import disaggregated, pd_phases

    table = {p.id: p for p in load_kv_paths().paths}
    for path in sorted(PLANS.glob("*.json")):
        plan = load_plan(path)
        docs = [d for ds in kubernetes_manifests(plan).values() for d in ds if d["kind"] == "Deployment"]
        for prefill, decode in pd_phases(plan).values():
            if not disaggregated(prefill, decode):
                continue
            entry = table[decode["kv_path"]["id"]]
            servers = [c for c in (c for d in docs for c in d["spec"]["template"]["spec"]["containers"])
                       if "--kv-transfer-config" in c["args"]]
            assert len(servers) == 2, path.name
            for container in servers:
                config = json.loads(container["args"][container["args"].index("--kv-transfer-config") + 1])
                assert config == entry.kv_transfer_config, path.name
                env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
                assert {k: env.get(k) for k in entry.env} == entry.env, path.name


def test_gaudi_to_cuda_export_sets_the_vendor_settings():
    from hetc.bundle.kubernetes import kubernetes_manifests
    from hetc.model.kvpaths import path_record

    plan = copy.deepcopy(load_plan(PLANS / "rag_router.json"))
    entry = next(p for p in load_kv_paths().paths if p.id == "vllm-gaudi-hetero-to-cuda")
    decode = next(s for s in plan["stages"] if s["id"] == "llm.decode")
    decode.update(device="nvidia-b200", vendor="nvidia", device_kind="gpu", target="cuda", engine="vllm")
    decode["kv_path"] = {**path_record(entry), "prefill_device": "intel-gaudi3"}
    servers = [c for ds in kubernetes_manifests(plan).values() for d in ds if d["kind"] == "Deployment"
               for c in d["spec"]["template"]["spec"]["containers"] if "--kv-transfer-config" in c["args"]]
    assert len(servers) == 2
    for container in servers:
        config = json.loads(container["args"][container["args"].index("--kv-transfer-config") + 1])
        assert config == {"kv_connector": "NixlConnector", "kv_role": "kv_both", "kv_buffer_device": "cpu",
                          "kv_connector_extra_config": {"enable_permute_local_kv": True}}
        assert {"name": "VLLM_HPU_HETERO_KV_LAYOUT", "value": "true"} in container["env"]


def test_export_refuses_a_pair_without_a_path(tmp_path, capsys):
    from hetc.bundle.kubernetes import kubernetes_manifests

    plan = copy.deepcopy(load_plan(PLANS / "rag_router.json"))
    del next(s for s in plan["stages"] if s["id"] == "llm.decode")["kv_path"]
    with pytest.raises(HetcError, match="no KV path .* from intel-gaudi3 to amd-mi300x"):
        kubernetes_manifests(plan)
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    code, out = _run(["deploy", tmp_path / "plan.json", "--target", "kubernetes", "-o", tmp_path / "k8s"], capsys)
    assert code == 2 and "no KV path" in out and "Traceback" not in out


@pytest.mark.parametrize("level", ["released", "experimental"])
def test_ttft_counts_the_move_by_the_prefill_devices_path(tmp_path, level):
    """TTFT of a Gaudi 3 prefill adds the staged move to B200 only where that path exists at the level."""
    from hetc.dialects import task as T
    from hetc.model.kvpaths import transfer_cost
    from hetc.placement import candidates as C
    from hetc.placement.problem import ttft_overhead_ms

    module = _compile(_spec(tmp_path, "intel-gaudi3, nvidia-b200"), level).module
    prefill = next(op for op in module.walk() if isinstance(op, T.PrefillOp))
    gaudi3, b200 = DB.devices["intel-gaudi3"], DB.devices["nvidia-b200"]
    overhead = ttft_overhead_ms(module, prefill, [gaudi3, b200], C.Limits(None, 40.0), gaudi3)
    path = load_kv_paths().lookup(gaudi3, b200, level=level)
    move_ms = transfer_cost(path, _kv_bytes(), gaudi3, b200).seconds * 1e3 if path else 0.0
    assert (path is None) == (level == "released")
    assert overhead == pytest.approx(40.0 + move_ms)
    # B200 -> Gaudi 3 has no path below `any`: a B200 prefill counts only the first decode step
    assert ttft_overhead_ms(module, prefill, [gaudi3, b200], C.Limits(None, 40.0), b200) == pytest.approx(40.0)


def test_an_overlay_makes_a_pair_plannable_at_released(tmp_path):
    """--kv-paths-extra: a user who has validated Gaudi -> CUDA staging marks it released for their compiles."""
    overlay = tmp_path / "validated.yaml"
    entry = (ROOT / "hetc" / "data" / "kv-paths.yaml").read_text().split("  - id: vllm-gaudi-hetero-to-cuda")[1]
    entry = entry.split("\n  - id:")[0].replace("status: experimental", "status: released")
    overlay.write_text("version: 1\npaths:\n  - id: vllm-gaudi-hetero-to-cuda" + entry)
    spec = _spec(tmp_path, GAUDI_B200[0], inventory=GAUDI_B200[1])
    plan = compile_spec(spec, CompileOptions(kv_paths="released", kv_paths_extra=(str(overlay),), codegen=False)).plan
    assert plan["pd"] == "intel-gaudi3::nvidia-b200"
    assert plan["provenance"]["kv_paths"] == {"level": "released", "table": "default+validated"}
    assert _stage(plan, "decode")["kv_path"]["status"] == "released"


def test_an_edge_inside_a_loop_predicts_one_transfer():
    """The voice agent's decode -> search edge runs up to 3 times a request: placement prices the path with
    all 3 transfers, the plan's edge (what the simulator delays each token by) holds one."""
    result = compile_spec(str(ROOT / "examples" / "voice-agent.yaml"), CompileOptions(codegen=False))
    key = ("llm.decode", "search.lookup")
    edge = next(e for e in result.plan["edges"] if (e["src"], e["dst"]) == key)
    priced = next(e for e in result.placement["edges"] if (e["src"], e["dst"]) == key)
    worst = next(s["invocations"]["worst"] for s in result.plan["stages"] if s["id"] == key[1])
    assert worst == 3.0 and priced["path_ms"] > 0
    assert edge["predicted_ms"] == pytest.approx(priced["path_ms"] / worst, rel=1e-12)

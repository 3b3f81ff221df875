"""KV-link capacity: a P::D split between device classes is sized by the KV moves per second its links carry,
and the plan's KV-transfer stage gives the simulator those same links (docs/cost-model.md, "KV-link capacity")."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from hetc.bundle.schema import load_plan
from hetc.compiler import CompileOptions, compile_spec, write
from hetc.errors import HetcError
from hetc.hwdb.loader import load_hwdb
from hetc.model.kvpaths import (
    _parse,
    kv_link,
    links_per_replica,
    load_kv_paths,
    moves_per_s,
    transfer_cost,
    transfer_service,
)
from hetc.model.models import resolve_preset
from hetc.placement import candidates as C
from hetc.study.simulate import simulate

DB = load_hwdb()
TABLE = load_kv_paths()
SPEC = Path(__file__).parent / "data" / "kv-links" / "long-doc.yaml"
KV_BYTES = 335_544_320.0  # Llama 3 70B, FP8 KV cache, 2,048 tokens (tests/test_kvpaths.py)


def simulated_move_s(service: dict) -> float:
    """One move as the simulator times a transfer stage (docs/plan.md: the link shared by `concurrency`)."""
    return service["latency_ms"] / 1e3 + service["bytes"] * service["concurrency"] / (service["bandwidth_gbs"] * 1e9)


@pytest.mark.parametrize("src, dst", [("nvidia-h100-sxm", "nvidia-b200"), ("intel-gaudi3", "intel-gaudi3"),
                                      ("intel-gaudi3", "nvidia-b200")])
def test_planner_and_simulator_figures_come_from_one_link(src, dst):
    a, b = DB.devices[src], DB.devices[dst]
    path = TABLE.lookup(a, b, "vllm", "any")
    links = links_per_replica(path, 4)
    service = transfer_service(path, KV_BYTES, a, b, links)
    move_s = transfer_cost(path, KV_BYTES, a, b).seconds
    assert simulated_move_s(service) == pytest.approx(move_s, rel=1e-9)
    assert service["concurrency"] == links
    assert moves_per_s(path, KV_BYTES, a, b, links) == pytest.approx(links / move_s, rel=1e-9)
    assert kv_link(path, a, b).gbs * 1e9 == pytest.approx(KV_BYTES / (move_s - kv_link(path, a, b).latency_s))


def test_parallel_links_come_from_the_table():
    h100, b200 = DB.devices["nvidia-h100-sxm"], DB.devices["nvidia-b200"]
    assert links_per_replica(TABLE.lookup(h100, b200, "vllm"), 4) == 4  # NIXL: every TP rank on its own NIC
    assert links_per_replica(TABLE.lookup(h100, b200, "trtllm"), 4) == 1  # unsourced: one link per replica
    entry = ("version: 1\npaths:\n  - {id: x, prefill: any, decode: any, engine: vllm, connector: c, transport: tcp,"
             " staging: none, layout_transform: none, status: released, engine_version: v, constraints: [],"
             " kv_transfer_config: {}, env: {}, sources: [{url: u, date: d}]%s}\n")
    assert _parse(entry % "", "t.yaml")[0].parallel_links == "per_replica"
    with pytest.raises(HetcError, match="parallel_links: expected one of per_rank, per_replica"):
        _parse(entry % ", parallel_links: all", "t.yaml")


@pytest.fixture(scope="module")
def long_doc(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("kv-links") / "bundle"
    write(compile_spec(str(SPEC), CompileOptions(codegen=False)), out)
    return load_plan(out)


def test_links_short_of_the_kv_throughput_get_more_replicas_and_are_priced(long_doc):
    stages = {s["id"]: s for s in long_doc["stages"]}
    prefill, kv, decode = stages["llm.prefill"], stages["llm.kv"], stages["llm.decode"]
    assert prefill["device"] != decode["device"]  # the cheapest plan splits P::D across classes
    src, dst = DB.devices[prefill["device"]], DB.devices[decode["device"]]
    path = TABLE.lookup(src, dst, "vllm")
    need_rps = long_doc["traffic"]["planned_requests_per_s"] * decode["invocations"]["expected"]
    links = links_per_replica(path, decode["devices_per_replica"])
    link_rps = moves_per_s(path, kv["service"]["bytes"], src, dst, links)
    # the decode's compute alone would need fewer replicas than its links do
    info = C.ModelInfo(resolve_preset("meta-llama/Llama-3.1-70B-Instruct"), "fp8", "fp8")
    compute = next(c for c in C.decode_candidates(info, [dst], 16384, 16, C.Limits(None, None))
                   if c.tp == decode["tp"] and c.batch == decode["batch"])
    compute_replicas = math.ceil(need_rps / compute.throughput_rps)
    link_replicas = math.ceil(need_rps / (link_rps * C.TARGET_UTILISATION))
    assert link_replicas > compute_replicas
    assert decode["replicas"] == link_replicas  # capacity added: whole replicas, with their NICs
    assert decode["tco"]["devices"] == decode["replicas"] * decode["devices_per_replica"]  # and priced
    assert decode["tco"]["usd_per_hour"] > 0
    # the KV stage gives the simulator exactly the links the placement counted
    assert kv["replicas"] == decode["replicas"] and kv["service"]["concurrency"] == links
    assert simulated_move_s(kv["service"]) == pytest.approx(links / link_rps, rel=1e-9)
    assert kv["predicted"]["utilisation"] <= C.TARGET_UTILISATION + 1e-9


def test_simulated_kv_queue_stays_bounded(long_doc):
    kv = next(s for s in long_doc["stages"] if s["id"] == "llm.kv")
    report = simulate(long_doc, duration_s=20.0, seed=1)
    assert report["meets_sla"], report["checks"]
    row = next(r for r in report["stages"] if r["id"] == "llm.kv")
    move_ms = simulated_move_s(kv["service"]) * 1e3
    assert row["utilisation"] <= C.TARGET_UTILISATION + 0.05  # what the plan sized, within Poisson noise
    assert row["mean_wait_ms"] < move_ms  # queueing bounded: a wait shorter than one move on average
    assert row["max_queue"] < 2 * kv["replicas"] * kv["service"]["concurrency"]

"""The KV-path table (hetc/data/kv-paths.yaml): schema and sources, lookups per level, and the priced transfer
checked against hand computations for a GPU-direct and a host-staged pair."""

from __future__ import annotations

import re

import pytest

from hetc.errors import HetcError
from hetc.hwdb.loader import load_hwdb
from hetc.model import costmodel as cm
from hetc.model.kvpaths import LEVELS, STATUSES, load_kv_paths, transfer_cost
from hetc.model.models import PRESETS

DB = load_hwdb()
DEV = dict(DB.devices)
TABLE = load_kv_paths()
L70 = PRESETS["llama-3-70b"]
# Llama 3 70B, FP8 KV cache, 2,048 tokens: 2 (K, V) * 80 layers * 8 KV heads * 128 dims * 1 byte * 2,048
KV_BYTES = 2 * 80 * 8 * 128 * 1 * 2048


def test_kv_bytes_hand_computed():
    assert cm.kv_bytes(L70, "fp8", 2048) == KV_BYTES == 335_544_320


def test_every_entry_is_sourced_and_dated():
    assert TABLE.paths
    for path in TABLE.paths:
        assert path.status in STATUSES
        assert path.sources and all(s["url"].startswith("https://") for s in path.sources), path.id
        assert all(re.match(r"^\d{4}-\d{2}", str(s["date"])) for s in path.sources), path.id


def test_every_accelerator_has_a_sourced_host_link():
    for device in DB.devices.values():
        if device.kind != "cpu":
            assert device.host_link and device.host_link_gbs, device.id
            assert "host_link_gbs" in device.sources, device.id


def test_gpu_direct_pair_priced_by_hand():
    h100, b200 = DEV["nvidia-h100-sxm"], DEV["nvidia-b200"]
    path = TABLE.lookup(h100, b200, level="released")
    assert path is not None and path.id == "vllm-nixl-cuda" and path.transport == "gpu_direct_rdma"
    cost = transfer_cost(path, KV_BYTES, h100, b200)
    # both NICs 50 GB/s (one 400 Gb/s port per GPU), 5 us latency
    expected = KV_BYTES / 50e9 + 5e-6
    assert cost.seconds == pytest.approx(expected, rel=1e-12) == pytest.approx(0.006716, abs=1e-6)
    assert cost.host_bytes == {}
    # the same move as the cost model's NIC transfer (paper section 6)
    assert cost.seconds == pytest.approx(cm.kv_transfer_s(L70, "fp8", 2048, h100, b200, same_chassis=False))


def test_host_staged_pair_priced_by_hand():
    gaudi3 = DEV["intel-gaudi3"]
    path = TABLE.lookup(gaudi3, gaudi3, level="released")
    assert path is not None and path.id == "vllm-gaudi-nixl-host-buffer" and path.staging == "both"
    cost = transfer_cost(path, KV_BYTES, gaudi3, gaudi3)
    network = KV_BYTES / 75e9 + 5e-6  # Gaudi 3 RoCE 75 GB/s per device
    pcie = KV_BYTES / 64e9  # PCIe Gen5 x16, once out of the prefill device and once into the decode device
    permute = 2 * KV_BYTES / (3670e9 * 0.75)  # read + write the KV once at the achievable HBM bandwidth
    assert cost.parts_s == pytest.approx({"network_s": network, "d2h_s": pcie, "h2d_s": pcie,
                                          "permute_prefill_s": permute, "permute_decode_s": permute})
    assert cost.seconds == pytest.approx(network + 2 * pcie + 2 * permute)
    assert cost.host_bytes == {"prefill": 2 * KV_BYTES, "decode": 2 * KV_BYTES}
    # staging costs more than twice the bare network move
    assert cost.seconds > 2 * network


def test_levels_decide_which_pairs_are_feasible():
    gaudi3, b200 = DEV["intel-gaudi3"], DEV["nvidia-b200"]
    assert TABLE.lookup(gaudi3, b200, level="released") is None
    reason = TABLE.why_not(gaudi3, b200, level="released")
    assert reason.startswith("no released vllm path moves a KV cache from intel-gaudi3 to nvidia-b200")
    assert "experimental: vllm-gaudi-hetero-to-cuda" in reason
    assert TABLE.lookup(gaudi3, b200, level="experimental").id == "vllm-gaudi-hetero-to-cuda"
    # the reverse direction has no proposal at all: only the host-DRAM proof of concept
    assert TABLE.lookup(b200, gaudi3, level="experimental") is None
    assert TABLE.lookup(b200, gaudi3, level="any").status == "proof_of_concept"
    mi300x = DEV["amd-mi300x"]
    assert TABLE.lookup(mi300x, mi300x, level="released").id == "vllm-nixl-rocm"
    assert TABLE.lookup(DEV["nvidia-h100-sxm"], mi300x, level="released") is None
    assert set(LEVELS) == {"released", "experimental", "any"}


def test_gaudi_to_gpu_stages_only_on_the_gaudi_side():
    gaudi3, b200 = DEV["intel-gaudi3"], DEV["nvidia-b200"]
    path = TABLE.lookup(gaudi3, b200, level="experimental")
    cost = transfer_cost(path, KV_BYTES, gaudi3, b200)
    assert set(cost.parts_s) == {"network_s", "d2h_s", "permute_prefill_s"}
    assert path.env == {"VLLM_HPU_HETERO_KV_LAYOUT": "true"}
    assert path.kv_transfer_config["kv_connector_extra_config"] == {"enable_permute_local_kv": True}


def test_user_overlay_replaces_an_entry(tmp_path):
    extra = tmp_path / "site.yaml"
    extra.write_text("""version: 1
paths:
  - id: vllm-gaudi-hetero-to-cuda
    prefill: gaudi
    decode: cuda
    engine: vllm
    connector: NixlConnector
    transport: host_staging
    staging: prefill
    layout_transform: permute_nhd_hnd
    status: released
    engine_version: our fork
    constraints: []
    kv_transfer_config: {kv_connector: NixlConnector, kv_role: kv_both}
    env: {}
    sources: [{url: 'https://example.org/our-fork', date: '2026-11-30'}]
""")
    table = load_kv_paths([extra])
    assert table.lookup(DEV["intel-gaudi3"], DEV["nvidia-b200"], level="released").engine_version == "our fork"


@pytest.mark.parametrize("body, message", [
    ("version: 2\npaths: []\n", "version: 1"),
    ("version: 1\npaths:\n  - {id: x}\n", "missing field 'prefill'"),
    ("version: 1\npaths: [\n", "not valid YAML"),
])
def test_bad_overlay_is_a_located_user_error(tmp_path, body, message):
    extra = tmp_path / "bad.yaml"
    extra.write_text(body)
    with pytest.raises(HetcError) as info:
        load_kv_paths([extra])
    assert message in str(info.value) and str(extra) in str(info.value)

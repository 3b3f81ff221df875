"""Hardware database: the shipped files load, ids and aliases resolve, bad input names file:line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hetc.errors import HetcError
from hetc.hwdb.loader import load_hwdb

STABLE_IDS = [
    "nvidia-a40", "nvidia-a100-80gb", "nvidia-h100-sxm", "nvidia-h100-pcie", "nvidia-h200", "nvidia-b200",
    "nvidia-gb200", "nvidia-l4", "nvidia-l40s", "amd-mi300x", "amd-mi325x", "intel-gaudi2", "intel-gaudi3",
    "intel-xeon-8480", "intel-xeon-6980p", "amd-epyc-9654", "amd-epyc-9965",
]


def test_default_database_has_every_stable_id_sorted():
    db = load_hwdb()
    assert list(db.devices) == sorted(STABLE_IDS)
    assert len(db.sha256) == 64


def test_every_number_is_sourced_and_targets_are_consistent():
    db = load_hwdb()
    for dev in db.devices.values():
        assert dev.sources["peak_tflops"]["refs"], dev.id
        assert dev.sources["eff_bw"]["refs"], dev.id
        if dev.vendor == "nvidia":
            assert dev.target == "cuda" and dev.sm in ("sm_80", "sm_86", "sm_89", "sm_90", "sm_100")
        if dev.target == "gaudi":
            assert dev.gaudi_generation in ("gaudi2", "gaudi3")
        if dev.kind == "cpu":
            assert dev.target == "cpu" and dev.max_tp == 1
    h100 = db.get("nvidia-h100-sxm")
    assert h100.peak_tflops["bf16"] == pytest.approx(989.4)  # dense, half of the 1979 sparse figure
    assert h100.scaleup_gbs == 450 and h100.devices_per_chassis == 8 and h100.max_tp == 8
    a40 = db.get("a40")
    assert (a40.peak_tflops["fp16"], a40.mem_gb, a40.mem_bw_gbs, a40.tdp_w) == (149.7, 48, 696, 300)
    assert db.get("gaudi3").peak_tflops["fp8"] == db.get("gaudi3").peak_tflops["bf16"] == 1835
    assert db.get("mi300x").target == "rocm"


@pytest.mark.parametrize("alias,expected", [
    ("h100", "nvidia-h100-sxm"), ("H100", "nvidia-h100-sxm"), ("b200", "nvidia-b200"),
    ("gaudi3", "intel-gaudi3"), ("mi300x", "amd-mi300x"), ("a100", "nvidia-a100-80gb"),
    ("xeon-8480+", "intel-xeon-8480"), ("nvidia-l4", "nvidia-l4"), ("tpu-v5e", None),
])
def test_alias_resolution(alias, expected):
    assert load_hwdb().resolve(alias) == expected


def test_unknown_device_is_a_user_error():
    with pytest.raises(HetcError, match="unknown device 'h900'"):
        load_hwdb().get("h900")


def test_paper_database_is_table_5():
    db = load_hwdb("paper-2025")
    rows = {  # price, memory GB, GB/s, FP16 TFLOPS, operating cost $/h
        "nvidia-a40": (3000, 48, 696, 75, 0.15), "nvidia-a100-80gb": (8000, 80, 2039, 322, 0.25),
        "intel-gaudi3": (12500, 128, 3700, 1678, 0.49), "amd-mi300x": (20000, 192, 5300, 1307, 0.52),
        "nvidia-h100-sxm": (25000, 80, 3350, 1979, 0.60), "nvidia-b200": (40000, 192, 8000, 2250, 0.83),
    }
    for dev_id, (price, mem, bw, fp16, opex) in rows.items():
        dev = db.get(dev_id)
        assert (dev.capex_usd, dev.mem_gb, dev.mem_bw_gbs, dev.peak_tflops["fp16"], dev.opex_usd_per_hour) == (
            price, mem, bw, fp16, opex)
        assert dev.peak_tflops["fp8"] is None  # the paper gives no FP8 column
    assert set(db.devices) == set(rows) | {"intel-xeon-8480"}
    assert "Not from the paper" in db.get("intel-xeon-8480").notes
    assert db.tco_defaults["years"] == 4 and db.tco_defaults["rate"] == 0.08
    assert db.tco_defaults["electricity_usd_per_kwh"] == 0.40
    assert db.sha256 != load_hwdb().sha256


def _write(tmp_path: Path, text: str, name: str = "extra.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_extra_file_overrides_fields_and_adds_devices(tmp_path):
    extra = _write(tmp_path, """\
        devices:
          - id: nvidia-h100-sxm
            capex_usd: 20000
            sources: {capex_usd: {basis: user, refs: ["our purchase order 2025-03"]}}
          - id: acme-x1
            inherits: nvidia-h100-sxm
            aliases: [x1]
            mem_gb: 96
            sources: {mem_gb: {basis: user, refs: ["acme datasheet"]}}
        """)
    db = load_hwdb("default", extra=[extra])
    assert db.get("h100").capex_usd == 20000
    assert db.get("x1").id == "acme-x1" and db.get("x1").mem_gb == 96
    assert db.get("x1").mem_bw_gbs == 3350
    assert db.sha256 != load_hwdb().sha256


@pytest.mark.parametrize("body,line,message", [
    ("mem_bw_gbs: -3\n", 3, "field 'mem_bw_gbs': must be > 0"),
    ("mem_bw_gbs: '3.35 TW'\n", 3, "field 'mem_bw_gbs': bad unit 'TW'"),
    ("tdp_w: 7000000\n", 3, "field 'tdp_w': 7000000 is implausibly large"),
    ("peak_tflops: {fp16: 10, fp6: 3}\n", 3, "field 'peak_tflops.fp6': unknown precision"),
    ("colour: green\n", 3, "field 'colour': unknown field"),
    ("eff_bw: 1.5\n", 3, "field 'eff_bw': 1.5 is implausibly large"),
    ("devices_per_chassis: 2.5\n", 3, "field 'devices_per_chassis': expected a whole number"),
    ("capex_usd: 5\n", 0, "field 'capex_usd': has no source"),
])
def test_bad_fields_name_file_line_and_field(tmp_path, body, line, message):
    extra = _write(tmp_path, "id: nvidia-h100-sxm\nsources: {tdp_w: {basis: user, refs: [x]}, mem_bw_gbs: {basis: user, refs: [x]}, eff_bw: {basis: user, refs: [x]}}\n" + body)
    with pytest.raises(HetcError) as info:
        load_hwdb("default", extra=[extra])
    text = str(info.value)
    assert message in text
    if line:
        assert f"extra.yaml:{line}:" in text


def test_units_are_converted(tmp_path):
    extra = _write(tmp_path, """\
        id: nvidia-h100-sxm
        mem_bw_gbs: 3.35 TB/s
        scaleout_gbs: 400 Gb/s
        sources: {mem_bw_gbs: {basis: user, refs: [x]}, scaleout_gbs: {basis: user, refs: [x]}}
        """)
    dev = load_hwdb("default", extra=[extra]).get("h100")
    assert dev.mem_bw_gbs == pytest.approx(3350) and dev.scaleout_gbs == pytest.approx(50)


def test_missing_source_and_bad_yaml(tmp_path):
    bad = _write(tmp_path, "id: acme-y\nkind: gpu\n  broken: [\n", "bad.yaml")
    with pytest.raises(HetcError, match=r"bad.yaml:\d+:\d+: error: invalid YAML"):
        load_hwdb("default", extra=[bad])
    new = _write(tmp_path, """\
        id: acme-z
        vendor: acme
        kind: accelerator
        target: cpu
        peak_tflops: {bf16: 100}
        eff_compute: {bf16: 0.5}
        mem_gb: 64
        mem_bw_gbs: 1000
        scaleout_gbs: 50
        scaleout_latency_us: 5
        devices_per_chassis: 4
        tdp_w: 300
        eff_bw: 0.8
        sources: {peak_tflops: {basis: vendor, refs: [acme.pdf]}}
        """, "new.yaml")
    with pytest.raises(HetcError) as info:
        load_hwdb("default", extra=[new])
    text = str(info.value)
    assert "new.yaml:7:" in text and "field 'mem_gb': has no source" in text
    assert "field 'tdp_w': has no source" in text


def test_alias_clash_and_unknown_database(tmp_path):
    clash = _write(tmp_path, "id: nvidia-b200\naliases: [h100]\n")
    with pytest.raises(HetcError, match="'h100' is claimed by both 'nvidia-b200' and 'nvidia-h100-sxm'"):
        load_hwdb("default", extra=[clash])
    with pytest.raises(HetcError, match="unknown hardware database 'paper-1999'"):
        load_hwdb("paper-1999")

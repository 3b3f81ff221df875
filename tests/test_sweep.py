"""hetc sweep: override parsing and application, the override sweep (parallel = serial), the P::D pair
study against independent solves, the written table/report, and the issue's done-when command with its time."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hetc.errors import HetcError
from hetc.study.overrides import Over, apply_overrides, combinations, parse_over
from hetc.study.sweep import SweepOptions, _load, compile_loaded, run_pairs, run_sweep, table_csv

ROOT = Path(__file__).resolve().parents[1]
VOICE = str(ROOT / "examples" / "voice-agent.yaml")
PAIRS = "nvidia-h100-sxm,nvidia-b200,intel-gaudi3,amd-mi300x"


def _hetc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hetc.cli", *args], check=False, capture_output=True, text=True, timeout=300,
                          cwd=ROOT)


@pytest.fixture(scope="module")
def loaded():
    return _load(VOICE, SweepOptions())


@pytest.mark.parametrize("text, message", [
    ("precision", "expected KEY=V1,V2"),
    ("colour=red", "unknown --over key 'colour'"),
    ("ttft_ms=100,", "empty value"),
    ("ttft_ms=100,100", "repeated"),
    ("ttft_ms.llm=100", "takes no '.NAME' suffix"),
])
def test_parse_over_rejects_malformed(text, message):
    with pytest.raises(HetcError) as err:
        parse_over(text)
    assert message in str(err.value) and "--over" in str(err.value)


def test_combinations_first_over_varies_slowest():
    combos = combinations([parse_over("precision=fp8,bf16"), parse_over("tokens=512:4096,4096:512")])
    assert combos == [{"precision": "fp8", "tokens": "512:4096"}, {"precision": "fp8", "tokens": "4096:512"},
                      {"precision": "bf16", "tokens": "512:4096"}, {"precision": "bf16", "tokens": "4096:512"}]
    with pytest.raises(HetcError, match="twice"):
        combinations([Over("tbt_ms", ("1",)), Over("tbt_ms", ("2",))])


def test_apply_overrides_changes_a_copy(loaded):
    db, spec = loaded
    changed = apply_overrides(spec, {"pool": "h100+xeon-8480", "precision.chat": "bf16", "tokens": "4096:512",
                                     "ttft_ms": "300", "requests_per_s": "5", "inventory": "none"}, db)
    assert changed.hardware.pool == ["intel-xeon-8480", "nvidia-h100-sxm"]
    assert changed.models["chat"].precision == "bf16" and changed.models["asr"].precision == spec.models["asr"].precision
    assert (changed.graph.nodes["llm"].attrs["input_tokens"], changed.graph.nodes["llm"].attrs["output_tokens"]) == (4096, 512)
    assert changed.slo.ttft_ms == 300.0 and changed.traffic.requests_per_s == 5.0 and changed.hardware.inventory == {}
    # the loaded spec is untouched
    assert spec.models["chat"].precision == "fp8" and spec.graph.nodes["llm"].attrs["input_tokens"] == 2048
    assert spec.hardware.inventory


@pytest.mark.parametrize("params, message", [
    ({"pool": "h100+tpu-v9"}, "unknown device 'tpu-v9'"),
    ({"precision": "fp7"}, "unknown precision 'fp7'"),
    ({"input_tokens.nope": "10"}, "no llm node 'nope'"),
    ({"tokens": "512"}, "expected IN:OUT"),
    ({"ttft_ms": "-5"}, "positive"),
    ({"model": "gpt-17"}, "unknown model preset"),
])
def test_apply_overrides_reports_user_errors(loaded, params, message):
    db, spec = loaded
    with pytest.raises(HetcError, match=message):
        apply_overrides(spec, params, db)


def test_override_sweep_parallel_equals_serial_and_records_infeasible():
    overs = [parse_over("requests_per_s=10,40"), parse_over("ttft_ms=250,5")]
    serial = run_sweep(VOICE, overs, SweepOptions(jobs=1))
    parallel = run_sweep(VOICE, overs, SweepOptions(jobs=2))
    assert serial.rows == parallel.rows and serial.plans == parallel.plans
    status = {(r["params"]["requests_per_s"], r["params"]["ttft_ms"]): r for r in serial.rows}
    assert status[("10", "5")]["status"] == "infeasible" and "ttft_ms" in status[("10", "5")]["reason"]
    ok10, ok40 = status[("10", "250")], status[("40", "250")]
    assert ok10["status"] == ok40["status"] == "ok"
    assert ok10["usd_per_hour"] < ok40["usd_per_hour"]  # a quarter of the traffic costs less
    assert serial.report_plan is serial.plans[ok10["index"]]  # the report shows the cheapest plan
    assert serial.plans[ok40["index"]]["traffic"]["requests_per_s"] == 40.0
    from hetc.study.sweep import TCO_COLUMNS

    for row in serial.rows:  # a row's costs are its plan's own figures (one source), components included
        if row["status"] == "ok":
            plan = serial.plans[row["index"]]
            assert {k: row[k] for k in TCO_COLUMNS} == {k: plan["tco"][k] for k in TCO_COLUMNS}
            assert "overhead_usd_per_hour" in TCO_COLUMNS and "cloud_usd_per_hour" in TCO_COLUMNS


def _independent_llm_cost(prefill: str, decode: str, db, spec) -> float:
    """The pair's LLM cost from a compile whose pool holds only that pair (+ the CPUs), for same-device pairs."""
    assert prefill == decode
    changed = apply_overrides(spec, {"pool": f"{prefill}+intel-xeon-8480", "inventory": "none",
                                     "precision": "fp8"}, db)
    plan = compile_loaded(changed, db, SweepOptions())
    return sum(s["tco"]["usd_per_hour"] for s in plan["stages"] if s["kind"] in ("prefill", "decode", "kv_transfer"))


def test_pairs_match_independent_compiles(loaded):
    db, spec = loaded
    # --kv-paths any: every cross-vendor pair has a path (a proof of concept), so every pair is priced
    result = run_pairs(VOICE, PAIRS, "h100::h100", [], SweepOptions(model_precision="fp8", kv_paths="any"),
                       with_report_plan=False)
    pairs = [r for r in result.rows if r["choice"] == "pair"]
    assert len(pairs) == 16 and len({r["pair"] for r in pairs}) == 16
    base = next(r for r in pairs if r["pair"] == "nvidia-h100-sxm::nvidia-h100-sxm")
    assert base["benefit"] == pytest.approx(1.0)
    for r in pairs:
        assert r["status"] == "ok"
        assert r["benefit"] == pytest.approx(base["llm_usd_per_hour"] / r["llm_usd_per_hour"])
        assert r["ttft_ms"] <= 250.0 + 1e-9 and r["tbt_ms"] <= 20.0 + 1e-9
        assert (r["kv_transfer_ms"] == 0.0) == (r["prefill_device"] == r["decode_device"])
    hetc = next(r for r in result.rows if r["choice"] == "hetc")
    assert hetc["usd_per_hour"] <= min(r["usd_per_hour"] for r in pairs) + 1e-6
    # a homogeneous pair costs what a compile restricted to that device costs
    for device in ("nvidia-h100-sxm", "nvidia-b200"):
        row = next(r for r in pairs if r["pair"] == f"{device}::{device}")
        assert row["llm_usd_per_hour"] == pytest.approx(_independent_llm_cost(device, device, db, spec), rel=1e-6)


def test_pairs_with_token_shapes_and_paper_database(tmp_path):
    result = run_pairs(VOICE, "h100,b200", "h100::h100", [parse_over("tokens=512:4096,4096:512")],
                       SweepOptions(hwdb="paper-2025"), with_report_plan=False)
    assert sorted({r["variant"] for r in result.rows}) == [0, 1]
    assert {r["params"]["tokens"] for r in result.rows} == {"512:4096", "4096:512"}
    rows = list(csv.DictReader(io.StringIO(table_csv(result))))
    assert len(rows) == len(result.rows) == 2 * (4 + 1)
    assert rows[0]["over:tokens"] == "512:4096"


def test_done_when_pair_table_under_a_minute(tmp_path):
    """The issue's done-when command, timed end to end (process start included), plus -o outputs."""
    start = time.perf_counter()
    proc = _hetc("sweep", VOICE, "--pairs", PAIRS, "--model-precision", "fp8")
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0, proc.stderr
    assert elapsed < 60.0
    for pair in ("nvidia-h100-sxm::nvidia-h100-sxm", "intel-gaudi3::amd-mi300x", "hetc:"):
        assert pair in proc.stdout
    out = tmp_path / "study"
    proc = _hetc("sweep", VOICE, "--pairs", PAIRS, "--model-precision", "fp8", "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    table = json.loads(proc.stdout)
    assert table["mode"] == "pairs" and len(table["rows"]) == 17
    assert json.loads((out / "table.json").read_text()) == table
    assert 'id="chart-pd"' in (out / "report.html").read_text()
    assert sorted(f["path"] for f in json.loads((out / "manifest.json").read_text())["files"]) == [
        "report.html", "table.csv", "table.json"]


@pytest.mark.parametrize("args, message", [
    (["--pairs", "h100,tpu9"], "unknown device 'tpu9'"),
    (["--pairs", "h100,xeon-8480"], "is a CPU"),
    ([], "nothing to sweep"),
    (["--over", "colour=red"], "unknown --over key"),
    (["--pairs", "h100", "--baseline", "h100"], "expected PREFILL::DECODE"),
    (["--model-precision", "fp7"], "unknown precision"),
])
def test_cli_user_errors_exit_2(args, message):
    proc = _hetc("sweep", VOICE, *args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr

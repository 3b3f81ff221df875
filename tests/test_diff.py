"""hetc diff: what moved between two real plans, the deltas, --json, and the --max-regression CI gate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hetc.cli.study import diff_plans
from hetc.json_text import to_json
from hetc.study.overrides import apply_overrides
from hetc.study.sweep import SweepOptions, _load, compile_loaded

ROOT = Path(__file__).resolve().parents[1]
VOICE = str(ROOT / "examples" / "voice-agent.yaml")


def _hetc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hetc.cli", *args], check=False, capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


@pytest.fixture(scope="module")
def plans(tmp_path_factory) -> dict[str, Path]:
    """Real plans of the voice agent at 20 and 40 requests/s, written as a bundle-like dir and a file."""
    options = SweepOptions()
    db, spec = _load(VOICE, options)
    folder = tmp_path_factory.mktemp("plans")
    paths = {}
    for rate in ("20", "40"):
        plan = compile_loaded(apply_overrides(spec, {"requests_per_s": rate}, db), db, options)
        (folder / f"bundle-{rate}").mkdir()
        (folder / f"bundle-{rate}" / "plan.json").write_bytes(to_json(plan))
        (folder / f"plan-{rate}.json").write_bytes(to_json(plan))
        paths[rate] = folder / f"plan-{rate}.json"
        paths[f"dir-{rate}"] = folder / f"bundle-{rate}"
    return paths


def _load_plan(path: Path) -> dict:
    return json.loads(path.read_text())


def test_identical_plans_have_no_moves(plans):
    plan = _load_plan(plans["40"])
    result = diff_plans(plan, plan)
    assert result["moved"] == 0 and not result["pd_changed"] and result["inputs_changed"] == []
    assert all(t["delta"] in (0, 0.0, None) for t in result["totals"].values())


def test_doubling_the_rate_moves_replicas_and_raises_cost(plans):
    a, b = _load_plan(plans["20"]), _load_plan(plans["40"])
    result = diff_plans(a, b)
    assert result["inputs_changed"] == [{"field": "traffic.requests_per_s", "a": 20.0, "b": 40.0}]
    prefill = next(s for s in result["stages"] if s["id"] == "llm.prefill")
    assert prefill["change"] == "changed" and "replicas" in prefill["moved"]
    assert prefill["b"]["replicas"] > prefill["a"]["replicas"]
    cost = result["totals"]["usd_per_hour"]
    assert cost["a"] == a["tco"]["usd_per_hour"] and cost["b"] == b["tco"]["usd_per_hour"]
    assert cost["delta"] == pytest.approx(cost["b"] - cost["a"]) and cost["pct"] == pytest.approx(
        (cost["b"] / cost["a"] - 1) * 100)
    assert result["moved"] == sum(1 for s in result["stages"] if s["change"] != "same") > 0


def test_added_removed_and_device_moves(plans):
    import copy

    a = _load_plan(plans["40"])
    b = copy.deepcopy(a)
    tts = next(s for s in b["stages"] if s["id"] == "tts")
    tts["device"] = "intel-xeon-8480" if tts["device"] != "intel-xeon-8480" else "nvidia-h100-sxm"
    b["stages"] = [s for s in b["stages"] if s["id"] != "search.lookup"]
    result = diff_plans(a, b)
    by_id = {s["id"]: s for s in result["stages"]}
    assert by_id["tts"]["moved"] == ["device"]
    assert by_id["search.lookup"]["change"] == "removed" and by_id["search.lookup"]["b"] is None
    assert by_id["stt"]["change"] == "same"
    b["stages"][1]["model"] = {**b["stages"][1]["model"], "precision": "int4"}
    assert diff_plans(a, b)["stages"][1]["moved"] == ["model"]


def test_cli_table_json_and_bundle_dirs(plans):
    proc = _hetc("diff", str(plans["dir-20"]), str(plans["dir-40"]))
    assert proc.returncode == 0, proc.stderr
    assert "what moved" in proc.stdout and "llm.prefill" in proc.stdout and "$/hour" in proc.stdout
    proc = _hetc("diff", str(plans["20"]), str(plans["40"]), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["totals"]["usd_per_hour"]["pct"] > 0 and data["gates"]["failed"] == []


def test_max_regression_gate_exits_4(plans):
    a, b = _load_plan(plans["20"]), _load_plan(plans["40"])
    pct = (b["tco"]["usd_per_hour"] / a["tco"]["usd_per_hour"] - 1) * 100
    below, above = f"{pct - 1:.3f}", f"{pct + 1:.3f}"
    proc = _hetc("diff", str(plans["20"]), str(plans["40"]), "--max-regression", below)
    assert proc.returncode == 4
    assert f"exceeds --max-regression {float(below):g}%" in proc.stderr and str(plans["40"]) in proc.stderr
    assert "Traceback" not in proc.stderr
    assert _hetc("diff", str(plans["20"]), str(plans["40"]), "--max-regression", above).returncode == 0
    # a cheaper B never trips the gate; --json still prints the diff before failing
    assert _hetc("diff", str(plans["40"]), str(plans["20"]), "--max-regression", "0").returncode == 0
    proc = _hetc("diff", str(plans["20"]), str(plans["40"]), "--max-regression", "0", "--json")
    assert proc.returncode == 4 and json.loads(proc.stdout)["gates"]["failed"]


def test_bad_input_is_a_user_error(plans, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": 1}')
    proc = _hetc("diff", str(plans["20"]), str(bad))
    assert proc.returncode == 2 and str(bad) in proc.stderr and "Traceback" not in proc.stderr
    proc = _hetc("diff", str(plans["20"]), str(tmp_path / "missing"))
    assert proc.returncode == 2 and "cannot read plan" in proc.stderr


def test_diff_totals_are_the_plans_own_figures(plans):
    """The diff's totals are plan.json's (one source), with every cost component; planned_requests_per_s
    is an output of the plan, not a changed input."""
    from hetc.model.tco import COMPONENTS

    a, b = _load_plan(plans["20"]), _load_plan(plans["40"])
    totals = diff_plans(a, b)["totals"]
    for key in ["usd_per_hour", *(f"{c}_usd_per_hour" for c in COMPONENTS), "usd_per_1m_requests"]:
        assert totals[key]["a"] == a["tco"][key] and totals[key]["b"] == b["tco"][key], key
    assert sum(totals[f"{c}_usd_per_hour"]["delta"] for c in COMPONENTS) == pytest.approx(
        totals["usd_per_hour"]["delta"], abs=1e-9)
    fields = [i["field"] for i in diff_plans(a, b)["inputs_changed"]]
    assert "traffic.planned_requests_per_s" not in fields

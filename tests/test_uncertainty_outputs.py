"""Where people look at a study under uncertainty: `hetc sweep --pairs --uncertainty` (the pair table),
`hetc compile --uncertainty` (plan.json, which passes its own schema, and the printed summary), and the
report's verdict, error bars and tornado rendered by headless Chromium without console errors. All three share
`hetc uncertainty`'s code path (hetc.study.uncertainty.analysis.study): the same seed gives the same figures."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_report import _dump_dom, _svg

from hetc.bundle.report import render_report
from hetc.bundle.schema import load_plan

ROOT = Path(__file__).resolve().parents[1]
VOICE = str(ROOT / "examples" / "voice-agent.yaml")
SUPERVISOR = str(ROOT / "examples" / "supervisor.yaml")
PAIRS = "h100,b200,mi300x"


def _hetc(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hetc.cli", *args], check=False, capture_output=True, text=True,
                          timeout=600, cwd=cwd)


@pytest.fixture(scope="module")
def sweep_study(tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("sweep") / "study"
    proc = _hetc("sweep", VOICE, "--pairs", PAIRS, "--uncertainty", "--samples", "150", "--seed", "4",
                 "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), out


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("compile") / "bundle"
    proc = _hetc("compile", SUPERVISOR, "-o", str(out), "--uncertainty", "--samples", "120", "--seed", "2")
    assert proc.returncode == 0, proc.stderr
    return proc, out


# ------------------------------------------------------------------------------------------------- sweep


def test_sweep_pairs_gain_win_probabilities_and_bands_from_the_same_study_as_hetc_uncertainty(sweep_study):
    table, out = sweep_study
    study = table["uncertainty"]["0"]
    pairs = [r for r in table["rows"] if r["choice"] == "pair"]
    assert len(pairs) == 9 and all("p_cheapest" in r for r in table["rows"])
    feasible = [r for r in pairs if r["status"] == "ok"]
    for row in feasible:  # the study prices the pair exactly as the sweep's own solve did
        band = next(a for a in study["alternatives"] if a["plan"] == row["pair"])
        assert band["nominal_usd_per_hour"] == pytest.approx(row["usd_per_hour"], rel=1e-9)
        assert row["p10_usd_per_hour"] <= row["p50_usd_per_hour"] <= row["p90_usd_per_hour"]
    assert 0.9 < sum(r["p_cheapest"] for r in pairs) <= 1.0 + 1e-9  # samples where some pair is feasible
    hetc_row = next(r for r in table["rows"] if r["choice"] == "hetc")
    assert hetc_row["p_cheapest"] is None
    # one code path: `hetc uncertainty --pairs` with the same seed gives the same alternatives
    alone = _hetc("uncertainty", VOICE, "--pairs", PAIRS, "--samples", "150", "--seed", "4", "--json")
    assert alone.returncode == 0, alone.stderr
    assert json.loads(alone.stdout)["alternatives"] == study["alternatives"]
    header = (out / "table.csv").read_text().splitlines()[0]
    assert header.endswith("p_cheapest,p10_usd_per_hour,p50_usd_per_hour,p90_usd_per_hour")


def test_sweep_text_table_shows_the_columns_and_the_verdict():
    proc = _hetc("sweep", VOICE, "--pairs", "b200,mi300x", "--uncertainty", "--samples", "40")
    assert proc.returncode == 0, proc.stderr
    assert "P(cheapest)" in proc.stdout and "p10-p90 $/hour" in proc.stdout
    assert re.search(r"under uncertainty \(40 samples, seed 0, defaults\): \S+ is cheapest in \d+% of samples",
                     proc.stdout)


def test_sweep_uncertainty_is_byte_identical_per_seed():
    args = ("sweep", VOICE, "--pairs", "b200,mi300x", "--uncertainty", "--samples", "60", "--json")
    first, second = _hetc(*args, "--seed", "9"), _hetc(*args, "--seed", "9")
    assert first.returncode == 0 and first.stdout == second.stdout
    assert _hetc(*args, "--seed", "10").stdout != first.stdout


@pytest.mark.parametrize("args, words", [
    (("sweep", VOICE, "--over", "precision=fp8,fp16", "--uncertainty"), "give --pairs"),
    (("sweep", VOICE, "--pairs", "b200,mi300x", "--samples", "10"), "add --uncertainty"),
    (("sweep", VOICE, "--pairs", "b200,mi300x", "--soft-sla", "0.1", "--uncertainty"), "needs a hard SLA"),
    (("compile", VOICE, "-o", "never-written", "--seed", "3"), "add --uncertainty"),
])
def test_uncertainty_flags_that_cannot_work_are_user_errors(args, words, tmp_path):
    proc = _hetc(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "never-written").exists()


def test_a_bad_uncertainty_file_stops_the_sweep_before_any_work(tmp_path):
    bad = tmp_path / "unc.yaml"
    bad.write_text("pue:\n  lognormal: -1\n")
    proc = _hetc("sweep", VOICE, "--pairs", "b200,mi300x", "--uncertainty", str(bad))
    assert proc.returncode == 2 and f"{bad}:2:14: error:" in proc.stderr, proc.stderr


# ----------------------------------------------------------------------------------------------- compile


def test_compile_uncertainty_is_in_the_plan_and_the_plan_passes_its_schema(compiled):
    proc, out = compiled
    plan = load_plan(out)  # the schema and load_plan's own checks
    study = plan["uncertainty"]
    assert study["samples"] == 120 and study["seed"] == 2 and study["rows"] == "alternatives"
    # the nominal plan is the deployed plan: its nominal cost and P::D
    assert study["nominal_plan"]["nominal_usd_per_hour"] == pytest.approx(plan["tco"]["usd_per_hour"], rel=1e-9)
    assert study["nominal_plan"]["plan"].startswith(plan["pd"] + " ")
    # every homogeneous baseline the plan lists feasible is banded, at the plan's own nominal cost
    listed = {b["device"]: b["usd_per_hour"] for b in plan["baselines"] if b["feasible"]}
    banded = {b["plan"].removeprefix("all on "): b["nominal_usd_per_hour"] for b in study["baselines"]}
    assert set(banded) == set(listed)
    for device, usd in listed.items():
        assert banded[device] == pytest.approx(usd, rel=1e-6), device
    assert study["verdict"] in proc.stdout and "this plan:" in proc.stdout


def test_compile_uncertainty_is_byte_identical_per_seed(compiled, tmp_path):
    proc = _hetc("compile", SUPERVISOR, "-o", str(tmp_path / "again"), "--uncertainty", "--samples", "120",
                 "--seed", "2", "-q")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "again" / "plan.json").read_bytes() == (compiled[1] / "plan.json").read_bytes()
    assert (tmp_path / "again" / "report.html").read_bytes() == (compiled[1] / "report.html").read_bytes()


def test_a_plan_with_a_broken_uncertainty_section_fails_the_schema(compiled):
    from hetc.bundle.schema import validate_plan
    from hetc.errors import HetcError

    plan = json.loads((compiled[1] / "plan.json").read_text())
    plan["uncertainty"]["alternatives"][0]["p_cheapest"] = 1.5
    with pytest.raises(HetcError, match=r"\$\.uncertainty\.alternatives\[0\]\.p_cheapest"):
        validate_plan(plan)


def test_compile_without_uncertainty_leaves_the_plan_as_it_was(tmp_path):
    proc = _hetc("compile", VOICE, "-o", str(tmp_path / "b"), "-q")
    assert proc.returncode == 0, proc.stderr
    assert "uncertainty" not in json.loads((tmp_path / "b" / "plan.json").read_text())


# ------------------------------------------------------------------------------------------------ report


def _bands(dom: str) -> int:
    return _svg(dom, "chart-uncertainty").count('<g class="band"')


def test_compile_report_renders_bands_tornado_and_verdict_without_console_errors(compiled, tmp_path):
    _, out = compiled
    plan = json.loads((out / "plan.json").read_text())
    dom, console = _dump_dom(out / "report.html", tmp_path)
    assert console == []
    study = plan["uncertainty"]
    feasible = [r for r in study["alternatives"] + study["baselines"] if r["p10_usd_per_hour"] is not None]
    assert _bands(dom) == len(feasible) > len(study["alternatives"])  # per alternative and per baseline
    tornado = _svg(dom, "chart-tornado")
    assert tornado.count('class="bar tornado p10"') == tornado.count('class="bar tornado p90"') == len(study["tornado"])
    assert study["verdict"].replace("'", "&#x27;") in dom or study["verdict"] in dom
    assert 'id="uncertainty-verdict"' in dom


def test_sweep_report_shows_every_pair_with_error_bars(sweep_study, tmp_path):
    table, out = sweep_study
    dom, console = _dump_dom(out / "report.html", tmp_path)
    assert console == []
    study = table["uncertainty"]["0"]
    assert _bands(dom) == sum(r["p10_usd_per_hour"] is not None for r in study["alternatives"])
    assert _svg(dom, "chart-tornado") and _svg(dom, "chart-pd")


def test_report_escapes_study_labels(compiled):
    plan = json.loads((compiled[1] / "plan.json").read_text())
    evil = "<script>alert('x')</script>"
    plan["uncertainty"]["alternatives"][0]["plan"] = evil
    plan["uncertainty"]["tornado"][0]["input"] = evil
    page = render_report(plan)
    assert "<script>" not in page and "&lt;script&gt;" in page


# -------------------------------------------------------------------------------------------------- docs


def _doc_commands():
    from docs_snippets import hetc_commands

    return [c for doc in ("uncertainty.md", "paper-study.md") for c in hetc_commands(ROOT / "docs" / doc)
            if any(word.startswith("--uncertainty") for word in c.argv) or c.argv[0] == "uncertainty"]


@pytest.mark.parametrize("command", _doc_commands(), ids=lambda c: c.where)
def test_documented_uncertainty_commands_parse(command):
    from test_docs import PLACEHOLDERS, _parse_only

    _parse_only(tuple(PLACEHOLDERS.get(word, word) for word in command.argv))


def test_the_documented_sweep_with_uncertainty_runs():
    (command,) = [c for c in _doc_commands() if c.argv[0] == "sweep" and c.where.startswith("uncertainty.md")]
    proc = _hetc(*command.argv)
    assert proc.returncode == 0, proc.stderr
    assert "P(cheapest)" in proc.stdout and " is cheapest in " in proc.stdout

"""report.html rendered by a real browser: Debian's chromium in headless mode (installed by .ci/run).

How console errors are captured: chromium runs with `--enable-logging=stderr --v=0`, which writes every
message a page sends to the console (console.*, uncaught exceptions, Content-Security-Policy violations,
failed loads) to stderr as `INFO:CONSOLE(...)] "message", source: URL`. The report has no script, so any
such line is a failure. test_console_capture_detects_errors proves the capture works on a page that does
log errors, so the check cannot pass vacuously. The report's CSP forbids every external load; a reference
to anything outside the page would show up as a CSP violation on the console.
"""

from __future__ import annotations

import html
import re
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import system_tool

from hetc.bundle.charts import COMPONENT_COLOURS, device_colours
from hetc.bundle.report import render_report
from hetc.bundle.svg import PLAN_COLOUR

ROOT = Path(__file__).resolve().parents[1]
VOICE = ROOT / "examples" / "voice-agent.yaml"
CHART_IDS = ("chart-plan", "chart-tco", "chart-baselines", "chart-pareto", "chart-sla")
EVIL = "<script>alert('x')</script>\"q'&"


def _chromium() -> str:
    return system_tool("chromium")


def _run_chromium(page: Path, tmp_path: Path, *mode: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--enable-logging=stderr", "--v=0", "--hide-scrollbars", *mode, page.as_uri()]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _console_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def _dump_dom(page: Path, tmp_path: Path) -> tuple[str, list[str]]:
    proc = _run_chromium(page, tmp_path, "--dump-dom")
    return proc.stdout, _console_lines(proc.stderr)


@pytest.fixture(scope="module")
def voice_plan() -> dict:
    from hetc.study.sweep import SweepOptions, _load, compile_loaded

    options = SweepOptions()
    db, spec = _load(str(VOICE), options)
    return compile_loaded(spec, db, options)


@pytest.fixture(scope="module")
def pair_rows() -> list[dict]:
    from hetc.study.sweep import SweepOptions, run_pairs

    result = run_pairs(str(VOICE), "h100,b200,gaudi3", "h100::h100", [], SweepOptions(model_precision="fp8"),
                       with_report_plan=False)
    return result.rows


def _svg(dom: str, chart_id: str) -> str:
    match = re.search(rf'<svg id="{chart_id}"[^>]*>(.*?)</svg>', dom, re.DOTALL)
    assert match, f"{chart_id} missing from the rendered DOM"
    return match.group(1)


def test_console_capture_detects_errors(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" "
                    "content=\"default-src 'none'; script-src 'unsafe-inline'\"></head><body>"
                    "<script>console.error('marker-7'); missingFunction();</script>"
                    "<img src=\"https://example.invalid/x.png\"></body></html>")
    _, console = _dump_dom(page, tmp_path)
    text = "\n".join(console)
    assert "marker-7" in text
    assert "missingFunction" in text
    assert "Content Security Policy" in text


def test_report_renders_every_chart_without_console_errors(voice_plan, pair_rows, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render_report(voice_plan, pair_rows), encoding="utf-8")
    dom, console = _dump_dom(page, tmp_path)
    assert console == []
    for chart in CHART_IDS + ("chart-pd",):
        assert _svg(dom, chart)
    stages = voice_plan["stages"]
    assert _svg(dom, "chart-plan").count('<g class="stage"') == len(stages)
    costed = [s for s in stages if s.get("device") and s["tco"]["usd_per_hour"] > 0]
    tco = _svg(dom, "chart-tco")
    assert tco.count('class="bar capital"') == len(costed) and tco.count('class="bar power"') == len(costed)
    baselines = _svg(dom, "chart-baselines")
    assert baselines.count('class="bar"') == 1 + sum(b["feasible"] for b in voice_plan["baselines"])
    pareto = _svg(dom, "chart-pareto")
    feasible_rows = [r for r in pair_rows if r["status"] == "ok"]
    feasible_baselines = [b for b in voice_plan["baselines"] if b["feasible"]]
    assert pareto.count("<circle class=\"point") == 1 + len(feasible_rows) + len(feasible_baselines)
    assert 'class="front"' in pareto  # several points: the front is drawn
    sla = _svg(dom, "chart-sla")
    assert 'class="limit"' in sla and sla.count("slack") == len(voice_plan["paths"])
    assert _svg(dom, "chart-pd").count('class="bar pd"') == len([r for r in pair_rows if r["benefit"] is not None])
    assert 'id="table-sweep"' in dom


def _decode_png(data: bytes) -> np.ndarray:
    """RGB(A) 8-bit non-interlaced PNG -> (height, width, channels) uint8 (what chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0
        elif kind == b"IDAT":
            idat += body
    bpp = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * bpp)
    out = np.zeros((height, width * bpp), dtype=np.uint8)
    prev = np.zeros(width * bpp, dtype=np.int64)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int64)
        if kind == 0:
            row = line
        elif kind == 1:
            row = np.cumsum(line.reshape(width, bpp), axis=0).reshape(-1) % 256
        elif kind == 2:
            row = (line + prev) % 256
        else:  # average and Paeth depend on the reconstructed left byte: one pass per row
            row, up = line.tolist(), prev.tolist()
            for x in range(len(row)):
                left = row[x - bpp] if x >= bpp else 0
                if kind == 3:
                    row[x] = (row[x] + (left + up[x]) // 2) % 256
                else:
                    upper_left = up[x - bpp] if x >= bpp else 0
                    p = left + up[x] - upper_left
                    pa, pb, pc = abs(p - left), abs(p - up[x]), abs(p - upper_left)
                    pred = left if pa <= pb and pa <= pc else (up[x] if pb <= pc else upper_left)
                    row[x] = (row[x] + pred) % 256
            row = np.array(row, dtype=np.int64)
        out[y] = row
        prev = row
    return out.reshape(height, width, bpp)


def _pixels_of(image: np.ndarray, colour: str) -> int:
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(image[:, :, :3].astype(int) - rgb).max(axis=2) <= 2).sum())


def test_report_screenshot_shows_the_charts(voice_plan, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render_report(voice_plan), encoding="utf-8")
    shot = tmp_path / "shot.png"
    proc = _run_chromium(page, tmp_path, "--force-device-scale-factor=0.5", "--window-size=1280,2400",
                         f"--screenshot={shot}")
    assert _console_lines(proc.stderr) == []
    image = _decode_png(shot.read_bytes())
    # solid fills of the stacked TCO bars, the chosen plan's bar, and every device class of the plan graph
    assert _pixels_of(image, COMPONENT_COLOURS['capital']) > 100
    assert _pixels_of(image, COMPONENT_COLOURS['power']) > 20
    assert _pixels_of(image, PLAN_COLOUR) > 100
    colours = device_colours([s["device"] for s in voice_plan["stages"] if s.get("device")]
                             + [b["device"] for b in voice_plan["baselines"]])
    for device in {s["device"] for s in voice_plan["stages"] if s.get("device")}:
        assert _pixels_of(image, colours[device]) > 50, device


def _renamed(plan: dict, old: str, new: str) -> dict:
    import copy

    plan = copy.deepcopy(plan)
    plan["name"] = new
    for s in plan["stages"]:
        if s["id"] == old:
            s["id"] = new
    for e in plan["edges"]:
        e["src"], e["dst"] = (new if e["src"] == old else e["src"]), (new if e["dst"] == old else e["dst"])
    for p in plan["paths"]:
        p["stages"] = [new if sid == old else sid for sid in p["stages"]]
    return plan


def test_user_strings_are_escaped(voice_plan, tmp_path):
    plan = _renamed(voice_plan, "tts", EVIL)
    plan["baselines"] = [{**plan["baselines"][0], "feasible": False, "usd_per_hour": None, "relative_cost": None,
                          "reason": EVIL}] + plan["baselines"][1:]
    rows = [{"index": 0, "variant": 0, "params": {"tokens": EVIL}, "pair": EVIL, "prefill_device": EVIL,
             "decode_device": EVIL, "choice": "pair", "status": "infeasible", "benefit": None,
             "llm_usd_per_hour": None, "usd_per_hour": None, "prefill": "", "decode": "", "ttft_ms": None,
             "tbt_ms": None, "kv_transfer_ms": None, "critical_path_ms": None, "slack_ms": None,
             "baseline": EVIL, "reason": EVIL}]
    text = render_report(plan, rows)
    assert "<script" not in text and "alert('x')" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&quot;q&#x27;&amp;" in text
    page = tmp_path / "evil.html"
    page.write_text(text, encoding="utf-8")
    dom, console = _dump_dom(page, tmp_path)
    assert console == []
    assert "<script" not in dom
    assert "&lt;script&gt;" in dom  # shown as text
    for chart in CHART_IDS + ("chart-pd",):
        assert _svg(dom, chart)


def test_report_is_deterministic_and_self_contained(voice_plan, pair_rows):
    first = render_report(voice_plan, pair_rows)
    assert first == render_report(voice_plan, pair_rows)
    assert "Content-Security-Policy" in first
    assert not re.search(r"(src|href)=\"(https?:|//)", first)
    assert "<script" not in first


@pytest.fixture(scope="module")
def example_plans() -> dict[str, dict]:
    from hetc.compiler import CompileOptions, compile_spec

    return {p.stem: compile_spec(str(p), CompileOptions(codegen=False)).plan
            for p in sorted((ROOT / "examples").glob("*.yaml"))}


def test_summary_and_report_print_the_plans_own_figures(example_plans):
    """One source: the summary line and the report show plan.json's total and components, labelled as
    docs/cost-model.md names them (capital, power, overhead, cloud rental), for every example."""
    import io

    from rich.console import Console

    from hetc.bundle.summary import _usd, print_summary
    from hetc.model.tco import shown_components

    for name, plan in example_plans.items():
        out = io.StringIO()
        print_summary(plan, "b", console=Console(file=out, width=400, highlight=False, color_system=None))
        parts = shown_components(plan["tco"], plan["tco"]["pricing"])
        assert sum(v for _, _, v in parts) == pytest.approx(plan["tco"]["usd_per_hour"], rel=1e-9), name
        line = (f"TCO {_usd(plan['tco']['usd_per_hour'])}/hour ("
                + ", ".join(f"{label} {_usd(value)}" for _, label, value in parts) + ")")
        assert line in out.getvalue(), name
        page = render_report(plan)
        assert f"TCO {_usd(plan['tco']['usd_per_hour'])}/hour = " in page
        for _, label, value in parts:
            assert f"{label} $/h" in page and f"{label} {_usd(value)}" in page, (name, label)
        if plan["traffic"].get("rate_basis"):  # offline work says what it was sized for, in both
            assert plan["traffic"]["rate_basis"] in out.getvalue().replace("\n", " ")
            assert html.escape(plan["traffic"]["rate_basis"]) in page

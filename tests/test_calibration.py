"""The cost model against public measurements (tests/data/calibration_validation.yaml), and `calibrate`."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from hetc.cli.hw import calibrate, estimate, hw
from hetc.errors import HetcError
from hetc.hwdb.loader import load_hwdb
from hetc.model.calibrate import fit, load_measurements, median, relative_errors

DATA = Path(__file__).parent / "data" / "calibration_validation.yaml"


def test_every_record_cites_a_source_and_loads():
    db = load_hwdb()
    records = load_measurements(DATA, db)
    assert len(records) >= 60
    assert all(r.source.startswith("https://") for r in records)
    assert {r.split for r in records} == {"train", "validate"}


def test_model_median_error_on_public_measurements(capsys):
    db = load_hwdb()
    records = load_measurements(DATA, db)
    errors = relative_errors(records, db.devices)
    overall = median(errors)
    by_metric = {m: median([e for e, r in zip(errors, records, strict=True) if r.metric == m])
                 for m in sorted({r.metric for r in records})}
    with capsys.disabled():
        print(f"\ncost model (default hwdb) median |error| on {len(records)} public measurements: {overall:.1%}; "
              + ", ".join(f"{m} {v:.1%}" for m, v in by_metric.items()))
    assert overall < 0.35  # uncalibrated defaults: measured 21.8 % when this test was written
    assert by_metric["tbt_ms"] < 0.30  # bandwidth-bound decode is the best-understood regime


def test_calibration_fits_and_reduces_held_out_error(tmp_path, capsys):
    db = load_hwdb()
    records = load_measurements(DATA, db)
    result = fit(records, db, train_only=True)
    held_out = [r for r in records if r.split == "validate"]
    train_before, train_after = result.errors("before", result.train), result.errors("after", result.train)
    held_before, held_after = result.errors("before", held_out), result.errors("after", held_out)
    with capsys.disabled():
        print(f"\ncalibration: train {train_before:.1%} -> {train_after:.1%}; held-out {held_before:.1%} -> "
              f"{held_after:.1%}")
    assert train_after < train_before
    # Per-device factors on top of the shared fit (costmodel.TUNING, fitted on a superset of these records)
    # barely move held-out figures: 19.7 % -> 16.6 % before the shared fit existed, 10.9 % -> 12.4 % now.
    # They must not make a device's other records much worse.
    assert held_after < held_before + 0.025
    for params in result.fitted.values():
        assert all(0.05 <= v <= 1.0 for v in params.values())


def test_calibrate_cli_writes_a_usable_overlay(tmp_path):
    small = tmp_path / "m.yaml"
    small.write_text("""\
records:
  - {id: a, model: llama-3-8b, device: h100, precision: fp16, tp: 1, batch: 1, input_tokens: 128,
     output_tokens: 64, metric: tbt_ms, value: 12.0, source: "https://example.org/a"}
  - {id: b, model: llama-3-8b, device: h100, precision: fp16, tp: 1, batch: 1, input_tokens: 2048,
     output_tokens: 1, metric: ttft_ms, value: 90.0, source: "https://example.org/b"}
""")
    overlay = tmp_path / "overlay.yaml"
    result = CliRunner().invoke(calibrate, [str(small), "-o", str(overlay)])
    assert result.exit_code == 0, result.output
    assert "before" in result.output and "after" in result.output
    db = load_hwdb("default", extra=[overlay])
    h100 = db.get("h100")
    assert h100.sources["eff_bw"]["basis"] == "calibrated"
    assert h100.eff_bw != load_hwdb().get("h100").eff_bw
    records = load_measurements(small, db)
    after = median(relative_errors(records, db.devices))
    before = median(relative_errors(records, load_hwdb().devices))
    assert after < before  # the log-normal prior keeps it from fitting the two records exactly
    bad = tmp_path / "bad.yaml"
    bad.write_text("records:\n  - {id: x, model: gpt-9, device: h100, precision: fp16, tp: 1, batch: 1,\n"
                   "     input_tokens: 1, metric: tbt_ms, value: 1, source: s}\n")
    result = CliRunner().invoke(calibrate, [str(bad), "-o", str(overlay)])
    assert result.exit_code == 2 and "bad.yaml:2:" in result.output and "unknown model 'gpt-9'" in result.output


def test_estimate_and_hw_cli():
    runner = CliRunner()
    args = ["--model", "llama-3-70b", "--precision", "fp8", "--device", "nvidia-h100-sxm", "--tp", "2", "--batch",
            "64", "--input-tokens", "512", "--output-tokens", "4096", "--ttft-ms", "250", "--tbt-ms", "20"]
    text = runner.invoke(estimate, args)
    assert text.exit_code == 0, text.output
    assert "TTFT" in text.output and "$/1M output tokens" in text.output
    import json
    data = json.loads(runner.invoke(estimate, args + ["--json"]).output)
    assert data["tp"] == 2 and data["bound"]["decode"] == "memory" and data["fits"]
    best = json.loads(runner.invoke(estimate, args[:6] + ["--input-tokens", "512", "--output-tokens", "4096",
                                                           "--ttft-ms", "250", "--tbt-ms", "20",
                                                           "--max-throughput", "--json"]).output)
    assert best["meets_targets"] and best["tbt_ms"] <= 20
    assert best["tokens_per_s_per_device"] >= data["tokens_per_s_per_device"]
    bad = runner.invoke(estimate, ["--model", "llama-9", "--device", "h100"])
    assert bad.exit_code == 2 and "unknown model 'llama-9'" in bad.output
    bad = runner.invoke(estimate, ["--model", "llama-3-8b", "--device", "h100", "--batch", "0"])
    assert bad.exit_code == 2 and "--batch must be > 0" in bad.output
    listing = runner.invoke(hw, ["list", "--hwdb", "paper-2025"])
    assert listing.exit_code == 0 and "nvidia-b200" in listing.output
    shown = runner.invoke(hw, ["show", "gaudi3", "--json"])
    assert shown.exit_code == 0 and '"gaudi_generation": "gaudi3"' in shown.output
    assert runner.invoke(hw, ["show", "tpu9"]).exit_code == 2


def test_measurement_errors_are_user_errors(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("records: 3\n")
    with pytest.raises(HetcError, match="records"):
        load_measurements(path, load_hwdb())


# ------------------------------------------------------------------------ shared fit, LODO and error bands
MEASURED = Path(__file__).parent.parent / "hetc" / "data" / "measured-llm.yaml"


def test_measured_set_loads_with_engines_and_sources():
    records = load_measurements(MEASURED, load_hwdb())
    assert len(records) >= 150 and all(r.source.startswith("https://") for r in records)
    assert {r.engine for r in records} >= {"trtllm", "vllm-v0", "vllm-gaudi"}


def test_leave_one_device_out_predicts_without_the_device():
    from hetc.model.calibrate import cross_validate, fit_shared, predict
    db = load_hwdb()
    records = [r for r in load_measurements(MEASURED, db)
               if r.device_id in ("nvidia-a100-80gb", "intel-gaudi2") and r.metric in ("ttft_ms", "tbt_ms")]
    checked = cross_validate(records, db)
    gaudi = [c for c in checked if c.record.device_id == "intel-gaudi2"]
    # the held-out Gaudi figures come from a fit on the A100 records only
    without = fit_shared([r for r in records if r.device_id != "intel-gaudi2"], db)
    assert [c.held_out for c in gaudi] == [predict(c.record, db.devices["intel-gaudi2"], without) for c in gaudi]
    # bands come from the other device's held-out residuals: a band, not necessarily around the estimate
    assert all(c.band is not None and c.band[0] < c.band[1] for c in checked)
    assert all(c.in_band in (True, False) for c in checked)


def test_bands_bracket_every_estimate_and_widen_from_the_table():
    from hetc.model.bands import band, band_factors
    for device, metric in (("nvidia-h100-sxm", "tbt_ms"), ("intel-gaudi3", "ttft_ms"), ("amd-mi325x", "tokens_per_s")):
        low, high = band(device, metric, 100.0)
        assert low < 100.0 < high
    # a family without its own row gets the all-family band
    assert band_factors("amd-mi325x", "tokens_per_s") == band_factors("some-new-device", "tokens_per_s")


MLPERF = MEASURED.parent / "measured-mlperf.yaml"


def test_mlperf_records_pick_the_best_tp_and_honour_the_tpot_limit():
    from hetc.model import costmodel as cm
    from hetc.model.calibrate import predict
    db = load_hwdb()
    records = load_measurements(MLPERF, db)
    assert len(records) >= 100 and all("mlperf_log_summary.txt" in r.source for r in records)
    assert {r.scenario for r in records} == {"offline", "server"}
    server = next(r for r in records if r.scenario == "server" and r.device_id == "nvidia-h200")
    assert server.tp == "best" and server.tbt_limit_ms in (40, 200)
    h200 = db.devices["nvidia-h200"]
    # tp "best": the degree with the most tokens/s per device
    per_tp = [predict(replace(server, tp=tp), h200) for tp in (1, 2, 4, 8)]
    assert predict(server, h200) == max(per_tp)
    # a tighter TPOT limit lowers the batch and the throughput
    tight = replace(server, tbt_limit_ms=server.tbt_limit_ms / 4, tp=1)
    assert predict(tight, h200) < predict(replace(server, tp=1), h200)
    assert cm.max_batch(server.arch, h200, "fp8", 1, 1, 300, 294, "fp8", tbt_s=0.01) < 256


def test_bands_widen_a_family_to_the_all_family_spread():
    from hetc.model.calibrate import family_band
    spread = [-0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3]
    biased = [0.25, 0.3, 0.35, 0.4, 0.45]
    low, high = family_band(biased, spread)
    assert low == pytest.approx(-0.24) and high == pytest.approx(0.43)
    assert family_band(biased[:3], spread) == family_band([], spread)  # too few of its own: the all-family band


def test_validation_records_are_predicted_never_fitted():
    from hetc.model.calibrate import cross_validate, fit_shared, predict
    db = load_hwdb()
    cal = [r for r in load_measurements(MEASURED, db) if r.device_id in ("nvidia-a100-80gb", "intel-gaudi2")
           and r.metric in ("ttft_ms", "tbt_ms")]
    extra = [r for r in load_measurements(MLPERF, db) if r.device_id == "intel-gaudi2"]
    checked = cross_validate(cal, db, extra)
    rows = [c for c in checked if not c.calibration]
    without = fit_shared([r for r in cal if r.device_id != "intel-gaudi2"], db)
    assert [c.held_out for c in rows] == [predict(c.record, db.devices["intel-gaudi2"], without) for c in rows]
    assert all(c.band is not None for c in rows)

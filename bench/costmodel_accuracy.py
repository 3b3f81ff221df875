"""Accuracy of the cost model against published measurements, in-sample and leave-one-device-out.

    python bench/costmodel_accuracy.py                       # hetc/data/measured-llm.yaml + measured-mlperf.yaml
    python bench/costmodel_accuracy.py --measurements FILE   # another calibration file in the same format
    python bench/costmodel_accuracy.py --mlperf ''           # without the MLPerf validation rows

In-sample: the model calibrated on every record predicts every record. Leave-one-device-out (LODO): for each
device, the model is calibrated on the other devices' records and predicts this device's records, as hetc
must for hardware nobody has measured. Printed per metric (TTFT, TBT, throughput), per device family and per
device: records, median and p90 |error|. MLPerf records (hetc/data/measured-mlperf.yaml) are never fitted:
each is predicted by the fit without its device, and printed as their own rows per scenario (Offline,
Server) and family. Last, the share of held-out records whose measured value lies inside the p10-p90 band
the model gave them (bands from the other devices' held-out residuals: target about 80 %).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hetc.hwdb.loader import load_hwdb
from hetc.model.calibrate import band_table, cross_validate, device_family, load_measurements, metric_group, quantile

DATA = Path(__file__).resolve().parent.parent / "hetc" / "data"
DEFAULT = DATA / "measured-llm.yaml"
MLPERF = DATA / "measured-mlperf.yaml"


def _row(label: str, rows: list) -> str:
    def cell(errors: list[float]) -> str:
        return f"{quantile(errors, 0.5):7.1%} {quantile(errors, 0.9):7.1%}"
    return (f"{label:<26} {len(rows):>5}  {cell([r.in_sample_error for r in rows])}  "
            f"{cell([r.held_out_error for r in rows])}")


def _block(title: str, rows: list, key) -> None:
    print(f"-- by {title}")
    for name in sorted({key(r) for r in rows}):
        print(_row(name, [r for r in rows if key(r) == name]))


def _coverage(label: str, rows: list) -> None:
    inside = [r.in_band for r in rows if r.in_band is not None]
    print(f"  {label:<24} {sum(inside):>3}/{len(inside):<3} = {sum(inside) / max(1, len(inside)):.0%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measurements", default=str(DEFAULT))
    parser.add_argument("--mlperf", default=str(MLPERF), help="validation-only records ('' = none)")
    parser.add_argument("--write-bands", metavar="YAML", help="write the held-out error bands (hetc/data/error-bands.yaml)")
    args = parser.parse_args(argv)
    db = load_hwdb()
    records = load_measurements(args.measurements, db)
    extra = load_measurements(args.mlperf, db) if args.mlperf else []
    started = time.perf_counter()
    results = cross_validate(records, db, extra)
    elapsed = time.perf_counter() - started
    calibration = [r for r in results if r.calibration]
    validation = [r for r in results if not r.calibration]

    print(f"{len(records)} records from {Path(args.measurements).name}, {len({r.device_id for r in records})} devices"
          + (f"; {len(extra)} validation records from {Path(args.mlperf).name}" if extra else "")
          + f" ({elapsed:.0f} s)\n")
    print(f"{'':<26} {'n':>5}  {'in-sample':^15}  {'leave-one-device-out':^15}")
    print(f"{'':<26} {'':>5}  {'median':>7} {'p90':>7}  {'median':>7} {'p90':>7}")
    _block("metric", calibration, lambda r: metric_group(r.record.metric))
    _block("device family", calibration, lambda r: device_family(r.record.device_id))
    _block("device", calibration, lambda r: r.record.device_id)
    print(_row("ALL", calibration))
    if validation:
        print("\nMLPerf (validation only: each record predicted by the fit without its device)")
        _block("scenario and family", validation, lambda r: f"{r.record.scenario} {device_family(r.record.device_id)}")
        for scenario in sorted({r.record.scenario for r in validation}):
            print(_row(f"ALL {scenario}", [r for r in validation if r.record.scenario == scenario]))

    print("\np10-p90 band coverage on held-out records (target ~80 %)")
    for name in sorted({metric_group(r.record.metric) for r in calibration}):
        _coverage(name, [r for r in calibration if metric_group(r.record.metric) == name])
    _coverage("all calibration records", calibration)
    for scenario in sorted({r.record.scenario for r in validation}):
        _coverage(f"MLPerf {scenario}", [r for r in validation if r.record.scenario == scenario])
    if args.write_bands:
        import yaml
        header = ("# p10-p90 error bands of the cost model: quantiles of log(measured / predicted) over held-out\n"
                  "# (leave-one-device-out) predictions of hetc/data/measured-llm.yaml, per metric: 'all' over\n"
                  "# every family, and per family with five records (widened to at least the 'all' band:\n"
                  "# hetc.model.calibrate.family_band). Written by bench/costmodel_accuracy.py --write-bands; read by\n"
                  "# hetc/model/bands.py.\n")
        Path(args.write_bands).write_text(header + yaml.safe_dump(band_table(results), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

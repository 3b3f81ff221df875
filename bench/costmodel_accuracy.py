"""Accuracy of the cost model against published measurements, in-sample and leave-one-device-out.

    python bench/costmodel_accuracy.py                       # hetc/data/measured-llm.yaml
    python bench/costmodel_accuracy.py --measurements FILE   # another file in the same format

In-sample: the model calibrated on every record predicts every record. Leave-one-device-out (LODO): for each
device, the model is calibrated on the other devices' records and predicts this device's records, as hetc
must for hardware nobody has measured. Printed per metric (TTFT, TBT, throughput) and per device family:
records, median and p90 |error|; then the share of held-out records whose measured value lies inside the
p10-p90 band the model gave them (bands from the other devices' held-out residuals: target about 80 %).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hetc.hwdb.loader import load_hwdb

from hetc.calibrate import band_table, cross_validate, device_family, load_measurements, metric_group, quantile

DEFAULT = Path(__file__).resolve().parent.parent / "hetc" / "data" / "measured-llm.yaml"


def _row(label: str, n: int, in_sample: list[float], held_out: list[float]) -> str:
    def cell(errors: list[float]) -> str:
        return f"{quantile(errors, 0.5):7.1%} {quantile(errors, 0.9):7.1%}"
    return f"{label:<22} {n:>5}  {cell(in_sample)}  {cell(held_out)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measurements", default=str(DEFAULT))
    parser.add_argument("--write-bands", metavar="YAML", help="write the held-out error bands (hetc/data/error-bands.yaml)")
    args = parser.parse_args(argv)
    db = load_hwdb()
    records = load_measurements(args.measurements, db)
    started = time.perf_counter()
    results = cross_validate(records, db)
    elapsed = time.perf_counter() - started

    header = f"{'':<22} {'n':>5}  {'in-sample':^15}  {'leave-one-device-out':^15}"
    print(f"{len(records)} records from {Path(args.measurements).name}, {len({r.device_id for r in records})} devices "
          f"({elapsed:.0f} s)\n")
    print(header)
    print(f"{'':<22} {'':>5}  {'median':>7} {'p90':>7}  {'median':>7} {'p90':>7}")

    def block(title: str, key) -> None:
        print(f"-- by {title}")
        for name in sorted({key(r) for r in results}):
            subset = [r for r in results if key(r) == name]
            print(_row(name, len(subset), [r.in_sample_error for r in subset], [r.held_out_error for r in subset]))

    block("metric", lambda r: metric_group(r.record.metric))
    block("device family", lambda r: device_family(r.record.device_id))
    block("device", lambda r: r.record.device_id)
    print(_row("ALL", len(results), [r.in_sample_error for r in results], [r.held_out_error for r in results]))
    inside = [r.in_band for r in results if r.in_band is not None]
    print(f"\np10-p90 band coverage on held-out records: {sum(inside)}/{len(inside)} = "
          f"{sum(inside) / max(1, len(inside)):.0%} (target ~80 %)")
    for name in sorted({metric_group(r.record.metric) for r in results}):
        subset = [r.in_band for r in results if metric_group(r.record.metric) == name and r.in_band is not None]
        print(f"  {name:<12} {sum(subset)}/{len(subset)} = {sum(subset) / max(1, len(subset)):.0%}")
    if args.write_bands:
        import yaml
        header = ("# p10-p90 error bands of the cost model: quantiles of log(measured / predicted) over held-out\n"
                  "# (leave-one-device-out) predictions of hetc/data/measured-llm.yaml, per metric and device family\n"
                  "# ('all' for families without five measured records). Written by bench/costmodel_accuracy.py\n"
                  "# --write-bands; read by hetc/bands.py.\n")
        Path(args.write_bands).write_text(header + yaml.safe_dump(band_table(results), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

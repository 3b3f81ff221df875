"""Fit the cost model's efficiency factors to measured records and write an hwdb overlay.

A measurements file (tests/data/calibration_validation.yaml documents the format) holds `models:` (extra
architectures; presets are known already) and `records:`, each a setup (model, device, precision, tp, batch,
input/output tokens) with one measured metric: ttft_ms, tbt_ms, output_tokens_per_s or
output_tokens_per_s_per_device. Per device, `fit` chooses eff_bw and eff_compute (for each compute precision
the records use) minimising the squared log error of the predictions; the error is the median of
|predicted - measured| / measured, reported before and after (and on held-out records with split: train).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from hetc.errors import Diagnostic, HetcError, Loc
from hetc.hwdb.loader import HardwareDB, read_yaml_locs
from hetc.hwdb.schema import Device
from hetc.model import costmodel as cm
from hetc.model.models import ARCH_FIELDS, ModelArch, resolve_preset

METRICS = ("ttft_ms", "tbt_ms", "output_tokens_per_s", "output_tokens_per_s_per_device")
EFF_BOUNDS = (0.05, 1.0)
# Prior on each factor (a penalty log(x / default) / PRIOR_LOG_SD, i.e. a log-normal prior around the
# documented default): with few records per device an unpenalised fit chases one engine's quirks
# (static batching, batch caps) and gets worse on held-out records. 0.5 lets a factor move by about
# 1.6x per standard deviation.
PRIOR_LOG_SD = 0.5


@dataclass(frozen=True)
class Record:
    id: str
    arch: ModelArch
    device_id: str
    precision: str
    kv_precision: str
    tp: int | str  # an int, or "best" (the valid degree with the most tokens/s per device)
    batch: int | str  # an int, or "max" (largest that fits)
    input_tokens: int
    output_tokens: int
    metric: str
    value: float
    split: str
    source: str
    loc: Loc
    engine: str = "vllm"
    tbt_limit_ms: float | None = None  # batch "max" also keeps the step time under this (MLPerf Server TPOT)
    scenario: str = ""  # where the record comes from beyond its metric (MLPerf: offline, server)


def load_measurements(path: str | Path, db: HardwareDB) -> list[Record]:
    data, locs = read_yaml_locs(Path(path))
    file = str(path)
    errors: list[Diagnostic] = []

    def err(where: tuple, message: str) -> None:
        errors.append(Diagnostic(locs.get(where, Loc(file)), message))

    if not isinstance(data, dict) or not isinstance(data.get("records"), list):
        raise HetcError([Diagnostic(Loc(file), "expected a mapping with a `records:` list")])
    archs: dict[str, ModelArch] = {}
    for name, spec in (data.get("models") or {}).items():
        if not isinstance(spec, dict) or set(spec) - set(ARCH_FIELDS):
            err(("models", name), f"model {name!r}: expected fields among {', '.join(ARCH_FIELDS)}")
            continue
        try:
            archs[name] = ModelArch(name=name, **spec)
        except TypeError as exc:
            err(("models", name), f"model {name!r}: {exc}")
    records: list[Record] = []
    for index, raw in enumerate(data["records"]):
        where = ("records", index)
        loc = locs.get(where, Loc(file))
        if not isinstance(raw, dict):
            err(where, "expected a record mapping")
            continue
        missing = [k for k in ("id", "model", "device", "precision", "tp", "batch", "input_tokens", "metric", "value",
                               "source") if k not in raw]
        if missing:
            err(where, f"record is missing {', '.join(missing)}")
            continue
        arch = archs.get(raw["model"]) or resolve_preset(str(raw["model"]))
        if arch is None:
            err(where + ("model",), f"unknown model {raw['model']!r}: define it under models: or use a preset")
            continue
        dev_id = db.resolve(str(raw["device"]))
        if dev_id is None:
            err(where + ("device",), f"unknown device {raw['device']!r}")
            continue
        if raw["metric"] not in METRICS:
            err(where + ("metric",), f"expected one of {', '.join(METRICS)}, got {raw['metric']!r}")
            continue
        value = raw["value"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            err(where + ("value",), f"expected a positive number, got {value!r}")
            continue
        batch = raw["batch"]
        if not (batch == "max" or (isinstance(batch, int) and batch >= 1)):
            err(where + ("batch",), f"expected a positive integer or 'max', got {batch!r}")
            continue
        tp = raw["tp"]
        if not (tp == "best" or (isinstance(tp, int) and tp >= 1)):
            err(where + ("tp",), f"expected a positive integer or 'best', got {tp!r}")
            continue
        limit = raw.get("tbt_limit_ms")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0):
            err(where + ("tbt_limit_ms",), f"expected a positive number of milliseconds, got {limit!r}")
            continue
        records.append(Record(
            id=str(raw["id"]), arch=arch, device_id=dev_id, precision=str(raw["precision"]),
            kv_precision=str(raw.get("kv_precision", raw["precision"])), tp=tp, batch=batch,
            input_tokens=int(raw["input_tokens"]), output_tokens=int(raw.get("output_tokens") or 1),
            metric=raw["metric"], value=float(value), split=str(raw.get("split", "train")),
            source=str(raw["source"]), loc=loc, engine=str(raw.get("engine", "vllm")),
            tbt_limit_ms=None if limit is None else float(limit), scenario=str(raw.get("scenario", ""))))
    if errors:
        raise HetcError(errors)
    return records


def predict(record: Record, device: Device, tuning: cm.Tuning | None = None) -> float:
    """The model's value for the record's metric, under the record's engine (tp "best": the degree a
    submitter tuning for throughput per device would pick)."""
    if record.tp != "best":
        return _predict_at(record, device, record.tp, tuning)
    degrees = [tp for tp in cm.valid_tp(device, record.arch)
               if cm.min_tp(record.arch, device, record.precision, record.kv_precision, engine=record.engine) <= tp]
    return max(_predict_at(record, device, tp, tuning) for tp in degrees or [device.max_tp])


def _predict_at(record: Record, device: Device, tp: int, tuning: cm.Tuning | None) -> float:
    arch, p, kv, eng = record.arch, record.precision, record.kv_precision, record.engine
    if record.metric == "ttft_ms":
        batch = 1 if record.batch == "max" else record.batch
        return cm.prefill(arch, device, p, tp, 1, batch, record.input_tokens, kv, eng, tuning).latency_s * 1e3
    batch = record.batch
    if batch == "max":
        limit_s = None if record.tbt_limit_ms is None else record.tbt_limit_ms / 1e3
        batch = max(1, cm.max_batch(arch, device, p, tp, 1, record.input_tokens, record.output_tokens, kv,
                                    tbt_s=limit_s, engine=eng, tuning=tuning))
    if record.metric == "tbt_ms":
        return cm.decode(arch, device, p, kv, tp, 1, batch, record.input_tokens, record.output_tokens, eng,
                         tuning).tbt_s * 1e3
    est = cm.serve(arch, device, p, kv, tp, 1, batch, record.input_tokens, record.output_tokens, eng, tuning)
    return est.tokens_per_s if record.metric == "output_tokens_per_s" else est.tokens_per_s_per_device


def relative_errors(records: list[Record], devices: dict[str, Device], tuning: cm.Tuning | None = None) -> list[float]:
    return [abs(predict(r, devices[r.device_id], tuning) - r.value) / r.value for r in records]


def median(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


@dataclass
class CalibrationResult:
    before: dict[str, Device]
    after: dict[str, Device]
    records: list[Record]
    train: list[Record]
    fitted: dict[str, dict[str, float]] = field(default_factory=dict)  # device -> parameter -> value

    def errors(self, which: str, subset: list[Record]) -> float:
        return median(relative_errors(subset, self.before if which == "before" else self.after))

    def summary(self) -> str:
        held_out = [r for r in self.records if r not in self.train]
        lines = [f"calibrated {len(self.fitted)} device(s) on {len(self.train)} of {len(self.records)} records"]
        for dev_id, params in sorted(self.fitted.items()):
            lines.append(f"  {dev_id}: " + ", ".join(f"{k}={v:.3f}" for k, v in sorted(params.items())))
        lines.append(f"median |error| on fitted records: before {self.errors('before', self.train):.1%}, "
                     f"after {self.errors('after', self.train):.1%}")
        if held_out:
            lines.append(f"median |error| on held-out records: before {self.errors('before', held_out):.1%}, "
                         f"after {self.errors('after', held_out):.1%}")
        return "\n".join(lines)


def _parameters(records: list[Record], device: Device) -> list[str]:
    """eff_bw plus eff_compute.<precision> for every compute precision these records exercise."""
    names = {"eff_bw"}
    for r in records:
        names.add("eff_compute." + cm.compute_rate(device, r.precision)[1])
    return sorted(names)


def _with(device: Device, names: list[str], values: list[float]) -> Device:
    eff_compute = dict(device.eff_compute)
    eff_bw = device.eff_bw
    for name, value in zip(names, values, strict=True):
        if name == "eff_bw":
            eff_bw = float(value)
        else:
            eff_compute[name.split(".", 1)[1]] = float(value)
    return replace(device, eff_compute=eff_compute, eff_bw=eff_bw)


def fit(records: list[Record], db: HardwareDB, train_only: bool = False) -> CalibrationResult:
    from scipy.optimize import least_squares  # heavy: only when calibrating

    train = [r for r in records if r.split == "train"] if train_only else list(records)
    before = dict(db.devices)
    after = dict(db.devices)
    fitted: dict[str, dict[str, float]] = {}
    for dev_id in sorted({r.device_id for r in train}):
        subset = [r for r in train if r.device_id == dev_id]
        device = db.devices[dev_id]
        names = _parameters(subset, device)
        start = [device.eff_bw if n == "eff_bw" else device.eff_compute[n.split(".", 1)[1]] for n in names]
        start = [min(max(s, EFF_BOUNDS[0]), EFF_BOUNDS[1]) for s in start]

        def residuals(values, subset=subset, device=device, names=names, start=start):
            trial = _with(device, names, list(values))
            fit_terms = [math.log(predict(r, trial) / r.value) for r in subset]
            prior_terms = [math.log(v / s) / PRIOR_LOG_SD for v, s in zip(values, start, strict=True)]
            return fit_terms + prior_terms

        solution = least_squares(residuals, start, bounds=([EFF_BOUNDS[0]] * len(names), [EFF_BOUNDS[1]] * len(names)),
                                 x_scale="jac", diff_step=1e-3)
        values = [round(float(v), 3) for v in solution.x]
        after[dev_id] = _with(device, names, values)
        fitted[dev_id] = dict(zip(names, values, strict=True))
    return CalibrationResult(before=before, after=after, records=records, train=train, fitted=fitted)


def write_overlay(result: CalibrationResult, output: str | Path, measurements: str | Path) -> None:
    """An --hwdb-extra file overriding eff_compute / eff_bw of every fitted device, with their source."""
    devices: list[dict[str, Any]] = []
    for dev_id in sorted(result.fitted):
        device = result.after[dev_id]
        n = sum(1 for r in result.train if r.device_id == dev_id)
        note = (f"fitted by hetc calibrate on {n} records of {Path(measurements).name}; median error of those "
                f"records {median(relative_errors([r for r in result.train if r.device_id == dev_id], result.before)):.1%}"
                f" before, {median(relative_errors([r for r in result.train if r.device_id == dev_id], result.after)):.1%} after")
        source = {"basis": "calibrated", "refs": sorted({r.source for r in result.train if r.device_id == dev_id}),
                  "note": note}
        devices.append({"id": dev_id, "eff_compute": dict(sorted(device.eff_compute.items())),
                        "eff_bw": device.eff_bw, "sources": {"eff_compute": source, "eff_bw": source}})
    header = "# hwdb overlay written by `hetc calibrate`; use it with --hwdb-extra.\n"
    from hetc.bundle.writer import write_file

    write_file(output, (header + yaml.safe_dump({"devices": devices}, sort_keys=False, width=120)).encode())


# ---------------------------------------------------------------------------------------------- shared fit
# What fit_shared may move, and how far: (lower, upper) bounds on each costmodel.Tuning field. The prior
# pulls each towards its default (log-normal, PRIOR_LOG_SD) so that a field the records barely touch
# (gemm_4 has few FP4 records) stays near its documented value.
SHARED_BOUNDS = {
    "gemm_16": (0.3, 1.6), "gemm_8": (0.3, 1.6), "gemm_4": (0.3, 1.6), "bw": (0.6, 1.2),
    "attention_bw": (0.2, 1.0), "attention_compute": (0.1, 1.0), "gemm_half_m": (1.0, 512.0),
    "overhead_scale": (0.2, 10.0), "allreduce_s": (1e-6, 200e-6), "seq_overhead_scale": (0.05, 20.0),
    "allreduce_bw": (0.1, 1.0),
}


# Wider priors for fields whose default is a guess within an order of magnitude rather than a documented
# value: the engines' host time per sequence (no engine publishes it; engines.py's seq_overhead_s).
SHARED_PRIOR_LOG_SD = {"seq_overhead_scale": 5.0}

# Where fit_shared starts and what its prior pulls towards: the uncalibrated model (hwdb efficiencies as
# they are; attention at 70 % of the GEMMs' bandwidth and 60 % of their FLOP rate, half efficiency at 64
# rows, the engines' overheads as listed, 10 us per all-reduce and 80 % of the link's bandwidth for its
# payload (estimate: large NCCL all-reduces on NVLink report bus bandwidths of about 80 % of the link)).
# Never the fitted defaults in costmodel.TUNING: a fold of the cross-validation must not start from a fit
# that saw its held-out device.
PRIOR_TUNING = cm.Tuning(gemm_16=1.0, gemm_8=1.0, gemm_4=1.0, bw=1.0, attention_bw=0.7, attention_compute=0.6,
                         gemm_half_m=64.0, overhead_scale=1.0, allreduce_s=10e-6,
                         seq_overhead_scale=1.0, allreduce_bw=0.8)


def fit_shared(records: list[Record], db: HardwareDB, start: cm.Tuning = PRIOR_TUNING) -> cm.Tuning:
    """The Tuning (parameters shared by every device) minimising the squared log error of `records`."""
    from dataclasses import asdict

    from scipy.optimize import least_squares  # heavy: only when calibrating

    names = sorted(SHARED_BOUNDS)
    x0 = [math.log(min(max(asdict(start)[n], SHARED_BOUNDS[n][0]), SHARED_BOUNDS[n][1])) for n in names]
    low = [math.log(SHARED_BOUNDS[n][0]) for n in names]
    high = [math.log(SHARED_BOUNDS[n][1]) for n in names]

    def tuning_of(x) -> cm.Tuning:
        return replace(start, **{n: float(math.exp(v)) for n, v in zip(names, x, strict=True)})

    def residuals(x):
        tuning = tuning_of(x)
        fit_terms = [math.log(predict(r, db.devices[r.device_id], tuning) / r.value) for r in records]
        return fit_terms + [(v - v0) / SHARED_PRIOR_LOG_SD.get(n, PRIOR_LOG_SD)
                            for n, v, v0 in zip(names, x, x0, strict=True)]

    solution = least_squares(residuals, x0, bounds=(low, high), diff_step=1e-3, max_nfev=400)
    return replace(start, **{n: float(f"{math.exp(v):.4g}") for n, v in zip(names, solution.x, strict=True)})


# ---------------------------------------------------------------------------------------------- cross-validation
# Device families: devices of one generation share kernels and software maturity, so residuals are pooled
# per family for the error bands and reported per family by bench/costmodel_accuracy.py.
_FAMILIES = (("nvidia-a100", "nvidia-ampere"), ("nvidia-a40", "nvidia-ampere"), ("nvidia-h1", "nvidia-hopper"),
             ("nvidia-h200", "nvidia-hopper"), ("nvidia-gh200", "nvidia-hopper"), ("nvidia-b", "nvidia-blackwell"),
             ("nvidia-gb", "nvidia-blackwell"), ("nvidia-l4", "nvidia-ada"), ("amd-mi", "amd-cdna3"),
             ("intel-gaudi", "intel-gaudi"), ("intel-xeon", "cpu"), ("amd-epyc", "cpu"))


def device_family(device_id: str) -> str:
    for prefix, family in _FAMILIES:
        if device_id.startswith(prefix):
            return family
    return device_id


def metric_group(metric: str) -> str:
    """TTFT, TBT or throughput (per replica and per device are one metric)."""
    return {"ttft_ms": "TTFT", "tbt_ms": "TBT"}.get(metric, "throughput")


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile (nan for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(math.floor(pos))
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class Checked:
    """One record predicted in-sample and by a model calibrated without its device."""

    record: Record
    in_sample: float
    held_out: float
    band: tuple[float, float] | None  # p10-p90 of the held-out prediction
    calibration: bool = True  # False: a validation-only record (predicted, never fitted)

    @property
    def in_sample_error(self) -> float:
        return abs(self.in_sample - self.record.value) / self.record.value

    @property
    def held_out_error(self) -> float:
        return abs(self.held_out - self.record.value) / self.record.value

    @property
    def in_band(self) -> bool | None:
        return None if self.band is None else self.band[0] <= self.record.value <= self.band[1]


# A band needs this many residuals behind it; fewer fall back to a wider pool (docs/cost-model.md#error-bands).
MIN_BAND_RECORDS = 5


def _log_ratio_band(ratios: list[float]) -> tuple[float, float] | None:
    """p10 and p90 of log(measured / predicted)."""
    if len(ratios) < MIN_BAND_RECORDS:
        return None
    return quantile(ratios, 0.1), quantile(ratios, 0.9)


def cross_validate(records: list[Record], db: HardwareDB, extra: list[Record] | None = None) -> list[Checked]:
    """In-sample and leave-one-device-out predictions for every record, with held-out p10-p90 bands.

    `records` calibrate; `extra` records (e.g. MLPerf results) are only predicted: each by the fit without
    its device, like the held-out records. The band of a held-out record comes from the held-out residuals
    of the *other* devices' calibration records (`held_out_band`), so it is never fitted to the record it
    is checked against."""
    extra = list(extra or [])
    whole = fit_shared(records, db)
    held: dict[int, float] = {}
    for dev_id in sorted({r.device_id for r in records + extra}):
        own = [r for r in records if r.device_id == dev_id]
        tuning = fit_shared([r for r in records if r.device_id != dev_id], db) if own else whole
        for index, r in enumerate(records + extra):
            if r.device_id == dev_id:
                held[index] = predict(r, db.devices[dev_id], tuning)
    rows = [Checked(r, predict(r, db.devices[r.device_id], whole), held[i], None, i < len(records))
            for i, r in enumerate(records + extra)]
    return [replace(c, band=held_out_band(c, rows)) for c in rows]


def _residuals(pool: list[Checked]) -> list[float]:
    return [math.log(c.record.value / c.held_out) for c in pool]


def family_band(family_residuals: list[float], metric_residuals: list[float]) -> tuple[float, float] | None:
    """p10-p90 of log(measured / predicted) for a device of a family: the metric's band over every family,
    widened to the family's own p10-p90 when it has MIN_BAND_RECORDS residuals. The family's residuals show
    its bias; the all-family spread shows how far one more device can stray from it (a family's residuals
    mostly come from one or two devices, so alone they give too narrow a band)."""
    band = _log_ratio_band(metric_residuals)
    own = _log_ratio_band(family_residuals)
    if band is None or own is None:
        return band or own
    return min(band[0], own[0]), max(band[1], own[1])


def held_out_band(checked: Checked, rows: list[Checked]) -> tuple[float, float] | None:
    """The band a held-out prediction gets from the calibration records of the *other* devices, by the rule
    of the shipped table (family_band; every metric when its metric has too few records)."""
    others = [c for c in rows if c.calibration and c.record.device_id != checked.record.device_id]
    group, family = metric_group(checked.record.metric), device_family(checked.record.device_id)
    same_metric = [c for c in others if metric_group(c.record.metric) == group]
    if len(same_metric) < MIN_BAND_RECORDS:
        same_metric = others
    same_family = [c for c in same_metric if device_family(c.record.device_id) == family]
    band = family_band(_residuals(same_family), _residuals(same_metric))
    return None if band is None else (checked.held_out * math.exp(band[0]), checked.held_out * math.exp(band[1]))


def band_table(checked: list[Checked]) -> dict[str, dict[str, list[float]]]:
    """p10 and p90 of log(measured / predicted) of the held-out predictions of calibration records, per
    metric group: "all" over every family (what a device of a family without a row gets) and a row per
    family with MIN_BAND_RECORDS records (family_band)."""
    checked = [c for c in checked if c.calibration]
    table: dict[str, dict[str, list[float]]] = {}
    for group in sorted({metric_group(c.record.metric) for c in checked}):
        rows = [c for c in checked if metric_group(c.record.metric) == group]
        everyone = _log_ratio_band(_residuals(rows))
        table[group] = {} if everyone is None else {"all": [round(everyone[0], 4), round(everyone[1], 4)]}
        for family in sorted({device_family(c.record.device_id) for c in rows}):
            own = [c for c in rows if device_family(c.record.device_id) == family]
            band = family_band(_residuals(own), _residuals(rows))
            if band is not None and len(own) >= MIN_BAND_RECORDS:
                table[group][family] = [round(band[0], 4), round(band[1], 4)]
    return table

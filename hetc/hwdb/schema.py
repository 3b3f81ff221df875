"""The hardware database schema: the Device record, its fields, units, ranges and source rules.

One YAML mapping describes one device class. Field names carry their unit (`_gb`, `_gbs`, `_us`, `_w`,
`_usd`, `_usd_per_hour`); a value is either a plain number in that unit or a string with an explicit unit
("3.35 TB/s", "400 Gb/s", "1.2 kW"), converted here. Every non-null number must name where it comes from
under `sources:` (a basis and references). docs/hwdb.md documents the format.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from hetc.errors import Diagnostic, Loc

PRECISIONS = ("fp32", "bf16", "fp16", "fp8", "int8", "fp4")
KINDS = ("gpu", "accelerator", "cpu")
# Vendors plan.json may name (hetc/schemas/plan.schema.json, stage.vendor): a device of another vendor would
# give plans that fail their own schema, so it is rejected here, where the file and line are known.
VENDORS = ("nvidia", "amd", "intel", "google")
# Code generation targets. `rocm` = AMD GPUs: placeable, but hetc has no ROCm code generator yet.
TARGETS = ("cpu", "cuda", "gaudi", "rocm")
SM_VERSIONS = ("sm_80", "sm_86", "sm_89", "sm_90", "sm_100")
GAUDI_GENERATIONS = ("gaudi2", "gaudi3")
SOURCE_BASES = ("vendor", "vendor_half_of_sparse", "measured", "derived", "estimate", "third_party", "paper",
                "calibrated", "user")

# as plan.schema.json's device_id; no '+', which joins device classes in a plan's `pd` summary
_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")

# unit -> factor to the field's canonical unit, per dimension. Case matters: Gb (bits) vs GB (bytes).
UNITS: dict[str, dict[str, float]] = {
    "tflops": {"TFLOPS": 1.0, "TOPS": 1.0, "PFLOPS": 1000.0, "GFLOPS": 1e-3},
    "gb": {"GB": 1.0, "TB": 1000.0, "MB": 1e-3, "GiB": 1.073741824, "TiB": 1099.511627776},
    "gbs": {"GB/s": 1.0, "TB/s": 1000.0, "MB/s": 1e-3, "GiB/s": 1.073741824, "Gb/s": 0.125, "Gbps": 0.125,
            "Tb/s": 125.0},
    "us": {"us": 1.0, "µs": 1.0, "ns": 1e-3, "ms": 1000.0, "s": 1e6},
    "w": {"W": 1.0, "kW": 1000.0},
    "usd": {"USD": 1.0, "$": 1.0},
    "usd_per_hour": {"USD/h": 1.0, "$/h": 1.0},
}
_UNIT_NAME = {"tflops": "TFLOPS", "gb": "GB", "gbs": "GB/s", "us": "us", "w": "W", "usd": "USD",
              "usd_per_hour": "USD/h"}


@dataclass(frozen=True)
class NumberField:
    dim: str  # key of UNITS, or "count" / "fraction"
    lo: float  # exclusive lower bound unless lo_inclusive
    hi: float  # inclusive upper bound (anything above is absurd for one device)
    required: bool = True  # False: may be null / absent
    lo_inclusive: bool = False


# Top-level numeric fields. Bounds reject typos (a missing decimal point, a unit mix-up), not real devices.
NUMBER_FIELDS: dict[str, NumberField] = {
    "mem_gb": NumberField("gb", 0, 100_000),
    "mem_bw_gbs": NumberField("gbs", 0, 200_000),
    "scaleup_gbs": NumberField("gbs", 0, 100_000, required=False),
    "scaleup_latency_us": NumberField("us", 0, 1e6, required=False, lo_inclusive=True),
    "scaleout_gbs": NumberField("gbs", 0, 10_000),
    "scaleout_latency_us": NumberField("us", 0, 1e6, lo_inclusive=True),
    "devices_per_chassis": NumberField("count", 0, 1024),
    "cores": NumberField("count", 0, 4096, required=False),  # CPUs: physical cores per socket
    "tdp_w": NumberField("w", 0, 20_000),
    "capex_usd": NumberField("usd", 0, 10_000_000, required=False),
    "cloud_usd_per_hour": NumberField("usd_per_hour", 0, 1000, required=False),
    "opex_usd_per_hour": NumberField("usd_per_hour", 0, 1000, required=False, lo_inclusive=True),
    "eff_bw": NumberField("fraction", 0, 1),
    # host link (PCIe or chip-to-chip) per direction: KV caches staged through host memory cross it
    "host_link_gbs": NumberField("gbs", 0, 10_000, required=False),
}
PEAK_FIELD = NumberField("tflops", 0, 1_000_000, required=False)
EFF_FIELD = NumberField("fraction", 0, 1)
STRING_FIELDS = ("id", "name", "vendor", "kind", "target", "sm", "gaudi_generation", "scaleup_link",
                 "scaleout_link", "host_link", "inherits", "notes")
ALL_FIELDS = frozenset(STRING_FIELDS) | frozenset(NUMBER_FIELDS) | {"aliases", "peak_tflops", "eff_compute",
                                                                       "sources"}
# Fields whose (non-null) value must be backed by a sources: entry.
SOURCED_FIELDS = ("peak_tflops", "eff_compute", *NUMBER_FIELDS)


@dataclass(frozen=True)
class Device:
    """One device class. Units are in the names; bandwidths are per direction."""

    id: str
    name: str
    aliases: tuple[str, ...]
    vendor: str
    kind: str  # gpu | accelerator | cpu
    target: str  # cpu | cuda | gaudi | rocm
    sm: str | None  # NVIDIA SM version (sm_90 ...)
    gaudi_generation: str | None
    peak_tflops: dict[str, float | None]  # dense; every name in PRECISIONS present (None = unsupported)
    mem_gb: float
    mem_bw_gbs: float
    scaleup_link: str | None
    scaleup_gbs: float | None  # None: no scale-up link, so no tensor parallelism
    scaleup_latency_us: float | None
    scaleout_link: str | None
    scaleout_gbs: float
    scaleout_latency_us: float
    devices_per_chassis: int
    tdp_w: float
    capex_usd: float | None
    cloud_usd_per_hour: float | None
    opex_usd_per_hour: float | None  # a fixed operating cost per hour (the paper's Table 5 column)
    eff_compute: dict[str, float]  # achievable / peak, per precision
    eff_bw: float  # achievable / peak memory bandwidth
    cores: int | None = None  # CPUs: physical cores per socket (general-purpose work runs one task per core)
    host_link: str | None = None  # e.g. pcie5-x16; None for CPUs (they are the host)
    host_link_gbs: float | None = None  # per direction, as the host runs it
    notes: str = ""
    sources: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    source_file: str = field(default="", compare=False)

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def max_tp(self) -> int:
        """Largest tensor-parallel degree: TP stays inside one chassis (one scale-up domain)."""
        return self.devices_per_chassis if self.scaleup_gbs else 1

    def supports(self, precision: str) -> bool:
        return self.peak_tflops.get(precision) is not None

    def has_price(self, pricing: str) -> bool:
        return (self.capex_usd if pricing == "ownership" else self.cloud_usd_per_hour) is not None


class FieldErrors:
    """Collects diagnostics for one device, each at the location of the offending field."""

    def __init__(self, locs: dict[tuple, Loc], default: Loc):
        self.locs = locs
        self.default = default
        self.items: list[Diagnostic] = []

    def loc(self, path: tuple) -> Loc:
        while path and path not in self.locs:
            path = path[:-1]
        return self.locs.get(path, self.default)

    def add(self, path: tuple, message: str) -> None:
        name = ".".join(str(p) for p in path)
        self.items.append(Diagnostic(self.loc(path), f"field '{name}': {message}"))


def parse_number(value: Any, spec: NumberField, path: tuple, errors: FieldErrors) -> float | int | None:
    """A number in the field's unit, or None (null). Reports a bad value and returns None."""
    if value is None:
        if spec.required:
            errors.add(path, "is required (a number), got null")
        return None
    if isinstance(value, bool):
        errors.add(path, f"expected a number, got {value!r}")
        return None
    if isinstance(value, str):
        number = _parse_with_unit(value, spec, path, errors)
        if number is None:
            return None
    elif isinstance(value, (int, float)):
        try:
            number = float(value)
        except OverflowError:  # an integer with hundreds of digits
            errors.add(path, f"{_short(value)} is implausibly large (limit {spec.hi:g}{_unit_suffix(spec)}); "
                             "check the unit")
            return None
    else:
        errors.add(path, f"expected a number, got {type(value).__name__}")
        return None
    if number != number or number in (float("inf"), float("-inf")):
        errors.add(path, f"expected a finite number, got {value!r}")
        return None
    if spec.dim == "count":
        if number != int(number):
            errors.add(path, f"expected a whole number, got {value!r}")
            return None
        number = int(number)
    low_ok = number >= spec.lo if spec.lo_inclusive else number > spec.lo
    if not low_ok:
        relation = ">=" if spec.lo_inclusive else ">"
        errors.add(path, f"must be {relation} {spec.lo:g}{_unit_suffix(spec)}, got {value!r}")
        return None
    if number > spec.hi:
        errors.add(path, f"{_short(value)} is implausibly large (limit {spec.hi:g}{_unit_suffix(spec)}); check the unit")
        return None
    return number


def _short(value: Any) -> str:
    """A value for a message, at most 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def _unit_suffix(spec: NumberField) -> str:
    return f" {_UNIT_NAME[spec.dim]}" if spec.dim in _UNIT_NAME else ""


def _parse_with_unit(text: str, spec: NumberField, path: tuple, errors: FieldErrors) -> float | None:
    match = re.fullmatch(r"\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(\S*)\s*", text)
    units = UNITS.get(spec.dim, {})
    expected = f"a number in {_UNIT_NAME[spec.dim]}" if spec.dim in _UNIT_NAME else "a number"
    if units:
        expected += " or a string with one of the units " + ", ".join(units)
    if not match:
        errors.add(path, f"expected {expected}, got {text!r}")
        return None
    number, unit = float(match.group(1)), match.group(2)
    if not unit:
        return number
    if unit not in units:
        errors.add(path, f"bad unit {unit!r}: expected {expected}")
        return None
    return number * units[unit]


def check_sources(raw_sources: Any, device_values: dict[str, Any], errors: FieldErrors) -> dict[str, Any]:
    """Every sourced field with a non-null value needs {basis, refs: [...]} under sources:."""
    if raw_sources is None:
        raw_sources = {}
    if not isinstance(raw_sources, dict):
        errors.add(("sources",), "expected a mapping from field name to {basis, refs}")
        return {}
    for name, entry in raw_sources.items():
        path = ("sources", name)
        if name not in SOURCED_FIELDS:
            errors.add(path, f"unknown field; sources may name: {', '.join(SOURCED_FIELDS)}")
            continue
        if not isinstance(entry, dict):
            errors.add(path, "expected {basis: ..., refs: [...]}")
            continue
        unknown = sorted(set(entry) - {"basis", "refs", "note"})
        if unknown:
            errors.add(path + (unknown[0],), "unknown key; expected basis, refs, note")
        if entry.get("basis") not in SOURCE_BASES:
            errors.add(path + ("basis",), f"expected one of {', '.join(SOURCE_BASES)}, got {entry.get('basis')!r}")
        refs = entry.get("refs")
        if not isinstance(refs, list) or not refs or not all(isinstance(r, str) and r.strip() for r in refs):
            errors.add(path + ("refs",), "expected a non-empty list of references (URLs or documents)")
    for name in SOURCED_FIELDS:
        value = device_values.get(name)
        has_value = any(v is not None for v in value.values()) if isinstance(value, dict) else value is not None
        if has_value and name not in raw_sources:
            errors.add((name,), "has no source: add sources." + name + " with basis and refs")
    return raw_sources


def build_device(raw: dict[str, Any], errors: FieldErrors, source_file: str) -> Device | None:
    """Validate one merged device mapping; None when any error was reported."""
    before = len(errors.items)
    for key in sorted(set(raw) - ALL_FIELDS):
        errors.add((key,), "unknown field (see docs/hwdb.md for the schema)")

    def text(name: str, required: bool = False, choices: tuple[str, ...] | None = None) -> str | None:
        value = raw.get(name)
        if value is None:
            if required:
                errors.add((name,), "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            errors.add((name,), f"expected a non-empty string, got {value!r}")
            return None
        if choices and value not in choices:
            errors.add((name,), f"expected one of {', '.join(choices)}, got {value!r}")
            return None
        return value

    dev_id = text("id", required=True)
    if dev_id and not _ID_RE.match(dev_id):
        errors.add(("id",), "expected a lower-case vendor-model id like nvidia-h100-sxm (at most 64 of a-z 0-9 _ . -), "
                            f"got {_short(dev_id)}")
    kind = text("kind", required=True, choices=KINDS)
    target = text("target", required=True, choices=TARGETS)
    vendor = text("vendor", required=True, choices=VENDORS)
    sm = text("sm", choices=SM_VERSIONS)
    gaudi_gen = text("gaudi_generation", choices=GAUDI_GENERATIONS)
    if target == "cuda" and raw.get("sm") is None:
        errors.add(("sm",), f"is required for target cuda (one of {', '.join(SM_VERSIONS)})")
    if target == "gaudi" and gaudi_gen is None:
        errors.add(("gaudi_generation",), f"is required for target gaudi (one of {', '.join(GAUDI_GENERATIONS)})")

    aliases = raw.get("aliases") or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        errors.add(("aliases",), "expected a list of strings")
        aliases = []

    peak = _precision_map(raw.get("peak_tflops"), "peak_tflops", PEAK_FIELD, errors, required=True)
    if peak is not None and not any(v is not None for v in peak.values()):
        errors.add(("peak_tflops",), "needs at least one supported precision")
    eff = _precision_map(raw.get("eff_compute"), "eff_compute", EFF_FIELD, errors, required=True)
    if peak is not None and eff is not None:
        for precision, value in peak.items():
            if value is not None and eff.get(precision) is None:
                errors.add(("eff_compute", precision), f"missing: peak_tflops.{precision} is given, so its "
                                                       "compute efficiency must be too")
    numbers = {name: parse_number(raw.get(name), spec, (name,), errors) for name, spec in NUMBER_FIELDS.items()}
    if numbers["scaleup_gbs"] is not None and numbers["scaleup_latency_us"] is None:
        errors.add(("scaleup_latency_us",), "is required when scaleup_gbs is given")
    sources = check_sources(raw.get("sources"), {**numbers, "peak_tflops": peak, "eff_compute": eff}, errors)
    if len(errors.items) > before:
        return None
    assert dev_id and kind and target and vendor and peak is not None and eff is not None
    return Device(
        id=dev_id, name=text("name") or dev_id, aliases=tuple(sorted({a.strip().lower() for a in aliases})),
        vendor=vendor, kind=kind, target=target, sm=sm, gaudi_generation=gaudi_gen,
        peak_tflops={p: peak.get(p) for p in PRECISIONS},
        mem_gb=numbers["mem_gb"], mem_bw_gbs=numbers["mem_bw_gbs"],
        scaleup_link=text("scaleup_link"), scaleup_gbs=numbers["scaleup_gbs"],
        scaleup_latency_us=numbers["scaleup_latency_us"], scaleout_link=text("scaleout_link"),
        scaleout_gbs=numbers["scaleout_gbs"], scaleout_latency_us=numbers["scaleout_latency_us"],
        devices_per_chassis=numbers["devices_per_chassis"], tdp_w=numbers["tdp_w"],
        capex_usd=numbers["capex_usd"], cloud_usd_per_hour=numbers["cloud_usd_per_hour"],
        opex_usd_per_hour=numbers["opex_usd_per_hour"],
        eff_compute={p: v for p, v in sorted(eff.items()) if v is not None}, eff_bw=numbers["eff_bw"],
        cores=int(numbers["cores"]) if numbers["cores"] is not None else None, notes=text("notes") or "",
        host_link=text("host_link"), host_link_gbs=numbers["host_link_gbs"],
        sources=sources, source_file=source_file)


def _precision_map(value: Any, name: str, spec: NumberField, errors: FieldErrors,
                   required: bool) -> dict[str, float | None] | None:
    if value is None:
        if required:
            errors.add((name,), f"is required: a mapping from precision ({', '.join(PRECISIONS)}) to a number")
        return None
    if not isinstance(value, dict):
        errors.add((name,), f"expected a mapping from precision ({', '.join(PRECISIONS)}) to a number")
        return None
    out: dict[str, float | None] = {}
    for precision, number in value.items():
        if precision not in PRECISIONS:
            errors.add((name, precision), f"unknown precision; expected one of {', '.join(PRECISIONS)}")
            continue
        nullable = NumberField(spec.dim, spec.lo, spec.hi, required=False, lo_inclusive=spec.lo_inclusive)
        out[precision] = parse_number(number, nullable, (name, precision), errors)
    return out

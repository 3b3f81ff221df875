"""The uncertain inputs of a placement decision, their default distributions and sources, and the
`--uncertainty FILE` reader (docs/uncertainty.md lists every default with its source).

Every input is a multiplicative factor on a nominal value (the hwdb's price, the database's TCO setting, the
spec's request rate, the cost model's predicted time), with median 1:

- lognormal SIGMA: factor = exp(MU + SIGMA * z), z standard normal (MU = 0 but for the cost model's error,
  whose calibrated band may sit off centre);
- triangular [LOW, HIGH]: factor between LOW <= 1 <= HIGH, most likely 1.

Draws use the inverse CDF of one uniform stream per input, so changing one input's distribution never
changes another input's draws, and a zero spread gives exactly the nominal value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from hetc.errors import Diagnostic, HetcError, Loc

PHASES = ("prefill", "decode", "other")  # what a cost-model error factor applies to (the op's role)

# The cost model's error factor of a phase follows the calibrated p10-p90 band (hetc/model/bands.py, from
# hetc/data/error-bands.yaml) of one metric: prefill time the TTFT band; decode and other work (encoders,
# TTS, search, CPU work: no band of their own) the throughput band, whose errors set replica counts and so
# cost. A band is of log(measured / predicted); for a rate the time factor is its inverse.
PHASE_BAND_METRIC = {"prefill": ("ttft_ms", 1.0), "decode": ("tokens_per_s", -1.0), "other": ("tokens_per_s", -1.0)}
Z90 = 1.2815515655446004  # the standard normal's 90th percentile: a band's half-width in sigmas

SOURCES = {
    "model_error": "the cost model's calibrated p10-p90 error bands (held-out residuals, hetc/model/bands.py reading "
                   "hetc/data/error-bands.yaml), per device family and metric",
    "capex": "hwdb price notes: H100 SXM $25-30k, B200 $30-40k (hetc/hwdb/nvidia-*.yaml sources.capex_usd): "
             "about +-10-15 % around the listed price",
    "cloud_price": "hwdb price notes: H100 on-demand 1.49-6.98 $/h across providers "
                   "(hetc/hwdb/nvidia-h100-sxm.yaml sources.cloud_usd_per_hour), a 4.7x spread over ~4.4 sigma",
    "electricity": "hetc/hwdb/database.yaml sources.electricity_usd_per_kwh: 0.06-0.12 $/kWh industrial / "
                   "colocation around the default 0.08",
    "pue": "hetc/hwdb/database.yaml sources.pue: 1.2 (modern AI data centre) to 1.56 (Uptime 2024 average) "
           "around the default 1.3",
    "utilisation": "hetc/hwdb/database.yaml sources.utilisation: power draw 0.70 (S61) to 1.0 (TDP) of TDP "
                   "around the default 0.8",
    "interest_rate": "assumption: cost of capital 5-15 % around the default 10 % (hetc/hwdb/database.yaml sources.rate "
                     "calls the default our assumption)",
    "traffic": "assumption: the planned request rate is a forecast, +-20 %",
}


@dataclass(frozen=True)
class Dist:
    """A factor's distribution: lognormal (sigma) or triangular (low, high) around 1."""

    kind: str = "lognormal"  # lognormal | triangular
    sigma: float = 0.0
    low: float = 1.0
    high: float = 1.0
    mu: float = 0.0  # lognormal: log of the median factor (a calibrated band's offset from the prediction)

    @property
    def is_zero(self) -> bool:
        return self.sigma == self.mu == 0.0 if self.kind == "lognormal" else self.low == self.high == 1.0

    def scaled(self, scale: float) -> Dist:
        """The same shape with every spread (and offset) multiplied by `scale` (0 = exactly nominal)."""
        if self.kind == "lognormal":
            return replace(self, sigma=self.sigma * scale, mu=self.mu * scale)
        return replace(self, low=max(1.0 + (self.low - 1.0) * scale, 1e-9), high=1.0 + (self.high - 1.0) * scale)

    def factors(self, u: np.ndarray) -> np.ndarray:
        """Factors for uniform draws u in (0, 1) (inverse CDF)."""
        if self.is_zero:
            return np.ones_like(u)
        if self.kind == "lognormal":
            from scipy.special import ndtri

            return np.exp(self.mu + self.sigma * ndtri(u))
        a, c, b = self.low, 1.0, self.high
        cut = (c - a) / (b - a)
        return np.where(u < cut, a + np.sqrt(u * (b - a) * (c - a)), b - np.sqrt((1.0 - u) * (b - a) * (b - c)))

    def describe(self) -> str:
        if self.kind == "lognormal":
            median = f"median {math.exp(self.mu):.3g} " if self.mu else ""
            return f"lognormal {median}sigma {self.sigma:.3g}"
        return f"triangular {self.low:.3g}-{self.high:.3g}"


@dataclass(frozen=True)
class UncertaintySpec:
    """Distributions of every uncertain input; per-device entries override per-family/default ones."""

    scale: float = 1.0
    # family ("nvidia", "amd", "intel", "cpu") or device id -> phase -> sigma of the lognormal error factor
    model_error: dict[str, dict[str, Dist]] = field(default_factory=dict)
    capex: dict[str, Dist] = field(default_factory=lambda: {"default": Dist("lognormal", 0.10)})
    cloud_price: dict[str, Dist] = field(default_factory=lambda: {"default": Dist("lognormal", 0.35)})
    electricity: Dist = Dist("triangular", low=0.75, high=1.5)
    pue: Dist = Dist("triangular", low=0.92, high=1.2)
    utilisation: Dist = Dist("triangular", low=0.875, high=1.25)
    interest_rate: Dist = Dist("triangular", low=0.5, high=1.5)
    traffic: Dist = Dist("triangular", low=0.8, high=1.2)
    origin: str = "defaults"  # where the settings came from (a file name or "defaults")


@dataclass(frozen=True)
class Input:
    """One sampled input: `kind` (model_error, capex, ...), the device and phase it belongs to, its law."""

    kind: str
    dist: Dist
    device: str = ""
    phase: str = ""

    @property
    def name(self) -> str:
        return ".".join(p for p in (self.kind, self.device, self.phase) if p)


def family(device) -> str:
    """The residual family of an hwdb Device: its vendor, or "cpu" for every CPU."""
    return "cpu" if device.kind == "cpu" else device.vendor


def model_error_dist(device, phase: str) -> Dist:
    """The default law of a device's cost-model error factor in a phase: the lognormal whose p10 and p90 are
    the calibrated band's (hetc.model.bands.band_factors), in the direction of time."""
    from hetc.model.bands import band_factors

    metric, direction = PHASE_BAND_METRIC[phase]
    low, high = sorted(direction * math.log(f) for f in band_factors(device.id, metric))
    return Dist("lognormal", sigma=(high - low) / (2 * Z90), mu=(high + low) / 2)


def inputs_for(spec: UncertaintySpec, devices: list, pricing: str, offline: bool) -> list[Input]:
    """Every input of a problem over `devices` (hwdb Devices), in a fixed order (the draw order)."""
    out: list[Input] = []
    for dev in sorted(devices, key=lambda d: d.id):
        for phase in PHASES:
            dist = _model_error_dist(spec, dev, phase)
            out.append(Input("model_error", dist.scaled(spec.scale), dev.id, phase))
        prices = spec.capex if pricing == "ownership" else spec.cloud_price
        dist = prices.get(dev.id, prices.get("default", Dist()))
        out.append(Input("capex" if pricing == "ownership" else "cloud_price", dist.scaled(spec.scale), dev.id))
    if pricing == "ownership":
        for kind in ("electricity", "pue", "utilisation", "interest_rate"):
            out.append(Input(kind, getattr(spec, kind).scaled(spec.scale)))
    if not offline:
        out.append(Input("traffic", spec.traffic.scaled(spec.scale)))
    return out


def _model_error_dist(spec: UncertaintySpec, dev, phase: str) -> Dist:
    for key in (dev.id, family(dev)):
        if phase in spec.model_error.get(key, {}):
            return spec.model_error[key][phase]
    return model_error_dist(dev, phase)


# ------------------------------------------------------------------------------------ --uncertainty FILE

_GLOBAL_KEYS = ("electricity", "pue", "utilisation", "interest_rate", "traffic")
_TOP_KEYS = ("scale", "model_error", "capex", "cloud_price") + _GLOBAL_KEYS


MAX_FILE_BYTES = 1 << 20  # an uncertainty file is a few dozen lines; refuse anything far larger unread


def load_uncertainty(path: str, db) -> UncertaintySpec:
    """Read an uncertainty file (format in docs/uncertainty.md); every error names its line and column."""
    from hetc.hwdb.loader import read_yaml_locs
    from hetc.userfiles import UnreadableFile, read_regular_file

    try:
        raw = read_regular_file(path, MAX_FILE_BYTES, "uncertainty files")
    except UnreadableFile as exc:
        raise HetcError(f"cannot read uncertainty file: {exc}", Loc(str(path))) from None
    data, locs = read_yaml_locs(Path(path), raw)
    errors: list[Diagnostic] = []

    def err(where: tuple, message: str) -> None:
        errors.append(Diagnostic(locs.get(where, locs.get((), Loc(path))), message))

    if not isinstance(data, dict):
        raise HetcError([Diagnostic(locs.get((), Loc(path)), "expected a mapping of uncertain inputs "
                                    f"({', '.join(_TOP_KEYS)})")])
    spec = UncertaintySpec(origin=Path(path).name)
    changes: dict = {}
    for key, value in data.items():
        where = (key,)
        if key not in _TOP_KEYS:
            err(where, f"unknown key {_shown(key)}; expected one of {', '.join(_TOP_KEYS)}")
        elif key == "scale":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 10:
                err(where, f"scale: expected a number from 0 to 10, got {_shown(value)}")
            else:
                changes["scale"] = float(value)
        elif key in _GLOBAL_KEYS:
            dist = _dist(value, where, key, err)
            if dist is not None:
                changes[key] = dist
        elif key in ("capex", "cloud_price"):
            changes[key] = {**getattr(spec, key), **_prices(value, where, key, db, err)}
        else:
            changes[key] = _model_errors(value, where, db, err)
    if errors:
        raise HetcError(errors)
    return replace(spec, **changes)


def _shown(value) -> str:
    """A user's value in a message, at most 40 characters: its repr, which already writes every character
    str.isprintable() refuses as an escape; the Diagnostic runs the message through hetc.errors.printable too."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _dist(value, where: tuple, what: str, err) -> Dist | None:
    """A bare number = lognormal sigma; {lognormal: SIGMA}; {triangular: [LOW, HIGH]}."""
    if not isinstance(value, bool) and isinstance(value, (int, float)):
        value = {"lognormal": value}
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in ("lognormal", "triangular"):
        err(where, f"{what}: expected a sigma, {{lognormal: SIGMA}} or {{triangular: [LOW, HIGH]}}, got {_shown(value)}")
        return None
    kind, args = next(iter(value.items()))
    if kind == "lognormal":
        if isinstance(args, bool) or not isinstance(args, (int, float)) or not 0 <= args <= 3:
            err(where + (kind,), f"{what}: lognormal sigma must be a number from 0 to 3, got {_shown(args)}")
            return None
        return Dist("lognormal", float(args))
    if (not isinstance(args, list) or len(args) != 2
            or any(isinstance(a, bool) or not isinstance(a, (int, float)) for a in args)
            or not 0 < args[0] <= 1.0 <= args[1] <= 100):
        err(where + (kind,), f"{what}: triangular takes [LOW, HIGH], factors of the nominal value with "
                             f"0 < LOW <= 1 <= HIGH, got {_shown(args)}")
        return None
    return Dist("triangular", low=float(args[0]), high=float(args[1]))


def _per_device(value, where: tuple, what: str, db, err, allow: tuple[str, ...]) -> list[tuple[str, str, object]]:
    """(device id or allowed word, the key as written, value) for a mapping keyed by devices (ids or aliases)
    or allowed words (families, "default")."""
    if not isinstance(value, dict):
        err(where, f"{what}: expected a mapping of device (or {', '.join(allow)}) to a distribution, "
                   f"got {_shown(value)}")
        return []
    out = []
    for key, item in value.items():
        name = str(key) if str(key) in allow else db.resolve(str(key))
        if name is None:
            err(where + (key,), f"{what}: unknown device or family {_shown(key)}; expected a device of the "
                                f"hardware database or one of {', '.join(allow)}")
            continue
        out.append((name, key, item))
    return out


def _prices(value, where: tuple, what: str, db, err) -> dict[str, Dist]:
    out = {}
    for name, key, item in _per_device(value, where, what, db, err, allow=("default",)):
        dist = _dist(item, where + (key,), f"{what}.{key}", err)
        if dist is not None:
            out[name] = dist
    return out


def _model_errors(value, where: tuple, db, err) -> dict[str, dict[str, Dist]]:
    families = tuple(sorted({family(d) for d in db.devices.values()}))
    out: dict[str, dict[str, Dist]] = {}
    for name, key, phases in _per_device(value, where, "model_error", db, err, allow=families):
        if not isinstance(phases, dict):
            phases = dict.fromkeys(PHASES, phases)  # one law for every phase
        for phase, law in phases.items():
            if phase not in PHASES:
                err(where + (key, phase), f"model_error.{key}: unknown phase {_shown(phase)}; expected "
                                          f"{', '.join(PHASES)}")
                continue
            dist = _dist(law, where + (key, phase), f"model_error.{key}.{phase}", err)
            if dist is not None:
                out.setdefault(name, {})[phase] = dist
    return out


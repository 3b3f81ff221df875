"""Total cost of ownership per device-hour, and $ per 1M requests / tokens.

Owned hardware (reference/paper-method.md §5, docs/cost-model.md#tco):
    capital  = capex * r / (1 - (1 + r)^-n) / 8760        (annuity: capital recovered over n years at rate r)
    power    = TDP_kW * utilisation * PUE * $/kWh
    overhead = capex * overhead_frac_of_capex_per_year / 8760 (+ the device's fixed opex_usd_per_hour if asked)
Sunk inventory drops the capital term. Cloud pricing replaces all three with the rental price.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from hetc.errors import HetcError
from hetc.hwdb.schema import Device

HOURS_PER_YEAR = 8760.0
PRICINGS = ("ownership", "cloud")
# The parts of a device-hour's cost, in the order every table prints them (plan.json: <name>_usd_per_hour).
COMPONENTS = ("capital", "power", "overhead", "cloud")
COMPONENT_LABELS = {"capital": "capital", "power": "power", "overhead": "overhead", "cloud": "cloud rental"}


@dataclass(frozen=True)
class TcoParams:
    years: float = 4.0
    rate: float = 0.10
    electricity_usd_per_kwh: float = 0.08
    pue: float = 1.3
    utilisation: float = 0.8  # average power draw as a fraction of TDP
    overhead_frac_of_capex_per_year: float = 0.05
    use_device_opex: bool = False  # add the device's opex_usd_per_hour (the paper's operating-cost column)

    def __post_init__(self) -> None:
        if self.years <= 0:
            raise HetcError(f"TCO years must be > 0, got {self.years}")
        for name in ("rate", "electricity_usd_per_kwh", "pue", "utilisation", "overhead_frac_of_capex_per_year"):
            if getattr(self, name) < 0:
                raise HetcError(f"TCO {name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_hwdb(cls, db: Any) -> TcoParams:
        """The database's tco_defaults (database.yaml)."""
        return cls(**db.tco_defaults)

    @classmethod
    def paper_2025(cls) -> TcoParams:
        """The paper's assumptions: 4 years at 8 %, every device at its maximum TDP, $0.40/kWh, no PUE,
        no colocation or overhead (arXiv 2507.19635 §5)."""
        return cls(years=4, rate=0.08, electricity_usd_per_kwh=0.40, pue=1.0, utilisation=1.0,
                   overhead_frac_of_capex_per_year=0.0)

    def with_changes(self, **changes: Any) -> TcoParams:
        return replace(self, **changes)


@dataclass(frozen=True)
class TcoBreakdown:
    """Dollars per device-hour, by component (the names docs/cost-model.md uses); total is their sum."""

    capital: float
    power: float
    overhead: float
    total: float
    pricing: str
    cloud: float = 0.0  # the rental price under cloud pricing (then capital, power and overhead are 0)

    def components(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in COMPONENTS}


def shown_components(tco: dict, pricing: str | None) -> list[tuple[str, str, float]]:
    """(component, label, $/hour) of a plan's or stage's `tco` (plan.json) as every table prints them:
    capital, power and overhead under ownership pricing, cloud rental under cloud pricing (the others are 0
    there). A plan written before overhead and cloud were separate components has capital and power only."""
    names = ("cloud",) if pricing == "cloud" else ("capital", "power", "overhead")
    return [(name, COMPONENT_LABELS[name], tco[f"{name}_usd_per_hour"]) for name in names
            if f"{name}_usd_per_hour" in tco]


def annuity_factor(rate: float, years: float) -> float:
    """Yearly payment per dollar financed: r / (1 - (1 + r)^-n); 1/n when r = 0."""
    if rate == 0:
        return 1.0 / years
    return rate / (1.0 - (1.0 + rate) ** -years)


def capital_usd_per_hour(capex_usd: float, params: TcoParams) -> float:
    return capex_usd * annuity_factor(params.rate, params.years) / HOURS_PER_YEAR


def device_hour_usd(device: Device, pricing: str, params: TcoParams, sunk: bool = False,
                    utilisation: float | None = None) -> TcoBreakdown:
    """Cost of one device for one hour. utilisation (power draw / TDP) defaults to params.utilisation."""
    if pricing not in PRICINGS:
        raise HetcError(f"pricing must be one of {', '.join(PRICINGS)}, got {pricing!r}")
    if pricing == "cloud":
        if device.cloud_usd_per_hour is None:
            raise HetcError(f"device {device.id} has no cloud price (cloud_usd_per_hour); use ownership pricing "
                            "or give one with --hwdb-extra")
        price = device.cloud_usd_per_hour
        return TcoBreakdown(capital=0.0, power=0.0, overhead=0.0, total=price, pricing=pricing, cloud=price)
    if device.capex_usd is None:
        raise HetcError(f"device {device.id} has no purchase price (capex_usd); use cloud pricing or give one "
                        "with --hwdb-extra")
    util = params.utilisation if utilisation is None else utilisation
    if not 0.0 <= util <= 1.0:
        raise HetcError(f"utilisation must be within [0, 1], got {util}")
    capital = 0.0 if sunk else capital_usd_per_hour(device.capex_usd, params)
    power = device.tdp_w / 1000.0 * util * params.pue * params.electricity_usd_per_kwh
    overhead = device.capex_usd * params.overhead_frac_of_capex_per_year / HOURS_PER_YEAR
    if params.use_device_opex and device.opex_usd_per_hour is not None:
        overhead += device.opex_usd_per_hour
    return TcoBreakdown(capital=capital, power=power, overhead=overhead, total=capital + power + overhead,
                        pricing=pricing)


def usd_per_million_tokens(usd_per_hour: float, tokens_per_s: float) -> float:
    """$ per 1M tokens for something costing usd_per_hour that produces tokens_per_s."""
    if tokens_per_s <= 0:
        return float("inf")
    return usd_per_hour / (tokens_per_s * 3600.0) * 1e6


def usd_per_million_requests(usd_per_hour: float, requests_per_s: float) -> float:
    if requests_per_s <= 0:
        return float("inf")
    return usd_per_hour / (requests_per_s * 3600.0) * 1e6

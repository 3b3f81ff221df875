"""TCO: the annuity charge, power, sunk inventory, cloud pricing and $ per 1M tokens/requests."""

from __future__ import annotations

import pytest

from hetc.errors import HetcError
from hetc.hwdb.loader import load_hwdb
from hetc.model.tco import (
    TcoParams,
    annuity_factor,
    capital_usd_per_hour,
    device_hour_usd,
    usd_per_million_requests,
    usd_per_million_tokens,
)


def test_annuity_by_hand():
    # r / (1 - (1 + r)^-n) with r = 8 %, n = 4: 0.08 / (1 - 1.08^-4) = 0.08 / 0.264970... = 0.301921
    assert annuity_factor(0.08, 4) == pytest.approx(0.3019208, rel=1e-6)
    assert annuity_factor(0.0, 4) == 0.25
    # the paper's H100: $25,000 -> $7,548.02 a year -> $0.86165 an hour
    assert capital_usd_per_hour(25_000, TcoParams.paper_2025()) == pytest.approx(0.861645, rel=1e-5)


def test_paper_defaults_on_paper_database():
    db = load_hwdb("paper-2025")
    params = TcoParams.from_hwdb(db)
    assert params == TcoParams.paper_2025()
    h100 = device_hour_usd(db.get("h100"), "ownership", params)
    assert h100.power == pytest.approx(0.700 * 0.40)  # 700 W at maximum TDP, $0.40/kWh, no PUE
    assert h100.overhead == 0.0
    assert h100.total == pytest.approx(0.861645 + 0.28, rel=1e-5)
    b200 = device_hour_usd(db.get("b200"), "ownership", params)
    assert b200.capital == pytest.approx(40_000 * 0.3019208 / 8760, rel=1e-6)
    with_opex = device_hour_usd(db.get("h100"), "ownership", params.with_changes(use_device_opex=True))
    assert with_opex.overhead == pytest.approx(0.60)  # the paper's operating-cost column, when asked


def test_default_database_breakdown_sunk_and_cloud():
    db = load_hwdb()
    params = TcoParams.from_hwdb(db)
    h100 = db.get("h100")
    owned = device_hour_usd(h100, "ownership", params)
    assert owned.capital == pytest.approx(27_500 * annuity_factor(0.10, 4) / 8760)
    assert owned.power == pytest.approx(0.7 * 0.8 * 1.3 * 0.08)
    assert owned.overhead == pytest.approx(27_500 * 0.05 / 8760)
    assert owned.total == pytest.approx(owned.capital + owned.power + owned.overhead)
    sunk = device_hour_usd(h100, "ownership", params, sunk=True)
    assert sunk.capital == 0 and sunk.total == pytest.approx(owned.power + owned.overhead)
    idle = device_hour_usd(h100, "ownership", params, utilisation=0.0)
    assert idle.power == 0
    assert device_hour_usd(h100, "cloud", params).total == 3.0
    with pytest.raises(HetcError, match="no cloud price"):
        device_hour_usd(db.get("gaudi3"), "cloud", params)
    with pytest.raises(HetcError, match="no purchase price"):
        device_hour_usd(db.get("mi325x"), "ownership", params)
    with pytest.raises(HetcError, match="pricing must be"):
        device_hour_usd(h100, "lease", params)
    with pytest.raises(HetcError, match="years must be > 0"):
        TcoParams(years=0)


def test_per_million_helpers():
    assert usd_per_million_tokens(2.0, 1000) == pytest.approx(2.0 / 3.6)
    assert usd_per_million_requests(3.6, 1.0) == pytest.approx(1000.0)
    assert usd_per_million_tokens(1.0, 0) == float("inf")


@pytest.mark.parametrize("pricing", ["ownership", "cloud"])
@pytest.mark.parametrize("sunk", [False, True])
def test_components_sum_to_the_total(pricing, sunk):
    from hetc.model.tco import COMPONENTS

    db = load_hwdb("default")
    params = TcoParams.from_hwdb(db)
    for device in db.devices.values():
        if not device.has_price(pricing):
            continue
        cost = device_hour_usd(device, pricing, params, sunk=sunk)
        assert set(cost.components()) == set(COMPONENTS)
        assert sum(cost.components().values()) == pytest.approx(cost.total, rel=1e-12)
        if pricing == "cloud":  # a rental is not capital (was: printed as "capital $26.80")
            assert cost.cloud == cost.total == device.cloud_usd_per_hour and cost.capital == 0
        elif sunk:
            assert cost.capital == 0 and cost.overhead > 0  # the overhead on the purchase price stays

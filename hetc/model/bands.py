"""p10-p90 error bands on cost-model estimates, from held-out (leave-one-device-out) residuals.

hetc/data/error-bands.yaml (written by bench/costmodel_accuracy.py --write-bands) holds, per metric (TTFT,
TBT, throughput) and device family, the 10th and 90th percentiles of log(measured / predicted) over
published measurements predicted by a model calibrated without their device. An estimate x gets the band
[x * exp(p10), x * exp(p90)]: about 80 % of held-out measurements fell inside such bands
(docs/cost-model.md#error-bands). Families without enough measurements get the all-family band.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import yaml

from hetc.model.calibrate import device_family, metric_group

BANDS_FILE = Path(__file__).resolve().parents[1] / "data" / "error-bands.yaml"


@lru_cache(maxsize=1)
def _table() -> dict[str, dict[str, list[float]]]:
    return yaml.safe_load(BANDS_FILE.read_text()) or {}


def band_factors(device_id: str, metric: str) -> tuple[float, float]:
    """(low, high) multipliers of an estimate of `metric` (ttft_ms, tbt_ms, tokens_per_s...) on the device."""
    rows = _table().get(metric_group(metric), {})
    low, high = rows.get(device_family(device_id)) or rows.get("all") or (0.0, 0.0)
    return math.exp(low), math.exp(high)


def band(device_id: str, metric: str, value: float) -> list[float]:
    """[p10, p90] around `value`, rounded to 4 significant figures (deterministic output)."""
    low, high = band_factors(device_id, metric)
    return [float(f"{value * low:.4g}"), float(f"{value * high:.4g}")]

"""Seeded draws of the uncertain inputs, turned into per-sample device prices, cost-model error factors and
request rates for one PlacementProblem; and a perturbed copy of the problem for one sample (for the solver).

A cost-model error factor e multiplies every predicted time of a device class in a phase (sampled once per
class and phase, shared by every op on it): latency and TBT scale by e, throughput by 1/e, and TTFT by the
prefill's share (TTFT = prefill latency + a fixed overhead).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

import numpy as np

from hetc.model.tco import TcoParams, device_hour_usd
from hetc.placement import Candidate, PlacementProblem
from hetc.study.uncertainty.inputs import PHASES, Input


def phase_of(op) -> int:
    """Index in PHASES of the op's error factor."""
    return PHASES.index(op.role) if op.role in PHASES else PHASES.index("other")


def draw(inputs: list[Input], samples: int, seed: int) -> np.ndarray:
    """(samples, inputs) factors. Each input has its own stream, seeded by (seed, its name): adding or
    changing one input leaves the others' draws as they were."""
    out = np.empty((samples, len(inputs)))
    for j, inp in enumerate(inputs):
        rng = np.random.default_rng([seed, zlib.crc32(inp.name.encode())])
        u = np.clip(rng.random(samples), 1e-12, 1.0 - 1e-12)
        out[:, j] = inp.dist.factors(u)
    return out


@dataclass
class Scenarios:
    """Per-sample figures of one problem: classes in problem.devices order."""

    classes: list[str]
    error: np.ndarray  # (N, classes, phases) factor on predicted time
    price: np.ndarray  # (N, classes) $/device-hour, bought
    owned_price: np.ndarray  # (N, classes) $/device-hour of an owned device (sunk: power only)
    rate: np.ndarray  # (N,) requests/s
    inputs: list[Input]
    factors: np.ndarray  # (N, inputs) the raw draws, for sensitivity

    @property
    def samples(self) -> int:
        return len(self.rate)


def scenarios(problem: PlacementProblem, inputs: list[Input], factors: np.ndarray, db, pricing: str,
              offline: bool) -> Scenarios:
    """Prices recomputed with hetc.model.tco from the drawn capital / cloud prices and TCO settings."""
    n = factors.shape[0]
    column = {inp.name: factors[:, j] for j, inp in enumerate(inputs)}
    ones = np.ones(n)
    classes = [d.name for d in problem.devices]
    error = np.ones((n, len(classes), len(PHASES)))
    price = np.empty((n, len(classes)))
    owned_price = np.empty((n, len(classes)))
    base = TcoParams.from_hwdb(db)
    params = [base.with_changes(
        electricity_usd_per_kwh=base.electricity_usd_per_kwh * column.get("electricity", ones)[s],
        pue=base.pue * column.get("pue", ones)[s],
        utilisation=min(1.0, base.utilisation * column.get("utilisation", ones)[s]),
        rate=base.rate * column.get("interest_rate", ones)[s]) for s in range(n)]
    for j, cls in enumerate(problem.devices):
        dev = db.devices[cls.name]
        for p, phase in enumerate(PHASES):
            error[:, j, p] = column.get(f"model_error.{cls.name}.{phase}", ones)
        money = column.get(f"capex.{cls.name}", column.get(f"cloud_price.{cls.name}", ones))
        for s in range(n):
            changed = (replace(dev, capex_usd=dev.capex_usd * money[s]) if pricing == "ownership"
                       else replace(dev, cloud_usd_per_hour=dev.cloud_usd_per_hour * money[s]))
            price[s, j] = device_hour_usd(changed, pricing, params[s]).total
            owned_price[s, j] = (price[s, j] if cls.sunk_usd_per_hour is None
                                 else device_hour_usd(changed, pricing, params[s], sunk=True).total)
    rate = problem.request_rate_rps * (ones if offline else column.get("traffic", ones))
    return Scenarios(classes, error, price, owned_price, rate, inputs, factors)


def nominal_scenario(problem: PlacementProblem, inputs: list[Input]) -> Scenarios:
    """One sample with every input at its nominal value: the problem's own prices and rate."""
    classes = [d.name for d in problem.devices]
    price = np.array([[d.usd_per_hour for d in problem.devices]])
    owned = np.array([[d.usd_per_hour if d.sunk_usd_per_hour is None else d.sunk_usd_per_hour
                       for d in problem.devices]])
    return Scenarios(classes, np.ones((1, len(classes), len(PHASES))), price, owned,
                     np.array([problem.request_rate_rps]), inputs, np.ones((1, len(inputs))))


def perturbed_candidate(cand: Candidate, e: float) -> Candidate:
    metrics = dict(cand.metrics)
    if "ttft_ms" in metrics:
        metrics["ttft_ms"] = metrics["ttft_ms"] + cand.latency_ms * (e - 1.0)
    if "tbt_ms" in metrics:
        metrics["tbt_ms"] = metrics["tbt_ms"] * e
    return replace(cand, latency_ms=cand.latency_ms * e, throughput_rps=cand.throughput_rps / e, metrics=metrics)


def perturbed_problem(problem: PlacementProblem, sc: Scenarios, s: int) -> PlacementProblem:
    """The problem as sample s sees it (what the solver re-solves when the fast path cannot decide)."""
    index = {c: j for j, c in enumerate(sc.classes)}
    devices = [replace(d, usd_per_hour=float(sc.price[s, j]),
                       sunk_usd_per_hour=None if d.sunk_usd_per_hour is None else float(sc.owned_price[s, j]))
               for j, d in enumerate(problem.devices)]
    ops = [replace(op, candidates=[perturbed_candidate(c, float(sc.error[s, index[c.device], phase_of(op)]))
                                   for c in op.candidates])
           for op in problem.ops]
    return replace(problem, ops=ops, devices=devices, request_rate_rps=float(sc.rate[s]))

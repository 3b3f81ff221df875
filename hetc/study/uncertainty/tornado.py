"""One-at-a-time sensitivity (a tornado): each input at its p10 and p90 with every other input nominal.

For each input with a spread: the nominal plan's TCO and SLA at both ends, and which alternative is the
cheapest there. Inputs are ranked by the swing of the nominal plan's TCO; an input whose two ends have
different winners flips the decision on its own. The same fast path as the Monte Carlo evaluates the
2 x inputs scenarios at once.
"""

from __future__ import annotations

import numpy as np

from hetc.study.uncertainty.fast import Compiled
from hetc.study.uncertainty.sampling import scenarios

TORNADO_QUANTILES = (0.1, 0.9)
TOP_INPUTS = 8


def tornado(problem, inputs, db, pricing: str, offline: bool, alternatives: list[tuple[str, list | None]],
            nominal_choice: np.ndarray, targets: tuple = ()) -> list[dict]:
    varied = [j for j, inp in enumerate(inputs) if not inp.dist.is_zero]
    if not varied:
        return []
    factors = np.ones((2 * len(varied), len(inputs)))
    for row, j in enumerate(varied):
        factors[2 * row:2 * row + 2, j] = inputs[j].dist.factors(np.array(TORNADO_QUANTILES))
    compiled = Compiled(problem, scenarios(problem, inputs, factors, db, pricing, offline), targets)
    costs = np.stack([compiled.cheapest(allowed)[0] for _, allowed in alternatives], axis=1)
    winners = [alternatives[i][0] if np.isfinite(costs[r, i]) else None
               for r, i in enumerate(costs.argmin(axis=1))]
    nominal_cost, nominal_ok = compiled.evaluate(nominal_choice)
    rows = []
    for row, j in enumerate(varied):
        low, high = 2 * row, 2 * row + 1
        rows.append({"input": inputs[j].name, "law": inputs[j].dist.describe(),
                     "factor_p10": float(factors[low, j]), "factor_p90": float(factors[high, j]),
                     "nominal_plan_usd_per_hour_p10": float(nominal_cost[low]),
                     "nominal_plan_usd_per_hour_p90": float(nominal_cost[high]),
                     "nominal_plan_meets_sla_p10": bool(nominal_ok[low]),
                     "nominal_plan_meets_sla_p90": bool(nominal_ok[high]),
                     "cheapest_p10": winners[low], "cheapest_p90": winners[high],
                     "swing_usd_per_hour": float(abs(nominal_cost[high] - nominal_cost[low]))})
    rows.sort(key=lambda r: (-r["swing_usd_per_hour"], r["input"]))
    return rows[:TOP_INPUTS]

"""The Monte Carlo over the whole decision (docs/uncertainty.md, "Method").

Alternatives are the P::D pairs of the pair study (each restricted as hetc.study.sweep restricts it) or, without
pairs, the free problem. In every sample each alternative is re-solved on the perturbed figures; the
nominal plan (the cheapest alternative's plan at nominal inputs) and every plan some sample chose are also
evaluated as fixed plans in every sample: their TCO and whether they still meet the SLA. The robust plan is
the fixed plan with the lowest risk (p90 TCO or expected regret) among those meeting the SLA in at least
`sla_share` of the samples.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from hetc.placement import PlacementProblem
from hetc.study.uncertainty.fast import NO_CHOICE, Compiled
from hetc.study.uncertainty.sampling import Scenarios, nominal_scenario

MAX_FIXED_PLANS = 24  # plans chosen by samples that are evaluated as fixed plans (the most frequent)
RISKS = ("p90", "regret")
TOP_SENSITIVITIES = 8
# Below this many samples a share of 95 % has a standard error above 2 points: the verdict says so instead.
MIN_SAMPLES_FOR_VERDICT = 100


@dataclass
class Alternative:
    label: str  # "P::D" or "free"
    allowed: list[np.ndarray] | None  # candidate masks per op; None = every candidate
    nominal_tco: float  # math.inf when infeasible at nominal inputs
    nominal_choice: np.ndarray | None
    cost: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (N,) re-solved TCO, inf = infeasible
    choice: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (N, ops)
    resolved: int = 0  # samples the heuristic re-solved (the fast path could not decide)


@dataclass
class FixedPlan:
    label: str
    choice: np.ndarray  # (ops,)
    nominal_tco: float
    cost: np.ndarray  # (N,)
    ok: np.ndarray  # (N,) meets the SLA
    chosen_share: float  # share of samples whose re-solved winner is this plan


@dataclass
class Study:
    alternatives: list[Alternative]
    fixed: list[FixedPlan]
    best: np.ndarray  # (N,) cheapest alternative's TCO per sample
    winner: np.ndarray  # (N,) its index (-1 when none is feasible)
    nominal: int  # index of the nominal optimum among `fixed` (-1 = nothing feasible at nominal)
    robust: int  # index of the robust plan among `fixed` (-1 = none meets the SLA share)
    risk: str
    sla_share: float
    sensitivity: list[dict]
    sc: Scenarios
    problem: PlacementProblem
    baselines: list[Alternative] = field(default_factory=list)  # re-solved for their bands, not competing


def pd_of(problem: PlacementProblem, choice) -> str:
    """The P::D notation of a plan (prefill class(es) :: decode class(es))."""
    devices: dict[str, set[str]] = {"prefill": set(), "decode": set()}
    for op, k in zip(problem.ops, choice, strict=True):
        if op.role in devices:
            devices[op.role].add(op.candidates[k].device)
    return "+".join(sorted(devices["prefill"])) + "::" + "+".join(sorted(devices["decode"]))


def plan_label(problem: PlacementProblem, choice: np.ndarray) -> str:
    """P::D and the LLM phases' configurations, e.g. `b200::mi300x (tp1 b64 / tp2 b128; other ops on ...)`."""
    configs = []
    for op, k in zip(problem.ops, choice, strict=True):
        if op.role in ("prefill", "decode"):
            cand = op.candidates[k]
            configs.append(f"tp{cand.tp}" + (f" pp{cand.pp}" if cand.pp > 1 else "") + f" b{cand.batch}")
    others = sorted({op.candidates[k].device for op, k in zip(problem.ops, choice, strict=True)
                     if op.role not in ("prefill", "decode")})
    return f"{pd_of(problem, choice)} ({' / '.join(configs)}; other ops on {'+'.join(others) or '-'})"


def run_study(problem: PlacementProblem, sc: Scenarios, alternatives: list[tuple[str, list | None]],
              risk: str = "p90", sla_share: float = 0.9, margin_plans: list[np.ndarray] = (),
              nominal_choice: np.ndarray | None = None, baselines: list[tuple[str, list | None]] = (),
              targets: tuple = ()) -> Study:
    """`margin_plans`: more fixed plans to consider for the robust choice (e.g. plans solved with every
    cost-model error at its `sla_share` quantile, which keep a latency margin). `nominal_choice`: the plan
    hetc deploys (a candidate index per op), when the caller solved it; by default the cheapest
    alternative's plan at nominal inputs. `baselines`: more alternatives re-solved in every sample for their
    TCO bands (e.g. homogeneous baselines) that do not compete for P(cheapest). `targets`: the lower
    percentile latency targets every plan must meet too (BuiltProblem.percentile_targets)."""
    compiled = Compiled(problem, sc, targets)
    at_nominal = Compiled(problem, nominal_scenario(problem, sc.inputs), targets)  # the same path as every sample
    alts = [_resolved(label, allowed, compiled, at_nominal) for label, allowed in alternatives]
    references = [_resolved(label, allowed, compiled, at_nominal) for label, allowed in baselines]
    costs = np.stack([a.cost for a in alts], axis=1)
    best = costs.min(axis=1)
    winner = np.where(np.isfinite(best), costs.argmin(axis=1), -1)
    deployed = [] if nominal_choice is None else [np.asarray(nominal_choice)]
    fixed = _fixed_plans(problem, compiled, at_nominal, alts, winner, deployed + list(margin_plans))
    nominal_alt = min(range(len(alts)), key=lambda i: (alts[i].nominal_tco, i))
    nominal = -1
    if nominal_choice is not None:
        nominal = next(i for i, f in enumerate(fixed) if np.array_equal(f.choice, nominal_choice))
    elif math.isfinite(alts[nominal_alt].nominal_tco):
        nominal = next(i for i, f in enumerate(fixed) if np.array_equal(f.choice, alts[nominal_alt].nominal_choice))
    robust = _robust(fixed, best, risk, sla_share, nominal)
    sensitivity = _sensitivity(sc, fixed[nominal], best) if nominal >= 0 else []
    return Study(alts, fixed, best, winner, nominal, robust, risk, sla_share, sensitivity, sc, problem, references)


def _resolved(label: str, allowed, compiled: Compiled, at_nominal: Compiled) -> Alternative:
    """An alternative solved at nominal inputs and re-solved in every sample, by the same fast path."""
    tco, choice, _ = at_nominal.cheapest(allowed)
    alt = Alternative(label, allowed, float(tco[0]), None if (choice[0] == NO_CHOICE).any() else choice[0])
    alt.cost, alt.choice, alt.resolved = compiled.cheapest(allowed)
    return alt


def _fixed_plans(problem, compiled: Compiled, at_nominal: Compiled, alts: list[Alternative], winner: np.ndarray,
                 margin_plans) -> list[FixedPlan]:
    """Each alternative's nominal plan, the margin plans, then the plans samples chose most often."""
    n = len(winner)
    chosen = Counter()
    first_seen: dict[tuple, int] = {}
    for s in range(n):
        if winner[s] >= 0:
            key = tuple(alts[winner[s]].choice[s])
            chosen[key] += 1
            first_seen.setdefault(key, s)
    frequent = [key for key, _ in sorted(chosen.items(), key=lambda kv: (-kv[1], first_seen[kv[0]]))]
    ordered = ([tuple(a.nominal_choice) for a in alts if a.nominal_choice is not None]
               + [tuple(m) for m in margin_plans] + frequent[:MAX_FIXED_PLANS])
    plans = list(dict.fromkeys(ordered))  # first occurrence wins: deterministic, no duplicates
    nominal_tco = {tuple(a.nominal_choice): a.nominal_tco for a in alts if a.nominal_choice is not None}
    out = []
    for key in plans:
        choice = np.array(key)
        cost, ok = compiled.evaluate(choice)
        tco = nominal_tco.get(key)
        if tco is None:  # a plan no alternative chose at nominal inputs: its nominal TCO, if it meets the SLA
            cost_at_nominal, meets = at_nominal.evaluate(choice)
            tco = float(cost_at_nominal[0]) if meets[0] else math.inf
        out.append(FixedPlan(plan_label(problem, choice), choice, tco, cost, ok, chosen.get(key, 0) / n))
    return out


def risk_of(plan: FixedPlan, best: np.ndarray, risk: str) -> float:
    if risk == "p90":
        return float(np.percentile(plan.cost, 90))
    finite = np.isfinite(best)
    return float(np.mean(plan.cost[finite] - best[finite])) if finite.any() else math.inf


def _robust(fixed: list[FixedPlan], best: np.ndarray, risk: str, sla_share: float, nominal: int) -> int:
    eligible = [i for i, f in enumerate(fixed) if f.ok.mean() >= sla_share and np.isfinite(f.nominal_tco)]
    if not eligible:
        return -1
    return min(eligible, key=lambda i: (risk_of(fixed[i], best, risk), i != nominal, i))


def spearman(x: np.ndarray, y: np.ndarray) -> float | None:
    """Spearman rank correlation (average ranks for ties); None when either side is constant."""
    from scipy.stats import rankdata

    finite = np.isfinite(y)  # samples where no alternative is feasible have no regret
    x, y = x[finite], y[finite]
    if len(y) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(np.corrcoef(rankdata(x), rankdata(y))[0, 1])


def _sensitivity(sc: Scenarios, nominal: FixedPlan, best: np.ndarray) -> list[dict]:
    regret = nominal.cost - best
    rows = []
    for j, inp in enumerate(sc.inputs):
        x = sc.factors[:, j]
        tco, reg = spearman(x, nominal.cost), spearman(x, regret)
        if tco is None and reg is None:
            continue
        rows.append({"input": inp.name, "law": inp.dist.describe(), "rho_tco": tco, "rho_regret": reg})
    rows.sort(key=lambda r: (-abs(r["rho_regret"] or 0.0), -abs(r["rho_tco"] or 0.0), r["input"]))
    return rows[:TOP_SENSITIVITIES]


# ------------------------------------------------------------------------------------------ summaries


def percentiles(values: np.ndarray) -> list[float | None]:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return [None, None, None]
    return [float(v) for v in np.percentile(finite, [10, 50, 90])]


def alternative_rows(study: Study) -> list[dict]:
    """One row per alternative: nominal TCO, P(cheapest), TCO p10/p50/p90 re-solved, share feasible. The free
    problem (one alternative) is shown per P::D instead: the most chosen plan of each P::D as a fixed plan,
    with the share of samples whose optimum has that P::D and the share meeting the SLA as `p_feasible`."""
    n = len(study.best)
    if len(study.alternatives) == 1:
        return _pd_rows(study)
    return [{**_band_row(alt), "p_cheapest": float(np.sum(study.winner == i) / n)}
            for i, alt in enumerate(study.alternatives)]


def _band_row(alt: Alternative) -> dict:
    p10, p50, p90 = percentiles(alt.cost)
    return {"plan": alt.label, "nominal_usd_per_hour": _finite(alt.nominal_tco), "p10_usd_per_hour": p10,
            "p50_usd_per_hour": p50, "p90_usd_per_hour": p90, "p_feasible": float(np.isfinite(alt.cost).mean()),
            "resolved_samples": alt.resolved}


def _pd_rows(study: Study) -> list[dict]:
    alt = study.alternatives[0]
    n = len(study.best)
    won = Counter(pd_of(study.problem, alt.choice[s]) for s in range(n) if study.winner[s] >= 0)
    nominal_pd = pd_of(study.problem, study.fixed[study.nominal].choice) if study.nominal >= 0 else ""
    rows = []
    for pd in sorted({pd_of(study.problem, f.choice) for f in study.fixed}):
        plans = [f for f in study.fixed if pd_of(study.problem, f.choice) == pd]
        plan = max(plans, key=lambda f: f.chosen_share)  # first of equals: fixed plans are in a stable order
        p10, p50, p90 = percentiles(plan.cost)
        rows.append({"plan": pd, "nominal_usd_per_hour": _finite(plan.nominal_tco), "p_cheapest": won[pd] / n,
                     "p10_usd_per_hour": p10, "p50_usd_per_hour": p50, "p90_usd_per_hour": p90,
                     "p_feasible": float(plan.ok.mean()),
                     "resolved_samples": alt.resolved if pd == nominal_pd else 0})  # counted once
    return rows


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def fixed_row(study: Study, index: int) -> dict | None:
    if index < 0:
        return None
    plan = study.fixed[index]
    p10, p50, p90 = percentiles(plan.cost)
    regret = plan.cost - study.best
    finite = np.isfinite(regret)
    r10, r50, r90 = percentiles(regret[finite]) if finite.any() else (None, None, None)
    return {"plan": plan.label, "nominal_usd_per_hour": _finite(plan.nominal_tco),
            "p10_usd_per_hour": p10, "p50_usd_per_hour": p50, "p90_usd_per_hour": p90,
            "p_sla_met": float(plan.ok.mean()), "p_sla_violated": float(1.0 - plan.ok.mean()),
            "p_chosen": plan.chosen_share, "regret_p10": r10, "regret_p50": r50, "regret_p90": r90,
            "regret_mean": float(regret[finite].mean()) if finite.any() else None,
            "risk": _finite(risk_of(plan, study.best, study.risk))}


def summary(study: Study) -> dict:
    """Everything the CLI prints, JSON-ready and deterministic."""
    nominal, robust = fixed_row(study, study.nominal), fixed_row(study, study.robust)
    price = None
    if nominal and robust and nominal["nominal_usd_per_hour"] is not None:
        price = {"nominal_usd_per_hour": robust["nominal_usd_per_hour"] - nominal["nominal_usd_per_hour"],
                 "risk": (robust["risk"] - nominal["risk"]) if robust["risk"] is not None
                 and nominal["risk"] is not None else None}
    return {"samples": len(study.best), "risk_measure": study.risk, "sla_share": study.sla_share,
            "alternatives": alternative_rows(study),
            "baselines": [_band_row(b) for b in study.baselines],
            # rows: re-solved alternatives (feasible share) or, for the free problem, fixed plans per P::D
            "rows": "alternatives" if len(study.alternatives) > 1 else "plans_by_pd",
            "nominal_plan": nominal, "robust_plan": robust,
            "price_of_robustness": price, "sensitivity": study.sensitivity,
            "fixed_plans": [fixed_row(study, i) for i in range(len(study.fixed))],
            "resolves": {"heuristic": sum(a.resolved for a in study.alternatives + study.baselines),
                         "total": len(study.best) * (len(study.alternatives) + len(study.baselines))},
            "verdict": verdict(study)}


def verdict(study: Study) -> str:
    """One sentence: who wins how often, and whether the top alternatives can be told apart."""
    rows = sorted(alternative_rows(study), key=lambda r: (-r["p_cheapest"], r["p50_usd_per_hour"] or math.inf))
    if not rows or rows[0]["p_cheapest"] == 0:
        return "No alternative is feasible in any sample."
    top = rows[0]
    text = f"{top['plan']} is cheapest in {top['p_cheapest']:.0%} of samples"
    if len(rows) == 1:
        return text + "."
    n = len(study.best)
    if n < MIN_SAMPLES_FOR_VERDICT:
        return text + f" (only {n} sample{'s' if n > 1 else ''}: too few to call the ranking solid or not)."
    if top["p_cheapest"] >= 0.95:
        return text + f"; the runner-up {rows[1]['plan']} wins in {rows[1]['p_cheapest']:.0%}: a solid conclusion."
    lead = [r for r in rows[:3] if r["p10_usd_per_hour"] is not None]
    if len(lead) >= 2 and max(r["p10_usd_per_hour"] for r in lead) <= min(r["p90_usd_per_hour"] for r in lead):
        return text + f"; the top {len(lead)} are within each other's p10-p90 bands."
    return text + f"; the runner-up {rows[1]['plan']} wins in {rows[1]['p_cheapest']:.0%}."

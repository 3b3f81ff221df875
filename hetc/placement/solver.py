"""`solve`: the minimum-TCO plan of a placement problem, by the exact MILP where it fits and the heuristic
beyond; and the homogeneous baselines (every accelerator-capable op on one class)."""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Literal

from hetc.placement.evaluate import _build_result, _infeasible_result, _Model, restricted
from hetc.placement.exact import DEFAULT_TIME_LIMIT_S, _build_milp, _run_milp
from hetc.placement.explain import explain_infeasible
from hetc.placement.heuristic import (
    _cheapest_choice,
    _fastest_choice,
    _improve,
    _objective,
    _repair_forbidden,
    _repair_inventory,
    _repair_latency,
    _Search,
    _swap,
)
from hetc.placement.model import Baseline, PlacementProblem, PlacementResult

SolverName = Literal["exact", "heuristic", "auto"]

# `solver="auto"` uses the exact MILP when the problem has at most this many (op, candidate) binaries after
# phase-limit filtering, else the heuristic. Measured with bench/placement.py (docs/placement.md, "Sizes"):
# fork-join graphs take HiGHS ~5 s at 800 binaries and ~14 s at 1,600, and hit a 60 s limit at 4,000, while
# the heuristic stays within 0.2% of the exact plan; chains are easy at any size.
AUTO_EXACT_MAX_BINARIES = 2000
# Whether heuristic baselines run the LP relaxation (a start point and a bound no one reads).
LP_BOUND_FOR_BASELINES = False
# The heuristic's LP relaxation is one of its three starts and the lower bound behind the reported gap, and the
# one step that grows faster than the graph: HiGHS took 17 s of a 31 s `place` on the 10,000-node synthetic
# graph (158,674 binaries; bench/compile_scaling.py) and under a second on the 1,000-node one (14,964). Above
# this many binaries `solve` skips it unless asked (lp_bound=True); the plan then reports no gap and says why.
LP_BOUND_MAX_BINARIES = 50_000


def _solve_exact(m: _Model, time_limit_s: float) -> PlacementResult:
    start = time.perf_counter()
    outcome = _run_milp(m, _build_milp(m), time_limit_s=time_limit_s)
    elapsed = time.perf_counter() - start
    if outcome.choice is None:
        status = "infeasible" if outcome.status == "infeasible" else "no_solution"
        reasons = explain_infeasible(m.problem) if status == "infeasible" else [
            f"the exact solver found no plan within {time_limit_s:g} s ({outcome.message})"
        ]
        return _infeasible_result(m.problem, "exact", status, elapsed, reasons)
    result = _build_result(m, outcome.choice, "exact", outcome.status, elapsed, outcome.bound)
    result = replace(result, bound="mip dual bound" if result.lower_bound is not None else "none reported by HiGHS")
    # The plan is re-evaluated independently of the MILP; a mismatch would be a modelling bug.
    if abs(result.objective - outcome.objective) > 1e-6 * max(1.0, abs(result.objective)):
        raise AssertionError(f"placement MILP objective {outcome.objective} != evaluated {result.objective}")
    return result


def _solve_heuristic(m: _Model, lp_relaxation: bool = True, no_bound: str = "none: LP relaxation not run"
                     ) -> PlacementResult:
    """docs/placement.md, "Heuristic": three starts (LP-relaxation rounding, cheapest, fastest), each
    repaired for inventory and latency and improved by local search; the best plan wins. The LP optimum is
    the reported lower bound. Without `lp_relaxation` (the costliest step: simplex grows faster than the
    graph) only the other two starts run and no bound is reported; `no_bound` says why."""
    start = time.perf_counter()
    relaxed = _run_milp(m, _build_milp(m), relax=True) if lp_relaxation else None
    starts = []
    if relaxed is not None and relaxed.choice is not None:
        starts.append((relaxed.choice, False))
    starts += [(_cheapest_choice(m), False), (_fastest_choice(m), True)]
    best: list[int] | None = None
    best_objective = math.inf
    for initial, latency_first in starts:
        s = _Search(m, initial)
        if not _repair_forbidden(s) or not _repair_inventory(s):
            continue
        _repair_latency(s, latency_first)
        if not math.isfinite(m.penalty(s.paths.critical_ms)):
            continue
        _improve(s)
        objective = _objective(m, s.choice)
        if objective < best_objective - 1e-9 * max(1.0, abs(objective)):
            best, best_objective = list(s.choice), objective
    if best is not None:
        s = _Search(m, best)
        _swap(s)  # the costliest step, so only on the best start
        best = s.choice
    elapsed = time.perf_counter() - start
    if best is None:
        reasons = explain_infeasible(m.problem)
        if reasons:
            return _infeasible_result(m.problem, "heuristic", "infeasible", elapsed, reasons)
        return _infeasible_result(m.problem, "heuristic", "no_solution", elapsed,
                                  ["the heuristic found no feasible plan; the exact solver may find one"])
    result = _build_result(m, best, "heuristic", "heuristic", elapsed, relaxed.bound if relaxed else None)
    return replace(result, bound="lp relaxation" if result.lower_bound is not None else
                   no_bound if relaxed is None else "none: the LP relaxation found no optimum")


def solve(
    problem: PlacementProblem,
    solver: SolverName = "auto",
    *,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    lp_bound: bool | None = None,
) -> PlacementResult:
    """The minimum-TCO plan. `auto` = exact up to AUTO_EXACT_MAX_BINARIES (op, candidate) pairs, else the
    heuristic, with the LP-relaxation bound and its gap when `lp_bound` is True, or None (the default) and
    the problem has at most LP_BOUND_MAX_BINARIES binaries. Infeasible problems return a result with
    feasible=False and `reasons` (the caller raises InfeasibleError)."""
    if solver not in ("exact", "heuristic", "auto"):
        raise ValueError(f"unknown solver {solver!r}; expected exact, heuristic or auto")
    m = _Model(problem)
    if any(not cs for cs in m.cands):
        return _infeasible_result(problem, "heuristic" if solver == "heuristic" else "exact", "infeasible",
                                  0.0, explain_infeasible(problem))
    binaries = sum(len(cs) for cs in m.cands)
    if solver == "auto":
        solver = "exact" if binaries <= AUTO_EXACT_MAX_BINARIES else "heuristic"
    if solver == "exact":
        return _solve_exact(m, time_limit_s)
    if lp_bound is None and binaries > LP_BOUND_MAX_BINARIES:
        return _solve_heuristic(m, lp_relaxation=False, no_bound=(
            f"none: LP relaxation skipped above {LP_BOUND_MAX_BINARIES:,} binaries ({binaries:,})"))
    return _solve_heuristic(m, lp_relaxation=lp_bound is not False)


def homogeneous_baselines(
    problem: PlacementProblem, solver: SolverName = "auto", *, time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    solve_with=None,
) -> list[Baseline]:
    """For each accelerator class, the best plan with every op that has an accelerator candidate on that
    class (ops with only non-accelerator candidates keep them). Sorted by class name. `solve_with(problem,
    solve_one)` wraps each solve when the caller plans more than the problem says (percentile targets)."""
    accelerator = {d.name: d.accelerator for d in problem.devices}
    accelerators = sorted(d for d in {c.device for op in problem.ops for c in op.candidates} if accelerator[d])
    baselines = []
    kept: dict[tuple[int, str], tuple[list[int], bool, object]] = {}  # per (candidate list, class)

    def indices_on(candidates, accel: str) -> tuple[list[int], bool]:
        """The candidates kept on `accel` (those on it, or all for an op without accelerator candidates) and
        whether the op has accelerator candidates. Ops of one shape share a candidate list: found once."""
        key = (id(candidates), accel)
        if key not in kept:  # the entry holds the list, so its id is not reused meanwhile
            if any(accelerator[c.device] for c in candidates):
                kept[key] = ([i for i, c in enumerate(candidates) if c.device == accel], True, candidates)
            else:
                kept[key] = (list(range(len(candidates))), False, candidates)
        return kept[key][:2]

    for accel in accelerators:
        keep: list[list[int]] = []
        missing = []
        for op in problem.ops:
            indices, uses_accel = indices_on(op.candidates, accel)
            if uses_accel and not indices:
                missing.append(op.id)
            keep.append(indices)
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            baselines.append(Baseline(accel, None, (f"no candidate on {accel} for op(s) {', '.join(missing[:5])}{more}",)))
            continue
        # only a baseline's cost is reported, not its gap: the heuristic skips the LP relaxation
        def solve_one(restricted: PlacementProblem) -> PlacementResult:
            return solve(restricted, solver, time_limit_s=time_limit_s, lp_bound=LP_BOUND_FOR_BASELINES)

        only_on = restricted(problem, keep)
        result = solve_with(only_on, solve_one) if solve_with else solve_one(only_on)
        baselines.append(Baseline(accel, result, result.reasons))
    return baselines

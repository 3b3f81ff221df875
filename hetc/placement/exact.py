"""The exact solver: the placement problem as a mixed-integer program, solved by HiGHS (through scipy).
docs/placement.md ("Exact") describes the program. Also its LP relaxation, the heuristic's start and bound."""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from hetc.placement.evaluate import _Model
from hetc.placement.model import PlacementProblem

# Time limit of the exact solver; on expiry its best plan is returned with HiGHS's gap (status "time_limit").
DEFAULT_TIME_LIMIT_S = 60.0
# Relative MIP gap at which HiGHS stops; small so the exact solver really is exact for tests and reports.
MIP_REL_GAP = 1e-7


@dataclass
class _Milp:
    c: Any
    integrality: Any
    lb: Any
    ub: Any
    rows: list[tuple[dict[int, float], float, float]]
    x_start: list[int]  # first x column of each op
    z_col: int | None  # makespan variable (latency objective)
    excess_cols: list[int]  # elastic inventory columns


def _build_milp(
    m: _Model,
    *,
    objective: Literal["tco", "latency", "shortfall"] = "tco",
    inventory: bool = True,
    latency_limit: bool = True,
) -> _Milp:
    """The placement MILP (docs/placement.md, "Exact"). Columns: x[op, cand] binary; owned/bought devices
    per class; y[edge, a, b] >= 1 when src is on a and dst on b (only pairs with a transfer); T[op] the
    latest finish of op on any path; the soft-SLA slack or, for `objective="latency"`, the makespan Z."""
    import numpy as np

    cost: list[float] = []
    lb: list[float] = []
    ub: list[float] = []
    integ: list[int] = []

    def column(c: float, lo: float, hi: float, integer: bool) -> int:
        cost.append(c)
        lb.append(lo)
        ub.append(hi)
        integ.append(1 if integer else 0)
        return len(cost) - 1

    rows: list[tuple[dict[int, float], float, float]] = []
    want_tco = objective == "tco"
    x_start = []
    for v in range(m.n):
        x_start.append(len(cost))
        for c in m.cands[v]:
            column(c.fixed_usd_per_hour if want_tco else 0.0, 0.0, 1.0, True)
        rows.append(({x_start[v] + k: 1.0 for k in range(len(m.cands[v]))}, 1.0, 1.0))

    # Devices per class: sum(devices * x) = owned + bought (+ shortfall when elastic).
    excess_cols = []
    for d in m.used_devices:
        dev = m.devices[d]
        row: dict[int, float] = {}
        for v in range(m.n):
            for k, c in enumerate(m.cands[v]):
                if c.device == d:
                    row[x_start[v] + k] = float(c.devices)
        if dev.owned:
            row[column(dev.owned_usd_per_hour if want_tco else 0.0, 0.0, dev.owned, False)] = -1.0
        bought_ub = math.inf if (dev.max_bought is None or not inventory) else dev.max_bought
        row[column(dev.usd_per_hour if want_tco else 0.0, 0.0, bought_ub, False)] = -1.0
        if objective == "shortfall" and dev.max_bought is not None:
            excess = column(1.0, 0.0, math.inf, False)
            excess_cols.append(excess)
            row[excess] = -1.0
        rows.append((row, 0.0, 0.0))

    # Transfer pair indicators y >= d_src,a + d_dst,b - 1.
    need_latency = objective == "latency" or (latency_limit and m.limit is not None)
    edge_pairs: list[list[tuple[int, float]]] = []  # per edge: (y column, path ms)
    for edge in m.edges:
        pairs = []
        src_devices = {c.device for c in m.cands[edge.src]}
        dst_devices = {c.device for c in m.cands[edge.dst]}
        for (a, b), (ms, usd) in edge.pairs.items():
            if a not in src_devices or b not in dst_devices:
                continue
            if not usd and not (need_latency and ms):
                continue
            y = column(usd if want_tco else 0.0, 0.0, 1.0, False)
            row = {y: -1.0}
            for k, c in enumerate(m.cands[edge.src]):
                if c.device == a:
                    row[x_start[edge.src] + k] = 1.0
            for k, c in enumerate(m.cands[edge.dst]):
                if c.device == b:
                    row[x_start[edge.dst] + k] = row.get(x_start[edge.dst] + k, 0.0) + 1.0
            rows.append((row, -math.inf, 1.0))
            pairs.append((y, ms))
        edge_pairs.append(pairs)
        for a, b in sorted(edge.edge.forbidden):  # x_src,a + x_dst,b <= 1
            if a in src_devices and b in dst_devices:
                row = {x_start[edge.src] + k: 1.0 for k, c in enumerate(m.cands[edge.src]) if c.device == a}
                row.update({x_start[edge.dst] + k: 1.0 for k, c in enumerate(m.cands[edge.dst]) if c.device == b})
                rows.append((row, -math.inf, 1.0))

    z_col = None
    if need_latency:
        t_col = [column(0.0, 0.0, math.inf, False) for _ in range(m.n)]
        for v in range(m.n):  # T[v] >= own latency
            row = {x_start[v] + k: c.path_ms for k, c in enumerate(m.cands[v]) if c.path_ms}
            row[t_col[v]] = -1.0
            rows.append((row, -math.inf, 0.0))
        for e, edge in enumerate(m.edges):  # T[dst] >= T[src] + transfer + own latency
            row = {x_start[edge.dst] + k: c.path_ms for k, c in enumerate(m.cands[edge.dst]) if c.path_ms}
            row[t_col[edge.src]] = 1.0
            row[t_col[edge.dst]] = -1.0
            for y, ms in edge_pairs[e]:
                if ms:
                    row[y] = ms
            rows.append((row, -math.inf, 0.0))
        if objective == "latency":
            z_col = column(1.0, 0.0, math.inf, False)
            for v in m.sinks:
                rows.append(({t_col[v]: 1.0, z_col: -1.0}, -math.inf, 0.0))
        else:
            slack = None
            if m.lam is not None:
                slack = column(m.lam if want_tco else 0.0, 0.0, math.inf, False)
            for v in m.sinks:
                row = {t_col[v]: 1.0}
                if slack is not None:
                    row[slack] = -1.0
                rows.append((row, -math.inf, m.limit))

    return _Milp(np.array(cost), np.array(integ), np.array(lb), np.array(ub), rows, x_start, z_col, excess_cols)


@dataclass
class _MilpOutcome:
    status: str  # optimal | time_limit | infeasible | no_solution
    choice: list[int] | None
    objective: float | None
    bound: float | None
    message: str


@contextlib.contextmanager
def _native_stdout_silenced() -> Iterator[None]:
    """HiGHS (1.x inside scipy) prints some debug lines with C printf even with display off; they would
    corrupt `hetc ... --json` on stdout, so file descriptor 1 points at /dev/null during a solve."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 (embedded interpreters)
        yield
        return
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _run_milp(m: _Model, model: _Milp, *, relax: bool = False, time_limit_s: float = DEFAULT_TIME_LIMIT_S
              ) -> _MilpOutcome:
    import numpy as np
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import csr_array

    data, row_idx, col_idx, lo, hi = [], [], [], [], []
    for r, (coeffs, row_lo, row_hi) in enumerate(model.rows):
        for col in sorted(coeffs):
            row_idx.append(r)
            col_idx.append(col)
            data.append(coeffs[col])
        lo.append(row_lo)
        hi.append(row_hi)
    matrix = csr_array((data, (row_idx, col_idx)), shape=(len(model.rows), len(model.c)))
    integrality = np.zeros_like(model.integrality) if relax else model.integrality
    with _native_stdout_silenced():
        res = milp(
            model.c,
            integrality=integrality,
            bounds=Bounds(model.lb, model.ub),
            constraints=[LinearConstraint(matrix, np.array(lo), np.array(hi))],
            options={"time_limit": time_limit_s, "mip_rel_gap": MIP_REL_GAP, "presolve": True},
        )
    if res.status == 2:
        return _MilpOutcome("infeasible", None, None, None, res.message)
    if res.x is None:
        return _MilpOutcome("no_solution", None, None, None, res.message)
    choice = []
    for v in range(m.n):
        values = res.x[model.x_start[v]: model.x_start[v] + len(m.cands[v])]
        choice.append(int(np.argmax(values)))
    bound = getattr(res, "mip_dual_bound", None)
    if relax:
        bound = float(res.fun)
    status = "optimal" if res.status == 0 else "time_limit"
    return _MilpOutcome(status, choice, float(res.fun), None if bound is None else float(bound), res.message)


def lp_lower_bound(problem: PlacementProblem) -> float | None:
    """The LP relaxation's optimum: a lower bound on the objective of every plan (None if LP-infeasible)."""
    m = _Model(problem)
    if any(not cs for cs in m.cands):
        return None
    outcome = _run_milp(m, _build_milp(m), relax=True)
    return outcome.bound

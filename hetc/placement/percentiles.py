"""Latency targets below the SLA's highest percentile (`slo.percentiles`): the invocations of each op on a
path at a percentile (each loop at that quantile of its passes), the path latencies of a plan with them, and
the search that tightens the highest percentile's limit until every lower target is met (docs/placement.md,
"Percentiles")."""

from __future__ import annotations

from dataclasses import dataclass, replace

from hetc.dialects import agent as A
from hetc.placement.evaluate import _infeasible_result

# A percentile target below the highest one is met by tightening the highest one's limit and solving again
# (both solvers price one end-to-end limit); at most this many solves per compile.
MAX_PERCENTILE_ROUNDS = 8


@dataclass(frozen=True)
class PercentileTarget:
    """A latency target at a lower percentile than the one the problem's limit holds: every path, with each
    loop at the p-quantile of its passes (not at its bound), must take at most limit_ms."""

    percentile: str  # "p50"
    limit_ms: float
    invocations: dict[str, float]  # op id -> invocations on a path at this percentile


def percentile_value(name: str) -> float:
    return float(name[1:]) / 100.0


def loop_passes_at(q: float, bound: int, p: float) -> int:
    """Passes of a loop body at the p-quantile: with probability q of another pass after each one (at most
    `bound` more), the fewest passes k + 1 with P(at most k more) = 1 - q^(k+1) >= p; bound + 1 at most."""
    for k in range(bound):
        if 1.0 - q ** (k + 1) >= p - 1e-12:
            return k + 1
    return bound + 1


def percentile_invocations(flow, p: float) -> dict[str, float]:
    """Op id -> invocations on a path at percentile p: flow.worst (every loop at its bound) with each
    enclosing loop at its p-quantile of passes instead (a planning estimate: loops are taken one at a time,
    each at its own quantile)."""
    out = {}
    for op in flow.ops:
        factor = 1.0
        parent = op.parent_op()
        while parent is not None and not isinstance(parent, A.GraphOp):
            if isinstance(parent, A.LoopOp):
                bound = parent.max_iterations.value.data
                q = _loop_continue_probability(parent)
                factor *= loop_passes_at(q, bound, p) / (bound + 1)
            parent = parent.parent_op()
        out[op.sym_name.data] = flow.worst[op] * factor
    return out


def _loop_continue_probability(loop) -> float:
    """q of a loop: the probability that one pass produces a feedback value (branch probabilities multiply
    along the way; an op runs when its likeliest input arrives), as hetc.flow counts it."""
    block = loop.body.block
    prob: dict = {arg: 1.0 for arg in block.args}
    for op in block.ops:
        inputs = [prob[v] for v in op.operands if v in prob]
        p = max(inputs) if inputs else 1.0
        if isinstance(op, A.BranchOp):
            p *= op.probability.value.data
        for result in op.results:
            prob[result] = p
    term = block.last_op
    return max([prob.get(v, 0.0) for v in term.feedback] or [0.0])


def meet_percentiles(targets, problem, solve_one):
    """solve_one(problem)'s plan, re-solved under a tighter highest-percentile limit while it misses one of
    the lower percentile `targets` (BuiltProblem.percentile_targets; see solve_placement)."""
    result = solve_one(problem)
    limit = problem.latency_limit_ms
    if not targets or limit is None or problem.soft_sla_lambda is not None or not result.feasible:
        return result
    fastest: dict[str, float] = {}  # per missed percentile, the fastest of the plans found
    missed: list = []
    feasible_at, infeasible_at = limit, None  # the highest-percentile limits tried, for a bisection
    for attempt in range(MAX_PERCENTILE_ROUNDS + 1):
        if result.feasible:
            feasible_at = problem.latency_limit_ms
            missed = [(t, critical) for t in targets
                      if (critical := max(percentile_latencies(problem, result, t.invocations).values(), default=0.0))
                      > t.limit_ms + 1e-6]
            if not missed:
                # the plan is reported against the spec's limit, not the tightened one
                paths = tuple(replace(p, slack_ms=limit - p.latency_ms) for p in result.paths)
                return replace(result, latency_limit_ms=limit, paths=paths)
            for t, critical in missed:
                fastest[t.percentile] = min(critical, fastest.get(t.percentile, critical))
            # tighten in proportion to the worst miss, but not past a limit already found infeasible
            tighter = result.critical_path_ms * min(t.limit_ms / critical for t, critical in missed) * (1 - 1e-9)
            if infeasible_at is not None:
                tighter = max(tighter, (feasible_at + infeasible_at) / 2)
        else:
            infeasible_at = problem.latency_limit_ms
            tighter = (feasible_at + infeasible_at) / 2
        if attempt == MAX_PERCENTILE_ROUNDS:
            break
        problem = replace(problem, latency_limit_ms=tighter)
        result = solve_one(problem)
    reasons = [f"slo latency_ms {t.percentile} {t.limit_ms:g} ms cannot be met: the fastest plan found takes "
               f"{fastest[t.percentile]:g} ms at {t.percentile} (loops at their {t.percentile} passes)"
               for t, _ in missed]
    return _infeasible_result(replace(problem, latency_limit_ms=limit), result.solver, "infeasible",
                              result.solve_time_s, reasons)


def percentile_latencies(problem, result, invocations: dict[str, float]) -> dict[str, float]:
    """Sink op id -> the longest path to it in a plan, with each op invoked `invocations[op]` times on the
    path (transfers into an op as often as the op)."""
    device = {p.op: p.candidate.device for p in result.ops}
    weight = {p.op: p.candidate.latency_ms * invocations.get(p.op, 1.0) for p in result.ops}
    preds: dict[str, list] = {op.id: [] for op in problem.ops}
    succs: dict[str, list] = {op.id: [] for op in problem.ops}
    for edge in problem.edges:
        preds[edge.dst].append(edge)
        succs[edge.src].append(edge.dst)
    waiting = {op: len(edges) for op, edges in preds.items()}
    ready = [op.id for op in problem.ops if not preds[op.id]]
    finish: dict[str, float] = {}
    while ready:
        v = ready.pop()
        start = 0.0
        for edge in preds[v]:
            ms = edge.transfer(device[edge.src], device[v])[0] * invocations.get(v, 1.0)
            start = max(start, finish[edge.src] + ms)
        finish[v] = start + weight[v]
        for w in succs[v]:
            waiting[w] -= 1
            if not waiting[w]:
                ready.append(w)
    return {v: finish[v] for v in finish if not succs[v]}

"""TCO-optimal placement of granular ops under an end-to-end SLA (paper-method.md section 3).

The package, by stage:
- model       the problem and the result (no IR, no solver)
- evaluate    the problem compiled for the solvers, and a plan's paths, cost and result
- exact       the mixed-integer program (HiGHS) and its LP relaxation
- heuristic   repairs and local search for graphs beyond the exact solver
- explain     why a problem is infeasible; why each op's candidate won
- solver      `solve` (exact where it fits, else the heuristic) and the homogeneous baselines
- candidates  per task op and device class, the cost model's candidates (reads no IR)
- problem     the `place` pass's side: decomposed IR -> PlacementProblem, and the unit search
- percentiles lower percentile targets: invocations at a percentile (from the IR), path latencies, and the
              search that tightens the limit until every target is met

The library (everything but `problem` and `percentiles`) knows nothing about the IR; importing this package
loads only it.
docs/placement.md describes the problem, the program, the heuristic and the size threshold of "auto".
"""

from hetc.placement.evaluate import MAX_REPORTED_PATHS, replicas_needed
from hetc.placement.exact import DEFAULT_TIME_LIMIT_S, MIP_REL_GAP, lp_lower_bound
from hetc.placement.explain import explain_infeasible, explain_placement
from hetc.placement.model import (
    EPS_MS,
    SECONDS_PER_HOUR,
    Baseline,
    Candidate,
    CandidateExplanation,
    DeviceClass,
    DeviceUsage,
    Edge,
    EdgePlacement,
    OpExplanation,
    OpNode,
    OpPlacement,
    PathLatency,
    PlacementProblem,
    PlacementResult,
    pd_notation,
)
from hetc.placement.solver import (
    AUTO_EXACT_MAX_BINARIES,
    LP_BOUND_FOR_BASELINES,
    LP_BOUND_MAX_BINARIES,
    SolverName,
    homogeneous_baselines,
    solve,
)

__all__ = [
    "AUTO_EXACT_MAX_BINARIES", "DEFAULT_TIME_LIMIT_S", "EPS_MS", "LP_BOUND_FOR_BASELINES", "LP_BOUND_MAX_BINARIES",
    "MAX_REPORTED_PATHS",
    "MIP_REL_GAP", "SECONDS_PER_HOUR", "Baseline", "Candidate", "CandidateExplanation", "DeviceClass",
    "DeviceUsage", "Edge", "EdgePlacement", "OpExplanation", "OpNode", "OpPlacement", "PathLatency",
    "PlacementProblem", "PlacementResult", "SolverName", "explain_infeasible", "explain_placement",
    "homogeneous_baselines", "lp_lower_bound", "pd_notation", "replicas_needed", "solve",
]

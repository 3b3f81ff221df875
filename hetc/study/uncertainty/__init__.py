"""Decisions under uncertainty (docs/uncertainty.md): which plan is how likely the cheapest, and the robust plan.

- inputs: the uncertain inputs, their default distributions and sources, and the `--uncertainty FILE` reader.
- sampling: seeded draws of every input, and a perturbed copy of a PlacementProblem for one draw.
- fast: the vectorised evaluation of fixed plans and of the cheapest feasible plan over all draws.
- study: the Monte Carlo over the whole decision (pairs or the free problem), statistics, robust plan, verdict.
- tornado: one-at-a-time sensitivity (each input at its p10 and p90).
- analysis: from a spec file to the results (the problem as `hetc sweep` builds it).
"""

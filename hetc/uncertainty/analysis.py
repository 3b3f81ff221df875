"""From a spec file to the uncertainty study's results: builds the placement problem as `hetc sweep` does
(its pair study's pool and restriction for --pairs), draws the samples and runs the study."""

from __future__ import annotations

import numpy as np

from hetc.errors import HetcError, Loc
from hetc.uncertainty.inputs import UncertaintySpec, inputs_for, load_uncertainty
from hetc.uncertainty.sampling import draw, scenarios
from hetc.uncertainty.study import run_study, summary
from hetc.uncertainty.tornado import tornado


def build(spec_path: str, pairs: str | None, hwdb: str = "default", hwdb_extra: tuple[str, ...] = (),
          overrides: dict[str, str] | None = None):
    """(db, spec, BuiltProblem, [(label, allowed masks or None)]) for the free problem or the pair study;
    `overrides` are `hetc sweep --over` settings, one value each (e.g. {"tokens": "512:4096"})."""
    from hetc.frontend import spec_to_module
    from hetc.passes.place import main_graph
    from hetc.pipeline import PipelineRun
    from hetc.placement.problem import build_problem, record_database
    from hetc.sweep import (
        DECOMPOSE_PIPELINE,
        PAIR_SEPARATOR,
        POOL_SEPARATOR,
        SweepOptions,
        _load,
        _pool_cpus,
        _restrict,
        apply_overrides,
        parse_devices,
    )

    db, spec = _load(spec_path, SweepOptions(hwdb=hwdb, hwdb_extra=hwdb_extra))
    if overrides:
        if "pool" in overrides and pairs:
            raise HetcError("--over pool cannot be combined with --pairs (the pairs define the pool)", Loc("--over"))
        spec = apply_overrides(spec, overrides, db)
    devices = parse_devices(pairs, db) if pairs else []
    if pairs:  # the pair study's pool: the pairs' devices and the spec's CPUs, every device bought
        pool = sorted(set(devices) | set(_pool_cpus(spec, db)))
        spec = apply_overrides(spec, {"pool": POOL_SEPARATOR.join(pool), "inventory": "none"}, db)
    module = spec_to_module(spec)
    PipelineRun(spec=DECOMPOSE_PIPELINE).run(module)
    record_database(module, hwdb, tuple(hwdb_extra), db)  # as the compile driver does: one database
    built = build_problem(module, main_graph(module), db, None)
    problem = built.problem
    if not pairs:
        return db, spec, built, _unit_alternatives(built, spec_path)
    if not any(op.role == "prefill" for op in problem.ops) or not any(op.role == "decode" for op in problem.ops):
        raise HetcError("--pairs needs an llm node (a prefill and a decode phase) in the spec", Loc(spec_path))
    alternatives = [(f"{p}{PAIR_SEPARATOR}{d}", _masks(problem, _restrict(problem, p, d)))
                    for p in devices for d in devices]
    return db, spec, built, alternatives


def _masks(problem, restricted) -> list[np.ndarray]:
    """Per op, which of its candidates a restricted copy of the problem kept (the same objects)."""
    return [np.array([any(c is kept for kept in r.candidates) for c in op.candidates], dtype=bool)
            for op, r in zip(problem.ops, restricted.ops, strict=True)]


def _unit_alternatives(built, spec_path: str) -> list[tuple[str, list | None]]:
    """The free problem; with sub-agents planned as a unit, one alternative per combination of their
    accelerator classes, as hetc.placement.problem.solve_placement tries them."""
    import itertools

    from hetc.placement.problem import MAX_UNIT_COMBINATIONS, _units_on

    accelerators = sorted(d.name for d in built.problem.devices if d.accelerator)
    if not built.units or not accelerators:
        return [("free", None)]
    units = sorted(built.units)
    if len(accelerators) ** len(units) > MAX_UNIT_COMBINATIONS:
        raise HetcError(f"{len(units)} sub-agents planned as a unit on {len(accelerators)} accelerator classes make "
                        f"more than {MAX_UNIT_COMBINATIONS} combinations; hetc uncertainty compares at most that "
                        "many (use --pairs, or a smaller pool)", Loc(spec_path))
    return [(", ".join(f"{u} on {c}" for u, c in zip(units, combo, strict=True)),
             _masks(built.problem, _units_on(built, built.problem, dict(zip(units, combo, strict=True)))))
            for combo in itertools.product(accelerators, repeat=len(units))]


def analyse(spec_path: str, *, samples: int, seed: int, uncertainty_file: str | None = None,
            pairs: str | None = None, risk: str = "p90", sla_share: float = 0.9, hwdb: str = "default",
            hwdb_extra: tuple[str, ...] = (), uncertainty: UncertaintySpec | None = None,
            overrides: dict[str, str] | None = None) -> dict:
    """The JSON-ready results (hetc.uncertainty.study.summary plus the run's settings)."""
    db, spec, built, alternatives = build(spec_path, pairs, hwdb, hwdb_extra, overrides)
    if uncertainty is None:
        uncertainty = load_uncertainty(uncertainty_file, db) if uncertainty_file else UncertaintySpec()
    pricing = spec.hardware.pricing
    problem = built.problem
    offline = bool(built.rate_basis)  # offline work: the rate follows from the job's volume
    inputs = inputs_for(uncertainty, [db.devices[d.name] for d in problem.devices], pricing, offline)
    sc = scenarios(problem, inputs, draw(inputs, samples, seed), db, pricing, offline)
    margins = margin_plans(problem, inputs, db, pricing, offline, alternatives, sla_share)
    study = run_study(problem, sc, alternatives, risk=risk, sla_share=sla_share, margin_plans=margins)
    result = summary(study)
    result["tornado"] = (tornado(problem, inputs, db, pricing, offline, alternatives,
                                 study.fixed[study.nominal].choice) if study.nominal >= 0 else [])
    result.update({"seed": seed, "uncertainty": uncertainty.origin, "pricing": pricing,
                   "mode": "pairs" if pairs else "free", "overrides": dict(sorted((overrides or {}).items())),
                   "inputs": [{"input": i.name, "law": i.dist.describe()} for i in inputs]})
    return result


def margin_plans(problem, inputs, db, pricing: str, offline: bool, alternatives, share: float) -> list[np.ndarray]:
    """Per alternative, the plan solved with every cost-model error factor at its `share` quantile (slower
    devices than predicted): candidates with that much latency margin, for the robust plan to choose from."""
    from hetc.uncertainty.fast import NO_CHOICE, solve_restricted
    from hetc.uncertainty.sampling import perturbed_problem

    q = np.array([min(max(share, 1e-6), 1.0 - 1e-6)])
    row = np.array([[inp.dist.factors(q)[0] if inp.kind == "model_error" else 1.0 for inp in inputs]])
    pessimistic = perturbed_problem(problem, scenarios(problem, inputs, row, db, pricing, offline), 0)
    plans = []
    for _, allowed in alternatives:
        _, choice = solve_restricted(pessimistic, allowed)
        if not (choice == NO_CHOICE).any():
            plans.append(choice)
    return plans

"""From a placement problem to the uncertainty study's results, the one code path of `hetc uncertainty`,
`hetc sweep --pairs --uncertainty` and `hetc compile --uncertainty`: `study()` draws the samples, runs the
Monte Carlo and the tornado and returns the JSON-ready summary. `build()` makes the problem from a spec file
as `hetc sweep` does (its pair study's pool and restriction for --pairs); `pair_alternatives()` and
`unit_alternatives()` are the alternatives the study compares."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hetc.dialects.interfaces import DECODE, PREFILL
from hetc.errors import HetcError, Loc
from hetc.study.uncertainty.inputs import UncertaintySpec, inputs_for, load_uncertainty
from hetc.study.uncertainty.sampling import draw, scenarios
from hetc.study.uncertainty.study import run_study, summary
from hetc.study.uncertainty.tornado import tornado


@dataclass(frozen=True)
class StudySettings:
    """How to run a study: samples, seed, the --uncertainty file (None = the documented defaults), and the
    robust plan's risk measure and SLA share."""

    samples: int = 1000
    seed: int = 0
    uncertainty_file: str | None = None
    risk: str = "p90"
    sla_share: float = 0.9

    def add_to_plan(self, plan: dict, spec, db, module, options) -> dict:
        """The compile driver's hook for `hetc compile --uncertainty` (options.uncertainty is self), so the
        driver needs no import of the study, which itself compiles through the driver."""
        return plan_uncertainty(plan, spec, db, module, options)

    def pair_study(self, built, db, pricing: str, pairs: list[tuple[str, str]]) -> dict:
        """`hetc sweep --pairs --uncertainty`: the pair study of one combination (sweep calls it through its
        options, as the compile driver calls add_to_plan)."""
        return study(built, db, pricing, pair_alternatives(built.problem, pairs), self)


def build(spec_path: str, pairs: str | None, hwdb: str = "default", hwdb_extra: tuple[str, ...] = (),
          overrides: dict[str, str] | None = None):
    """(db, spec, BuiltProblem, [(label, allowed masks or None)]) for the free problem or the pair study;
    `overrides` are `hetc sweep --over` settings, one value each (e.g. {"tokens": "512:4096"})."""
    from hetc.study.overrides import POOL_SEPARATOR, apply_overrides
    from hetc.study.sweep import SweepOptions, _load, _pool_cpus, parse_devices

    db, spec = _load(spec_path, SweepOptions(hwdb=hwdb, hwdb_extra=hwdb_extra))
    if overrides:
        if "pool" in overrides and pairs:
            raise HetcError("--over pool cannot be combined with --pairs (the pairs define the pool)", Loc("--over"))
        spec = apply_overrides(spec, overrides, db)
    devices = parse_devices(pairs, db) if pairs else []
    if pairs:  # the pair study's pool: the pairs' devices and the spec's CPUs, every device bought
        pool = sorted(set(devices) | set(_pool_cpus(spec, db)))
        spec = apply_overrides(spec, {"pool": POOL_SEPARATOR.join(pool), "inventory": "none"}, db)
    built = build_loaded(spec, db, hwdb, hwdb_extra)
    problem = built.problem
    if not pairs:
        return db, spec, built, unit_alternatives(built, spec_path)
    if not any(op.role == PREFILL for op in problem.ops) or not any(op.role == DECODE for op in problem.ops):
        raise HetcError("--pairs needs an llm node (a prefill and a decode phase) in the spec", Loc(spec_path))
    return db, spec, built, pair_alternatives(problem, [(p, d) for p in devices for d in devices])


def build_loaded(spec, db, hwdb: str = "default", hwdb_extra: tuple[str, ...] = (), kv_paths: str = "released",
                 kv_paths_extra: tuple[str, ...] = ()):
    """The BuiltProblem of a loaded spec: decomposed by the compile driver, with the compile's database and
    KV-path table recorded as a compile records them, and a hard SLA."""
    from hetc.compiler import CompileOptions, run_passes
    from hetc.passes.place import main_graph
    from hetc.placement.problem import build_problem
    from hetc.spec.frontend import spec_to_module
    from hetc.study.sweep import DECOMPOSE_PIPELINE

    module = spec_to_module(spec)
    run_passes(module, db, CompileOptions(passes=DECOMPOSE_PIPELINE, hwdb=hwdb, hwdb_extra=tuple(hwdb_extra),
                                          kv_paths=kv_paths, kv_paths_extra=tuple(kv_paths_extra)))
    return build_problem(module, main_graph(module), db, None)


def baseline_alternatives(problem) -> list[tuple[str, list[np.ndarray]]]:
    """The homogeneous baselines (hetc.placement.homogeneous_baselines): every op with an accelerator
    candidate on one accelerator class, the others free; classes without a candidate for some op left out."""
    accelerator = {d.name for d in problem.devices if d.accelerator}
    out = []
    for name in sorted(accelerator):
        masks = [np.array([c.device == name or not any(x.device in accelerator for x in op.candidates)
                           for c in op.candidates], dtype=bool) for op in problem.ops]
        if all(m.any() for m in masks):
            out.append((f"all on {name}", masks))
    return out


def deployed_choice(problem, module) -> np.ndarray | None:
    """The candidate index per op of the plan a compiled (placed) module deploys: each task op's placement
    (device, tp, pp, batch) and estimated latency matched among its op's candidates; None if any op does not
    match (the study then takes its own nominal plan)."""
    from hetc.dialects import task as T

    placed = {o.sym_name.data: o for o in module.walk() if isinstance(o, T.TaskOp) and o.placement() is not None}
    choice = []
    for op in problem.ops:
        task = placed.get(op.id)
        if task is None:
            return None
        where = task.placement()
        latency = T.estimate_of(task).get("latency_ms")
        key = (where.device.data, where.tp.data, where.pp.data, where.batch.data)
        found = [k for k, c in enumerate(op.candidates) if (c.device, c.tp, c.pp, c.batch) == key
                 and (latency is None or c.latency_ms == latency)]
        if not found:
            return None
        choice.append(found[0])
    return np.array(choice)


def pair_alternatives(problem, pairs: list[tuple[str, str]]) -> list[tuple[str, list[np.ndarray]]]:
    """One alternative per (prefill, decode) pair, restricted as hetc.study.sweep's pair study restricts it."""
    from hetc.study.sweep import PAIR_SEPARATOR, _restrict

    return [(f"{p}{PAIR_SEPARATOR}{d}", _masks(problem, _restrict(problem, p, d))) for p, d in pairs]


def _masks(problem, restricted) -> list[np.ndarray]:
    """Per op, which of its candidates a restricted copy of the problem kept (the same objects)."""
    return [np.array([any(c is kept for kept in r.candidates) for c in op.candidates], dtype=bool)
            for op, r in zip(problem.ops, restricted.ops, strict=True)]


def unit_alternatives(built, spec_path: str) -> list[tuple[str, list | None]]:
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
    """`hetc uncertainty`: the JSON-ready results (hetc.study.uncertainty.study.summary plus the run's settings)."""
    db, spec, built, alternatives = build(spec_path, pairs, hwdb, hwdb_extra, overrides)
    settings = StudySettings(samples, seed, uncertainty_file, risk, sla_share)
    result = study(built, db, spec.hardware.pricing, alternatives, settings, uncertainty=uncertainty,
                   baselines=None if pairs else baseline_alternatives(built.problem))
    result.update({"mode": "pairs" if pairs else "free", "overrides": dict(sorted((overrides or {}).items()))})
    return result


def study(built, db, pricing: str, alternatives, settings: StudySettings, *,
          uncertainty: UncertaintySpec | None = None, nominal_choice: np.ndarray | None = None,
          baselines: list | None = None) -> dict:
    """The study of a built problem (hetc.placement.problem.BuiltProblem) over `alternatives` (label, candidate
    masks per op or None): hetc.study.uncertainty.study.summary, the tornado and the settings. `nominal_choice`
    (a candidate index per op) names the plan hetc deploys, when the caller solved it itself (compile);
    `baselines` are alternatives shown with their bands that do not compete (homogeneous baselines)."""
    if uncertainty is None:
        uncertainty = (load_uncertainty(settings.uncertainty_file, db) if settings.uncertainty_file
                       else UncertaintySpec())
    problem = built.problem
    if problem.soft_sla_lambda is not None:
        raise HetcError("--uncertainty needs a hard SLA: leave out --soft-sla", Loc("--uncertainty"))
    offline = bool(built.rate_basis)  # offline work: the rate follows from the job's volume
    inputs = inputs_for(uncertainty, [db.devices[d.name] for d in problem.devices], pricing, offline)
    sc = scenarios(problem, inputs, draw(inputs, settings.samples, settings.seed), db, pricing, offline)
    targets = tuple(built.percentile_targets)
    margins = margin_plans(problem, inputs, db, pricing, offline, alternatives, settings.sla_share, targets)
    result_study = run_study(problem, sc, alternatives, risk=settings.risk, sla_share=settings.sla_share,
                             margin_plans=margins, nominal_choice=nominal_choice, baselines=baselines or [],
                             targets=targets)
    result = summary(result_study)
    nominal = result_study.nominal
    result["tornado"] = (tornado(problem, inputs, db, pricing, offline, alternatives,
                                 result_study.fixed[nominal].choice, targets) if nominal >= 0 else [])
    result.update({"seed": settings.seed, "uncertainty": uncertainty.origin, "pricing": pricing,
                   "inputs": [{"input": i.name, "law": i.dist.describe()} for i in inputs]})
    return result


def margin_plans(problem, inputs, db, pricing: str, offline: bool, alternatives, share: float,
                 targets: tuple = ()) -> list[np.ndarray]:
    """Per alternative, the plan solved with every cost-model error factor at its `share` quantile (slower
    devices than predicted): candidates with that much latency margin, for the robust plan to choose from."""
    from hetc.study.uncertainty.fast import NO_CHOICE, Compiled

    q = np.array([min(max(share, 1e-6), 1.0 - 1e-6)])
    row = np.array([[inp.dist.factors(q)[0] if inp.kind == "model_error" else 1.0 for inp in inputs]])
    pessimistic = Compiled(problem, scenarios(problem, inputs, row, db, pricing, offline), targets)
    plans = []
    for _, allowed in alternatives:
        choice = pessimistic.cheapest(allowed)[1][0]
        if not (choice == NO_CHOICE).any():
            plans.append(choice)
    return plans


# The keys of a study's results that plan.json keeps (hetc/schemas/plan.schema.json, "uncertainty"): all but
# the fixed plans' rows, which `hetc uncertainty --json` lists.
PLAN_KEYS = ("samples", "seed", "uncertainty", "pricing", "risk_measure", "sla_share", "rows", "alternatives",
             "baselines", "nominal_plan", "robust_plan", "price_of_robustness", "sensitivity", "tornado",
             "resolves", "verdict", "inputs")


def plan_uncertainty(plan: dict, spec, db, module, options) -> dict:
    """`hetc compile --uncertainty`: the plan with the study of its own decision under "uncertainty" (the
    deployed plan is the nominal plan; sub-agent units and homogeneous baselines as `hetc uncertainty SPEC`
    compares them), checked against the plan's schema."""
    from hetc.bundle.schema import check_built_plan

    built = build_loaded(spec, db, options.hwdb, options.hwdb_extra, options.kv_paths, options.kv_paths_extra)
    result = study(built, db, spec.hardware.pricing, unit_alternatives(built, spec.path), options.uncertainty,
                   nominal_choice=deployed_choice(built.problem, module),
                   baselines=baseline_alternatives(built.problem))
    return check_built_plan({**plan, "uncertainty": {key: result[key] for key in PLAN_KEYS}})

"""The sweep engine: compile one spec under many settings, and the paper's P::D pair study.

Two modes, both driven by `hetc sweep` (hetc.cli.study):

- Override sweep: `--over KEY=V1,V2` (repeatable) names settings to vary; every combination of the values
  is applied to the loaded spec (never to the YAML file) and compiled through the normal pipeline. Rows
  carry the plan's cost, critical path and P::D; each combination's plan.json is kept for `hetc diff`.
  Compiles run in worker processes (ProcessPoolExecutor) because each one spends seconds in the MILP.
- Pair study (`--pairs D1,D2,...`): the shape of the paper's evaluation (reference/paper-method.md,
  section 5). For every (prefill device, decode device) pair from the set, every prefill op is restricted
  to the prefill device and every decode op to the decode device; the other ops keep every candidate of
  the pool (the pair's devices plus the spec's CPUs). The LLM's TCO ($/hour of its prefill and decode ops
  and the KV transfer between them) is compared with a baseline pair: benefit = baseline $/hour / pair
  $/hour at the same request rate and SLA, so > 1 means cheaper. Pair mode ignores the spec's inventory
  unless asked, as the paper assumes unconstrained hardware availability with all capital counted.
  The spec is decomposed and the placement problem built once per combination; each pair is one solve.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from hetc.errors import HetcError, InfeasibleError, Loc
from hetc.model.tco import COMPONENTS
from hetc.study.overrides import POOL_SEPARATOR, Over, apply_overrides, combinations, resolve_device

DECOMPOSE_PIPELINE = "inline-agents,decompose-llm,decompose-tools,decompose-nodes"
DEFAULT_BASELINE_PAIR = "nvidia-h100-sxm::nvidia-h100-sxm"  # the paper's H100::H100 = 1.0
PAIR_SEPARATOR = "::"

# --------------------------------------------------------------------------------------- options, rows


@dataclass(frozen=True)
class SweepOptions:
    hwdb: str = "default"
    hwdb_extra: tuple[str, ...] = ()
    kv_paths: str = "released"  # --kv-paths level (hetc.model.kvpaths.LEVELS)
    kv_paths_extra: tuple[str, ...] = ()
    solver: str = "auto"
    soft_sla: float = 0.0
    model_precision: str | None = None  # --model-precision: applied before the overrides
    jobs: int = 2  # worker processes for the override sweep (1 = in this process)
    uncertainty: object = None  # --uncertainty (pairs): hetc.study.uncertainty.analysis.StudySettings, or None


def base_params(options: SweepOptions) -> dict[str, str]:
    return {"precision": options.model_precision} if options.model_precision else {}


# hetc.compiler (the one compile driver) is imported where it is used: `hetc sweep --help` imports this module
# for OVER_KEYS, and the driver loads xDSL.
def _load(spec_path: str, options: SweepOptions):
    from hetc.compiler import load

    return load(spec_path, compile_options(options))


def compile_options(options: SweepOptions, passes: str | None = None):
    """The compile driver's options for one sweep compile: the plan only (no code, IR files or manifests)."""
    from hetc.compiler import DEFAULT_PIPELINE, CompileOptions

    return CompileOptions(passes=passes or DEFAULT_PIPELINE, hwdb=options.hwdb, hwdb_extra=options.hwdb_extra,
                          kv_paths=options.kv_paths, kv_paths_extra=options.kv_paths_extra, solver=options.solver,
                          soft_sla=options.soft_sla, codegen=False, outputs=False)


# A row's cost columns, copied from the plan's tco (components as docs/cost-model.md names them).
TCO_COLUMNS = ("usd_per_hour", *(f"{name}_usd_per_hour" for name in COMPONENTS), "usd_per_1m_requests",
               "usd_per_1m_tokens")


def _devices_text(plan: dict) -> str:
    return " + ".join(f"{d['count']}x {d['device']}" for d in plan.get("devices", []))


def _plan_row(plan: dict) -> dict:
    paths = plan.get("paths") or []
    critical = max(paths, key=lambda p: p["latency_ms"]) if paths else None
    tco = plan["tco"]
    return {
        "status": "ok",
        **{key: tco[key] for key in TCO_COLUMNS},  # the plan's own figures: one source for every table
        "critical_path_ms": critical["latency_ms"] if critical else None,
        "latency_limit_ms": plan["slo"]["latency_ms"],
        "slack_ms": critical["slack_ms"] if critical else None,
        "pd": plan.get("pd"),
        "devices": _devices_text(plan),
        "reason": None,
    }


def _failed_row(status: str, exc: HetcError) -> dict:
    return {"status": status, **{key: None for key in TCO_COLUMNS}, "critical_path_ms": None,
            "latency_limit_ms": None, "slack_ms": None, "pd": None, "devices": "",
            "reason": "; ".join(d.message for d in exc.diagnostics)}


def compile_loaded(spec, db, options: SweepOptions) -> dict:
    """The plan.json of an already loaded (and possibly modified) spec; no code generation."""
    from hetc import compiler

    return compiler.compile_loaded(spec, db, compile_options(options)).plan


def compile_variant(job: tuple[str, dict[str, str], SweepOptions]) -> tuple[dict, dict | None]:
    """One combination (runs in a worker process): (row without index/params, plan or None)."""
    spec_path, params, options = job
    db, spec = _load(spec_path, options)
    try:
        plan = compile_loaded(apply_overrides(spec, params, db), db, options)
    except InfeasibleError as exc:
        return _failed_row("infeasible", exc), None
    except HetcError as exc:
        return _failed_row("error", exc), None
    if not plan or not plan.get("stages"):
        return _failed_row("error", HetcError("the pipeline placed nothing")), None
    return _plan_row(plan), plan


@dataclass
class SweepResult:
    mode: str  # "over" | "pairs"
    rows: list[dict]
    plans: dict[int, dict] = field(default_factory=dict)  # row index -> plan (override sweep)
    report_plan: dict | None = None  # the plan the report shows
    uncertainty: dict[int, dict] = field(default_factory=dict)  # variant -> study (pairs with --uncertainty)


Progress = Callable[[int, int], None]  # (done, total)


def run_sweep(spec_path: str, overs: Sequence[Over], options: SweepOptions,
              progress: Progress | None = None) -> SweepResult:
    """Compile every combination of `overs`; rows in combination order (deterministic at any --jobs)."""
    db, spec = _load(spec_path, options)
    variants = [{**base_params(options), **params} for params in combinations(overs)]
    for params in variants:  # user errors in the overrides stop the sweep before any work starts
        apply_overrides(spec, params, db)
    jobs = [(spec_path, params, options) for params in variants]
    outcomes: list[tuple[dict, dict | None] | None] = [None] * len(jobs)
    workers = max(1, min(options.jobs, len(jobs), os.cpu_count() or 1))
    if workers == 1:
        for i, job in enumerate(jobs):
            outcomes[i] = compile_variant(job)
            if progress:
                progress(i + 1, len(jobs))
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(compile_variant, job): i for i, job in enumerate(jobs)}
            for done, future in enumerate(as_completed(futures), start=1):
                outcomes[futures[future]] = future.result()
                if progress:
                    progress(done, len(jobs))
    result = SweepResult("over", [])
    for index, (params, outcome) in enumerate(zip(variants, outcomes, strict=True)):
        row, plan = outcome
        result.rows.append({"index": index, "params": params, **row})
        if plan is not None:
            result.plans[index] = plan
    feasible = [r for r in result.rows if r["status"] == "ok"]
    if feasible:
        best = min(feasible, key=lambda r: (r["usd_per_hour"], r["index"]))
        result.report_plan = result.plans[best["index"]]
    return result


# ----------------------------------------------------------------------------------------- pair study


def parse_pair(text: str, db, where: str) -> tuple[str, str]:
    prefill, sep, decode = text.partition(PAIR_SEPARATOR)
    if not sep or not prefill.strip() or not decode.strip():
        raise HetcError(f"expected PREFILL::DECODE (e.g. h100::h100), got {text!r}", Loc(where))
    return resolve_device(db, prefill.strip(), where), resolve_device(db, decode.strip(), where)


def parse_devices(text: str, db, where: str = "--pairs") -> list[str]:
    names = [d.strip() for d in text.split(",") if d.strip()]
    if not names:
        raise HetcError("expected a comma-separated list of devices", Loc(where))
    devices = []
    for name in names:
        dev = resolve_device(db, name, where)
        if db.devices[dev].kind == "cpu":
            raise HetcError(f"{name!r} is a CPU; P::D pairs are accelerators that run an LLM", Loc(where))
        if dev not in devices:
            devices.append(dev)
    return devices


def _pool_cpus(spec, db) -> list[str]:
    pool = spec.hardware.pool if spec.hardware.pool is not None else sorted(db.devices)
    return [d for d in pool if d in db.devices and db.devices[d].kind == "cpu"]


def _restrict(problem, prefill: str, decode: str):
    ops = []
    for op in problem.ops:
        if op.role == "prefill":
            op = replace(op, candidates=[c for c in op.candidates if c.device == prefill])
        elif op.role == "decode":
            op = replace(op, candidates=[c for c in op.candidates if c.device == decode])
        ops.append(op)
    return replace(problem, ops=ops)


def _config(placement) -> str:
    c = placement.candidate
    return f"{placement.replicas}x tp{c.tp}" + (f" pp{c.pp}" if c.pp > 1 else "") + f" b{c.batch}"


def _pair_row(result, prefill: str, decode: str, choice: str) -> dict:
    row = {"pair": f"{prefill}{PAIR_SEPARATOR}{decode}", "prefill_device": prefill, "decode_device": decode,
           "choice": choice, "status": "ok" if result.feasible else "infeasible", "benefit": None,
           "llm_usd_per_hour": None, "usd_per_hour": None, "prefill": "", "decode": "", "ttft_ms": None,
           "tbt_ms": None, "kv_transfer_ms": None, "critical_path_ms": None, "slack_ms": None,
           "reason": None if result.feasible else "; ".join(result.reasons) or "no feasible placement"}
    if not result.feasible:
        return row
    llm_ops = {p.op for p in result.ops if p.role in ("prefill", "decode")}
    kv_edges = [e for e in result.edges if e.src in llm_ops and e.dst in llm_ops]
    prefills = [p for p in result.ops if p.role == "prefill"]
    decodes = [p for p in result.ops if p.role == "decode"]
    row.update({
        "llm_usd_per_hour": sum(p.usd_per_hour for p in result.ops if p.op in llm_ops)
        + sum(e.usd_per_hour for e in kv_edges),
        "usd_per_hour": result.tco_usd_per_hour,
        "prefill": ", ".join(_config(p) for p in prefills),
        "decode": ", ".join(_config(p) for p in decodes),
        "ttft_ms": max((p.candidate.metrics.get("ttft_ms", p.candidate.latency_ms) for p in prefills), default=None),
        "tbt_ms": max((p.candidate.metrics["tbt_ms"] for p in decodes if "tbt_ms" in p.candidate.metrics),
                      default=None),
        "kv_transfer_ms": max((e.transfer_ms for e in kv_edges), default=0.0),
        "critical_path_ms": result.critical_path_ms,
        "slack_ms": result.latency_slack_ms,
    })
    return row


@dataclass(frozen=True)
class _NoCandidate:
    """Stands in for an infeasible PlacementResult when a phase has no candidate on its pair device."""

    ops: tuple
    prefill: str
    decode: str
    spec: object
    feasible: bool = False

    @property
    def reasons(self) -> tuple[str, ...]:
        slo = self.spec.slo
        limits = {"prefill": f"TTFT {slo.ttft_ms:g} ms" if slo.ttft_ms else "",
                  "decode": f"TBT {slo.tbt_ms:g} ms" if slo.tbt_ms else ""}
        lines = []
        for op in self.ops:
            device = self.prefill if op.role == "prefill" else self.decode
            limit = limits.get(op.role) or ""
            lines.append(f"{op.id}: no configuration on {device} fits in memory" + (f" and meets {limit}" if limit else ""))
        return tuple(lines)


def _pd_devices(result) -> tuple[str, str]:
    from hetc.placement import pd_notation

    prefill, _, decode = pd_notation(result).partition(PAIR_SEPARATOR)
    return prefill, decode


def pair_rows(spec, db, devices: Sequence[str], baseline: tuple[str, str], options: SweepOptions,
              studies: list[dict] | None = None) -> list[dict]:
    """Rows for one loaded (already overridden) spec: every pair, then hetc's own unrestricted choice. With
    options.uncertainty, each pair row gains its win probability and TCO band (UNCERTAINTY_COLUMNS) and the
    study's results are appended to `studies`."""
    from hetc.compiler import run_passes
    from hetc.model.kvpaths import pair_status
    from hetc.passes.place import main_graph
    from hetc.placement import solve
    from hetc.placement.problem import build_problem, kv_engine, module_kv_paths
    from hetc.spec.frontend import spec_to_module

    module = spec_to_module(spec)
    run_passes(module, db, compile_options(options, DECOMPOSE_PIPELINE))  # decomposed, with its database recorded
    built = build_problem(module, main_graph(module), db, options.soft_sla or None)
    if not any(op.role == "prefill" for op in built.problem.ops) or not any(
            op.role == "decode" for op in built.problem.ops):
        raise HetcError("--pairs needs an llm node (a prefill and a decode phase) in the spec", Loc(spec.path))
    pairs = [(p, d) for p in devices for d in devices]
    if baseline not in pairs:
        pairs.append(baseline)
    rows = []
    for p, d in pairs:
        restricted = _restrict(built.problem, p, d)
        empty = [op for op in restricted.ops if not op.candidates]
        if empty:  # say which phase the device cannot serve, rather than the solver's generic reason
            rows.append(_pair_row(_NoCandidate(empty, p, d, spec), p, d, "pair"))
        else:
            rows.append(_pair_row(solve(restricted, options.solver), p, d, "pair"))
    free = solve(built.problem, options.solver)
    rows.append(_pair_row(free, *(_pd_devices(free) if free.feasible else ("-", "-")), "hetc"))
    # each row's KV path: how mature the pair's path is and the --kv-paths level a plan on it needs
    table = module_kv_paths(module)[0]
    engine = kv_engine(module, next(built.ops[op.id] for op in built.problem.ops if op.role == "prefill"))
    for row in rows:
        p, d = row["prefill_device"], row["decode_device"]
        if p in db.devices and d in db.devices:
            row.update(pair_status(table, db.devices[p], db.devices[d], engine))
        else:  # hetc's choice mixes classes, or found no plan
            row.update({"kv_path": "", "kv_path_status": "", "kv_level_needed": ""})
        row["kv_level"] = options.kv_paths
    base = next(r for r in rows if (r["prefill_device"], r["decode_device"]) == baseline and r["choice"] == "pair")
    for row in rows:
        if row["llm_usd_per_hour"] and base["llm_usd_per_hour"]:
            row["benefit"] = base["llm_usd_per_hour"] / row["llm_usd_per_hour"]
    if options.uncertainty is not None:
        _add_uncertainty(rows, built, db, spec.hardware.pricing, pairs, options.uncertainty, studies)
    return rows


# --uncertainty: what each pair row gains (the whole plan's $/hour, as `hetc uncertainty --pairs` reports it)
UNCERTAINTY_COLUMNS = ("p_cheapest", "p10_usd_per_hour", "p50_usd_per_hour", "p90_usd_per_hour")


def _add_uncertainty(rows: list[dict], built, db, pricing: str, pairs, settings, studies: list | None) -> None:
    """The pair study under uncertainty (hetc.study.uncertainty.analysis.study, the code path of `hetc uncertainty
    --pairs`): every pair row gets its P(cheapest) and p10/p50/p90 TCO; hetc's own row gets none."""
    result = settings.pair_study(built, db, pricing, pairs)
    by_pair = {r["plan"]: r for r in result["alternatives"]}
    for row in rows:
        found = by_pair.get(row["pair"]) if row["choice"] == "pair" else None
        row.update({key: found[key] if found else None for key in UNCERTAINTY_COLUMNS})
    if studies is not None:
        studies.append(result)


def run_pairs(spec_path: str, devices_text: str, baseline_text: str, overs: Sequence[Over], options: SweepOptions,
              keep_inventory: bool = False, progress: Progress | None = None, with_report_plan: bool = True
              ) -> SweepResult:
    """The pair study for every combination of `overs` (e.g. token shapes x precisions)."""
    db, spec = _load(spec_path, options)
    devices = parse_devices(devices_text, db)
    baseline = parse_pair(baseline_text, db, "--baseline")
    pool = sorted(set(devices) | set(baseline) | set(_pool_cpus(spec, db)))
    fixed = {"pool": POOL_SEPARATOR.join(pool), **({} if keep_inventory else {"inventory": "none"}),
             **base_params(options)}
    if any(o.key == "pool" for o in overs):
        raise HetcError("--over pool cannot be combined with --pairs (the pairs define the pool)", Loc("--over"))
    variants = [{**fixed, **params} for params in combinations(overs)]
    specs = [apply_overrides(spec, params, db) for params in variants]
    result = SweepResult("pairs", [])
    steps = len(variants) + (1 if with_report_plan else 0)
    for number, (params, variant_spec) in enumerate(zip(variants, specs, strict=True)):
        shown = {k: v for k, v in params.items() if k not in fixed or k == "precision"}
        studies: list[dict] = []
        try:
            rows = pair_rows(variant_spec, db, devices, baseline, options, studies)
        except InfeasibleError as exc:  # an op has no candidate at all (e.g. a model fits nowhere)
            rows = [{"pair": "-", "prefill_device": "-", "decode_device": "-", "choice": "pair",
                     **_failed_row("infeasible", exc), "benefit": None, "llm_usd_per_hour": None,
                     "prefill": "", "decode": "", "ttft_ms": None, "tbt_ms": None, "kv_transfer_ms": None,
                     "kv_path": "", "kv_path_status": "", "kv_level_needed": "", "kv_level": options.kv_paths}]
        for row in rows:
            result.rows.append({"index": len(result.rows), "variant": number, "params": shown,
                                "baseline": f"{baseline[0]}{PAIR_SEPARATOR}{baseline[1]}", **row})
        if studies:
            result.uncertainty[number] = studies[0]
        if progress:
            progress(number + 1, steps)
    if with_report_plan:
        # the report's plan: hetc's free choice on the pair pool for the first combination
        try:
            result.report_plan = compile_loaded(specs[0], db, options)
        except InfeasibleError:
            result.report_plan = None
        if progress:
            progress(steps, steps)
    return result


# ------------------------------------------------------------------------------------------- outputs

OVER_COLUMNS = ("index", "status", *TCO_COLUMNS, "critical_path_ms", "latency_limit_ms", "slack_ms",
                "pd", "devices", "reason")
PAIR_COLUMNS = ("index", "variant", "choice", "pair", "prefill_device", "decode_device", "status", "benefit",
                "llm_usd_per_hour", "usd_per_hour", "prefill", "decode", "ttft_ms", "tbt_ms", "kv_transfer_ms",
                "kv_level", "kv_path", "kv_path_status", "kv_level_needed", "critical_path_ms", "slack_ms", "baseline", "reason")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def table_csv(result: SweepResult) -> str:
    """One row per sweep row; override values first as `over:KEY` columns."""
    keys = sorted({k for r in result.rows for k in r["params"]})
    columns = PAIR_COLUMNS if result.mode == "pairs" else OVER_COLUMNS
    if result.uncertainty:
        columns = columns + UNCERTAINTY_COLUMNS
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([f"over:{k}" for k in keys] + list(columns))
    for row in result.rows:
        writer.writerow([row["params"].get(k, "") for k in keys] + [_cell(row.get(c)) for c in columns])
    return buf.getvalue()


def table_json(result: SweepResult) -> dict:
    data = {"mode": result.mode, "rows": result.rows}
    if result.uncertainty:  # per combination (variant): the study of `hetc uncertainty --pairs --json`
        data["uncertainty"] = {str(variant): study for variant, study in sorted(result.uncertainty.items())}
    return data


def output_files(result: SweepResult) -> dict[str, bytes]:
    from hetc.bundle.report import render_report
    from hetc.json_text import to_json

    files = {"table.csv": table_csv(result).encode(), "table.json": to_json(table_json(result))}
    for index, plan in sorted(result.plans.items()):
        files[f"plans/{index:03d}.json"] = to_json(plan)
    if result.report_plan is not None:
        files["report.html"] = render_report(result.report_plan, result.rows,
                                             uncertainty=result.uncertainty.get(0)).encode()
    return files


def write_outputs(result: SweepResult, out_dir: str) -> dict:
    """Atomically write table.csv, table.json, report.html and plans/ into out_dir (with manifest.json)."""
    from hetc.bundle.writer import write_bundle

    return write_bundle(out_dir, output_files(result))

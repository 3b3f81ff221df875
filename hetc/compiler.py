"""The compile driver: spec -> IR -> passes -> code -> bundle, one call per stage.

Stages (DESIGN.md "Data flow"): load spec, frontend, the pass pipeline (decompose, place, partition),
code generation for the placed kernels, the run plan, deploy manifests, the report, and the bundle.
Every stage's wall time is recorded for `--timings` and bench/compile_scaling.py.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hetc.pipeline import DEFAULT_PIPELINE, PipelineRun, print_module


@dataclass
class CompileOptions:
    passes: str = DEFAULT_PIPELINE
    hwdb: str = "default"
    hwdb_extra: tuple[str, ...] = ()
    solver: str = "auto"
    soft_sla: float = 0.0  # 0 = hard SLA; else the paper's lambda ($ per ms of slack per hour)
    explain: bool = False  # keep every op's candidates and why one won (hetc.placement explain)
    dump_ir: tuple[str, ...] = ()
    generic: bool = False
    codegen: bool = True
    verify_code: bool = True  # run the consuming tools (llvmlite, ptxas, cc) on generated code where present


@dataclass
class CompileResult:
    spec: object
    module: object
    plan: dict | None
    files: dict[str, bytes]
    dumps: list[tuple[str, str]]
    timings: dict[str, float] = field(default_factory=dict)
    placement: object | None = None


class _Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        yield
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start


def load(spec_path: str, options: CompileOptions):
    from hetc.hwdb.loader import load_hwdb
    from hetc.spec_loader import load_spec

    db = load_hwdb(options.hwdb, list(options.hwdb_extra))
    return db, load_spec(spec_path, db.aliases())


def compile_spec(spec_path: str, options: CompileOptions) -> CompileResult:
    from hetc.frontend import spec_to_module
    from hetc.placement_problem import record_database

    timer = _Timer()
    with timer.stage("load"):
        db, spec = load(spec_path, options)
    with timer.stage("frontend"):
        module = spec_to_module(spec)
    record_database(module, options.hwdb, options.hwdb_extra, db)  # the one database of this compile
    dump = set(options.dump_ir) | {"all"}  # the bundle's ir/ keeps every stage
    run = PipelineRun(spec=options.passes, dump=dump, generic=options.generic, options={
        "place": {"hwdb": options.hwdb, "hwdb_extra": ",".join(options.hwdb_extra), "solver": options.solver,
                  "soft_sla": options.soft_sla, "explain": options.explain}})
    with timer.stage("passes"):
        run.run(module)
    timer.timings.update({f"pass:{k}": v for k, v in run.timings.items()})
    files: dict[str, bytes] = {}
    for index, (name, text) in enumerate(run.dumps):
        files[f"ir/{index:02d}-{name}.mlir"] = text.encode()
    files["ir/final.generic.mlir"] = print_module(module, generic=True).encode()
    kernels: dict[str, list[str]] = {}
    if options.codegen and "place" in run.pass_names:
        from hetc.codegen import generate

        with timer.stage("codegen"):
            code_files, kernels = generate(module, db, verify=options.verify_code)
        files.update(code_files)
    from hetc.plan import build_plan

    with timer.stage("plan"):
        plan = build_plan(module, spec, db, run.pass_names, kernels, options)
    if plan is not None:  # a pipeline without place makes IR only
        files["plan.json"] = _json(plan)
        with timer.stage("deploy"):
            files.update(_deploy_files(plan))
        with timer.stage("report"):
            files.update(_report_files(plan))
    return CompileResult(spec, module, plan, files, [d for d in run.dumps if _wanted(d[0], options)],
                         timer.timings)


def _wanted(name: str, options: CompileOptions) -> bool:
    return "all" in options.dump_ir or name in options.dump_ir


def _json(data) -> bytes:
    from hetc.bundle import to_json

    return to_json(data)


def _deploy_files(plan: dict) -> dict[str, bytes]:
    from hetc.deploy_k8s import render_kubernetes
    from hetc.deploy_ray import render_ray

    files = {f"deploy/kubernetes/{name}": text.encode() for name, text in render_kubernetes(plan).items()}
    files.update({f"deploy/ray-serve/{name}": text.encode() for name, text in render_ray(plan).items()})
    return files


def _report_files(plan: dict) -> dict[str, bytes]:
    try:
        from hetc.report import render_report
    except ModuleNotFoundError:
        return {}
    return {"report.html": render_report(plan).encode()}


def write(result: CompileResult, out_dir: str | Path) -> dict:
    from hetc.bundle import write_bundle

    t = time.perf_counter()
    man = write_bundle(out_dir, result.files)
    result.timings["bundle"] = time.perf_counter() - t
    return man

"""The compile driver: spec -> IR -> passes -> code -> bundle, one call per stage.

Stages (DESIGN.md "Data flow"): load spec, frontend, the pass pipeline (decompose, place, partition),
code generation for the placed kernels, the run plan, deploy manifests, the report, and the bundle.
Every stage's wall time is recorded for `--timings` and bench/compile_scaling.py.
"""

from __future__ import annotations

import errno
import gc
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from xdsl.dialects.builtin import FileLineColLoc, StringAttr

from hetc.bundle.codegen import generate
from hetc.bundle.kubernetes import render_kubernetes
from hetc.bundle.plan import build_plan
from hetc.bundle.ray import render_ray
from hetc.bundle.speech import NoSpeechServer
from hetc.bundle.vllm import runtime_dockerfile
from hetc.bundle.writer import write_bundle
from hetc.errors import Diagnostic, HetcError, Loc
from hetc.hwdb.loader import load_hwdb
from hetc.json_text import to_json
from hetc.passes.common import pass_report
from hetc.pipeline import DEFAULT_PIPELINE, PipelineRun, print_module
from hetc.placement.problem import record_database, record_kv_paths
from hetc.spec.frontend import spec_to_module
from hetc.spec.loader import load_spec


@dataclass
class CompileOptions:
    passes: str = DEFAULT_PIPELINE
    hwdb: str = "default"
    hwdb_extra: tuple[str, ...] = ()
    kv_paths: str = "released"  # the KV-path level a P::D split may rely on (hetc.model.kvpaths.LEVELS)
    kv_paths_extra: tuple[str, ...] = ()
    solver: str = "auto"
    soft_sla: float = 0.0  # 0 = hard SLA; else the paper's lambda ($ per ms of slack per hour)
    explain: bool = False  # keep every op's candidates and why one won (hetc.placement explain)
    dump_ir: tuple[str, ...] = ()
    generic: bool = False
    codegen: bool = True
    verify_code: bool = True  # run the consuming tools (llvmlite, ptxas, cc) on generated code where present
    uncertainty: object = None  # --uncertainty: hetc.study.uncertainty.analysis.StudySettings, or None (no study)
    outputs: bool = True  # the bundle's files (IR, plan.json, deploy, report); False: the plan only (hetc sweep)


@dataclass
class CompileResult:
    spec: object
    module: object
    plan: dict | None
    files: dict[str, bytes]
    dumps: list[tuple[str, str]]
    timings: dict[str, float] = field(default_factory=dict)
    placement: dict | None = None  # place's plan-wide summary (cost, paths, edges, baselines, explain)
    cpu_timings: dict[str, float] = field(default_factory=dict)  # CPU seconds of the stages in `timings`
    warnings: list[str] = field(default_factory=list)  # what the bundle lacks, and why (the CLI prints them)


class _Timer:
    """Wall and CPU seconds per stage (CPU time is what a shared machine does not distort)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self.cpu_timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str):
        start, cpu = time.perf_counter(), time.process_time()
        yield
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
        self.cpu_timings[name] = self.cpu_timings.get(name, 0.0) + time.process_time() - cpu


def load(spec_path: str, options: CompileOptions):
    """The hardware database `options` names and the spec at `spec_path`, resolved against it."""
    db = load_hwdb(options.hwdb, list(options.hwdb_extra))
    return db, load_spec(spec_path, db.aliases())


# Allocations between young-generation collections while a compile runs (CPython's default is 700). Nearly
# everything a compile allocates lives until it ends (spec, IR, placement problem, plan), and each time the
# heap grew by a quarter CPython re-scanned all of it in a full collection that found nothing to free: 24
# of them, 10 s of a 60 s compile of 10,000 nodes (bench/compile_scaling.py). With this threshold young
# cycles are still collected, in larger batches, and the long-lived objects are not re-scanned.
COMPILE_GC_THRESHOLD = (50_000, 20, 1_000)


@contextmanager
def _long_lived_heap():
    """The collector tuned for a compile's heap (COMPILE_GC_THRESHOLD) while it runs; as it was afterwards."""
    before = gc.get_threshold()
    if before[0]:  # a threshold of 0 turns automatic collection off: it stays off
        gc.set_threshold(*(max(mine, theirs) for mine, theirs in zip(COMPILE_GC_THRESHOLD, before, strict=True)))
    try:
        yield
    finally:
        gc.set_threshold(*before)


# The spec a bundle was compiled from, kept in it (not when the spec includes agent files: they may live
# anywhere), so `hetc replan BUNDLE` needs nothing else.
SPEC_IN_BUNDLE = "spec/spec.yaml"


def compile_spec(spec_path: str, options: CompileOptions) -> CompileResult:
    """Load the spec at `spec_path` and compile it; IR locations name the files as the bundle records them."""
    timer = _Timer()
    with _long_lived_heap():
        with timer.stage("load"):
            db, spec = load(spec_path, options)
        names = _bundle_names(spec)
        with _sources_named_as_typed(names), _disk_errors_are_the_users():
            result = compile_loaded(spec, db, options, timer=timer, source_names=names)
    if result.plan is not None and options.outputs and not spec.included_sha256:
        result.files[SPEC_IN_BUNDLE] = spec.source  # what `hetc replan` recompiles (its sha256 is in provenance)
    return result


def compile_loaded(spec, db, options: CompileOptions, *, timer: _Timer | None = None,
                   source_names: dict[str, str] | None = None) -> CompileResult:
    """Compile an already loaded (and possibly modified: hetc sweep) spec: frontend, passes, code, plan and,
    with `options.outputs`, the bundle's other files."""
    with _long_lived_heap():
        return _compile_loaded(spec, db, options, timer or _Timer(), source_names)


def _compile_loaded(spec, db, options: CompileOptions, timer: _Timer, source_names: dict[str, str] | None
                    ) -> CompileResult:
    with timer.stage("frontend"):
        module = spec_to_module(spec)
    if source_names:
        _rename_sources(module, source_names)
    run = run_passes(module, db, options, timer)
    files: dict[str, bytes] = {}
    warnings: list[str] = []
    if options.outputs:
        stages = ["parsed", *run.pass_names]
        dumped = [index for index, name in enumerate(stages) if run.wants(name)]  # dumps come in stage order
        for index, (name, text) in zip(dumped, run.dumps, strict=True):
            files[f"ir/{index:02d}-{name}.mlir"] = text.encode()
        files["ir/final.generic.mlir"] = print_module(module, generic=True).encode()
    kernels: dict[str, dict[str, list[str]]] = {}
    if options.codegen and "place" in run.pass_names:
        with timer.stage("codegen"):
            code_files, kernels = generate(module, db, verify=options.verify_code)
        files.update(code_files)
    summary = pass_report(module, "place")
    with timer.stage("plan"):
        plan = build_plan(module, spec, db, run.pass_names, kernels, options, summary)
    if plan is not None and options.uncertainty is not None:
        with timer.stage("uncertainty"):
            plan = options.uncertainty.add_to_plan(plan, spec, db, module, options)
    if plan is not None and options.outputs:  # a pipeline without place makes IR only
        files["plan.json"] = to_json(plan)
        with timer.stage("deploy"):
            files.update(_deploy_files(plan, warnings))
        with timer.stage("report"):
            files.update(_report_files(plan))
    return CompileResult(spec, module, plan, files, run.dumps, timer.timings, summary, timer.cpu_timings, warnings)


def run_passes(module, db, options: CompileOptions, timer: _Timer | None = None) -> PipelineRun:
    """Record the compile's one hardware database and KV-path table on `module`, then run `options.passes`
    on it (IR dumps only after the passes `options.dump_ir` names)."""
    timer = timer or _Timer()
    record_database(module, options.hwdb, options.hwdb_extra, db)  # the one database of this compile
    record_kv_paths(module, options.kv_paths, options.kv_paths_extra)  # and its one KV-path table and level
    run = PipelineRun(spec=options.passes, dump=set(options.dump_ir), generic=options.generic, options={
        "place": {"solver": options.solver, "soft_sla": options.soft_sla, "explain": options.explain}})
    with timer.stage("passes"):
        run.run(module)
    timer.timings.update({f"pass:{k}": v for k, v in run.timings.items()})
    timer.cpu_timings.update({f"pass:{k}": v for k, v in run.cpu_timings.items()})
    return run


def _bundle_names(spec) -> dict[str, str]:
    """Source file names as the bundle records them (IR locations): the spec's base name and each included
    agent file relative to the spec's folder, so the bundle does not depend on how the spec path was typed
    or on the working directory."""
    base = os.path.dirname(os.path.abspath(spec.path))
    names = {spec.path: os.path.basename(spec.path)}
    for display in spec.included_sha256:
        names[display] = os.path.relpath(os.path.abspath(display), base)
    return names


def _rename_sources(module, names: dict[str, str]) -> None:
    for op in module.walk():
        loc = op.location
        if isinstance(loc, FileLineColLoc) and loc.filename.data in names:
            op.location = FileLineColLoc(StringAttr(names[loc.filename.data]), loc.line, loc.column)


@contextmanager
def _sources_named_as_typed(names: dict[str, str]):
    """Errors raised while compiling point at the files as the user named them."""
    typed = {name: display for display, name in names.items()}
    try:
        yield
    except HetcError as exc:
        if not any(d.loc.file in typed for d in exc.diagnostics):
            raise
        diagnostics = [Diagnostic(Loc(typed.get(d.loc.file, d.loc.file), d.loc.line, d.loc.col), d.message)
                       for d in exc.diagnostics]
        raise type(exc)(diagnostics) from None


# Writing a scratch file (code generation runs ptxas and cc on files in a temporary directory) fails for
# reasons of the user's machine: a full disk or quota, `ulimit -f`, a read-only or forbidden TMPDIR.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM})


@contextmanager
def _disk_errors_are_the_users():
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        where = exc.filename if isinstance(exc.filename, str) else tempfile.gettempdir()
        raise HetcError(f"cannot write a scratch file: {exc.strerror}", Loc(where)) from None


KUBERNETES_NOT_EXPORTED = "deploy/kubernetes/NOT-EXPORTED.txt"


def _deploy_files(plan: dict, warnings: list[str]) -> dict[str, bytes]:
    try:
        files = {f"deploy/kubernetes/{name}": text.encode() for name, text in render_kubernetes(plan).items()}
    except NoSpeechServer as exc:  # the plan stands; only this export lacks a server image hetc knows
        reason = "; ".join(d.message for d in exc.diagnostics)
        warnings.append(f"{KUBERNETES_NOT_EXPORTED}: the Kubernetes manifests were not written: {reason}")
        files = {KUBERNETES_NOT_EXPORTED: (
            f"The Kubernetes manifests of this plan were not written:\n{reason}.\n\nWith a speech server image:\n"
            "    hetc deploy BUNDLE --target kubernetes --image speech=IMAGE -o DIR\n").encode()}
    files.update({f"deploy/ray-serve/{name}": text.encode() for name, text in render_ray(plan).items()})
    files["deploy/runtime/Dockerfile"] = runtime_dockerfile(plan).encode()
    return files


def _report_files(plan: dict) -> dict[str, bytes]:
    try:
        from hetc.bundle.report import render_report
    except ModuleNotFoundError:
        return {}
    return {"report.html": render_report(plan).encode()}


def write(result: CompileResult, out_dir: str | Path) -> dict:
    t, cpu = time.perf_counter(), time.process_time()
    man = write_bundle(out_dir, result.files)
    result.timings["bundle"] = time.perf_counter() - t
    result.cpu_timings["bundle"] = time.process_time() - cpu
    return man

"""`hetc compile`, `hetc validate`, `hetc opt`."""

from __future__ import annotations

import json
import os
import sys

import click

from hetc.cli.options import FiniteFloat, hwdb_options, kv_path_options, solver_option
from hetc.cli.uncertainty import study_options
from hetc.errors import HetcError, Loc, PolicyError, printable, printable_ir
from hetc.pipeline import DEFAULT_PIPELINE


def _spec_arg(fn):
    return click.argument("spec", type=click.Path(dir_okay=False, allow_dash=True))(fn)  # `-`: standard input


@click.command("compile")
@_spec_arg
@click.option("-o", "--output", "output", required=True, type=click.Path(file_okay=False),
              help="Bundle directory to write: replaced atomically if it is empty or an earlier bundle; "
                   "any other directory is refused.")
@click.option("--passes", default=DEFAULT_PIPELINE, show_default=True, help="Pass pipeline, xdsl-opt syntax.")
@click.option("--dump-ir", "dump_ir", multiple=True, metavar="PASS|all|parsed",
              help="Print the IR after the named pass (repeatable) or after every pass (all).")
@click.option("--dump-ir-dir", type=click.Path(file_okay=False),
              help="Also write the dumps into this directory (the same rules as -o).")
@click.option("--generic", is_flag=True, help="Print dumps in MLIR generic form.")
@solver_option
@click.option("--soft-sla", "soft_sla", type=FiniteFloat(minimum=0.0), default=0.0,
              help="Soft SLA: penalty lambda in $/hour per ms of slack (0 = hard SLA).")
@click.option("--explain", is_flag=True, help="Show, per op, the candidates considered and why one won.")
@click.option("--max-cost", "max_cost", type=FiniteFloat(minimum=0.0),
              help="Fail (exit 4) when the plan costs more $/hour; the bundle is then not written.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable summary on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@study_options
@hwdb_options
@kv_path_options
def compile_cmd(spec, output, passes, dump_ir, dump_ir_dir, generic, solver, soft_sla, explain, max_cost, as_json,
                quiet, uncertainty_file, uncertainty_samples, uncertainty_seed, hwdb, hwdb_extra, kv_paths,
                kv_paths_extra):
    """Compile SPEC into a deployment bundle in OUTPUT."""
    from hetc.bundle.writer import HIDDEN_MANIFEST, check_output, write_bundle
    from hetc.cli.uncertainty import study_settings
    from hetc.compiler import CompileOptions, compile_spec, write

    inputs = (spec, *hwdb_extra, *kv_paths_extra)
    for folder in (output, dump_ir_dir):  # refuse a directory hetc may not replace before a long compile
        if folder is not None:
            check_output(folder, inputs)
    if dump_ir_dir and os.path.realpath(dump_ir_dir) == os.path.realpath(output):
        raise HetcError("--dump-ir-dir and -o name one directory; the bundle already keeps every dump in ir/",
                        Loc(dump_ir_dir))
    study = study_settings(uncertainty_file, uncertainty_samples, uncertainty_seed, hwdb, hwdb_extra)
    if study is not None and soft_sla:
        raise HetcError("--uncertainty needs a hard SLA: leave out --soft-sla", Loc("--uncertainty"))
    options = CompileOptions(passes=passes, hwdb=hwdb, hwdb_extra=tuple(hwdb_extra), kv_paths=kv_paths,
                             kv_paths_extra=tuple(kv_paths_extra), solver=solver, soft_sla=soft_sla,
                             dump_ir=tuple(dump_ir), generic=generic, explain=explain, uncertainty=study)
    result = compile_spec(spec, options)
    check_output(output, (*inputs, *result.spec.included_sha256))  # an included agent file is an input too
    plan = result.plan or {}
    if max_cost is not None:  # a failed gate leaves the previous bundle in place
        cost = (plan.get("tco") or {}).get("usd_per_hour")
        if cost is not None and cost > max_cost:
            raise PolicyError(f"plan costs ${cost:,.2f}/hour, above --max-cost ${max_cost:,.2f}/hour; "
                              f"{output} was not written", Loc("--max-cost"))
    if dump_ir_dir:
        write_bundle(dump_ir_dir, {f"{name}.mlir": text.encode() for name, text in result.dumps}, HIDDEN_MANIFEST)
    if not as_json and not quiet:
        for name, text in result.dumps:
            click.echo(f"// -----// IR after {name} //----- //")
            click.echo(printable_ir(text), nl=False)  # the files keep the IR exactly; a terminal gets it escaped
    manifest = write(result, output)
    if as_json:
        data = {"bundle": str(output), "plan": plan, "files": len(manifest["files"]), "warnings": result.warnings,
                "timings_s": {k: round(v, 4) for k, v in sorted(result.timings.items())}}
        if explain:
            data["explain"] = (result.placement or {}).get("explain", [])
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    elif not quiet:
        from hetc.bundle.summary import print_summary

        print_summary(plan, output, explain=explain, result=result)
    for warning in result.warnings:
        click.echo(printable(f"warning: {warning}"), err=True)


@click.command("validate")
@_spec_arg
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@hwdb_options
def validate_cmd(spec, as_json, hwdb, hwdb_extra):
    """Check SPEC (syntax, types, graph, models, devices, what each node is fed) and print every error.

    SPEC - reads standard input; errors then name <stdin>.
    """
    from hetc.compiler import CompileOptions, load
    from hetc.pipeline import verify
    from hetc.spec.frontend import spec_to_module

    try:
        _, loaded = load(spec, CompileOptions(hwdb=hwdb, hwdb_extra=tuple(hwdb_extra)))
        verify(spec_to_module(loaded), "reading the spec")  # the IR's verifiers check what each node is fed
    except HetcError as exc:
        if as_json:
            click.echo(json.dumps({"ok": False, "errors": [
                {"file": d.loc.file, "line": d.loc.line, "col": d.loc.col, "message": d.message}
                for d in exc.diagnostics]}, indent=2))
            sys.exit(exc.exit_code)
        raise
    nodes = len(loaded.graph.nodes)
    if as_json:
        click.echo(json.dumps({"ok": True, "name": loaded.name, "nodes": nodes, "edges": len(loaded.graph.edges)},
                              indent=2))
    else:
        click.echo(printable(f"{loaded.path}: ok ({loaded.name}: {nodes} nodes, {len(loaded.graph.edges)} edges)"))


@click.command("opt")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True))
@click.option("-p", "--passes", default="", help="Pass pipeline, xdsl-opt syntax (empty = parse and verify).")
@click.option("--generic", is_flag=True, help="Print in MLIR generic form.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True),
              help="Write the result to this file (replaced atomically) instead of stdout (- is stdout).")
def opt_cmd(file, passes, generic, output):
    """Parse FILE (textual IR; - reads standard input), run PASSES, print the result."""
    from hetc.pipeline import PipelineRun, parse_ir_file, print_module

    module = parse_ir_file(file)
    PipelineRun(spec=passes).run(module, stage_name="input")
    text = print_module(module, generic=generic)
    if output and output != "-":
        from hetc.bundle.writer import write_file

        write_file(output, text.encode())
    else:
        click.echo(printable_ir(text), nl=False)  # the same IR, with no raw control character for a terminal

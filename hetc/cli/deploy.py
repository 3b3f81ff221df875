"""click commands: `hetc deploy`, `hetc simulate`, `hetc schema plan`.

The lead's CLI adds them with register(cli). Each command turns a HetcError into its diagnostics on
stderr and the documented exit code, never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hetc.errors import HetcError, Loc, PolicyError, printable

PROGRESS_MIN_REQUESTS = 20000  # below this a run takes about a second: no progress bar


def _user_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except HetcError as error:
            for diagnostic in error.diagnostics:
                click.echo(str(diagnostic), err=True)
            sys.exit(error.exit_code)

    return wrapper


@click.command("deploy")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--target", type=click.Choice(["kubernetes", "ray-serve"]), required=True,
              help="Cluster engine to export the run plan for.")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), required=True,
              help="Directory to write the manifests into: replaced atomically if it is empty or an earlier "
                   "hetc output; any other directory is refused.")
@click.option("--image", "images", multiple=True, metavar="KEY=IMAGE",
              help="Container image override (kubernetes; repeatable): nvidia, amd, gaudi or cpu for the vLLM "
                   "servers, runtime for the hetc runtime image, speech for the text-to-speech servers (port 8880).")
@click.option("--namespace", default=None, help="Namespace for every object (kubernetes).")
@click.option("--bundle-claim", default=None,
              help="PersistentVolumeClaim holding the bundle, mounted read-only at /opt/hetc/bundle (kubernetes).")
@click.option("--import-path", default=None, help="Serve application import path (ray-serve).")
@_user_errors
def deploy_command(bundle: Path, target: str, out_dir: str, images: tuple[str, ...], namespace: str | None,
                   bundle_claim: str | None, import_path: str | None) -> None:
    """Export BUNDLE's plan.json (or a plan.json file) as Kubernetes manifests or a Ray Serve config."""
    from hetc.bundle.schema import load_plan
    from hetc.bundle.writer import check_output

    check_output(out_dir, (bundle,))
    plan = load_plan(bundle)
    if target == "kubernetes":
        from hetc.bundle.kubernetes import dns_label, write_kubernetes
        from hetc.bundle.vllm import parse_images

        if namespace is not None and dns_label(namespace) != namespace:
            raise HetcError(f"--namespace {namespace!r} is not a DNS-1123 label", Loc("--namespace"))
        written = write_kubernetes(plan, out_dir, images=parse_images(images), namespace=namespace,
                                   bundle_claim=bundle_claim)
    else:
        from hetc.bundle.ray import DEFAULT_IMPORT_PATH, write_ray

        written = write_ray(plan, out_dir, import_path=import_path or DEFAULT_IMPORT_PATH)
    for path in written:
        click.echo(printable(path))


def _print_report(report: dict[str, Any]) -> None:
    from rich.text import Text

    from hetc.bundle.summary import SHOWN_STAGES, shown_rows
    from hetc.console import make_console, make_table, verdict

    console = make_console()
    slo = report["slo"]
    console.print(f"plan {report['plan']}: {report['requests']} requests ({report['arrivals']}, "
                  f"{report['rate_rps']} req/s, seed {report['seed']}), {report['events']} events, "
                  f"{report['simulated_s']} s simulated")
    dropped = report["dropped"]
    console.print(f"completed {report['completed']} of {report['requests']}, dropped {dropped['count']}"
                  + "".join(f"; {count} {reason}" for reason, count in sorted(dropped["reasons"].items())))
    failed = [f"{row['metric'].removesuffix('_ms')} {row['percentile']}" for row in report["checks"] if not row["meets"]]
    console.print(Text.assemble(
        "SLA: ", verdict(report["meets_sla"], "meets", "VIOLATES"), f" ({', '.join(failed)})" if failed else "",
        f"  attainment {report['sla_attainment'] * 100:.2f}% at {slo['percentile']} "
        f"(needs {report['required_attainment'] * 100:g}%), goodput {report['goodput_rps']} req/s"))
    for row in report["checks"]:  # one line per target: ids and numbers never cut
        measured = "dropped requests" if row["measured_ms"] is None else f"{row['measured_ms']:.1f} ms"
        console.print(Text.assemble(
            f"  {row['metric'].removesuffix('_ms')} {row['percentile']} <= {row['target_ms']:g} ms: ",
            verdict(row["meets"], "meets", "VIOLATES"), f", measured {measured}, "
            f"{row['attainment'] * 100:.2f}% within (needs {row['required'] * 100:g}%)"))
    metrics = make_table("metric (completed requests)", "p50", "p90", "p99", "max", right=("p50", "p90", "p99", "max"))
    for key in ("latency_ms", "ttft_ms", "tbt_ms"):
        values = report[key]
        if values is None:
            continue
        metrics.add_row(key, *(f"{values[p]:.1f}" for p in ("p50", "p90", "p99", "max")))
    console.print(metrics)
    numbers = ("replicas", "visits/req", "utilisation", "mean wait ms", "max wait ms", "max queue", "mean batch")
    stages = make_table("stage", "kind", *numbers, right=numbers)
    rows = report["stages"]
    if len(rows) > SHOWN_STAGES:  # a large plan shows its busiest stages, as compile does its costliest
        stages.caption = f"the {SHOWN_STAGES} busiest of {len(rows):,} stages (utilisation, then wait); --json has them all"
        rows = shown_rows(rows, lambda row: (-row["utilisation"], -row["mean_wait_ms"]))
    for row in rows:
        stages.add_row(row["id"], row["kind"], str(row["replicas"]), f"{row['visits_per_request']:.3f}",
                       f"{row['utilisation'] * 100:.1f}%", f"{row['mean_wait_ms']:.1f}", f"{row['max_wait_ms']:.1f}",
                       str(row["max_queue"]), f"{row['mean_batch']:.1f}" if "mean_batch" in row else "-")
    console.print(stages)
    if report["bottleneck"]:
        b = report["bottleneck"]
        console.print(f"bottleneck: {b['stage']} (queueing {b['wait_ms_per_request']:.1f} ms per request, "
                      f"utilisation {b['utilisation'] * 100:.1f}%); hot spots: {', '.join(report['hot_spots']) or '-'}")
    analytic = report["analytic"]
    if analytic["capacity_rps"] is not None:
        console.print(f"analytic capacity: {analytic['capacity_rps']} req/s (limited by {analytic['stage']})")


def _print_sweep(sweep: dict[str, Any]) -> None:
    from hetc.console import make_console

    console = make_console()
    console.print(f"capacity (highest rate meeting the SLA over {sweep['duration_s']} s): "
                  f"{sweep['capacity_rps']} req/s (fails at {sweep['first_failing_rps']})")
    if sweep["analytic_capacity_rps"] is not None:
        console.print(f"analytic prediction: {sweep['analytic_capacity_rps']} req/s (stage {sweep['analytic_stage']}), "
                      f"simulated / analytic = {sweep['ratio_to_analytic']}")


@click.command("simulate")
@click.argument("bundle", type=click.Path(exists=True, path_type=Path))
@click.option("--rate", type=float, default=None, help="Poisson arrival rate, req/s (default: the plan's).")
@click.option("--duration", type=float, default=60.0, show_default=True, help="Arrival window, seconds.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: same seed, same numbers.")
@click.option("--trace", "trace_path", type=click.Path(path_type=Path), default=None,
              help="Arrivals and token counts from a CSV/JSONL file instead of Poisson arrivals.")
@click.option("--sweep-rate", is_flag=True, help="Also find the highest rate that meets the SLA.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (no progress bar).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--check", is_flag=True, help="Exit 4 when an SLA target is violated or a request is dropped (for CI).")
@_user_errors
def simulate_command(bundle: Path, rate: float | None, duration: float, seed: int, trace_path: Path | None,
                     sweep_rate: bool, as_json: bool, quiet: bool, check: bool) -> None:
    """Discrete-event simulation of BUNDLE's plan under load: latency, TTFT/TBT, SLA attainment, bottleneck."""
    from hetc.bundle.schema import load_plan
    from hetc.study.simulate import load_trace, planned_rate, simulate
    from hetc.study.simulate import sweep_rate as run_sweep

    plan = load_plan(bundle)
    trace = load_trace(trace_path) if trace_path is not None else None
    expected = trace.arrival_s.size if trace is not None else (rate or planned_rate(plan) or 0) * duration
    show_progress = not (as_json or quiet) and expected >= PROGRESS_MIN_REQUESTS
    if show_progress:
        from rich.progress import Progress

        from hetc.console import make_console

        with Progress(transient=True, console=make_console(stderr=True)) as bar:  # stderr: stdout stays the report
            task = bar.add_task("simulating", total=None)
            report = simulate(plan, rate_rps=rate, duration_s=duration, seed=seed, trace=trace,
                              progress=lambda done, total: bar.update(task, completed=done, total=total))
    else:
        report = simulate(plan, rate_rps=rate, duration_s=duration, seed=seed, trace=trace)
    sweep = run_sweep(plan, duration_s=duration, seed=seed) if sweep_rate else None
    if as_json:
        document = {"simulation": report}
        if sweep is not None:
            document["sweep"] = sweep
        click.echo(json.dumps(document, sort_keys=True, indent=2))
    else:
        _print_report(report)
        if sweep is not None:
            _print_sweep(sweep)
    if check and not report["meets_sla"]:
        failed = [f"{row['metric']} {row['percentile']} {row['measured_ms'] if row['measured_ms'] is not None else 'dropped'}"
                  f" > {row['target_ms']:g} ms" for row in report["checks"] if not row["meets"]]
        if report["dropped"]["count"]:
            failed.append(f"{report['dropped']['count']} of {report['requests']} requests dropped")
        raise PolicyError("SLA violated: " + ("; ".join(failed) or "no requests"), Loc(str(bundle)))


@click.group("schema")
def schema_group() -> None:
    """Print hetc's JSON Schemas."""


@schema_group.command("plan")
def schema_plan_command() -> None:
    """The JSON Schema (draft 2020-12) of plan.json."""
    from hetc.bundle.schema import plan_schema

    click.echo(json.dumps(plan_schema(), sort_keys=True, indent=2))

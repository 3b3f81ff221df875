"""`hetc sweep` (compile many variants, or the paper's P::D pair study) and `hetc diff` (compare two plans).

Both print rich tables, take `--json` for CI, and `hetc diff --max-regression PCT` fails a CI step with exit
code 4 (hetc.errors.PolicyError) when the second plan costs more than PCT % above the first.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from hetc.cli.options import FiniteFloat, hwdb_options, kv_path_options, solver_option
from hetc.cli.uncertainty import study_options, study_settings
from hetc.errors import HetcError, Loc, PolicyError
from hetc.model.tco import COMPONENT_LABELS


def _console(stderr: bool = False):
    from hetc.console import make_console

    return make_console(stderr=stderr)


def _usd(value) -> str:
    return "-" if value is None else f"${value:,.2f}"


def _ms(value) -> str:
    return "-" if value is None else f"{value:,.1f}"


# --------------------------------------------------------------------------------------------- sweep


def _over_help() -> str:
    from hetc.study.overrides import OVER_KEYS

    return "Vary KEY over the values V1,V2,... (repeatable; every combination is compiled). Keys: " + "; ".join(
        f"{k}: {v}" for k, v in OVER_KEYS.items())


@click.command("sweep")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--over", "overs", multiple=True, metavar="KEY=V1,V2,...", help=_over_help())
@click.option("--pairs", metavar="DEV1,DEV2,...",
              help="P::D pair study: every (prefill device, decode device) pair from these devices.")
@click.option("--baseline", default="nvidia-h100-sxm::nvidia-h100-sxm", show_default=True, metavar="P::D",
              help="The pair whose LLM cost is benefit 1.0 (--pairs).")
@click.option("--model-precision", metavar="PRECISION", help="Override every model's precision (e.g. fp8).")
@click.option("--keep-inventory", is_flag=True,
              help="--pairs: keep the spec's owned devices (default: buy everything, as the paper assumes).")
@click.option("-o", "--output", type=click.Path(file_okay=False),
              help="Write table.csv, table.json, report.html (and plans/) into this directory: replaced "
                   "atomically if it is empty or an earlier hetc output; any other directory is refused.")
@click.option("-j", "--jobs", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Worker processes for --over sweeps.")
@solver_option
@click.option("--soft-sla", "soft_sla", type=FiniteFloat(minimum=0.0), default=0.0,
              help="Soft SLA: penalty lambda in $/hour per ms of slack (0 = hard SLA).")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@study_options
@hwdb_options
@kv_path_options
def sweep(spec, overs, pairs, baseline, model_precision, keep_inventory, output, jobs, solver, soft_sla, as_json,
          quiet, uncertainty_file, uncertainty_samples, uncertainty_seed, hwdb, hwdb_extra, kv_paths, kv_paths_extra):
    """Compile SPEC under every combination of --over values, or run the P::D pair study (--pairs)."""
    from hetc.model.models import PRECISION_BYTES
    from hetc.study.overrides import parse_over
    from hetc.study.sweep import SweepOptions, run_pairs, run_sweep, table_json, write_outputs

    if model_precision is not None and model_precision not in PRECISION_BYTES:
        raise HetcError(f"unknown precision {model_precision!r}; known: {', '.join(sorted(PRECISION_BYTES))}",
                        Loc("--model-precision"))
    if not overs and not pairs and not model_precision:
        raise HetcError("nothing to sweep: give --over KEY=V1,V2 (repeatable) and/or --pairs DEV1,DEV2,...",
                        Loc("hetc sweep"))
    study = study_settings(uncertainty_file, uncertainty_samples, uncertainty_seed, hwdb, hwdb_extra)
    if study is not None and not pairs:
        raise HetcError("--uncertainty adds win probabilities to the pair study: give --pairs DEV1,DEV2,...",
                        Loc("--uncertainty"))
    if study is not None and soft_sla:
        raise HetcError("--uncertainty needs a hard SLA: leave out --soft-sla", Loc("--uncertainty"))
    if output is not None:  # refuse a directory hetc may not replace before compiling every variant
        from hetc.bundle.writer import check_output

        check_output(output, (spec, *hwdb_extra, *kv_paths_extra))
    if kv_paths_extra:  # a bad table is the user's error once, naming the file, not once per variant
        from hetc.model.kvpaths import load_kv_paths

        load_kv_paths(tuple(kv_paths_extra))
    parsed = [parse_over(text) for text in overs]
    options = SweepOptions(hwdb=hwdb, hwdb_extra=tuple(hwdb_extra), kv_paths=kv_paths,
                           kv_paths_extra=tuple(kv_paths_extra), solver=solver, soft_sla=soft_sla,
                           model_precision=model_precision, jobs=jobs, uncertainty=study)
    with _progress(enabled=not (quiet or as_json)) as progress:
        if pairs:
            result = run_pairs(spec, pairs, baseline, parsed, options, keep_inventory=keep_inventory,
                               progress=progress, with_report_plan=output is not None)
        else:
            result = run_sweep(spec, parsed, options, progress=progress)
    if output:
        write_outputs(result, output)
    if as_json:
        click.echo(json.dumps(table_json(result), indent=2, sort_keys=True))
    elif not quiet:
        console = _console()
        if result.mode == "pairs":
            _print_pairs(result.rows, console, result.uncertainty)
        else:
            _print_over(result.rows, console)
        if output:
            console.print(f"table.csv, table.json{', report.html' if result.report_plan else ''} written to {output}")
    errors = [r for r in result.rows if r["status"] == "error"]
    if errors:
        raise HetcError([_row_diag(r) for r in errors])


def _row_diag(row: dict):
    from hetc.errors import Diagnostic

    params = ", ".join(f"{k}={v}" for k, v in sorted(row["params"].items()))
    return Diagnostic(Loc(f"sweep row {row['index']}"), f"{params}: {row.get('reason')}")


class _progress:
    """A rich progress bar on stderr; the callback hetc.study.sweep calls with (done, total)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar = None
        self.task = None

    def __enter__(self):
        if not self.enabled:
            return None
        console = _console(stderr=True)
        if not console.is_terminal:
            return None
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.bar = Progress(TextColumn("compiling"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=console, transient=True)
        self.bar.start()
        return self.update

    def update(self, done: int, total: int) -> None:
        if self.task is None:
            self.task = self.bar.add_task("sweep", total=total)
        self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False


NOTE_CHARS = 60  # reasons are cut in terminal tables; table.csv / table.json keep them whole


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _params_text(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()))


def _print_pairs(rows: list[dict], console, studies: dict[int, dict] | None = None) -> None:
    """The pair tables, one per combination; with --uncertainty (studies per combination) each gains
    P(cheapest) and the p10-p90 band of the whole plan's $/hour, and the study's verdict follows."""
    from rich.table import Table

    variants: dict[int, list[dict]] = {}
    for row in rows:
        variants.setdefault(row["variant"], []).append(row)
    for number in sorted(variants):
        group = variants[number]
        title = (f"P::D pairs ({_params_text(group[0]['params']) or 'as specified'}); baseline {group[0]['baseline']} "
                 f"= 1.00; --kv-paths {group[0].get('kv_level', 'released')}")
        table = Table(title=title, title_justify="left")
        study = (studies or {}).get(number)
        extra = ("P(cheapest)", "p10-p90 $/hour") if study else ()
        for col in ("P::D", "benefit", "LLM $/hour", "total $/hour", *extra, "prefill", "decode", "TTFT ms",
                    "TBT ms", "KV path ms", "KV path", "note"):
            table.add_column(col, justify="left" if col in ("P::D", "prefill", "decode", "note") else "right", overflow="fold")
        ranked = sorted(group, key=lambda r: (r["choice"] == "hetc", -(r["benefit"] or 0.0), r["index"]))
        for r in ranked:
            label = f"hetc: {r['pair']}" if r["choice"] == "hetc" else r["pair"]
            note = "baseline" if r["pair"] == r["baseline"] and r["choice"] == "pair" else ""
            if r["status"] != "ok":
                note = _clip(f"{r['status']}: {r['reason']}", NOTE_CHARS)
            bands = (_share(r.get("p_cheapest")), _band(r)) if study else ()
            table.add_row(label, "-" if r["benefit"] is None else f"{r['benefit']:.2f}", _usd(r["llm_usd_per_hour"]),
                          _usd(r["usd_per_hour"]), *bands, r["prefill"] or "-", r["decode"] or "-", _ms(r["ttft_ms"]),
                          _ms(r["tbt_ms"]), _ms(r["kv_transfer_ms"]), r.get("kv_path_status") or "-", note,
                          style="bold" if r["choice"] == "hetc" else None)
        console.print(table)
        if study:
            console.print(f"under uncertainty ({study['samples']:,} samples, seed {study['seed']}, "
                          f"{study['uncertainty']}): {study['verdict']}", markup=False, highlight=False)


def _share(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def _band(row: dict) -> str:
    low, high = row.get("p10_usd_per_hour"), row.get("p90_usd_per_hour")
    return "-" if low is None or high is None else f"{_usd(low)}-{_usd(high)}"


def _print_over(rows: list[dict], console) -> None:
    from rich.table import Table

    keys = sorted({k for r in rows for k in r["params"]})
    table = Table(title="sweep", title_justify="left")
    for col in keys + ["$/hour", "$/1M req", "critical path ms", "slack ms", "P::D", "devices / note"]:
        table.add_column(col, justify="left" if col in keys or col in ("P::D", "devices / note") else "right", overflow="fold")
    cheapest = min((r["usd_per_hour"] for r in rows if r["status"] == "ok"), default=None)
    for r in rows:
        note = r["devices"] if r["status"] == "ok" else _clip(f"{r['status']}: {r['reason']}", NOTE_CHARS)
        table.add_row(*[r["params"].get(k, "") for k in keys], _usd(r["usd_per_hour"]), _usd(r["usd_per_1m_requests"]),
                      _ms(r["critical_path_ms"]), _ms(r["slack_ms"]), r["pd"] or "-", note,
                      style="bold" if r["usd_per_hour"] is not None and r["usd_per_hour"] == cheapest else None)
    console.print(table)


# ---------------------------------------------------------------------------------------------- diff

STAGE_FIELDS = ("device", "replicas", "tp", "pp", "batch", "engine")
DERIVED_TRAFFIC_KEYS = ("planned_requests_per_s", "rate_basis")  # outputs of the plan, not the spec's inputs
# the plan's totals a diff compares, with the cost components as docs/cost-model.md names them
TOTAL_NAMES = {"usd_per_hour": "$/hour",
               **{f"{n}_usd_per_hour": f"{label} $/hour" for n, label in COMPONENT_LABELS.items()},
               "usd_per_1m_requests": "$ per 1M requests", "usd_per_1m_tokens": "$ per 1M tokens"}


def _critical_ms(plan: dict) -> float | None:
    paths = plan.get("paths") or []
    return max(p["latency_ms"] for p in paths) if paths else None


def _delta(a, b) -> dict:
    delta = None if a is None or b is None else b - a
    pct = None if delta is None or not a else delta / a * 100.0
    return {"a": a, "b": b, "delta": delta, "pct": pct}


def _model_text(stage: dict) -> str | None:
    model = stage.get("model")
    return f"{model['name']} {model['precision']}" if model else None


def _stage_view(stage: dict) -> dict:
    return {**{f: stage.get(f) for f in STAGE_FIELDS}, "model": _model_text(stage),
            "usd_per_hour": stage["tco"]["usd_per_hour"], "latency_ms": stage["predicted"]["latency_ms"]}


def diff_plans(a: dict, b: dict) -> dict:
    """What moved between plan A and plan B, and the cost and latency deltas (JSON-ready, deterministic)."""
    a_stages = {s["id"]: s for s in a["stages"]}
    b_stages = {s["id"]: s for s in b["stages"]}
    stages = []
    ordered = [s["id"] for s in a["stages"]] + [s["id"] for s in b["stages"] if s["id"] not in a_stages]
    for sid in ordered:
        sa, sb = a_stages.get(sid), b_stages.get(sid)
        if sa is None or sb is None:
            change, moved = ("added" if sa is None else "removed"), []
        else:
            moved = [f for f in STAGE_FIELDS if sa.get(f) != sb.get(f)]
            if _model_text(sa) != _model_text(sb):
                moved.append("model")
            change = "changed" if moved else "same"
        stages.append({"id": sid, "change": change, "moved": moved,
                       "a": _stage_view(sa) if sa else None, "b": _stage_view(sb) if sb else None,
                       "usd_per_hour": _delta(sa["tco"]["usd_per_hour"] if sa else None,
                                              sb["tco"]["usd_per_hour"] if sb else None)})
    a_paths = {tuple(p["stages"]): p for p in a.get("paths", [])}
    b_paths = {tuple(p["stages"]): p for p in b.get("paths", [])}
    paths = [{"stages": list(key), **_delta(a_paths[key]["latency_ms"] if key in a_paths else None,
                                            b_paths[key]["latency_ms"] if key in b_paths else None),
              "meets_a": a_paths[key]["meets"] if key in a_paths else None,
              "meets_b": b_paths[key]["meets"] if key in b_paths else None}
             for key in list(a_paths) + [k for k in b_paths if k not in a_paths]]
    a_devices = {d["device"]: d["count"] for d in a.get("devices", [])}
    b_devices = {d["device"]: d["count"] for d in b.get("devices", [])}
    devices = [{"device": d, "a": a_devices.get(d, 0), "b": b_devices.get(d, 0)}
               for d in sorted(set(a_devices) | set(b_devices))]
    inputs = [{"field": f"{section}.{key}", "a": a[section].get(key), "b": b[section].get(key)}
              for section in ("slo", "traffic") for key in sorted(set(a[section]) | set(b[section]))
              if a[section].get(key) != b[section].get(key) and key not in DERIVED_TRAFFIC_KEYS]
    totals = {key: _delta(a["tco"].get(key), b["tco"].get(key)) for key in TOTAL_NAMES}
    totals["critical_path_ms"] = _delta(_critical_ms(a), _critical_ms(b))
    return {"a": {"name": a["name"], "pd": a.get("pd")}, "b": {"name": b["name"], "pd": b.get("pd")},
            "pd_changed": a.get("pd") != b.get("pd"), "inputs_changed": inputs, "totals": totals,
            "stages": stages, "moved": sum(1 for s in stages if s["change"] != "same"),
            "paths": paths, "devices": devices}


def _pct(value) -> str:
    return "-" if value is None else f"{value:+.1f}%"


def _print_diff(diff: dict, a_path: str, b_path: str, console) -> None:
    from rich.table import Table

    console.print(f"A: {a_path} ({diff['a']['name']}, P::D {diff['a']['pd'] or '-'})")
    console.print(f"B: {b_path} ({diff['b']['name']}, P::D {diff['b']['pd'] or '-'})")
    for item in diff["inputs_changed"]:
        console.print(f"input changed: {item['field']} {item['a']} -> {item['b']}")
    moved = [s for s in diff["stages"] if s["change"] != "same"]
    if moved:
        table = Table(title="what moved", title_justify="left")
        for col in ("stage", "change", "A", "B", "$/hour A", "$/hour B", "delta"):
            table.add_column(col, justify="right" if col.startswith("$") or col == "delta" else "left", overflow="fold")
        for s in moved:
            table.add_row(s["id"], s["change"] + (f" ({', '.join(s['moved'])})" if s["moved"] else ""),
                          _stage_text(s["a"], "model" in s["moved"]), _stage_text(s["b"], "model" in s["moved"]),
                          _usd(s["usd_per_hour"]["a"]), _usd(s["usd_per_hour"]["b"]), _signed_usd(s["usd_per_hour"]["delta"]))
        console.print(table)
    else:
        console.print("no stage moved")
    totals = Table(title="totals", title_justify="left")
    for col in ("", "A", "B", "delta", "%"):
        totals.add_column(col, justify="left" if not col else "right", overflow="fold")
    for key, name in TOTAL_NAMES.items():
        t = diff["totals"][key]
        totals.add_row(name, _usd(t["a"]), _usd(t["b"]), _signed_usd(t["delta"]), _pct(t["pct"]))
    t = diff["totals"]["critical_path_ms"]
    totals.add_row("critical path ms", _ms(t["a"]), _ms(t["b"]),
                   "-" if t["delta"] is None else f"{t['delta']:+,.1f}", _pct(t["pct"]))
    console.print(totals)
    for p in diff["paths"]:
        if p["delta"] is None or abs(p["delta"]) > 1e-9:
            console.print(f"path {' -> '.join(p['stages'])}: {_ms(p['a'])} -> {_ms(p['b'])} ms ({_pct(p['pct'])})")


def _stage_text(view: dict | None, with_model: bool = False) -> str:
    if view is None or not view["device"]:
        return "-"
    text = f"{view['device']} {view['replicas']}x tp{view['tp']}" + (f" pp{view['pp']}" if view["pp"] > 1 else "")
    text += f" b{view['batch']}"
    return f"{text} ({view['model']})" if with_model and view["model"] else text


def _signed_usd(value) -> str:
    return "-" if value is None else f"{'+' if value >= 0 else '-'}${abs(value):,.2f}"


@click.command("diff")
@click.argument("a", type=click.Path())
@click.argument("b", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the diff as JSON on stdout.")
@click.option("--max-regression", "max_regression", type=FiniteFloat(), metavar="PCT",
              help="Fail (exit 4) when B's $/hour exceeds A's by more than PCT percent.")
@click.option("--max-latency-regression", "max_latency_regression", type=FiniteFloat(), metavar="PCT",
              help="Fail (exit 4) when B's critical path exceeds A's by more than PCT percent.")
def diff(a, b, as_json, max_regression, max_latency_regression):
    """Compare plan A with plan B (plan.json files or bundle directories): what moved, cost and latency."""
    from hetc.bundle.schema import load_plan

    plan_a, plan_b = load_plan(a), load_plan(b)
    result = diff_plans(plan_a, plan_b)
    failures = []
    cost = result["totals"]["usd_per_hour"]
    if max_regression is not None and cost["pct"] is not None and cost["pct"] > max_regression:
        failures.append(f"cost regression {_pct(cost['pct'])} ({_usd(cost['a'])} -> {_usd(cost['b'])} per hour) "
                        f"exceeds --max-regression {max_regression:g}%")
    latency = result["totals"]["critical_path_ms"]
    if max_latency_regression is not None and latency["pct"] is not None and latency["pct"] > max_latency_regression:
        failures.append(f"latency regression {_pct(latency['pct'])} ({_ms(latency['a'])} -> {_ms(latency['b'])} ms) "
                        f"exceeds --max-latency-regression {max_latency_regression:g}%")
    from hetc.study.migration import migrate, migration_text

    result["migration"] = migrate(plan_a, plan_b)  # from A to B at the rate B was planned for
    result["gates"] = {"max_regression_pct": max_regression, "max_latency_regression_pct": max_latency_regression,
                       "failed": failures}
    if as_json:
        click.echo(json.dumps(result, indent=2, sort_keys=True))
    else:
        _print_diff(result, a, b, _console())
        click.echo(migration_text(result["migration"]), nl=False)
    if failures:
        where = Path(b) / "plan.json" if Path(b).is_dir() else Path(b)
        raise PolicyError(failures[0] if len(failures) == 1 else "; ".join(failures), Loc(str(where)))

"""`hetc replan`: a new plan and a migration from observed load (hetc/study/replan.py, docs/replan.md)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from hetc.cli.options import FiniteFloat
from hetc.errors import HetcError, Loc, PolicyError, printable

DEFAULT_BAND_PCT = 10.0  # observed values within 10 % of the spec's are noise (hourly traffic swings more)
DEFAULT_MIN_SAVING_PCT = 5.0  # a class move must save 5 % of $/hour: one hour of double capacity pays back in a day


@click.command("replan")
@click.argument("bundle", type=click.Path(file_okay=False))
@click.option("--observed", "observed", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="Observations: a Prometheus text snapshot, a Prometheus query_range JSON export, or "
                   "`hetc simulate --json` output.")
@click.option("--spec", "spec_path", type=click.Path(dir_okay=False),
              help="The spec BUNDLE was compiled from; default: the copy the bundle keeps (spec/spec.yaml).")
@click.option("-o", "--output", "output", type=click.Path(file_okay=False),
              help="New bundle directory (same rules as compile -o). Without it nothing is written.")
@click.option("--window", "window_s", type=FiniteFloat(minimum=0.001), metavar="SECONDS",
              help="Time a text snapshot's counters cover (a query_range export carries its own).")
@click.option("--band", "band_pct", type=FiniteFloat(minimum=0.0), default=DEFAULT_BAND_PCT, show_default=True,
              metavar="PCT", help="Hysteresis: changes within PCT percent of the spec's values are no change.")
@click.option("--min-saving", "min_saving_pct", type=FiniteFloat(minimum=0.0), default=DEFAULT_MIN_SAVING_PCT,
              show_default=True, metavar="PCT",
              help="Move stages to other device classes only when that saves PCT percent of $/hour.")
@click.option("--max-cost", "max_cost", type=FiniteFloat(minimum=0.0),
              help="Fail (exit 4) when the new plan costs more $/hour; nothing is written.")
@click.option("--max-regression", "max_regression", type=FiniteFloat(), metavar="PCT",
              help="Fail (exit 4) when the new plan's $/hour exceeds the current one's by more than PCT percent.")
@click.option("--simulate", "simulate_s", type=FiniteFloat(minimum=0.0), default=10.0, show_default=True,
              metavar="SECONDS", help="Simulate the new plan at the observed rate for SECONDS of arrivals (0: skip).")
@click.option("--json", "as_json", is_flag=True, help="Print the changes and the migration as JSON.")
def replan_command(bundle, observed, spec_path, output, window_s, band_pct, min_saving_pct, max_cost,
                   max_regression, simulate_s, as_json):
    """Re-plan BUNDLE for the load in --observed; write the new bundle with migration.json/.txt to -o."""
    from hetc.bundle.schema import load_plan
    from hetc.bundle.writer import check_output
    from hetc.json_text import to_json
    from hetc.study.migration import migration_text
    from hetc.study.observations import observed_text, read_observations
    from hetc.study.replan import bundle_spec, replan

    plan = load_plan(bundle)
    spec_shown, spec_data = bundle_spec(Path(bundle), plan, spec_path)
    if output is not None:
        check_output(output, (bundle, observed, spec_shown))
    obs = read_observations(observed, plan, window_s)
    result = replan(spec_shown, spec_data, plan, obs, band_pct=band_pct, min_saving_pct=min_saving_pct,
                    simulate_s=simulate_s)
    summary = {"observed": [vars(c) for c in result.changes], "changed": [vars(c) for c in result.significant],
               "band_pct": band_pct}
    if not result.significant:
        if as_json:
            click.echo(json.dumps({**summary, "status": "no change"}, indent=2, sort_keys=True))
        else:
            click.echo(f"no change: every observed value is within --band {band_pct:g}% of the spec; nothing written")
        return
    migration = result.migration
    _gates(migration, max_cost, max_regression)
    text = observed_text(obs, plan["slo"]) + "changes outside the band:\n"
    text += "".join(f"  {c.text()}\n" for c in result.significant)
    choice = migration["choice"]
    text += (f"plan: {choice['picked']} (free ${choice['free_usd_per_hour']:,.2f}/hour, current classes "
             + ("infeasible" if choice["sticky_usd_per_hour"] is None else f"${choice['sticky_usd_per_hour']:,.2f}/hour")
             + f"; --min-saving {min_saving_pct:g}%)\n") + migration_text(migration)
    if not migration["safe"]:
        raise HetcError("the migration would drain " + ", ".join(migration["below_need"]) + " below the observed "
                        "need; nothing written", Loc(bundle))
    if output is not None:
        from hetc.compiler import write

        result.result.files["migration.json"] = to_json({**migration, "from_bundle": str(bundle),
                                                         "changes": summary["changed"]})
        result.result.files["migration.txt"] = text.encode()
        write(result.result, output)
        for warning in result.result.warnings:
            click.echo(printable(f"warning: {warning}"), err=True)
    if as_json:
        click.echo(json.dumps({**summary, "status": "replanned", "migration": migration}, indent=2, sort_keys=True))
    else:
        click.echo(text, nl=False)
        click.echo(f"wrote {output}" if output else "dry run: give -o NEW_BUNDLE to write the new bundle")


def _gates(migration: dict, max_cost: float | None, max_regression: float | None) -> None:
    usd = migration["usd_per_hour"]
    failures = []
    if max_cost is not None and usd["new"] > max_cost:
        failures.append(f"new plan costs ${usd['new']:,.2f}/hour, above --max-cost ${max_cost:,.2f}/hour")
    pct = usd["delta"] / usd["old"] * 100.0 if usd["old"] else None
    if max_regression is not None and pct is not None and pct > max_regression:
        failures.append(f"cost regression {pct:+.1f}% (${usd['old']:,.2f} -> ${usd['new']:,.2f} per hour) exceeds "
                        f"--max-regression {max_regression:g}%")
    if failures:
        raise PolicyError("; ".join(failures) + "; nothing written", Loc("--max-cost" if max_cost else
                                                                          "--max-regression"))

"""`hetc uncertainty SPEC`: how likely each plan (or P::D pair) is the cheapest under uncertain inputs, the
nominal plan's regret and SLA risk, the decisive inputs, and the robust plan (docs/uncertainty.md)."""

from __future__ import annotations

import json

import click

from hetc.cli.options import hwdb_options
from hetc.errors import Diagnostic, HetcError, InfeasibleError, Loc

DEFAULT_SAMPLES = 1000
MAX_SAMPLES = 100_000


def study_options(command):
    """--uncertainty [FILE], --samples, --seed: the study `hetc sweep --pairs` and `hetc compile` add (one code
    path with `hetc uncertainty`, hetc.study.uncertainty.analysis.study)."""
    command = click.option("--seed", "uncertainty_seed", type=click.IntRange(0, 2**63 - 1), default=None,
                           help="With --uncertainty: the random seed (default 0).")(command)
    command = click.option("--samples", "uncertainty_samples", type=click.IntRange(1, MAX_SAMPLES), default=None,
                           help=f"With --uncertainty: Monte Carlo samples (default {DEFAULT_SAMPLES}).")(command)
    return click.option("--uncertainty", "uncertainty_file", type=click.Path(dir_okay=False), is_flag=False,
                        flag_value="", default=None, metavar="[FILE]",
                        help="Add win probabilities and p10/p50/p90 TCO bands under uncertain inputs: the default "
                             "distributions, or those of FILE (docs/uncertainty.md). Give it after SPEC.")(command)


def study_settings(uncertainty_file: str | None, samples: int | None, seed: int | None, hwdb: str,
                   hwdb_extra) -> object:
    """The StudySettings of --uncertainty (None without it); a bad file is the user's error before any work."""
    from hetc.study.uncertainty.analysis import StudySettings

    if uncertainty_file is None:
        if samples is not None or seed is not None:
            raise HetcError("--samples and --seed set the --uncertainty study; add --uncertainty", Loc("--samples"
                            if samples is not None else "--seed"))
        return None
    if uncertainty_file:
        from hetc.hwdb.loader import load_hwdb
        from hetc.study.uncertainty.inputs import load_uncertainty

        load_uncertainty(uncertainty_file, load_hwdb(hwdb, list(hwdb_extra)))
    return StudySettings(DEFAULT_SAMPLES if samples is None else samples, 0 if seed is None else seed,
                         uncertainty_file or None)


@click.command("uncertainty")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--samples", type=click.IntRange(1, MAX_SAMPLES), default=DEFAULT_SAMPLES, show_default=True,
              help="Monte Carlo samples.")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
              help="Random seed: the same seed gives byte-identical output.")
@click.option("--uncertainty", "uncertainty_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="YAML overriding the default distributions (format in docs/uncertainty.md).")
@click.option("--pairs", metavar="DEV1,DEV2,...",
              help="Compare every (prefill, decode) pair of these accelerators, as `hetc sweep --pairs` does.")
@click.option("--over", "overs", multiple=True, metavar="KEY=VALUE",
              help="A `hetc sweep --over` setting with one value (repeatable), e.g. tokens=512:4096.")
@click.option("--objective", type=click.Choice(["nominal", "robust"]), default="nominal", show_default=True,
              help="Which plan the verdict recommends: the nominal optimum or the robust plan.")
@click.option("--risk", type=click.Choice(["p90", "regret"]), default="p90", show_default=True,
              help="What the robust plan minimises: p90 TCO or expected regret.")
@click.option("--sla-share", type=click.FloatRange(0.0, 1.0), default=0.9, show_default=True,
              help="The robust plan meets the SLA in at least this share of samples.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@hwdb_options
def uncertainty(spec, samples, seed, uncertainty_file, pairs, overs, objective, risk, sla_share, as_json, hwdb,
                hwdb_extra):
    """Monte Carlo over SPEC's placement decision under uncertain cost-model errors, prices and traffic."""
    from hetc.study.overrides import combinations, parse_over
    from hetc.study.uncertainty.analysis import analyse

    parsed = [parse_over(text) for text in overs]
    for over in parsed:
        if len(over.values) != 1:
            raise HetcError(f"--over {over.key}: give one value here (hetc sweep varies several)", Loc("--over"))
    overrides = combinations(parsed)[0] if parsed else None
    result = analyse(spec, samples=samples, seed=seed, uncertainty_file=uncertainty_file, pairs=pairs,
                     risk=risk, sla_share=sla_share, hwdb=hwdb, hwdb_extra=tuple(hwdb_extra), overrides=overrides)
    result["objective"] = objective
    result["recommended"] = result["robust_plan" if objective == "robust" else "nominal_plan"]
    if as_json:
        click.echo(json.dumps(result, indent=2, sort_keys=True, allow_nan=False))
    else:
        for line in text_lines(result):
            click.echo(line)
    if result["nominal_plan"] is None:
        raise InfeasibleError([Diagnostic(Loc(spec), "no alternative meets the SLA at nominal inputs")])


def _usd(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def text_lines(result: dict) -> list[str]:
    settings = "".join(f", {k}={v}" for k, v in result["overrides"].items())
    lines = [f"{result['samples']} samples, seed {result['seed']}, uncertainty: {result['uncertainty']}{settings}",
             "", f"{'plan':40} {'nominal $/h':>11} {'P(cheapest)':>11} {'p10':>8} {'p50':>8} {'p90':>8} "
                 f"{'feasible' if result['rows'] == 'alternatives' else 'SLA met':>8}"]
    for row in sorted(result["alternatives"], key=lambda r: (-r["p_cheapest"], r["nominal_usd_per_hour"] or 1e300)):
        lines.append(f"{row['plan']:40} {_usd(row['nominal_usd_per_hour']):>11} {row['p_cheapest']:>11.1%} "
                     f"{_usd(row['p10_usd_per_hour']):>8} {_usd(row['p50_usd_per_hour']):>8} "
                     f"{_usd(row['p90_usd_per_hour']):>8} {row['p_feasible']:>8.0%}")
    for row in result["baselines"]:  # homogeneous baselines: banded, not competing
        lines.append(f"{row['plan']:40} {_usd(row['nominal_usd_per_hour']):>11} {'-':>11} "
                     f"{_usd(row['p10_usd_per_hour']):>8} {_usd(row['p50_usd_per_hour']):>8} "
                     f"{_usd(row['p90_usd_per_hour']):>8} {row['p_feasible']:>8.0%}")
    nominal, robust = result["nominal_plan"], result["robust_plan"]
    lines.append("")
    if nominal:
        lines.append(f"nominal optimum: {nominal['plan']}, {_usd(nominal['nominal_usd_per_hour'])} $/h; in the "
                     f"samples {_usd(nominal['p10_usd_per_hour'])}-{_usd(nominal['p90_usd_per_hour'])} $/h (p10-p90), "
                     f"regret p50 {_usd(nominal['regret_p50'])} / p90 {_usd(nominal['regret_p90'])} $/h, "
                     f"misses the SLA in {nominal['p_sla_violated']:.1%} of samples")
    risk = "p90 TCO" if result["risk_measure"] == "p90" else "expected regret"
    if robust:
        price = result["price_of_robustness"]
        lines.append(f"robust plan (lowest {risk}, SLA met in >= {result['sla_share']:.0%} of samples): "
                     f"{robust['plan']}, {_usd(robust['nominal_usd_per_hour'])} $/h nominal, {risk} "
                     f"{_usd(robust['risk'])} $/h, SLA met in {robust['p_sla_met']:.1%}")
        if price:
            lines.append(f"price of robustness: {price['nominal_usd_per_hour']:+.2f} $/h at nominal inputs, "
                         f"{price['risk']:+.2f} $/h of {risk}")
    else:
        lines.append(f"no evaluated plan meets the SLA in {result['sla_share']:.0%} of samples")
    if result["sensitivity"]:
        lines += ["", "decisive inputs (Spearman rank correlation with the nominal plan's regret and TCO):"]
        for row in result["sensitivity"]:
            reg = "-" if row["rho_regret"] is None else f"{row['rho_regret']:+.2f}"
            tco = "-" if row["rho_tco"] is None else f"{row['rho_tco']:+.2f}"
            lines.append(f"  {row['input']:40} regret {reg:>6}  TCO {tco:>6}  ({row['law']})")
    if result["tornado"]:
        lines += ["", "one at a time (each input at its p10 / p90, the others nominal): nominal plan $/h; cheapest"]
        for row in result["tornado"][:5]:
            flip = "" if row["cheapest_p10"] == row["cheapest_p90"] else "  <- flips the decision"
            both = row["nominal_plan_meets_sla_p10"] and row["nominal_plan_meets_sla_p90"]
            sla = "" if both else " (misses the SLA at one end)"
            lines.append(f"  {row['input']:40} {row['nominal_plan_usd_per_hour_p10']:.2f} / "
                         f"{row['nominal_plan_usd_per_hour_p90']:.2f}{sla}; {row['cheapest_p10'] or '-'} / "
                         f"{row['cheapest_p90'] or '-'}{flip}")
    resolves = result["resolves"]
    if resolves["heuristic"]:
        lines.append(f"({resolves['heuristic']} of {resolves['total']} re-solves ran the heuristic; "
                     "the rest took the fast path)")
    lines += ["", result["verdict"]]
    if result["objective"] == "robust" and robust:
        lines.append(f"recommended (robust): {robust['plan']}")
    return lines

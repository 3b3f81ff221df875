"""Options shared by several hetc commands."""

from __future__ import annotations

from collections.abc import Callable

import click

_HWDB_OPTIONS = (
    click.option("--hwdb", "hwdb", default="default", show_default=True,
                 help="Hardware database: default (sourced vendor specs), paper-2025 (the paper's Table 5), "
                      "or a folder of device YAML files."),
    click.option("--hwdb-extra", "hwdb_extra", multiple=True, type=click.Path(dir_okay=False),
                 help="YAML file adding or overriding devices (repeatable)."),
)


def hwdb_options(func: Callable) -> Callable:
    """Adds --hwdb (parameter `hwdb`) and --hwdb-extra (parameter `hwdb_extra`)."""
    for option in reversed(_HWDB_OPTIONS):
        func = option(func)
    return func


# the placement solver (docs/placement.md): compile and sweep take the same choice
solver_option = click.option(
    "--solver", type=click.Choice(["auto", "exact", "heuristic"]), default="auto", show_default=True,
    help="Placement solver: exact (MILP), heuristic, or auto (exact up to a problem size; docs/placement.md).")


class FiniteFloat(click.ParamType):
    """A float that is a real number (NaN and infinity would silently disable a gate), optionally >= minimum."""

    name = "float"

    def __init__(self, minimum: float | None = None):
        self.minimum = minimum

    def convert(self, value, param, ctx):
        import math

        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number (NaN or infinity would disable the check)", param, ctx)
        if self.minimum is not None and number < self.minimum:
            self.fail(f"{value!r} is below {self.minimum:g}", param, ctx)
        return number

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

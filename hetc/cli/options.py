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


def _with(options: tuple, func: Callable) -> Callable:
    for option in reversed(options):
        func = option(func)
    return func


def hwdb_options(func: Callable) -> Callable:
    """Adds --hwdb (parameter `hwdb`) and --hwdb-extra (parameter `hwdb_extra`)."""
    return _with(_HWDB_OPTIONS, func)


_KV_PATH_OPTIONS = (
    click.option("--kv-paths", "kv_paths", type=click.Choice(["released", "experimental", "any"]),
                 default="released", show_default=True,
                 help="KV-cache transfer paths a P::D split may rely on (docs/kv-paths.md): released engine "
                      "releases only, also experimental (proposed) ones, or any (proofs of concept too)."),
    click.option("--kv-paths-extra", "kv_paths_extra", multiple=True, type=click.Path(dir_okay=False),
                 help="YAML file adding or replacing KV paths (repeatable; format in docs/kv-paths.md)."),
)


def kv_path_options(func: Callable) -> Callable:
    """Adds --kv-paths (parameter `kv_paths`) and --kv-paths-extra (parameter `kv_paths_extra`)."""
    return _with(_KV_PATH_OPTIONS, func)


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

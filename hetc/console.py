"""Where hetc's terminal output is made: one rich Console and table factory for every command.

Two rules hold for everything printed:
- Ids are never cut. Rich assumes 80 columns when stdout is a pipe or a file (CI logs) and shortens cells
  with an ellipsis, which makes `nvidia-h100-sxm` and `nvidia-h100-pcie` both `nvidia-h1…`. Off a terminal
  the console is as wide as the text needs; on a narrow terminal cells fold onto a second line instead.
- No escape sequences when NO_COLOR is set (https://no-color.org) or stdout is not a terminal: rich's own
  NO_COLOR support drops colours but keeps bold and italic.
- Control characters and bidi overrides in any string (a spec, model or file name) are printed as escapes
  (hetc.errors.printable), so user text cannot drive the terminal.
- What users wrote is printed as written: no rich markup (a spec named `[/x]` crashed the summary) and no
  emoji codes; colour comes from `verdict`, never from markup in strings.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import TYPE_CHECKING

from hetc.errors import printable

if TYPE_CHECKING:  # rich is imported when something is printed, so `hetc --help` stays fast
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

# Width of a console that is not a terminal: lines are as long as their text, up to this many columns.
UNBOUNDED_COLUMNS = 10_000


def no_color() -> bool:
    """NO_COLOR set to anything but the empty string turns every style off."""
    return bool(os.environ.get("NO_COLOR"))


@functools.cache
def _safe_console_class():
    from rich.console import Console

    class SafeConsole(Console):
        """Every string it renders (text, table cells, titles) goes through printable()."""

        def render_str(self, text: str, **options):
            return super().render_str(printable(text), **options)

    return SafeConsole


def make_console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    terminal = stream.isatty()
    plain = no_color() or not terminal
    return _safe_console_class()(file=stream, highlight=False, emoji=False, markup=False,
                   width=None if terminal else UNBOUNDED_COLUMNS,
                   color_system=None if plain else "auto", force_terminal=None if not plain else False)


def make_table(*headers: str, right: tuple[str, ...] = (), **kwargs) -> Table:
    """A table whose cells fold instead of being cut; columns named in `right` are right-aligned (numbers)."""
    from rich.table import Table

    table = Table(**kwargs)
    for header in headers:
        table.add_column(header, justify="right" if header in right else "left", overflow="fold")
    return table


def verdict(good: bool, if_good: str, if_bad: str) -> Text:
    """A word in green when good, red when bad (plain where styles are off)."""
    from rich.text import Text

    return Text(if_good, style="green") if good else Text(if_bad, style="red")

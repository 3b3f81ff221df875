"""Where an IR op came from: the YAML (or IR file) location the frontend or the IR parser recorded on it.

Below the pass pipeline: passes, flow analysis and the placement problem report errors at an op's location
without importing the pipeline driver (hetc.pipeline), which imports them.
"""

from __future__ import annotations

from hetc.errors import Loc


def op_loc(op) -> Loc:
    """The location of `op`, else of the nearest enclosing op that has one (the frontend sets FileLineColLoc)."""
    # xDSL loads in ~0.2 s: imported on first use, so `hetc --help` (which loads hetc.pipeline's
    # DEFAULT_PIPELINE through hetc.cli.compile) does not pay for it.
    from xdsl.dialects.builtin import FileLineColLoc

    while op is not None:
        loc = getattr(op, "location", None)
        if isinstance(loc, FileLineColLoc):
            return Loc(loc.filename.data, loc.line.data, loc.column.data)
        op = op.parent_op()
    return Loc("<ir>")

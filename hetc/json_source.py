"""Reading JSON a user hands hetc (plan.json, traces) without Python's recursion limit turning a deeply
nested document into a crash: nesting is measured first, in one pass, and a document deeper than
MAX_DEPTH is a located HetcError."""

from __future__ import annotations

import json
import re
from typing import Any

from hetc.errors import HetcError, Loc

MAX_DEPTH = 64  # a plan.json nests about 6 levels; the same bound as YAML specs (hetc.spec.yaml_source)


def too_deep_at(text: str, max_depth: int = MAX_DEPTH, opening: str = "[{") -> int | None:
    """The offset of the first bracket nested deeper than max_depth, or None. Skips "strings" (JSON and
    MLIR write them alike); the parsers recurse per level, so this runs first, in one pass."""
    closing = {"[": "]", "{": "}", "(": ")"}
    closers = "".join(closing[c] for c in opening)
    tokens = re.compile(r'"(?:[^"\\]|\\.)*"?|[' + re.escape(opening + closers) + "]")
    depth = 0
    for match in tokens.finditer(text):
        char = match[0][0]
        if char in opening:
            depth += 1
            if depth > max_depth:
                return match.start()
        elif char in closers:
            depth -= 1
    return None


def loads_json(text: str, source: str) -> Any:
    """json.loads with located errors: invalid JSON and nesting deeper than MAX_DEPTH."""
    offset = too_deep_at(text)
    if offset is not None:
        line = text.count("\n", 0, offset) + 1
        col = offset - (text.rfind("\n", 0, offset) + 1) + 1
        raise HetcError(f"JSON nested deeper than {MAX_DEPTH} levels", Loc(source, line, col))
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise HetcError(f"not valid JSON: {exc.msg}", Loc(source, exc.lineno, exc.colno)) from None

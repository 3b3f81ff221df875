"""`-` as a file name means standard input (`hetc validate -`, `hetc opt -`), shown as `<stdin>` in errors."""

from __future__ import annotations

import sys
from pathlib import Path

DASH = "-"
STDIN_NAME = "<stdin>"


def read_bytes(path: str | Path) -> tuple[str, bytes]:
    """(the name errors show, the content) of `path`, or of standard input when it is `-`. Raises OSError."""
    if str(path) == DASH:
        return STDIN_NAME, sys.stdin.buffer.read()
    return str(path), Path(path).read_bytes()

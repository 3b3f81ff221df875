"""Errors a user can cause, with source locations, and the documented exit codes."""

from __future__ import annotations

import re
from dataclasses import dataclass

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USER = 2
EXIT_INFEASIBLE = 3
EXIT_POLICY = 4  # a CI gate (--max-cost, --max-regression) failed


# What must not reach a terminal raw from a user's file: C0 and C1 control characters (ESC starts terminal
# escape sequences, CR overwrites a line, BEL rings), DEL, and the bidirectional overrides and marks that
# reorder what a reader sees (CVE-2021-42574, "Trojan Source").
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    char = match[0]
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def printable(text: object) -> str:
    """The text with control characters and bidi overrides written as escapes (ESC -> \\x1b): every line
    hetc prints goes through this, so a spec, model or file name cannot drive the user's terminal."""
    return _UNPRINTABLE.sub(_escape, str(text))


def printable_lines(text: object) -> str:
    """Multi-line output hetc composed itself (a table, a YAML dump): each line through printable(), the
    line breaks kept, so the text reads as lines while a name inside it still cannot drive the terminal."""
    return "\n".join(printable(line) for line in str(text).split("\n"))


# In IR text such a character can only stand inside a quoted string or symbol name (the printer quotes what is
# not an identifier); line breaks separate the ops.
_UNPRINTABLE_IN_IR = re.compile("(?!\n)" + _UNPRINTABLE.pattern)


def _mlir_escape(match: re.Match) -> str:
    return "".join(f"\\{byte:02X}" for byte in match[0].encode("utf-8"))


def printable_ir(text: str) -> str:
    """IR text for a terminal: each control character or bidi override written as MLIR's escape of its UTF-8
    bytes (U+202E -> \\E2\\80\\AE), line breaks kept. Inside a quoted string or symbol name the escape parses back
    to the same character, so the escaped text is the same IR: `hetc opt` output still pipes into `hetc opt`."""
    return _UNPRINTABLE_IN_IR.sub(_mlir_escape, text)


@dataclass(frozen=True, order=True)
class Loc:
    """A position in a user's file; line and col are 1-based (0 = unknown)."""

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, order=True)
class Diagnostic:
    loc: Loc
    message: str

    def __str__(self) -> str:
        return printable(f"{self.loc}: error: {self.message}")


class HetcError(Exception):
    """An error the user can fix (bad spec, bad hwdb file, bad option). Exit code 2."""

    exit_code = EXIT_USER

    def __init__(self, diagnostics: list[Diagnostic] | str, loc: Loc | None = None):
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(loc or Loc("hetc"), diagnostics)]
        self.diagnostics = sorted(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class InfeasibleError(HetcError):
    """The SLA cannot be met on the hardware pool. Exit code 3."""

    exit_code = EXIT_INFEASIBLE


class PolicyError(HetcError):
    """A CI gate such as --max-cost failed. Exit code 4."""

    exit_code = EXIT_POLICY

"""Errors a user can cause, with source locations, and the documented exit codes."""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USER = 2
EXIT_INFEASIBLE = 3
EXIT_POLICY = 4  # a CI gate (--max-cost, --max-regression) failed


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
        return f"{self.loc}: error: {self.message}"


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

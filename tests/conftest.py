"""Shared test helpers.

System tools (mlir-opt, clang, chromium) are Debian packages, not pip packages: on a fresh machine the tests
that need one skip with a reason saying how to install it, and the run ends with one line listing what was
skipped. CI installs the tools and sets HETC_REQUIRE_TOOLS=1, so there a missing tool fails instead.
"""

from __future__ import annotations

import os
import shutil

import pytest

# tool -> (executables to look for, how to install it)
SYSTEM_TOOLS: dict[str, tuple[tuple[str, ...], str]] = {
    "mlir-opt": (("mlir-opt-19", "mlir-opt", "/usr/lib/llvm-19/bin/mlir-opt"), "apt-get install mlir-19-tools"),
    "clang": (("clang", *(f"clang-{v}" for v in range(19, 13, -1))), "apt-get install clang"),
    "chromium": (("chromium", "chromium-browser"), "apt-get install chromium"),
}
_skipped: dict[str, int] = {}


def tools_required() -> bool:
    return os.environ.get("HETC_REQUIRE_TOOLS") == "1"


def system_tool(name: str) -> str:
    """The path of system tool `name`; skips the test when it is missing (fails under HETC_REQUIRE_TOOLS=1)."""
    candidates, install = SYSTEM_TOOLS[name]
    if name == "clang" and os.environ.get("HETC_CC"):
        candidates = (os.environ["HETC_CC"],)
    for candidate in candidates:
        found = shutil.which(candidate)
        if found:
            return found
    reason = f"needs {name}: {install} (HETC_REQUIRE_TOOLS=1 makes this a failure)"
    if tools_required():
        pytest.fail(f"{name} not found but HETC_REQUIRE_TOOLS=1: {install}")
    _skipped[name] = _skipped.get(name, 0) + 1
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter) -> None:
    if _skipped:
        listed = ", ".join(f"{name} ({count} tests: {SYSTEM_TOOLS[name][1]})" for name, count in sorted(_skipped.items()))
        terminalreporter.write_line(f"skipped for missing system tools: {listed}")

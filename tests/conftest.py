"""Shared test helpers.

System tools (mlir-opt, clang, chromium) are Debian packages, not pip packages, and ptxas comes from the
nvidia-cuda-nvcc wheel of the test extra. On a machine without one, the tests that need it skip with a reason
saying how to install it, and the run ends with one line listing what was skipped. CI installs the tools and sets HETC_REQUIRE_TOOLS=1, so there a missing tool fails instead.
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

# tool -> (executables to look for on PATH, how to install it). PATH only, so a PATH without them shows what a
# machine without them does.
SYSTEM_TOOLS: dict[str, tuple[tuple[str, ...], str]] = {
    "mlir-opt": (("mlir-opt-19", "mlir-opt"), "apt-get install mlir-19-tools"),
    "clang": ((), "apt-get install clang"),
    "chromium": (("chromium", "chromium-browser"), "apt-get install chromium"),
    "ptxas": ((), 'pip install -e ".[test]" (the nvidia-cuda-nvcc wheel)'),
}


def _hetc_lookup(name: str) -> str | None:
    """Tools hetc itself calls are found the way hetc finds them ($HETC_CC, $HETC_PTXAS, the wheel, PATH)."""
    if name == "clang":
        from hetc.targets.gaudi.target import find_cc

        return find_cc()
    from hetc.targets.cuda.target import find_ptxas

    return find_ptxas()
_SKIP_REASON = re.compile(r"needs ([\w-]+): ")


def tools_required() -> bool:
    return os.environ.get("HETC_REQUIRE_TOOLS") == "1"


def system_tool(name: str) -> str:
    """The path of system tool `name`; skips the test when it is missing (fails under HETC_REQUIRE_TOOLS=1)."""
    candidates, install = SYSTEM_TOOLS[name]
    found = next(filter(None, map(shutil.which, candidates)), None) if candidates else _hetc_lookup(name)
    if found:
        return found
    reason = f"needs {name}: {install} (HETC_REQUIRE_TOOLS=1 makes this a failure)"
    if tools_required():
        pytest.fail(f"{name} not found but HETC_REQUIRE_TOOLS=1: {install}")
    pytest.skip(reason)


def pytest_terminal_summary(terminalreporter) -> None:
    # counted from the reports, so a skip in a module-scoped fixture counts every test it skipped
    counts: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        found = _SKIP_REASON.search(reason)
        if found and found.group(1) in SYSTEM_TOOLS:
            counts[found.group(1)] = counts.get(found.group(1), 0) + 1
    if counts:
        listed = ", ".join(f"{name} ({count} tests: {SYSTEM_TOOLS[name][1]})" for name, count in sorted(counts.items()))
        terminalreporter.write_line(f"skipped for missing system tools: {listed}")

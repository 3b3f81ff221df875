"""The golden IR tests in tests/filecheck, run with lit: one or more per pass (IR in, IR out) and one per
verifier check (the error message), each file holding its input and its expectation (docs/ir.md)."""

import inspect
import re
import subprocess
import sys
from pathlib import Path

from hetc.pipeline import _registry

GOLDEN = Path(__file__).parent / "filecheck"
BIN = Path(sys.executable).parent  # lit, filecheck and hetc are installed beside this interpreter


def test_lit_runs_every_golden_test_and_all_pass(tmp_path: Path):
    done = subprocess.run([str(BIN / "lit"), "-v", "--param", f"exec_root={tmp_path}", str(GOLDEN)],
                          capture_output=True, text=True, timeout=600)
    # lit exits non-zero when a test fails, or passes where it is marked XFAIL (a fixed bug: drop the mark)
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]
    found = sum(1 for _ in GOLDEN.rglob("*.mlir"))
    assert f"Total Discovered Tests: {found}" in done.stdout, done.stdout[-2000:]


def test_every_registered_pass_has_a_golden_test():
    tested = {line.split(" -p ", 1)[1].split()[0].strip("'").split("{")[0].split(",")[0]
              for path in (GOLDEN / "passes").glob("*.mlir")
              for line in path.read_text().splitlines()[:1] if " -p " in line}
    assert sorted(set(_registry()) - tested) == []


def test_verifier_checks_have_golden_tests():
    # one file per distinct check (agent.call callee and arity, counts, NaN/inf, loop bounds, symbols, ...)
    assert len(list((GOLDEN / "verify").glob("*.mlir"))) >= 10


def test_every_op_and_attribute_verifier_has_a_golden_failure_test():
    """Each op of the agent and task dialects with its own verifier, and each attribute with one, has a
    verify/ test whose expected error names it (as the message prefix `task.device: ...`, `agent.loop @x: ...`)."""
    from hetc.dialects.agent import Agent
    from hetc.dialects.task import Task

    expected = "\n".join(line for path in (GOLDEN / "verify").glob("*.mlir")
                         for line in path.read_text().splitlines() if line.startswith("// CHECK:"))
    # irdl_op_definition puts a generated verify_ on every op class: read the class as written
    verified = [cls.name for dialect in (Agent, Task) for cls in (*dialect.operations, *dialect.attributes)
                if re.search(r"\n    def verify_?\(", inspect.getsource(cls))]
    assert len(verified) >= 12
    assert [name for name in verified if f"{name}:" not in expected and f"{name} @" not in expected] == []

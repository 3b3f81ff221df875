# lit configuration for hetc's golden IR tests (docs/ir.md, "Golden tests"). Each .mlir file holds its own
# RUN line, its input IR and, after the input, the CHECK lines filecheck matches the output (or error) against.
# hetc/passes/: one or more tests per pass (IR in, IR out); verify/: one test per verifier check (the error message).
import os
import sys
import tempfile

import lit.formats

config.name = "hetc-golden-ir"  # noqa: F821 (lit defines config)
# lit's own shell: it runs `not` (expect a failure) itself, and the pipes and redirections of the RUN lines
config.test_format = lit.formats.ShTest(execute_external=False)  # noqa: F821
config.suffixes = [".mlir"]  # noqa: F821
config.test_source_root = os.path.dirname(__file__)  # noqa: F821
# lit keeps test timings and per-test Output/ folders in the exec root: outside the source tree
# (`lit --param exec_root=DIR`, as tests/test_filecheck.py passes, else a folder in the system temp dir)
config.test_exec_root = lit_config.params.get(  # noqa: F821 (lit defines lit_config)
    "exec_root", os.path.join(tempfile.gettempdir(), f"hetc-lit-{os.getuid()}"))
# `hetc` and `filecheck` from the environment lit runs in (the venv with hetc installed) come first
tools = os.path.dirname(sys.executable)
config.environment["PATH"] = os.pathsep.join([tools, os.environ.get("PATH", "")])  # noqa: F821
config.environment["NO_COLOR"] = "1"  # noqa: F821 (plain error text to match)
config.environment["COLUMNS"] = "200"  # noqa: F821 (no wrapping of long error lines)

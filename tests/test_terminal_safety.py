"""Nothing a user wrote reaches the terminal raw (issue 12): escape sequences, CR, BEL and bidi overrides in a
spec name, node id, model id or file path are printed as escapes by validate, compile (summary and
--explain) and error messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hetc.errors import printable

# YAML double-quoted escapes: ESC [2J (clear screen), BEL, CR, RIGHT-TO-LEFT OVERRIDE
EVIL = r"\e[2J\a\r\u202e"
RAW = ("\x1b", "\x07", "\r", "\u202e")
SPEC = f"""hetc: 1
name: "spec{EVIL}"
traffic: {{requests_per_s: 1}}
models:
  "chat{EVIL}": {{preset: llama-3-8b}}
nodes:
  q: {{kind: input}}
  "node{EVIL}": {{kind: llm, model: "chat{EVIL}", output_tokens: 8}}
  "[red]x[/red]": {{kind: compute, cpu_ms: 1}}
  out: {{kind: output}}
edges:
  - "q -> node{EVIL} -> [red]x[/red] -> out"
"""


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hetc.cli", *args], capture_output=True, text=True, timeout=300)


def assert_clean(result: subprocess.CompletedProcess) -> None:
    for char in RAW:
        assert char not in result.stdout + result.stderr, repr(char)


def test_printable_escapes_controls_and_bidi_only():
    assert printable("a\x1b[2J\x07\r\n\t\u202e\u2066\x9bü→") == r"a\x1b[2J\x07\r\n\t\u202e\u2066\x9bü→"


@pytest.mark.parametrize("command", [["validate"], ["compile", "--explain"]])
def test_names_and_ids_are_escaped(tmp_path: Path, command: list[str]):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    args = [*command, str(spec)] + (["-o", str(tmp_path / "out")] if command[0] == "compile" else [])
    result = run(*args)
    assert result.returncode == 0, result.stderr
    assert_clean(result)
    assert r"\x1b[2J" in result.stdout
    if command[0] == "compile":
        assert "[red]x[/red]" in result.stdout  # shown as written, not as red text


def test_error_messages_escape_the_path_and_the_value(tmp_path: Path):
    spec = tmp_path / "bad\x1b[2J.yaml"
    spec.write_text(SPEC.replace("cpu_ms: 1", f'cpu_ms: "1{EVIL}"'))
    result = run("validate", str(spec))
    assert result.returncode == 2
    assert_clean(result)
    assert r"bad\x1b[2J.yaml:9:" in result.stderr


def test_printable_ir_writes_mlir_byte_escapes_and_keeps_line_breaks():
    from hetc.errors import printable_ir

    assert printable_ir('@"a\u202eb" = "c\x1bd\te"\nnext ü') == '@"a\\E2\\80\\AEb" = "c\\1Bd\\09e"\nnext ü'


def test_ir_on_the_terminal_is_escaped_and_the_bundle_keeps_it_exactly(tmp_path: Path):
    """--dump-ir and `hetc opt` print the IR with MLIR byte escapes (xDSL prints a quoted symbol name, such as
    a node id, raw): the same IR, which `hetc opt` reads back to the bundle's file byte for byte."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    dumped = run("compile", str(spec), "-o", str(tmp_path / "out"), "--dump-ir", "all")
    assert dumped.returncode == 0, dumped.stderr
    assert_clean(dumped)
    assert '@"spec\\1B[2J\\07\\0D\\E2\\80\\AE"' in dumped.stdout
    shown = dumped.stdout.split("// -----// IR after partition //----- //\n")[1]
    shown = shown[: shown.index("\n}\n") + 3]  # the module; the plan's summary follows
    kept = (tmp_path / "out" / "ir" / "06-partition.mlir").read_bytes()
    assert "\u202e".encode() in kept  # the bundle keeps the IR as printed
    args = [sys.executable, "-m", "hetc.cli", "opt", "-"]
    again = subprocess.run([*args, "-o", str(tmp_path / "again.mlir")], input=shown.encode(), capture_output=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again.mlir").read_bytes() == kept
    printed = subprocess.run(args, input=shown, capture_output=True, text=True, timeout=300)
    assert printed.returncode == 0, printed.stderr
    assert_clean(printed)
    assert printed.stdout == shown

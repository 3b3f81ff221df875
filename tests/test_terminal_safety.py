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

"""Every validation error of the spec loader, with its exact file:line:col and message.

Each tests/data/specs/*.yaml file is a bad spec. A line `#^ COL: MESSAGE` states an error expected on the
nearest line above it that is not such a comment. A file must produce exactly its expected errors, all in
one run: nothing missing, nothing extra.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetc.errors import EXIT_USER, HetcError, Loc
from hetc.spec.loader import load_spec
from hetc.spec.yaml_source import MAX_DEPTH, MAX_FILE_BYTES

DATA = Path(__file__).parent / "data" / "specs"
DATA_FILES = sorted(DATA.glob("*.yaml"))
# what the CLI passes from the hardware database; a small literal here
DEVICES = {
    "h100": "nvidia-h100-sxm", "nvidia-h100-sxm": "nvidia-h100-sxm",
    "b200": "nvidia-b200", "nvidia-b200": "nvidia-b200",
    "intel-xeon-8480": "intel-xeon-8480",
}


def expected_errors(path: Path) -> list[tuple[int, int, str]]:
    expected = []
    target_line = 0
    for number, line in enumerate(path.read_text().split("\n"), start=1):
        if line.startswith("#^ "):
            col, message = line[3:].split(": ", 1)
            expected.append((target_line, int(col), message))
        else:
            target_line = number
    return sorted(expected)


def actual_errors(path: str | Path) -> list[tuple[int, int, str]]:
    with pytest.raises(HetcError) as info:
        load_spec(path, DEVICES)
    for diag in info.value.diagnostics:
        assert diag.loc.file == str(path)
    return sorted((d.loc.line, d.loc.col, d.message) for d in info.value.diagnostics)


def test_data_files_exist():
    assert len(DATA_FILES) >= 15


@pytest.mark.parametrize("path", DATA_FILES, ids=lambda p: p.name)
def test_bad_spec_reports_exactly_its_errors(path: Path):
    expected = expected_errors(path)
    assert expected, f"{path.name} states no expected errors"
    display = str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)
    assert actual_errors(display) == expected


def test_all_errors_in_one_run():
    # many-errors.yaml mixes slo, traffic, model, node, edge and hardware errors: all are reported
    assert len(actual_errors(DATA / "many-errors.yaml")) == 18


def test_message_format_is_file_line_col(tmp_path: Path):
    spec = tmp_path / "x.yaml"
    spec.write_text("hetc: 1\nname: x\ntraffic: {requests_per_s: 1}\nslo:\n    latncy_ms: 5\n"
                    "nodes: {i: {kind: input}, o: {kind: output}}\nedges: [i -> o]\n")
    with pytest.raises(HetcError) as info:
        load_spec(spec)
    assert str(info.value) == (f"{spec}:5:5: error: unknown key 'latncy_ms' in slo; "
                               "did you mean 'latency_ms'?")
    assert info.value.exit_code == EXIT_USER == 2


def test_location_uses_the_path_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "s.yaml").write_text("hetc: 1\nname: s\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(HetcError) as info:
        load_spec("sub/s.yaml")
    assert {d.loc.file for d in info.value.diagnostics} == {"sub/s.yaml"}


def test_empty_file(tmp_path: Path):
    spec = tmp_path / "empty.yaml"
    spec.write_bytes(b"")
    with pytest.raises(HetcError) as info:
        load_spec(spec)
    assert [d.loc for d in info.value.diagnostics] == [Loc(str(spec), 1, 1)]
    assert "the file is empty" in str(info.value)


def test_missing_file(tmp_path: Path):
    with pytest.raises(HetcError) as info:
        load_spec(tmp_path / "nope.yaml")
    assert "cannot read the spec" in str(info.value)


def test_deep_nesting_is_rejected(tmp_path: Path):
    spec = tmp_path / "deep.yaml"
    spec.write_text("hetc: 1\nname: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(HetcError) as info:
        load_spec(spec)
    (diag,) = info.value.diagnostics
    assert diag.message == f"YAML nesting deeper than {MAX_DEPTH} levels"
    assert (diag.loc.line, diag.loc.col) == (2, 6 + MAX_DEPTH)  # the top-level mapping is level 1


def test_oversized_file_is_rejected(tmp_path: Path):
    spec = tmp_path / "big.yaml"
    spec.write_text("hetc: 1\n" + "# padding\n" * (MAX_FILE_BYTES // 10 + 1))
    with pytest.raises(HetcError) as info:
        load_spec(spec)
    assert "hetc reads specs of at most 1048576 bytes" in str(info.value)


def test_billion_laughs_fails_fast():
    started = time.perf_counter()
    errors = actual_errors(DATA / "billion-laughs.yaml")
    assert time.perf_counter() - started < 1.0
    assert "alias bomb" in errors[0][2]


def test_invalid_utf8(tmp_path: Path):
    spec = tmp_path / "bin.yaml"
    spec.write_bytes(b"hetc: 1\nname: caf\xe9\n")
    with pytest.raises(HetcError) as info:
        load_spec(spec)
    (diag,) = info.value.diagnostics
    assert (diag.loc.line, diag.loc.col, diag.message) == (2, 10, "the file is not valid UTF-8 (byte 0xe9)")


def test_control_character(tmp_path: Path):
    spec = tmp_path / "ctl.yaml"
    spec.write_bytes(b"hetc: 1\nname: a\x07b\n")
    with pytest.raises(HetcError) as info:
        load_spec(spec)
    (diag,) = info.value.diagnostics
    assert (diag.loc.line, diag.loc.col) == (2, 8)
    assert "control character U+0007" in diag.message


def test_python_tag_never_executes(tmp_path: Path):
    marker = tmp_path / "pwned"
    spec = tmp_path / "tag.yaml"
    spec.write_text(f"hetc: 1\nname: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(HetcError):
        load_spec(spec)
    assert not marker.exists()


def test_include_cycle_and_errors_in_included_files(tmp_path: Path):
    (tmp_path / "agents").mkdir()
    (tmp_path / "main.yaml").write_text(
        "hetc: 1\nname: main\ntraffic: {requests_per_s: 1}\n"
        "nodes:\n  i: {kind: input}\n  a: {kind: agent, file: agents/a.yaml}\n  o: {kind: output}\n"
        "edges: [i -> a -> o]\n")
    (tmp_path / "agents" / "a.yaml").write_text(
        "hetc: 1\nname: a\ntraffic: {requests_per_s: 1}\n"
        "models:\n  m: {preset: llama-3-8b}\n"
        "nodes:\n  i: {kind: input}\n  b: {kind: agent, file: b.yaml}\n  x: {kind: llm, model: m, input_tokns: 5}\n"
        "  o: {kind: output}\nedges: [i -> b -> x -> o]\n")
    (tmp_path / "agents" / "b.yaml").write_text(
        "hetc: 1\nname: b\n"
        "models:\n  m: {preset: llama-3-70b}\n"
        "nodes:\n  i: {kind: input}\n  back: {kind: agent, file: ../main.yaml}\n  o: {kind: output}\n"
        "edges: [i -> back -> o]\n")
    main = str(tmp_path / "main.yaml")
    a = str(tmp_path / "agents" / "a.yaml")
    b = str(tmp_path / "agents" / "b.yaml")
    with pytest.raises(HetcError) as info:
        load_spec(main)
    got = sorted((d.loc.file, d.loc.line, d.loc.col, d.message) for d in info.value.diagnostics)
    assert got == sorted([
        (a, 3, 1, "'traffic' is not allowed in an included agent file: slo, traffic and hardware belong "
                  "to the top-level spec"),
        (a, 9, 28, "unknown key 'input_tokns' in node 'x' (kind llm); did you mean 'input_tokens'?"),
        (b, 4, 3, f"model id 'm' is already defined differently at {a}:5:3; give this model another id"),
        (b, 7, 29, f"agent files include each other in a cycle: {main} -> {a} -> {b} -> {main}"),
    ])


def test_cli_style_run_has_no_traceback(tmp_path: Path):
    # the loader is called by the CLI; here a plain python process shows the same: message, no traceback
    code = ("import sys\nfrom hetc.errors import HetcError\nfrom hetc.spec.loader import load_spec\n"
            "try:\n    load_spec(sys.argv[1])\nexcept HetcError as e:\n    print(e); sys.exit(e.exit_code)\n")
    result = subprocess.run([sys.executable, "-c", code, str(DATA / "python-tag.yaml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Traceback" not in result.stdout + result.stderr
    assert "YAML tag '!!python/object/apply:os.system' is not allowed" in result.stdout


MUTATION_VALUES = ["", "~", "yes", "-1", "0", "1e400", ".nan", "[1, 2]", "{a: 1}", "'x'", "!!str 5", "*a", "- x",
                   ":", "{", "a -> b", "1.5", "99999999999999999999", "!!python/name:os.system"]
EXAMPLE_FILES = sorted((Path(__file__).parents[1] / "examples").glob("*.yaml"))


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(EXAMPLE_FILES), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 3),
                                                          st.sampled_from(MUTATION_VALUES)), min_size=1, max_size=3))
def test_mutated_examples_give_located_errors_never_a_crash(example: Path, mutations):
    lines = example.read_text().split("\n")
    for index, op, value in mutations:
        i = index % len(lines)
        if op == 0:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[i])
        elif op == 2 and ":" in lines[i]:
            lines[i] = lines[i][: lines[i].index(":") + 1] + " " + value
        else:
            lines[i] = value
        lines = lines or [""]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text("\n".join(lines))
        try:
            load_spec(path, DEVICES)
        except HetcError as exc:
            assert exc.diagnostics and all(d.loc.file for d in exc.diagnostics)

"""Every file a user names on the command line is read as a bounded regular file: a FIFO never hangs,
/dev/zero never grows, and the answer is exit 2 naming the file (issue 12, "reading user files").

The path parameters are found by walking click's command tree, so a new path option is covered the day it
is added. Each case runs in a forked child with an address-space limit and an alarm: a hang or a runaway
read ends the child instead of the test run.
"""

from __future__ import annotations

import io
import json
import os
import resource
import signal
import sys
from pathlib import Path

import click
import pytest

from hetc.cli import cli, main

ROOT = Path(__file__).resolve().parent.parent
LANGGRAPH_DATA = ROOT / "tests" / "data" / "langgraph"
CHILD_SECONDS = 20  # a FIFO that blocks, blocks forever; any honest case ends in about a second
CHILD_MEMORY = 3 << 30  # bytes of address space: reading /dev/zero whole would pass this quickly


def path_parameters() -> list[tuple[tuple[str, ...], click.Parameter]]:
    """(command path, parameter) for every click.Path / click.File parameter of every hetc command."""
    found = []

    def walk(command: click.Command, names: tuple[str, ...]) -> None:
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                walk(command.get_command(ctx, name), names + (name,))
            return
        found.extend((names, p) for p in command.params if isinstance(p.type, (click.Path, click.File)))

    walk(cli, ())
    return found


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """Valid arguments for every command, so only the parameter under test is wrong."""
    base = tmp_path_factory.mktemp("user-files")
    bundle = base / "bundle"
    child = _run_child(["compile", str(ROOT / "examples" / "rag-assistant.yaml"), "-o", str(bundle), "-q"], base)
    assert child["code"] == 0, child
    measurements = base / "m.yaml"
    measurements.write_text(
        "records:\n  - {id: a, model: llama-3-8b, device: h100, precision: fp16, tp: 1, batch: 1, input_tokens: 128,\n"
        "     output_tokens: 64, metric: tbt_ms, value: 12.0, source: 'https://example.org/a'}\n")
    return {"spec": str(ROOT / "examples" / "rag-assistant.yaml"), "bundle": str(bundle),
            "measurements": str(measurements), "out": str(base / "out"), "base": str(base)}


def base_command(names: tuple[str, ...], inputs: dict[str, str]) -> list[str]:
    """A command line that works (or would start serving) for each command; new commands must be added."""
    out = inputs["out"]
    commands = {
        ("calibrate",): ["calibrate", inputs["measurements"], "-o", out + ".yaml"],
        ("compile",): ["compile", inputs["spec"], "-o", out, "-q"],
        ("deploy",): ["deploy", inputs["bundle"], "--target", "kubernetes", "-o", out],
        ("diff",): ["diff", inputs["bundle"], inputs["bundle"]],
        ("estimate",): ["estimate", "--model", "llama-3-8b", "--device", "h100"],
        ("hw", "list"): ["hw", "list"],
        ("hw", "show"): ["hw", "show", "h100"],
        ("import", "langgraph"): ["import", "langgraph", "graphs:react", "-o", out + ".yaml", "-q"],
        ("opt",): ["opt", str(Path(inputs["bundle"]) / "ir" / "final.generic.mlir"), "-o", out + ".mlir"],
        ("replan",): ["replan", inputs["bundle"], "--observed", str(ROOT / "tests" / "data" / "replan" / "voice-2x.prom"),
                      "--spec", inputs["spec"], "--window", "600", "-o", out + "-replan", "--simulate", "0"],
        ("serve",): ["serve", inputs["bundle"], "--local", "--port", "0"],
        ("simulate",): ["simulate", inputs["bundle"], "--duration", "5"],
        ("sweep",): ["sweep", inputs["spec"], "--over", "precision=fp16,fp8", "-o", out],
        ("uncertainty",): ["uncertainty", inputs["spec"], "--samples", "10"],
        ("validate",): ["validate", inputs["spec"]],
    }
    assert names in commands, f"add a working command line for `hetc {' '.join(names)}` to this test"
    return list(commands[names])


def with_value(command: list[str], param: click.Parameter, value: str) -> list[str]:
    """command with param set to value: an option is replaced or appended, an argument replaced."""
    if isinstance(param, click.Option):
        for i, arg in enumerate(command):
            if arg in param.opts:
                return command[:i + 1] + [value] + command[i + 2:]
        return command + [param.opts[-1], value]
    position = [p for p in _command(command).params if isinstance(p, click.Argument)].index(param)
    offset = len(_names(command))
    args = [a for a in command[offset:]]
    # arguments come first in every base command line, in order
    args[position] = value
    return command[:offset] + args


def _command(command: list[str]) -> click.Command:
    found: click.Command = cli
    for name in _names(command):
        found = found.get_command(click.Context(found), name)
    return found


def _names(command: list[str]) -> list[str]:
    names, found = [], cli
    for arg in command:
        if not isinstance(found, click.Group):
            break
        found = found.get_command(click.Context(found), arg)
        names.append(arg)
    return names


def _run_child(argv: list[str], cwd: Path | str) -> dict:
    """Run `hetc argv` in a forked child with a memory limit and an alarm: its exit code (or the signal that
    ended it), stdout and stderr."""
    read_out, write_out = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read_out)
            resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY, CHILD_MEMORY))
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(CHILD_SECONDS)
            os.chdir(cwd)
            sys.path.insert(0, str(LANGGRAPH_DATA))
            sys.stdin = io.TextIOWrapper(io.BytesIO(b""))
            out, err = io.StringIO(), io.StringIO()
            sys.stdout, sys.stderr = out, err
            try:
                main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            os.write(write_out, json.dumps({"out": out.getvalue(), "err": err.getvalue()}).encode())
        finally:
            os._exit(code)
    os.close(write_out)
    with os.fdopen(read_out, "rb") as pipe:
        text = pipe.read()
    _, status = os.waitpid(pid, 0)
    result = json.loads(text) if text else {"out": "", "err": ""}
    result["code"] = os.waitstatus_to_exitcode(status)  # -N: ended by signal N (SIGALRM: it hung)
    return result


CASES = [(names, param) for names, param in path_parameters()]


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
@pytest.mark.parametrize("names,param", CASES, ids=[" ".join(n) + ":" + p.name for n, p in CASES])
def test_every_path_parameter_refuses_a_fifo_and_dev_zero(names, param, kind, inputs, tmp_path):
    if kind == "fifo":
        value = tmp_path / "pipe"
        os.mkfifo(value)
    elif _is_output(param):
        # never /dev/zero itself: an output written by renaming over it would replace the machine's device
        # (as root); renaming over this link replaces only the link
        value = tmp_path / "zero"
        value.symlink_to("/dev/zero")
    else:
        value = Path("/dev/zero")
    argv = with_value(base_command(names, inputs), param, str(value))
    result = _run_child(argv, tmp_path)
    assert result["code"] != -signal.SIGALRM, f"hetc {' '.join(argv)} hung"
    assert result["code"] == 2, (argv, result)
    assert str(value) in result["err"], (argv, result)
    assert "Traceback" not in result["err"] and "internal error" not in result["err"]
    assert value.exists() and not value.is_file()  # hetc never replaces a file it did not write


def _is_output(param: click.Parameter) -> bool:
    return param.name in ("output", "out_dir", "dump_ir_dir")


# ------------------------------------------------------------------------------------------ deep and long input
DEEP = 100_000


def test_a_100000_deep_jsonl_simulation_trace_is_exit_2_with_its_line(tmp_path):
    from hetc.errors import HetcError
    from hetc.study.simulate import load_trace

    trace = tmp_path / "deep.jsonl"
    trace.write_text('{"arrival_s": 0.5}\n' + "[" * DEEP + "]" * DEEP + "\n")
    with pytest.raises(HetcError) as caught:
        load_trace(trace)
    diag = caught.value.diagnostics[0]
    assert "nested deeper" in diag.message and (diag.loc.file, diag.loc.line) == (str(trace), 2)


def test_a_100000_deep_import_trace_is_exit_2(tmp_path):
    trace = tmp_path / "deep.json"
    trace.write_text('{"runs": ' + "[" * DEEP + "]" * DEEP + "}")
    result = _run_child(["import", "langgraph", "graphs:plan_execute", "--from-trace", str(trace),
                         "-o", str(tmp_path / "x.yaml")], tmp_path)
    assert result["code"] == 2 and "nested deeper" in result["err"] and str(trace) in result["err"], result


def test_a_100000_run_parent_chain_is_read_in_linear_time_and_cycles_become_roots(tmp_path):
    from hetc.importers.trace import read_trace

    def run(i: int, parent: int | None) -> dict:
        return {"id": f"r{i}", "parent_run_id": None if parent is None else f"r{parent}", "name": "step",
                "start_time": 1.0 + i * 1e-6, "end_time": 2.0}

    chain = [run(0, None)] + [run(i, i - 1) for i in range(1, DEEP)]
    cycle = [run(DEEP, DEEP + 2), run(DEEP + 1, DEEP), run(DEEP + 2, DEEP + 1), run(DEEP + 3, DEEP)]
    trace = tmp_path / "chain.json"
    trace.write_text(json.dumps({"runs": chain + cycle}))
    roots = read_trace(trace)  # quadratic cycle checks took hours here; recursion hit Python's limit
    assert sorted(r.id for r in roots) == ["r0", f"r{DEEP}", f"r{DEEP + 1}", f"r{DEEP + 2}"]
    assert sum(1 for _ in roots[0].descendants()) == DEEP - 1
    assert [r.id for r in next(r for r in roots if r.id == f"r{DEEP}").children] == [f"r{DEEP + 3}"]


# ------------------------------------------------------------------------------------------ offline plans
def test_simulate_runs_an_offline_plan_at_its_planned_rate(tmp_path):
    bundle = tmp_path / "bundle"
    compiled = _run_child(["compile", str(ROOT / "examples" / "coding-agent.yaml"), "-o", str(bundle), "-q"], tmp_path)
    assert compiled["code"] == 0, compiled
    planned = json.loads((bundle / "plan.json").read_text())["traffic"]
    assert planned["requests_per_s"] is None and planned["planned_requests_per_s"] > 0  # offline: volume + deadline
    result = _run_child(["simulate", str(bundle), "--duration", "300", "--json"], tmp_path)
    assert result["code"] == 0, result
    report = json.loads(result["out"])["simulation"]
    assert report["rate_rps"] == pytest.approx(planned["planned_requests_per_s"], rel=1e-3)


# ------------------------------------------------------------------------------------------ model config paths
def test_a_model_config_path_is_relative_to_the_spec_file_not_the_working_directory(tmp_path):
    folder = tmp_path / "specs"
    (folder / "models").mkdir(parents=True)
    config = ROOT / "hetc" / "data" / "hf-configs" / "meta-llama--Llama-3.1-8B-Instruct.json"
    (folder / "models" / "config.json").write_bytes(config.read_bytes())
    spec = (ROOT / "examples" / "rag-assistant.yaml").read_text()
    assert "chat: {preset: llama-3-8b}" in spec
    (folder / "spec.yaml").write_text(spec.replace("chat: {preset: llama-3-8b}", "chat: {preset: models/config.json}"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = _run_child(["validate", str(folder / "spec.yaml")], elsewhere)
    assert result["code"] == 0, result
    (elsewhere / "models").mkdir()  # a config.json beside the working directory is not the one meant
    (elsewhere / "models" / "config.json").write_text("{}")
    assert _run_child(["validate", str(folder / "spec.yaml")], elsewhere)["code"] == 0


def test_estimate_refuses_a_fifo_and_a_100000_deep_model_config(tmp_path):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    result = _run_child(["estimate", "--model", str(fifo), "--device", "h100"], tmp_path)
    assert result["code"] == 2 and str(fifo) in result["err"], result
    deep = tmp_path / "config.json"
    deep.write_text("[" * DEEP + "]" * DEEP)
    result = _run_child(["estimate", "--model", str(deep), "--device", "h100"], tmp_path)
    assert result["code"] == 2 and str(deep) in result["err"] and "nested deeper" in result["err"], result


# ------------------------------------------------------------------------------------------ printed user text
HOSTILE = "\x1b[31m\r\u202e"  # ESC (colour), carriage return, right-to-left override


def assert_no_raw_controls(result: dict) -> None:
    for stream in ("out", "err"):
        assert not {"\x1b", "\r", "\u202e"} & set(result[stream]), (stream, result[stream][-400:])


def test_hw_show_escapes_a_device_name_from_an_hwdb_extra_file(tmp_path):
    extra = tmp_path / "extra.yaml"
    extra.write_text('id: evil-gpu\ninherits: nvidia-l4\naliases: []\nname: "Evil \\e[31m\\r\\u202egpu"\n')
    result = _run_child(["hw", "show", "evil-gpu", "--hwdb-extra", str(extra)], tmp_path)
    assert result["code"] == 0, result
    assert "\\u202e" in result["out"]
    assert_no_raw_controls(result)


def test_printed_paths_and_names_are_escaped(tmp_path, inputs):
    folder = tmp_path / f"out{HOSTILE}"
    result = _run_child(["deploy", inputs["bundle"], "--target", "ray-serve", "-o", str(folder)], tmp_path)
    assert result["code"] == 0 and result["out"], result
    assert_no_raw_controls(result)
    result = _run_child(["import", "langgraph", "graphs:react", "-o", str(tmp_path / f"spec{HOSTILE}.yaml")],
                        tmp_path)
    assert result["code"] == 0 and "wrote" in result["out"], result
    assert_no_raw_controls(result)
    config = tmp_path / f"model{HOSTILE}" / "config.json"  # the model is named after its folder
    config.parent.mkdir()
    fields = json.loads((ROOT / "hetc" / "data" / "hf-configs" / "meta-llama--Llama-3.1-8B-Instruct.json").read_text())
    config.write_text(json.dumps({k: v for k, v in fields.items() if k != "_name"}))
    result = _run_child(["estimate", "--model", str(config), "--device", "h100"], tmp_path)
    assert result["code"] == 0 and "\\x1b" in result["out"], result
    assert_no_raw_controls(result)
    result = _run_child(["serve", inputs["bundle"], "--local", "--bind", str(tmp_path / f"b{HOSTILE}.yaml")], tmp_path)
    assert result["code"] == 2, result
    assert_no_raw_controls(result)


def test_opt_refuses_a_unicode_digit_where_a_number_belongs(tmp_path):
    ir = tmp_path / "sq.mlir"  # found by bench/fuzz_opt.py: `=²` reached int() inside xDSL's lexer (exit 1)
    ir.write_text("builtin.module attributes {a =\u00b2 0 : i64} {\n}\n")
    result = _run_child(["opt", str(ir)], tmp_path)
    assert result["code"] == 2 and str(ir) in result["err"] and "internal error" not in result["err"], result

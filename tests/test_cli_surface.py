"""The command line as a newcomer and a CI log meet it: piped output keeps whole ids, NO_COLOR and pipes get
no escape sequences, -V, shell completion, `-` for standard input, --help and bad options."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[1]
VOICE = ROOT / "examples" / "voice-agent.yaml"
ESC = "\x1b"
ELLIPSIS = "\u2026"


def _env(**changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "TERM")}
    env.update({k: v for k, v in changes.items() if v is not None})
    return env


def hetc(*argv: str, stdin: bytes | None = None, env: dict | None = None, cwd: Path = ROOT):
    """hetc with stdout and stderr piped, as in a CI log."""
    return subprocess.run([sys.executable, "-m", "hetc.cli", *argv], input=stdin or b"", capture_output=True,
                          cwd=cwd, env=env or _env(), timeout=300, check=False)


def hetc_in_terminal(*argv: str, env: dict, columns: int = 200) -> tuple[int, str]:
    """hetc with stdout on a pseudo-terminal COLUMNS wide; returns (exit code, what the terminal got)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "hetc.cli", *argv], stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=subprocess.DEVNULL, cwd=ROOT, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    return proc.wait(timeout=300), b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "voice"
    done = hetc("compile", str(VOICE), "-o", str(out), "-q", "--dump-ir", "decompose-nodes")
    assert done.returncode == 0, done.stderr
    return out


# ---- 1. ids are never cut

def _ids_in_pool() -> list[str]:
    import yaml

    return yaml.safe_load(VOICE.read_text(encoding="utf-8"))["hardware"]["pool"]


def test_piped_hw_list_keeps_every_device_id() -> None:
    from hetc.hwdb.loader import load_hwdb

    done = hetc("hw", "list")
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert ELLIPSIS not in out
    for device_id in load_hwdb("default", []).devices:
        assert f" {device_id} " in out, device_id  # whole, on one line: nvidia-h100-sxm and -pcie stay apart


def test_piped_compile_summary_keeps_every_id(tmp_path: Path) -> None:
    done = hetc("compile", str(VOICE), "-o", str(tmp_path / "b"), "--explain")
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert ELLIPSIS not in out
    import json

    plan = json.loads((tmp_path / "b" / "plan.json").read_text())
    for stage in plan["stages"]:
        if stage["device"]:
            assert any(f" {stage['id']} " in line and f" {stage['device']} " in line for line in out.splitlines()), stage["id"]
    for baseline in plan["baselines"]:
        assert f" {baseline['device']} " in out


def test_piped_simulate_keeps_every_stage_id(bundle: Path) -> None:
    done = hetc("simulate", str(bundle), "--duration", "5", "--quiet")
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode()
    assert ELLIPSIS not in out and "llm.prefill" in out and "search.lookup" in out


def test_a_narrow_terminal_folds_ids_instead_of_cutting_them() -> None:
    from hetc.hwdb.loader import load_hwdb

    code, out = hetc_in_terminal("hw", "list", env=_env(TERM="xterm", NO_COLOR="1"), columns=60)
    assert code == 0
    assert ELLIPSIS not in out
    first_column = "".join(line.split("\u2502")[1].strip() for line in out.splitlines() if line.startswith("\u2502"))
    for device_id in load_hwdb("default", []).devices:  # each id is there whole, folded over lines
        assert device_id in first_column, device_id


# ---- 2. NO_COLOR and pipes: no escape sequences at all

@pytest.mark.parametrize("argv", [("hw", "list"), ("compile", str(VOICE), "-o", "{tmp}/b", "--explain")])
def test_no_color_means_no_escape_sequences(argv, tmp_path: Path) -> None:
    argv = tuple(a.replace("{tmp}", str(tmp_path)) for a in argv)
    code, styled = hetc_in_terminal(*argv, env=_env(TERM="xterm-256color"))
    assert code == 0 and ESC in styled  # on a terminal, without NO_COLOR, titles are styled
    code, plain = hetc_in_terminal(*argv, env=_env(TERM="xterm-256color", NO_COLOR="1"))
    assert code == 0 and ESC not in plain
    piped = hetc(*argv, env=_env(TERM="xterm-256color"))
    assert piped.returncode == 0 and ESC.encode() not in piped.stdout + piped.stderr


def test_what_users_wrote_is_printed_as_written(tmp_path: Path) -> None:
    # rich markup and emoji codes in a spec's name used to be interpreted ("[/x]" was an internal error)
    name = "v[/oops] [red]x :smile:"
    spec = tmp_path / "named.yaml"
    spec.write_text(VOICE.read_text().replace("name: voice-agent", f'name: "{name}"'), encoding="utf-8")
    done = hetc("compile", str(spec), "-o", str(tmp_path / "b"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith(f"{name}: plan")
    done = hetc("simulate", str(tmp_path / "b"), "--duration", "2", "--quiet")
    assert done.returncode == 0 and f"plan {name}:" in done.stdout.decode()


def test_console_rules() -> None:
    import io

    from hetc.console import make_console

    console = make_console()  # pytest captures stdout: not a terminal
    assert console.width >= 1000 and console.color_system is None and not console.is_terminal
    os.environ["NO_COLOR"] = "1"
    try:
        sys_stdout, sys.stdout = sys.stdout, io.StringIO()
        assert make_console().color_system is None
    finally:
        sys.stdout = sys_stdout
        del os.environ["NO_COLOR"]


# ---- 3. -V and shell completion

def test_version_short_and_long() -> None:
    from hetc import __version__

    for flag in ("-V", "--version"):
        done = hetc(flag)
        assert done.returncode == 0 and done.stdout.decode().strip() == f"hetc, version {__version__}"


def _complete(words: str) -> list[str]:
    env = _env(_HETC_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(len(words.split()) - 1))
    done = subprocess.run([sys.executable, "-m", "hetc.cli"], capture_output=True, env=env, cwd=ROOT, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    return [line.split(",", 1)[1] for line in done.stdout.decode().splitlines()]


def test_shell_completion_works_with_the_lazy_command_table() -> None:
    script = subprocess.run([sys.executable, "-m", "hetc.cli"], capture_output=True, cwd=ROOT, timeout=60, check=False,
                            env=_env(_HETC_COMPLETE="bash_source"))
    assert script.returncode == 0 and b"_hetc_completion" in script.stdout
    assert _complete("hetc co") == ["compile"]
    assert _complete("hetc s") == ["schema", "serve", "simulate", "sweep"]
    assert set(_complete("hetc compile x --dump")) == {"--dump-ir", "--dump-ir-dir"}  # a lazily loaded command
    assert _complete("hetc hw l") == ["list"]  # a nested group
    assert "exact" in _complete("hetc compile x --solver e") or _complete("hetc compile x --solver e") == ["exact"]


# ---- 4. `-` reads standard input

def test_validate_reads_standard_input() -> None:
    done = hetc("validate", "-", stdin=VOICE.read_bytes())
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().startswith("<stdin>: ok (voice-agent:")
    broken = VOICE.read_text().replace("requests_per_s: 40", "requests_per_s: fast").encode()
    done = hetc("validate", "-", stdin=broken)
    assert done.returncode == 2
    err = done.stderr.decode()
    line = next(n for n, text in enumerate(broken.decode().splitlines(), 1) if "requests_per_s: fast" in text)
    assert f"<stdin>:{line}:" in err and "Traceback" not in err


def test_opt_reads_standard_input(bundle: Path) -> None:
    source = bundle / "ir" / "04-decompose-nodes.mlir"
    from_file = hetc("opt", str(source))
    from_stdin = hetc("opt", "-", "-o", "-", stdin=source.read_bytes())
    assert from_file.returncode == 0 and from_stdin.returncode == 0, from_stdin.stderr
    assert from_stdin.stdout == from_file.stdout and from_stdin.stdout
    broken = source.read_text().splitlines()
    broken.insert(2, "  %bad = this is not IR")
    done = hetc("opt", "-", stdin="\n".join(broken).encode())
    assert done.returncode == 2
    assert done.stderr.decode().startswith("<stdin>:3:"), done.stderr
    assert b"Traceback" not in done.stderr


# ---- 8. every command's --help, and bad options

def _all_commands() -> list[tuple[str, ...]]:
    from hetc.cli import cli

    found = []

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        found.append(path)
        if isinstance(command, click.Group):
            for name in command.list_commands(None):
                walk(command.get_command(None, name), (*path, name))

    walk(cli, ())
    return found


COMMANDS = _all_commands()


def _run_main(argv, capsys) -> tuple[int, str, str]:
    from hetc.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_every_command_is_listed() -> None:
    names = {path[0] for path in COMMANDS if path}
    assert {"compile", "validate", "opt", "hw", "estimate", "calibrate", "deploy", "simulate", "schema", "sweep",
            "diff"} <= names
    assert ("hw", "list") in COMMANDS and ("schema", "plan") in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) or "hetc" for p in COMMANDS])
def test_help_and_bad_options(path, capsys) -> None:
    code, out, err = _run_main([*path, "--help"], capsys)
    assert code == 0 and out.startswith(f"Usage: {' '.join(('hetc', *path))}")
    from hetc.cli import cli

    command = cli
    for name in path:
        command = command.get_command(None, name)
    for param in command.params:  # every option says what it does
        if isinstance(param, click.Option) and param.name not in ("help", "version"):
            assert param.help, f"hetc {' '.join(path)} {param.opts[0]} has no help text"
    code, out, err = _run_main([*path, "--no-such-option"], capsys)
    assert code == 2 and "No such option" in err and "Traceback" not in err


def test_unknown_command_and_bad_values_are_usage_errors(capsys) -> None:
    code, _, err = _run_main(["complie"], capsys)
    assert code == 2 and "No such command" in err
    code, _, err = _run_main(["compile", str(VOICE), "-o", "/nonexistent/x", "--solver", "fastest"], capsys)
    assert code == 2 and "'fastest' is not one of" in err and "Traceback" not in err
    code, _, err = _run_main(["simulate", str(ROOT), "--duration", "long"], capsys)
    assert code == 2 and "is not a valid float" in err


@pytest.mark.parametrize("argv", [("hw", "show", "h100"), ("estimate", "--model", "llama-3-8b", "--device", "h100"),
                                  ("estimate", "--model", "bge-large", "--device", "h100")])
def test_multi_line_output_keeps_its_line_breaks(argv) -> None:
    # was: hw show and estimate went through printable() whole, which wrote every line break as a literal \n
    done = hetc(*argv)
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert "\\n" not in text and text.count("\n") >= 3


def test_printable_lines_escapes_inside_lines_only() -> None:
    from hetc.errors import printable_lines

    assert printable_lines("name: a\x1b[31mb\nnext") == "name: a\\x1b[31mb\nnext"

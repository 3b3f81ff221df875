"""The docs work as written: every Python snippet runs, every `hetc ...` line of README.md and
docs/tutorial.md parses (the cheap ones run for real), and the docs stand alone (no link out of the repo)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import click
import pytest
from docs_snippets import Command, hetc_commands, python_snippets

ROOT = Path(__file__).resolve().parents[1]
ALL_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND_DOCS = [ROOT / "README.md", ROOT / "docs" / "tutorial.md"]
SNIPPETS = [s for doc in ALL_DOCS for s in python_snippets(doc)]
COMMANDS = list({c.argv: c for doc in COMMAND_DOCS for c in hetc_commands(doc)}.values())

# The command every later step reads (README's first command, tutorial step 3): run once, first.
FIRST_COMPILE = ("compile", "examples/voice-agent.yaml", "-o", "build/voice-agent")
# Commands that take more than a few seconds (a sweep compiles 6 to 16 variants) are only parsed, and so is
# `serve`, a server that runs until stopped (tests/test_runtime*.py run it for real).
PARSE_ONLY = {"sweep", "serve"}
# Words the docs use for "your file": what stands in for them in the workspace.
PLACEHOLDERS = {"SPEC": "examples/voice-agent.yaml", "DIR": "build/dir", "agent.yaml": "agent.yaml"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A folder laid out as the docs assume: the examples, the voice agent compiled, the files later steps
    produce (a sweep's plans, a second bundle) standing in as copies."""
    root = tmp_path_factory.mktemp("docs")
    shutil.copytree(ROOT / "examples", root / "examples")
    shutil.copy(ROOT / "examples" / "voice-agent.yaml", root / "agent.yaml")
    done = _hetc(root, FIRST_COMPILE)
    assert done.returncode == 0, done.stderr
    bundle = root / "build" / "voice-agent"
    shutil.copytree(bundle, root / "build" / "main")
    shutil.copytree(bundle, root / "build" / "new")
    (root / "build" / "rates" / "plans").mkdir(parents=True)
    for name in ("000.json", "002.json"):
        shutil.copy(bundle / "plan.json", root / "build" / "rates" / "plans" / name)
    return root


def _hetc(cwd: Path, argv, stdin: Path | None = None) -> subprocess.CompletedProcess:
    with open(stdin if stdin else "/dev/null", "rb") as source:
        return subprocess.run([sys.executable, "-m", "hetc.cli", *argv], cwd=cwd, stdin=source, capture_output=True,
                              text=True, timeout=300, check=False)


def _parse_only(argv: tuple[str, ...]) -> None:
    """Parse ARGV with hetc's click commands (types, choices, required options) without running it."""
    from hetc.cli import cli

    command, words = cli, list(argv)
    while isinstance(command, click.Group) and words and not words[0].startswith("-"):
        command = command.get_command(None, words.pop(0))
        assert command is not None, f"no such command in {argv}"
    with mock.patch.object(command, "callback", lambda *args, **kwargs: None):
        cli.main(args=list(argv), prog_name="hetc", standalone_mode=False)


def test_the_docs_show_commands_and_snippets() -> None:
    # the extraction itself: if these fall to zero the tests below would pass on nothing
    assert len(COMMANDS) >= 15 and FIRST_COMPILE in {c.argv for c in COMMANDS}
    assert any(s.where.startswith("tutorial.md") for s in SNIPPETS)


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.where for s in SNIPPETS])
def test_python_snippet_runs(snippet, workspace: Path) -> None:
    compile(snippet.code, snippet.where, "exec")  # pasted as shown: no IndentationError
    if snippet.code.startswith("# file: "):
        pytest.skip("a file of a worked example: its page's own test writes and runs them in order")
    done = subprocess.run([sys.executable, "-c", snippet.code], cwd=workspace, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, f"{snippet.where}: {done.stderr}"


def test_the_old_tutorial_snippet_is_caught(tmp_path: Path) -> None:
    # step 4 used to be a two-line `python -c` whose second line kept the block's indentation
    doc = tmp_path / "old.md"
    doc.write_text("For example:\n\n    python -c \"import json; p = json.load(open('plan.json'));\n"
                   "    print(p['name'])\"\n", encoding="utf-8")
    (snippet,) = python_snippets(doc)
    with pytest.raises(IndentationError):
        compile(snippet.code, snippet.where, "exec")


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{c.where} {' '.join(c.argv)}"[:80] for c in COMMANDS])
def test_documented_command_works(command: Command, workspace: Path, monkeypatch) -> None:
    argv = tuple(PLACEHOLDERS.get(word, word) for word in command.argv)
    if argv == FIRST_COMPILE:
        assert (workspace / "build" / "voice-agent" / "plan.json").is_file()  # ran in the fixture
        return
    monkeypatch.chdir(workspace)
    _parse_only(argv)
    if command.argv[0] not in PARSE_ONLY:
        stdin = workspace / command.stdin_file if command.stdin_file else None
        done = _hetc(workspace, argv, stdin)
        assert done.returncode == 0, f"{command.where}: hetc {' '.join(argv)}\n{done.stdout}\n{done.stderr}"


def test_a_wrong_documented_command_would_fail(workspace: Path, monkeypatch) -> None:
    monkeypatch.chdir(workspace)
    with pytest.raises(click.UsageError):
        _parse_only(("compile", "examples/voice-agent.yaml", "-o", "build/x", "--no-such-flag"))
    with pytest.raises(click.BadParameter):
        _parse_only(("simulate", "build/voice-agent", "--duration", "sixty"))


def test_the_docs_stand_alone() -> None:
    # everything a user needs is inside the repository: no link or path into the planning folder beside it
    outside = re.compile(r"\.\./shared|\bshared/(DESIGN|data|reference|tools)")
    for doc in [*ALL_DOCS, ROOT / "bench" / "README.md"]:
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            assert not outside.search(line), f"{doc.relative_to(ROOT)}:{number}: {line.strip()}"


def test_relative_links_in_the_docs_resolve() -> None:
    link = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")
    for doc in ALL_DOCS:
        for target in link.findall(doc.read_text(encoding="utf-8")):
            path = target[0]
            if "://" in path or path.startswith("mailto:"):
                continue
            resolved = (doc.parent / path).resolve()
            assert resolved.exists(), f"{doc.relative_to(ROOT)} links {path}, which does not exist"
            assert resolved.is_relative_to(ROOT), f"{doc.relative_to(ROOT)} links {path}, outside the repository"


def test_readme_starts_with_the_two_setup_commands() -> None:
    # .ci/run finds the test command in README.md by its start; the first block is install-and-compile, then tests
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = text.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert first_block[0].startswith("pip install -e . && hetc compile examples/")
    assert first_block[1].startswith('pip install -e ".[test]" && python -m pytest')
    assert len(first_block) == 2


def test_readme_names_every_test_dependency() -> None:
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for line in config["options.extras_require"]["test"].splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        package = re.match(r"[A-Za-z0-9_.\-]+(\[[^\]]*\])?", line).group(0)
        assert f"| {package} " in readme or f"{package}," in readme or f", {package} " in readme, \
            f"README.md does not say why the tests need {package}"
    from conftest import SYSTEM_TOOLS

    for tool, (_, install) in SYSTEM_TOOLS.items():
        assert f"`{tool}`" in readme or f"| {tool} |" in readme, f"README.md does not name tool {tool}"
        assert install in readme, f"README.md does not say how to install {tool}: {install}"

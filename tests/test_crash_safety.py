"""A compile that dies or fails never leaves a partial bundle and never damages the previous one.

hetc/bundle/writer.py writes into a temporary sibling directory and swaps it in with one atomic rename. Here:
- SIGKILL at every step of writing a bundle (at each file, at the sync, right after the swap, and between the two
  renames of the fallback swap used where renameat2 is missing): the path holds the earlier bundle or the
  new one, complete; in the fallback window the earlier bundle waits intact beside it and the next compile
  puts it back first;
- `hetc compile` killed with SIGKILL after random (seeded) delays: the same;
- a compile that fails (bad spec: exit 2; infeasible SLA: exit 3) leaves the existing bundle untouched.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hetc.compiler import CompileOptions, compile_spec, write
from hetc.errors import HetcError

ROOT = Path(__file__).resolve().parents[1]
OLD_SPEC = ROOT / "examples" / "voice-agent.yaml"
NEW_SPEC = ROOT / "examples" / "rag-assistant.yaml"
RANDOM_KILLS = 5
KILL_SEED = 20250807


@pytest.fixture(scope="module")
def results():
    """The two bundles' contents, compiled once in process: (old result, new result)."""
    return compile_spec(str(OLD_SPEC), CompileOptions()), compile_spec(str(NEW_SPEC), CompileOptions())


def read_bundle(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def expected_bundle(result) -> dict[str, bytes]:
    from hetc.bundle.writer import MANIFEST, manifest
    from hetc.json_text import to_json

    return {**result.files, MANIFEST: to_json(manifest(result.files))}


def verified(path: Path) -> dict[str, bytes]:
    """The bundle's files after checking that manifest.json lists exactly them with their sha256."""
    files = read_bundle(path)
    manifest = json.loads(files["manifest.json"])
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert set(listed) == set(files) - {"manifest.json"}, "files on disk differ from the manifest"
    for name, digest in listed.items():
        assert hashlib.sha256(files[name]).hexdigest() == digest, f"{name} does not match its sha256"
    return files


def which_bundle(path: Path, old: dict[str, bytes], new: dict[str, bytes]) -> str:
    files = verified(path)
    if files == old:
        return "old"
    assert files == new, "a bundle that is neither the earlier one nor the new one"
    return "new"


def leftovers(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.*"))


def _write_and_die(result, out: Path, arm) -> int:
    """Fork; the child arms a SIGKILL trap (arm()) and writes the bundle. Returns the child's wait status."""
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        try:
            arm()
            write(result, out)
            os._exit(0)
        except BaseException:
            os._exit(70)
    _, status = os.waitpid(pid, 0)
    return status


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _kill_at_step(n: int):
    """Kill at the n-th step of the write: each file written, the sync of the temporary tree (one syncfs, or an
    fsync per file and folder where there is none) and the parent folder's fsync."""
    def arm():
        import hetc.bundle.writer as bundle

        calls = [0]

        def step(real):
            def counted(*args, **kwargs):
                calls[0] += 1
                if calls[0] == n:
                    _kill_self()
                return real(*args, **kwargs)

            return counted

        # only in the forked child
        bundle._write_file, bundle._syncfs, os.fsync = step(bundle._write_file), step(bundle._syncfs), step(os.fsync)

    return arm


def _kill_after_exchange():
    import hetc.bundle.writer as bundle

    real = bundle._exchange
    bundle._exchange = lambda a, b: (real(a, b), _kill_self())[0]


def _kill_between_fallback_renames():
    import hetc.bundle.writer as bundle

    bundle._exchange = lambda a, b: False  # a kernel without renameat2
    real_rename = os.rename

    def rename(src, dst):
        real_rename(src, dst)
        if Path(dst).name.startswith(f".{Path(src).name}.old-"):  # the old bundle has just been moved aside
            _kill_self()

    os.rename = rename


def test_sigkill_at_every_step_of_the_bundle_write(results, tmp_path):
    old_result, new_result = results
    old, new = expected_bundle(old_result), expected_bundle(new_result)
    out = tmp_path / "bundle"
    write(old_result, out)
    seen = set()
    n = 1
    while True:  # kill at the n-th step (each file, the sync, the parent's fsync) until none is left
        status = _write_and_die(new_result, out, _kill_at_step(n))
        state = which_bundle(out, old, new)
        if os.WIFEXITED(status):
            assert os.WEXITSTATUS(status) == 0 and state == "new"
            break
        assert os.WTERMSIG(status) == signal.SIGKILL
        seen.add(state)
        if state == "new":  # killed after the swap: put the earlier bundle back for the next kill point
            write(old_result, out)
        n += 1
    assert n > len(new), "every file's write was a kill point"
    assert seen == {"old", "new"}, "the kills covered both sides of the swap"

    write(old_result, out)
    status = _write_and_die(new_result, out, _kill_after_exchange)
    assert os.WIFSIGNALED(status) and which_bundle(out, old, new) == "new"
    assert leftovers(out), "the previous bundle, not yet removed, waits beside the new one"
    write(old_result, out)  # the next compile removes it
    assert not leftovers(out) and which_bundle(out, old, new) == "old"


def test_sigkill_inside_the_fallback_swap_is_repaired_by_the_next_compile(results, tmp_path):
    old_result, new_result = results
    old, new = expected_bundle(old_result), expected_bundle(new_result)
    out = tmp_path / "bundle"
    write(old_result, out)
    status = _write_and_die(new_result, out, _kill_between_fallback_renames)
    assert os.WIFSIGNALED(status)
    assert not out.exists()  # the one window of the fallback: the earlier bundle is beside the path, intact
    aside = [p for p in leftovers(out) if ".old-" in p.name]
    assert len(aside) == 1 and which_bundle(aside[0], old, new) == "old"
    write(new_result, out)
    assert which_bundle(out, old, new) == "new" and not leftovers(out)


def test_a_failed_fallback_rename_puts_the_earlier_bundle_back(results, tmp_path, monkeypatch):
    import hetc.bundle.writer as bundle

    old_result, new_result = results
    old, new = expected_bundle(old_result), expected_bundle(new_result)
    out = tmp_path / "bundle"
    write(old_result, out)
    monkeypatch.setattr(bundle, "_exchange", lambda a, b: False)
    real_rename = os.rename

    def rename(src, dst):
        if Path(src).name.startswith(".bundle.tmp-"):
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(HetcError) as info:  # the user's disk: exit 2 naming the path, not an internal error
        write(new_result, out)
    assert info.value.exit_code == 2 and "No space left on device" in str(info.value)
    assert which_bundle(out, old, new) == "old" and not leftovers(out)


def _cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "hetc.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=ROOT)


def test_compile_killed_at_random_times(results, tmp_path):
    old_result, new_result = results
    old, new = expected_bundle(old_result), expected_bundle(new_result)
    out = tmp_path / "bundle"
    start = time.perf_counter()
    reference = _cli("compile", str(NEW_SPEC), "-o", str(tmp_path / "reference"), "-q")
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    full_run_s = time.perf_counter() - start
    assert read_bundle(tmp_path / "reference") == new  # the CLI writes what compile_spec computes
    rng = random.Random(KILL_SEED)
    outcomes = []
    for _ in range(RANDOM_KILLS):
        write(old_result, out)
        delay_s = rng.uniform(0.0, full_run_s)
        proc = _cli("compile", str(NEW_SPEC), "-o", str(out), "-q")
        time.sleep(delay_s)
        proc.send_signal(signal.SIGKILL)
        code = proc.wait(timeout=300)
        proc.stderr.close()
        outcomes.append((round(delay_s, 2), code, which_bundle(out, old, new)))
        if code == -signal.SIGKILL:
            assert outcomes[-1][2] in ("old", "new")
        else:  # it finished before the signal
            assert code == 0 and outcomes[-1][2] == "new"
    write(old_result, out)
    assert not leftovers(out), f"leftovers of killed compiles were not cleaned: {leftovers(out)}"
    print("delay_s, exit, bundle:", outcomes)


@pytest.mark.parametrize("change,exit_code", [
    (("traffic:", "traffic: [\n"), 2),  # a YAML error
    (("kind: llm", "kind: lm"), 2),  # an unknown node kind
    (("tbt_ms: 20", "tbt_ms: 1"), 3),  # an SLA no device meets
])
def test_failed_compile_leaves_the_existing_bundle_untouched(results, tmp_path, change, exit_code):
    from hetc.cli import main

    old_result, _ = results
    out = tmp_path / "bundle"
    write(old_result, out)
    before = read_bundle(out)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    bad = tmp_path / "bad.yaml"
    text = OLD_SPEC.read_text()
    assert change[0] in text
    bad.write_text(text.replace(change[0], change[1], 1))
    with pytest.raises(SystemExit) as info:
        main(["compile", str(bad), "-o", str(out), "-q"])
    assert info.value.code == exit_code
    assert read_bundle(out) == before
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps
    assert not leftovers(out)

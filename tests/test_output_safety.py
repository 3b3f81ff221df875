"""hetc never deletes what it did not write, and its outputs do not depend on how paths were typed.

- `-o DIR` (compile, sweep, deploy, --dump-ir-dir) replaces only an absent or empty directory or an earlier
  hetc output; anything else is exit 2 and left untouched, with no leftovers beside it;
- concurrent writers of one directory leave exactly one writer's complete bundle;
- a disk error is exit 2 naming the path, the earlier bundle intact; a failed CI gate writes nothing;
- an agent node's `file:` reads only a regular hetc file of bounded size and never quotes another file;
- a bundle is the same whatever the working directory and however the spec path was typed.
(tests/test_crash_safety.py covers SIGKILL during a write.)
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_compile import run

from hetc.bundle.writer import write_bundle
from hetc.compiler import CompileOptions, compile_spec, write
from hetc.errors import HetcError

ROOT = Path(__file__).resolve().parents[1]
VOICE = ROOT / "examples" / "voice-agent.yaml"
RAG = ROOT / "examples" / "rag-assistant.yaml"
SUPERVISOR = ROOT / "examples" / "supervisor.yaml"
WRITERS = 5  # concurrent writers of one directory (the issue saw failures with 3 to 6)
ROUNDS = 12  # bundles each writer writes
CLI_WRITERS = 4
CHILD_MEMORY_BYTES = 1 << 30  # a runaway read (/dev/zero) fails here instead of exhausting the machine
TIMEOUT_S = 300


def snapshot(path: Path) -> dict[str, tuple[int, bytes]]:
    """Every entry under path (not following links): mode and content, to show nothing changed."""
    found = {}
    for entry in sorted(path.rglob("*")):
        info = entry.lstat()
        data = entry.read_bytes() if stat.S_ISREG(info.st_mode) else os.fsencode(os.readlink(entry)) \
            if entry.is_symlink() else b""
        found[str(entry.relative_to(path))] = (info.st_mode, data)
    return found


def leftovers(folder: Path) -> list[str]:
    """hetc's temporary names (.NAME.tmp-*, .NAME.old-*, .NAME.lock) in folder."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and
                  any(tag in p.name for tag in (".tmp-", ".old-", ".lock")))


def verified(path: Path) -> dict[str, bytes]:
    """The bundle's files after checking that its manifest lists exactly them with their sha256."""
    files = {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    listed = {f["path"]: f["sha256"] for f in json.loads(files.pop("manifest.json"))["files"]}
    assert set(listed) == set(files), "files on disk differ from the manifest"
    for name, digest in listed.items():
        assert hashlib.sha256(files[name]).hexdigest() == digest, f"{name} does not match its sha256"
    return files


@pytest.fixture(scope="module")
def voice():
    return compile_spec(str(VOICE), CompileOptions())


# ------------------------------------------------------------------------------ refusing a directory


def _users_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "d"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("mine\n")
    (folder / "sub" / "data.csv").write_text("1,2\n")
    folder.chmod(0o751)
    return folder


def _bundle_plus_a_note(tmp_path: Path, voice) -> Path:
    folder = tmp_path / "d"
    write(voice, folder)
    (folder / "ir" / "my-notes.txt").write_text("mine\n")
    return folder


def _bundle_plus_a_link(tmp_path: Path, voice) -> Path:
    folder = tmp_path / "d"
    write(voice, folder)
    (folder / "plan.json").unlink()
    (folder / "plan.json").symlink_to(tmp_path / "elsewhere.json")  # not a file hetc wrote
    return folder


def _the_specs_folder(tmp_path: Path, voice) -> Path:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "voice-agent.yaml").write_bytes(VOICE.read_bytes())
    return folder


@pytest.mark.parametrize("make", [_users_folder, _bundle_plus_a_note, _bundle_plus_a_link, _the_specs_folder],
                         ids=["a user's folder", "a bundle holding a user's file", "a bundle holding a link",
                              "the spec's own folder"])
def test_a_folder_holding_what_hetc_did_not_write_is_refused_untouched(make, tmp_path, voice, capsys, monkeypatch):
    folder = _users_folder(tmp_path) if make is _users_folder else make(tmp_path, voice)
    spec = folder / "voice-agent.yaml" if make is _the_specs_folder else VOICE
    before = snapshot(folder)
    mode = folder.stat().st_mode
    code, _, err = run(["compile", spec, "-o", folder, "-q"], capsys)
    assert code == 2, err
    assert "error:" in err and "Traceback" not in err
    assert snapshot(folder) == before and folder.stat().st_mode == mode
    assert leftovers(tmp_path) == []


def test_the_refusal_names_what_is_in_the_way(tmp_path, capsys):
    folder = _users_folder(tmp_path)
    code, _, err = run(["compile", VOICE, "-o", folder, "-q"], capsys)
    assert code == 2 and "notes.txt" in err and "sub" in err


@pytest.mark.parametrize("output", [".", "..", "-"])
def test_dot_dotdot_and_dash_are_refused_with_a_reason(output, tmp_path, capsys, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)
    code, _, err = run(["compile", VOICE, "-o", output, "-q"], capsys)
    assert code == 2 and "error:" in err and "Traceback" not in err
    assert snapshot(tmp_path) == before  # no folder named '-', nothing removed, no leftovers


def test_the_home_folder_is_refused(tmp_path, capsys, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    code, _, err = run(["compile", VOICE, "-o", home, "-q"], capsys)
    assert code == 2 and "refusing" in err


def test_a_dangling_symlink_is_refused(tmp_path, capsys):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "missing" / "bundle")
    code, _, err = run(["compile", VOICE, "-o", link, "-q"], capsys)
    assert code == 2 and "symbolic link" in err
    assert not (tmp_path / "missing").exists() and leftovers(tmp_path) == []


def test_a_symlink_to_a_bundle_replaces_the_bundle_and_keeps_the_link(tmp_path, voice, capsys):
    target = tmp_path / "bundles" / "v1"
    write(voice, target)
    (target / "plan.json").write_text("{}")  # an edited bundle file: still hetc's
    link = tmp_path / "current"
    link.symlink_to(target)
    code, _, err = run(["compile", VOICE, "-o", link, "-q"], capsys)
    assert code == 0, err
    assert link.is_symlink() and verified(target)["plan.json"] == voice.files["plan.json"]
    assert leftovers(tmp_path) == [] and leftovers(target.parent) == []


def test_an_empty_folder_is_replaced_keeping_its_mode_and_a_new_one_follows_the_umask(tmp_path, voice):
    empty = tmp_path / "empty"
    empty.mkdir()
    empty.chmod(0o750)
    write(voice, empty)
    assert stat.S_IMODE(empty.stat().st_mode) == 0o750 and verified(empty)
    old_umask = os.umask(0o022)
    try:
        write(voice, tmp_path / "new")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o755  # not mkdtemp's 0700


def test_a_bundle_is_replaced(tmp_path, voice):
    out = tmp_path / "b"
    write_bundle(out, {"old.txt": b"old", "sub/x.txt": b"x"})
    write(voice, out)
    assert verified(out) == voice.files and leftovers(tmp_path) == []


# ------------------------------------------------------------------------------ concurrent writers


def _writer_files(writer: int) -> dict[str, bytes]:
    """Each writer's bundle differs in content and in which files it has."""
    files = {f"w{writer}/part{i}.bin": bytes([writer]) * (4096 * (i + 1)) for i in range(6)}
    files["plan.json"] = json.dumps({"writer": writer}).encode()
    return files


def test_concurrent_writers_leave_one_complete_bundle(tmp_path):
    out = tmp_path / "b"
    expected = [_writer_files(w) for w in range(WRITERS)]
    pids = []
    for writer in range(WRITERS):
        pid = os.fork()
        if pid == 0:  # child: never return into pytest
            code = 0
            try:
                for _ in range(ROUNDS):
                    write_bundle(out, expected[writer])
            except BaseException:
                code = 70
            os._exit(code)
        pids.append(pid)
    statuses = [os.waitpid(pid, 0)[1] for pid in pids]
    assert all(os.WIFEXITED(s) and os.WEXITSTATUS(s) == 0 for s in statuses), statuses
    assert verified(out) in expected
    assert leftovers(tmp_path) == []


def test_concurrent_compiles_into_one_folder_all_succeed(tmp_path):
    out = tmp_path / "b"
    specs = [VOICE, RAG] * (CLI_WRITERS // 2)
    procs = [subprocess.Popen([sys.executable, "-m", "hetc.cli", "compile", str(spec), "-o", str(out), "-q"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT) for spec in specs]
    errors = [(p.wait(timeout=TIMEOUT_S), p.stderr.read().decode()) for p in procs]
    for p in procs:
        p.stderr.close()
    assert all(code == 0 for code, _ in errors), errors
    plan = json.loads(verified(out)["plan.json"])
    assert plan["name"] in ("voice-agent", "rag-assistant")
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------------------ disk errors and gates


def test_a_file_too_large_is_exit_2_naming_the_path_and_keeps_the_earlier_bundle(tmp_path, voice):
    out = tmp_path / "b"
    write_bundle(out, {"small.txt": b"earlier"})
    before = snapshot(out)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: `ulimit -f` 8 KiB, then write a bundle with larger files
        os.close(read_end)
        try:
            resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))
            write(voice, out)
            message, code = b"written", 0
        except HetcError as exc:
            message, code = str(exc).encode(), exc.exit_code
        except BaseException as exc:
            message, code = repr(exc).encode(), 70
        os.write(write_end, message)
        os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 2, message
    assert "File too large" in message and f"{out}/" in message  # the file, as named inside the bundle
    assert snapshot(out) == before and leftovers(tmp_path) == []


def _count_syncs(monkeypatch) -> dict[str, int]:
    import hetc.bundle.writer as bundle

    counts = {"syncfs": 0, "fsync": 0}
    real_syncfs, real_fsync = bundle._syncfs, os.fsync

    def syncfs(fd, shown):
        done = real_syncfs(fd, shown)
        counts["syncfs"] += done
        return done

    def fsync(fd):
        counts["fsync"] += 1
        real_fsync(fd)

    monkeypatch.setattr(bundle, "_syncfs", syncfs)
    monkeypatch.setattr(os, "fsync", fsync)
    return counts


def test_a_bundle_is_synced_once_not_once_per_file(tmp_path, voice, monkeypatch):
    counts = _count_syncs(monkeypatch)
    write(voice, tmp_path / "b")
    assert len(voice.files) > 5 and verified(tmp_path / "b") == voice.files
    assert counts == {"syncfs": 1, "fsync": 1}  # the tree at once, then the parent folder after the swap


def test_without_syncfs_every_file_and_folder_is_fsynced(tmp_path, voice, monkeypatch):
    import hetc.bundle.writer as bundle

    monkeypatch.setattr(bundle, "_libc", lambda: None)  # a C library without syncfs (nor renameat2)
    counts = _count_syncs(monkeypatch)
    write(voice, tmp_path / "b")
    folders = {os.path.dirname(name) for name in voice.files}
    assert counts["syncfs"] == 0 and counts["fsync"] >= len(voice.files) + 1 + len(folders) + 1
    assert verified(tmp_path / "b") == voice.files


def test_a_failed_sync_is_exit_2_naming_the_bundle_and_keeps_the_earlier_one(tmp_path, voice, monkeypatch):
    import ctypes
    import errno
    import types

    import hetc.bundle.writer as bundle

    out = tmp_path / "b"
    write_bundle(out, {"small.txt": b"earlier"})
    before = snapshot(out)

    def syncfs(fd):  # a write-back error found at flush time
        ctypes.set_errno(errno.EIO)
        return -1

    monkeypatch.setattr(bundle, "_libc", lambda: types.SimpleNamespace(syncfs=syncfs))
    with pytest.raises(HetcError) as caught:
        write(voice, out)
    assert caught.value.exit_code == 2 and os.strerror(errno.EIO) in str(caught.value)
    assert caught.value.diagnostics[0].loc.file == str(out)
    assert snapshot(out) == before and leftovers(tmp_path) == []


def test_an_output_under_a_file_is_exit_2(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = run(["compile", VOICE, "-o", tmp_path / "file" / "b", "-q"], capsys)
    assert code == 2 and "a file is in the way" in err and f"{tmp_path / 'file'}: error" in err


def test_a_failed_max_cost_gate_leaves_the_earlier_bundle(tmp_path, voice, capsys):
    out = tmp_path / "b"
    write_bundle(out, {"small.txt": b"earlier"})
    before = snapshot(out)
    code, _, err = run(["compile", VOICE, "-o", out, "-q", "--max-cost", "0.01"], capsys)
    assert code == 4, err
    assert snapshot(out) == before and leftovers(tmp_path) == []


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_gates_reject_nan_and_infinity(value, tmp_path, capsys):
    code, _, err = run(["compile", VOICE, "-o", tmp_path / "b", "-q", "--max-cost", value], capsys)
    assert code == 2 and "--max-cost" in err
    assert not (tmp_path / "b").exists()
    plan = ROOT / "tests" / "data" / "plans"
    a = sorted(plan.glob("*.json"))[0]
    for option in ("--max-regression", "--max-latency-regression"):
        code, _, err = run(["diff", a, a, option, value], capsys)
        assert code == 2 and option in err


# ------------------------------------------------------------------------------ other writers


def test_sweep_and_deploy_refuse_a_users_folder(tmp_path, voice, capsys):
    folder = _users_folder(tmp_path)
    before = snapshot(folder)
    code, _, err = run(["sweep", VOICE, "--over", "requests_per_s=1,2", "-o", folder, "-q"], capsys)
    assert code == 2, err
    bundle = tmp_path / "bundle"
    write(voice, bundle)
    code, _, err = run(["deploy", bundle, "--target", "kubernetes", "-o", folder], capsys)
    assert code == 2, err
    code, _, err = run(["deploy", bundle, "--target", "kubernetes", "-o", "-"], capsys)
    assert code == 2, err
    assert snapshot(folder) == before and leftovers(tmp_path) == []


def test_deploy_output_is_replaced_whole_with_a_manifest_kubectl_ignores(tmp_path, voice, capsys):
    bundle, out = tmp_path / "bundle", tmp_path / "k8s"
    write(voice, bundle)
    for target in ("kubernetes", "ray-serve", "kubernetes"):  # each replaces the previous output
        code, _, err = run(["deploy", bundle, "--target", target, "-o", out], capsys)
        assert code == 0, err
    names = sorted(p.name for p in out.iterdir())
    assert ".hetc-manifest" in names and not any(n.endswith(".json") for n in names)
    assert "serve.yaml" not in names  # the ray-serve output was replaced, not merged
    code, _, err = run(["deploy", bundle, "--target", "kubernetes", "-o", bundle], capsys)
    assert code == 2 and "input" in err  # the output would delete the bundle it reads


def test_opt_output_file_is_written_atomically_and_dash_is_stdout(tmp_path, voice, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ir = tmp_path / "in.mlir"
    ir.write_bytes(voice.files["ir/final.generic.mlir"])
    code, out, err = run(["opt", ir, "-o", "-"], capsys)
    assert code == 0 and "agent" in out and not (tmp_path / "-").exists()
    code, _, err = run(["opt", ir, "-o", tmp_path], capsys)
    assert code == 2, err
    code, _, err = run(["opt", ir, "-o", ir], capsys)  # in place
    assert code == 0 and ir.read_text().startswith("builtin.module") and leftovers(tmp_path) == []


# ------------------------------------------------------------------------------ agent files


def _spec_including(tmp_path: Path, target: str) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text("hetc: 1\nname: inc\ntraffic: {requests_per_s: 1}\nnodes:\n"
                    "  q: {kind: input, produces: text, tokens: 16}\n"
                    f"  sub: {{kind: agent, file: '{target}'}}\n"
                    "  a: {kind: output}\nedges:\n  - q -> sub -> a\n")
    return spec


def _validate(spec: Path) -> subprocess.CompletedProcess:
    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_BYTES, CHILD_MEMORY_BYTES))

    return subprocess.run([sys.executable, "-m", "hetc.cli", "validate", str(spec)], capture_output=True, text=True,
                          timeout=60, preexec_fn=limit_memory)


def test_an_agent_file_that_is_not_a_hetc_file_is_not_quoted(tmp_path):
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:s3cret-value:/root:/bin/bash\nhetc:x:1001:1001::/home/hetc:/bin/sh\n")
    done = _validate(_spec_including(tmp_path, str(secret)))
    assert done.returncode == 2, done.stderr
    assert "s3cret" not in done.stderr and "root:x" not in done.stderr
    assert "not a hetc agent file" in done.stderr


@pytest.mark.parametrize("target", ["fifo", "/dev/zero", "/dev/urandom", "dir"])
def test_an_agent_file_that_is_not_a_regular_file_is_refused_without_reading(target, tmp_path):
    if target == "fifo":
        target = str(tmp_path / "fifo")
        os.mkfifo(target)
    elif target == "dir":
        target = str(tmp_path)
    done = _validate(_spec_including(tmp_path, target))
    assert done.returncode == 2, done.stderr
    assert "cannot read agent file" in done.stderr


def test_an_oversized_agent_file_is_refused_by_its_size(tmp_path):
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:
        fh.write(b"hetc: 1\n")
        fh.truncate(64 << 20)  # sparse: 64 MiB on paper
    done = _validate(_spec_including(tmp_path, str(big)))
    assert done.returncode == 2 and "bytes" in done.stderr


# ------------------------------------------------------------------------------ determinism


def test_the_bundle_does_not_depend_on_the_working_directory_or_the_typed_path(tmp_path, capsys, monkeypatch):
    bundles = []
    for cwd, spec in ((ROOT, "examples/supervisor.yaml"), (tmp_path, str(SUPERVISOR)),
                      (ROOT / "examples" / "agents", "../supervisor.yaml")):
        monkeypatch.chdir(cwd)
        out = tmp_path / f"b{len(bundles)}"
        code, _, err = run(["compile", spec, "-o", out, "-q"], capsys)
        assert code == 0, err
        bundles.append(verified(out))
    assert bundles[0] == bundles[1] == bundles[2]
    assert b'loc("supervisor.yaml"' in bundles[0]["ir/final.generic.mlir"]
    assert b'loc("agents/researcher.yaml"' in bundles[0]["ir/final.generic.mlir"]


def test_errors_still_point_at_the_spec_as_typed(tmp_path, capsys, monkeypatch):
    (tmp_path / "agents").mkdir()
    for agent in (ROOT / "examples" / "agents").iterdir():
        (tmp_path / "agents" / agent.name).write_bytes(agent.read_bytes())
    spec = tmp_path / "sup.yaml"
    spec.write_text(SUPERVISOR.read_text().replace("tbt_ms: 25", "tbt_ms: 1"))
    monkeypatch.chdir(tmp_path / "agents")
    code, _, err = run(["compile", "../sup.yaml", "-o", tmp_path / "b", "-q"], capsys)
    assert code == 3
    assert "../sup.yaml:" in err and "../agents/researcher.yaml:" in err


def test_a_name_with_glob_characters_leaves_other_writers_alone(tmp_path):
    other_tmp = tmp_path / ".b1.tmp-inprogress"  # another bundle's temporary folder, matched by the glob b[1]
    other_tmp.mkdir()
    write_bundle(tmp_path / "b[1]", {"x.txt": b"x"})
    assert other_tmp.is_dir() and verified(tmp_path / "b[1]") == {"x.txt": b"x"}


def test_calibrate_output_is_written_atomically_and_a_disk_error_is_exit_2(tmp_path, capsys):
    measurements = tmp_path / "m.yaml"
    measurements.write_text(
        "records:\n  - {id: a, model: llama-3-8b, device: h100, precision: fp16, tp: 1, batch: 1, input_tokens: 128,\n"
        "     output_tokens: 64, metric: tbt_ms, value: 12.0, source: 'https://example.org/a'}\n")
    (tmp_path / "file").write_text("x")
    code, _, err = run(["calibrate", measurements, "-o", tmp_path / "file" / "overlay.yaml"], capsys)
    assert code == 2 and "a file is in the way" in err and "internal error" not in err
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("old\n")
    code, _, err = run(["calibrate", measurements, "-o", overlay], capsys)
    assert code == 0, err
    assert overlay.read_text().startswith("# hwdb overlay") and leftovers(tmp_path) == []


@pytest.mark.parametrize("command", [["simulate"], ["diff", "PLAN"], ["deploy", "--target", "ray-serve", "-o", "OUT"]])
def test_commands_reading_a_plan_refuse_a_fifo_or_device_without_waiting(command, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for source in (fifo, Path("/dev/zero")):
        args = [str(source) if a == "PLAN" else str(tmp_path / "out") if a == "OUT" else a for a in command]
        args.insert(1, str(source))
        done = subprocess.run([sys.executable, "-m", "hetc.cli", *args], capture_output=True, text=True, timeout=60,
                              preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_BYTES,) * 2))
        assert done.returncode == 2 and "not a regular file" in done.stderr, done.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_soft_sla_must_be_a_finite_non_negative_number(value, tmp_path, capsys):
    for command in (["compile", VOICE, "-o", tmp_path / "b", "-q"],
                    ["sweep", VOICE, "--over", "requests_per_s=1,2", "-q"]):
        code, _, err = run([*command, "--soft-sla", value], capsys)
        assert code == 2 and "--soft-sla" in err, err

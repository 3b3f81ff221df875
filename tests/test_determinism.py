"""The same spec compiled twice, in fresh interpreters with different hash seeds, time zones and locales,
gives a byte-identical bundle (DESIGN.md "The bundle and the run plan").

Each compile runs `python -m hetc.cli compile` in a subprocess, because PYTHONHASHSEED only takes effect at
interpreter start: set and dict-of-str iteration orders then differ between the two runs, so any output
that depends on them (or on the clock, the time zone or the locale) shows up as a differing file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# supervisor: nested agents (inline and from a file), a loop, cpu + cuda + gaudi code; voice-agent: the paper's.
EXAMPLES = ["supervisor", "voice-agent"]
ENVIRONMENTS = [
    {"PYTHONHASHSEED": "1", "TZ": "UTC", "LC_ALL": "C"},
    {"PYTHONHASHSEED": "4242", "TZ": "Asia/Kolkata", "LC_ALL": "C.UTF-8"},
]


def compile_in_subprocess(spec: Path, out: Path, env_changes: dict[str, str]) -> dict[str, bytes]:
    env = dict(os.environ, **env_changes)
    env.pop("HETC_DEBUG", None)
    done = subprocess.run([sys.executable, "-m", "hetc.cli", "compile", str(spec), "-o", str(out), "-q",
                           "--dump-ir=all"],  # every stage's IR in the bundle, so it is checked too
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def verify_manifest(files: dict[str, bytes]) -> dict[str, str]:
    """The manifest lists exactly the other files, with their true sha256; returns path -> sha256."""
    manifest = json.loads(files["manifest.json"])
    listed = {f["path"]: f["sha256"] for f in manifest["files"]}
    assert set(listed) == set(files) - {"manifest.json"}
    for path, digest in listed.items():
        assert hashlib.sha256(files[path]).hexdigest() == digest, path
    return listed


@pytest.mark.parametrize("example", EXAMPLES)
def test_bundle_is_byte_identical_across_hash_seeds(example, tmp_path):
    spec = ROOT / "examples" / f"{example}.yaml"
    out = tmp_path / "bundle"  # the same output path both times: the bundle must not depend on when it was made
    first = compile_in_subprocess(spec, out, ENVIRONMENTS[0])
    second = compile_in_subprocess(spec, out, ENVIRONMENTS[1])
    first_hashes, second_hashes = verify_manifest(first), verify_manifest(second)
    assert len(first_hashes) > 10
    differing = sorted(p for p in first_hashes.keys() | second_hashes.keys()
                       if first_hashes.get(p) != second_hashes.get(p))
    assert not differing, f"files that differ between the two compiles: {differing}"
    assert first == second

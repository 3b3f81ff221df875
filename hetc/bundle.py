"""Writing the deployment bundle: all files or none, never a damaged earlier bundle.

Files are written into a temporary sibling directory, synced, and then swapped with the target in one
atomic `renameat2(RENAME_EXCHANGE)` (Linux); where the kernel lacks it, the old bundle is renamed away
first and only removed once the new one is in place. manifest.json lists every file with its sha256.
Paths inside the bundle are derived by hetc, checked to stay inside it, and written in sorted order.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from hetc.errors import HetcError, Loc

MANIFEST = "manifest.json"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def to_json(data) -> bytes:
    """Deterministic JSON: sorted keys, fixed separators, trailing newline."""
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True, allow_nan=False) + "\n").encode()


def check_relpath(path: str) -> str:
    p = PurePosixPath(path)
    if p.is_absolute() or not p.parts or any(part in ("", ".", "..") for part in p.parts) or "\\" in path:
        raise ValueError(f"bundle path escapes the bundle: {path!r}")
    return str(p)


def write_text_files(out_dir: str | Path, files: dict[str, str]) -> list[Path]:
    """Write rendered files (exporters' output) into out_dir, created if needed; the paths, in order."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        path = out / check_relpath(name)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def manifest(files: dict[str, bytes]) -> dict:
    return {
        "schema_version": 1,
        "files": [{"path": path, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                  for path, data in sorted(files.items())],
    }


def _exchange(a: Path, b: Path) -> bool:
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def write_bundle(out_dir: str | Path, files: dict[str, bytes]) -> dict:
    """Atomically replace out_dir with a directory holding `files` plus manifest.json; returns the manifest."""
    out = Path(out_dir)
    files = {check_relpath(p): data for p, data in files.items()}
    if MANIFEST in files:
        raise ValueError("manifest.json is written by write_bundle")
    if out.exists() and not out.is_dir():
        raise HetcError("output path exists and is not a directory", Loc(str(out)))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(out)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise HetcError(f"cannot create the bundle directory: {exc.strerror}", Loc(str(out))) from None
    try:
        man = manifest(files)
        for path, data in sorted({**files, MANIFEST: to_json(man)}.items()):
            target = tmp / path
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        _sync_dir(tmp)
        if out.exists():
            if _exchange(tmp, out):
                shutil.rmtree(tmp)  # now holds the previous bundle
            else:
                _swap_by_renames(tmp, out)
        else:
            os.rename(tmp, out)
        _sync_dir(out.parent)
        return man
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_by_renames(tmp: Path, out: Path) -> None:
    """Where renameat2 cannot exchange: two renames. If the second fails the previous bundle goes back; if the
    process dies between them, the next compile puts it back (_remove_leftovers)."""
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    old.rmdir()
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old)


def _remove_leftovers(out: Path) -> None:
    """Clean up after a compile killed mid-way: drop its temporary directory; if it died between the two
    renames of the fallback swap, put the previous bundle back first."""
    olds = sorted(out.parent.glob(f".{out.name}.old-*"))
    if olds and not out.exists():
        os.rename(olds.pop(), out)
    for stale in [*olds, *out.parent.glob(f".{out.name}.tmp-*")]:
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""Writing an output directory (a bundle): all files or none, never a damaged earlier bundle, never a file
hetc did not write.

Rules (docs/plan.md "Output directories"):
- The target is replaced as a whole, so it must be absent, an empty directory, or an earlier output of hetc:
  a directory whose manifest lists every file in it. Anything else is refused (exit 2) and left untouched,
  as are `-`, `/`, the home directory, the current directory and its ancestors, and a directory holding an
  input of the command. A symbolic link is followed: the directory it points to is replaced, the link kept.
- Files are written into a temporary sibling directory, synced at once (syncfs), and swapped with the target in one atomic
  `renameat2(RENAME_EXCHANGE)` (Linux); where the kernel lacks it, the old bundle is renamed away first and
  only removed once the new one is in place.
- Writers of one target take turns: each holds an flock on `.NAME.lock` beside the target from before it
  creates its temporary directory until the swap is done, so after any interleaving the target is one
  writer's complete bundle, and a temporary directory found while holding the lock is a dead writer's.
- An OSError (disk full, file too large, read-only, permission) is the user's disk: HetcError, exit 2,
  naming the path; the earlier bundle stays.
manifest.json lists every file with its sha256. Paths inside the bundle are derived by hetc, checked to stay
inside it, and written in sorted order.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import functools
import glob
import hashlib
import json
import os
import secrets
import shutil
import stat
from contextlib import contextmanager, suppress
from pathlib import Path, PurePosixPath

from hetc.errors import HetcError, Loc
from hetc.json_text import to_json
from hetc.userfiles import UnreadableFile, read_regular_file

MANIFEST = "manifest.json"
# Deploy folders hold manifests for `kubectl apply -f DIR`, which reads every .json/.yaml file in DIR: their
# manifest is a hidden file without an extension.
HIDDEN_MANIFEST = ".hetc-manifest"
MANIFEST_NAMES = (MANIFEST, HIDDEN_MANIFEST)
MAX_MANIFEST_BYTES = 16 << 20  # a bundle of thousands of files lists them in about 1 MiB
FOREIGN_SHOWN = 3  # files hetc did not write named in the refusal
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def check_relpath(path: str) -> str:
    p = PurePosixPath(path)
    if p.is_absolute() or not p.parts or any(part in ("", ".", "..") for part in p.parts) or "\\" in path:
        raise ValueError(f"bundle path escapes the bundle: {path!r}")
    return str(p)


def manifest(files: dict[str, bytes]) -> dict:
    return {
        "schema_version": 1,
        "files": [{"path": path, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                  for path, data in sorted(files.items())],
    }


# ------------------------------------------------------------------------------ where a bundle may go


def check_output(out_dir: str | Path, inputs: tuple[str | Path, ...] = ()) -> Path:
    """The real directory `out_dir` names, after checking hetc may replace it (run before a long compile,
    and again by write_bundle under the lock). `inputs` are files the command reads: never inside it."""
    text = os.fspath(out_dir)
    loc = Loc(text)
    if text == "-":
        raise HetcError("a bundle is a directory and cannot go to standard output; name a directory "
                        "(write ./- for a directory called '-')", loc)
    if not text:
        raise HetcError("the output directory name is empty", loc)
    raw = Path(text)
    if raw.is_symlink() and not raw.exists():
        raise HetcError(f"the output is a symbolic link to a missing path ({os.readlink(raw)}); "
                        "create its target or remove the link", loc)
    out = Path(os.path.realpath(raw))
    try:
        cwd = Path(os.path.realpath(os.getcwd()))
    except OSError:  # the working directory was removed: the output cannot contain it
        cwd = Path("/nonexistent/cwd")
    if out == Path(out.anchor) or out == _home():
        raise HetcError(f"refusing to replace {out}: name a directory of its own, e.g. {Path(text) / 'bundle'}", loc)
    if out == cwd or out in cwd.parents:
        where = "the current directory" if out == cwd else "a parent of the current directory"
        raise HetcError(f"the output directory is {where}; hetc replaces the output directory as a whole: "
                        "name a directory of its own, e.g. -o bundle", loc)
    for path in inputs:
        real = Path(os.path.realpath(path))
        if real == out or out in real.parents:
            raise HetcError(f"the output directory holds an input of this command ({path}); "
                            "choose another directory", loc)
    if out.exists() or out.is_symlink():
        try:
            _check_replaceable(out, loc)
        except HetcError:
            # another hetc writer may be swapping its bundle in between our listing and reading the
            # manifest: judge again while no writer can swap
            with _locked(out, text):
                if out.exists() or out.is_symlink():
                    _check_replaceable(out, loc)
    return out


def _home() -> Path | None:
    try:
        return Path(os.path.realpath(Path.home()))
    except (RuntimeError, KeyError):  # no HOME and no password entry
        return None


def _check_replaceable(out: Path, loc: Loc) -> None:
    """Refuse unless `out` is an empty directory or holds only files a hetc manifest in it lists."""
    if not out.is_dir():
        raise HetcError("the output path exists and is not a directory", loc)
    try:
        names = sorted(os.listdir(out))
    except OSError as exc:
        raise HetcError(f"cannot read the output directory: {exc.strerror}", loc) from None
    if not names:
        return
    listed = _manifest_paths(out, names)
    if listed is None:
        raise HetcError(f"the output directory is not empty and is not a hetc bundle (no {MANIFEST}): it holds "
                        f"{_some(names)}; hetc replaces only an empty directory or its own output. Choose a new "
                        "directory, or move these files away", loc)
    foreign = _foreign(out, listed)
    if foreign:
        raise HetcError(f"the output directory holds files hetc did not write: {_some(foreign)}; hetc replaces "
                        "only its own output. Move them away or choose another directory", loc)


def _some(names: list[str]) -> str:
    return ", ".join(names[:FOREIGN_SHOWN]) + (" and more" if len(names) > FOREIGN_SHOWN else "")


def _manifest_paths(out: Path, names: list[str]) -> set[str] | None:
    """The paths hetc's manifest in `out` lists, itself included; None if there is no valid manifest."""
    for name in MANIFEST_NAMES:
        if name not in names:
            continue
        try:
            data = json.loads(read_regular_file(out / name, MAX_MANIFEST_BYTES, "manifests"))
            if data.get("schema_version") != 1 or not isinstance(data.get("files"), list):
                continue
            return {name, *(check_relpath(entry["path"]) for entry in data["files"])}
        except (UnreadableFile, ValueError, TypeError, KeyError, AttributeError, RecursionError):
            continue
    return None


def _foreign(out: Path, listed: set[str]) -> list[str]:
    """Entries under `out` that the manifest does not account for (a directory is accounted for when it
    holds a listed file); symbolic links, devices and FIFOs are never hetc's. Stops after a few."""
    dirs = {str(parent) for path in listed for parent in PurePosixPath(path).parents if str(parent) != "."}
    found: list[str] = []
    pending = [""]
    while pending and len(found) <= FOREIGN_SHOWN:
        rel = pending.pop()
        try:
            entries = sorted(os.scandir(out / rel) if rel else os.scandir(out), key=lambda e: e.name)
        except OSError:
            found.append(rel + "/")
            continue
        for entry in entries:
            path = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False) and path in dirs:
                pending.append(path)
            elif not (entry.is_file(follow_symlinks=False) and path in listed):
                found.append(path + ("/" if entry.is_dir(follow_symlinks=False) else ""))
    return found


# ------------------------------------------------------------------------------------- writing


def write_bundle(out_dir: str | Path, files: dict[str, bytes], manifest_name: str = MANIFEST) -> dict:
    """Atomically replace out_dir with a directory holding `files` plus the manifest; returns the manifest."""
    files = {check_relpath(p): data for p, data in files.items()}
    if manifest_name in files:
        raise ValueError(f"{manifest_name} is written by write_bundle")
    man = manifest(files)
    files[manifest_name] = to_json(man)
    out = check_output(out_dir)
    shown = os.fspath(out_dir)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _disk_error(exc, shown, Path(exc.filename or out.parent)) from None
    with _locked(out, shown):
        _check_again(out, shown)
        _remove_leftovers(out, shown)
        tmp = _temp_dir(out, ".tmp-", shown)
        try:
            for path, data in sorted(files.items()):
                _write_file(tmp / path, data, sync=False)
            _sync_tree(tmp)  # every file and folder durable before the swap makes them the bundle
            if out.exists():
                os.chmod(tmp, stat.S_IMODE(out.stat().st_mode))  # keep the mode the user gave the directory
                if _exchange(tmp, out):
                    shutil.rmtree(tmp)  # now holds the previous bundle
                else:
                    _swap_by_renames(tmp, out)
            else:
                os.rename(tmp, out)
            _sync_dir(out.parent)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise _disk_error(exc, shown, _shown_path(exc, tmp, shown)) from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return man


def write_text_files(out_dir: str | Path, files: dict[str, str]) -> list[Path]:
    """Write rendered files (exporters' output) as an output directory with a hidden manifest (kubectl
    reads every .json and .yaml file of a folder); the paths, in order, as the user named the folder."""
    write_bundle(out_dir, {name: text.encode() for name, text in files.items()}, HIDDEN_MANIFEST)
    return [Path(out_dir) / check_relpath(name) for name in files]


def _write_file(path: Path, data: bytes, sync: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "wb") as fh:
            fh.write(data)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
    except OSError as exc:
        if exc.filename is None:  # write() and fsync() errors (disk full, file too large) name no file
            exc.filename = str(path)
        raise


def _check_again(out: Path, shown: str) -> None:
    """Under the lock: another writer may have created the target since check_output."""
    if out.exists() or out.is_symlink():
        _check_replaceable(out, Loc(shown))


def _disk_error(exc: OSError, shown: str, path: Path | str) -> HetcError:
    reason = exc.strerror or str(exc)
    if exc.errno == errno.EEXIST:
        reason = "a file is in the way of a folder"
    kept = f"; {shown} keeps its previous contents" if os.path.isdir(shown) else ""
    return HetcError(f"cannot write: {reason}{kept}", Loc(str(path)))


def _shown_path(exc: OSError, tmp: Path, shown: str) -> str:
    """The failing path as the user would name it: inside the bundle rather than its temporary twin."""
    name = exc.filename if isinstance(exc.filename, str) else ""
    if name == str(tmp):
        return shown
    if name.startswith(str(tmp) + os.sep):
        return os.path.join(shown, os.path.relpath(name, tmp))
    return name or shown


@contextmanager
def _locked(out: Path, shown: str):
    """An exclusive flock on `.NAME.lock` beside out, removed on release. A writer that waited on a lock file
    since removed (its inode no longer at the path) opens the new one and waits again."""
    lock = out.parent / f".{out.name}.lock"
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise _disk_error(exc, shown, lock) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                now = os.stat(lock, follow_symlinks=False)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            break
        os.close(fd)
    try:
        yield
    finally:
        try:
            os.unlink(lock)
        finally:
            os.close(fd)


def _temp_dir(out: Path, kind: str, shown: str) -> Path:
    """A new sibling directory `.NAME<kind><random>`, mode 0777 less the umask (mkdtemp would force 0700)."""
    path = out.parent / f".{out.name}{kind}{secrets.token_hex(6)}"
    try:
        os.mkdir(path, 0o777)
    except OSError as exc:
        raise _disk_error(exc, shown, path) from None
    return path


@functools.cache
def _libc():
    """The C library (for renameat2 and syncfs), or None. Looked up once: find_library runs ldconfig."""
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name, use_errno=True) if name else None


def _exchange(a: Path, b: Path) -> bool:
    libc = _libc()
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    return rc == 0


def _swap_by_renames(tmp: Path, out: Path) -> None:
    """Where renameat2 cannot exchange: two renames. If the second fails the previous bundle goes back; if the
    process dies between them, the next compile puts it back (_remove_leftovers)."""
    old = out.parent / f".{out.name}.old-{secrets.token_hex(6)}"
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old)


def _remove_leftovers(out: Path, shown: str) -> None:
    """Under the lock, clean up after a writer killed mid-way (every live writer holds the lock while its
    temporary directory exists): drop its temporary directory; if it died between the two renames of the
    fallback swap, put the previous bundle back first."""
    name = glob.escape(out.name)  # `-o 'b[1]'` must not match another bundle's `.b1.tmp-*`
    olds = sorted(out.parent.glob(f".{name}.old-*"))
    try:
        if olds and not out.exists() and not out.is_symlink():
            os.rename(olds.pop(), out)
    except OSError as exc:
        raise _disk_error(exc, shown, out) from None
    for stale in [*olds, *out.parent.glob(f".{name}.tmp-*")]:
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)


def _sync_tree(root: Path) -> None:
    """Make every file and folder written under `root` durable: one syncfs(2) of its file system (Linux), which
    costs one flush however many files a bundle has (an fsync per file took seconds on 10,000-node bundles);
    elsewhere an fsync per file and folder."""
    fd = os.open(root, os.O_RDONLY)
    try:
        if _syncfs(fd, root):
            return
    finally:
        os.close(fd)
    for folder, _, names in sorted(os.walk(root)):
        for name in sorted(names):
            path = os.path.join(folder, name)
            file_fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(file_fd)
            finally:
                os.close(file_fd)
        _sync_dir(Path(folder))


def _syncfs(fd: int, shown: Path) -> bool:
    """syncfs(2) on the file system of `fd`; False where the C library has none. Since Linux 5.8 it reports a
    write-back error (a full disk found at flush time) as fsync does."""
    syncfs = getattr(_libc(), "syncfs", None)
    if syncfs is None:
        return False
    if syncfs(fd) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(shown))
    return True


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: str | Path, data: bytes) -> None:
    """Replace one file atomically (a temporary sibling, synced, renamed over it); exit 2 on a disk error."""
    if os.fspath(path) == "-":
        raise HetcError("standard output is not accepted here; name a file (./- for a file called '-')", Loc("-"))
    target = Path(os.path.realpath(path))  # through a symbolic link: the link stays, its target is replaced
    if target.is_dir():
        raise HetcError("the output path is a directory; name a file", Loc(os.fspath(path)))
    if target.exists() and not target.is_file():  # renaming over a device or FIFO would replace it
        raise HetcError("the output path is not a regular file (a device, FIFO or socket); name a file",
                        Loc(os.fspath(path)))
    tmp = target.parent / f".{target.name}.tmp-{secrets.token_hex(6)}"
    try:
        _write_file(tmp, data)
        os.rename(tmp, target)
    except OSError as exc:
        with suppress(OSError):
            tmp.unlink()
        raise _disk_error(exc, os.fspath(path), exc.filename if exc.filename != str(tmp) else path) from None

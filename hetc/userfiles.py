"""Reading a file a user named: only a regular file, only up to a size limit, never blocking.

`open()` of a FIFO blocks until a writer appears and `/dev/zero` never ends, so the path is checked with
stat() before it is opened (devices and FIFOs are never opened), opened with O_NONBLOCK (should it have
become a FIFO since, the open does not block), checked again with fstat() on the opened descriptor (what
is read is what was checked), and read up to the limit and one byte more.
"""

from __future__ import annotations

import os
import stat


class UnreadableFile(Exception):
    """Why a file cannot be read, in words for an error message (never the file's content)."""


def read_regular_file(path: str | os.PathLike, limit: int, what: str = "files") -> bytes:
    """The bytes of the regular file at path; UnreadableFile if it is anything else or over limit bytes."""
    try:
        _check(os.stat(path), limit, what)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        raise UnreadableFile(exc.strerror or str(exc)) from None
    try:
        _check(os.fstat(fd), limit, what)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise UnreadableFile(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    if size > limit:  # it grew after the check
        raise UnreadableFile(f"the file is larger than {limit} bytes; hetc reads {what} of at most {limit} bytes")
    return b"".join(chunks)


def _check(info: os.stat_result, limit: int, what: str) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise UnreadableFile("it is a directory, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableFile("it is not a regular file (a device, FIFO or socket)")
    if info.st_size > limit:
        raise UnreadableFile(f"the file is {info.st_size} bytes; hetc reads {what} of at most {limit} bytes")


STDIN = "-"  # as a file name: standard input (`hetc validate -`, `hetc opt -`)
STDIN_NAME = "<stdin>"  # how errors name it


def read_input(path: str | os.PathLike, limit: int, what: str = "files") -> tuple[str, bytes]:
    """(the name errors show, the bytes) of a file the user named, or of standard input for `-`; both
    bounded by `limit`. UnreadableFile says why not."""
    if str(path) != STDIN:
        return str(path), read_regular_file(path, limit, what)
    import sys

    data = sys.stdin.buffer.read(limit + 1)
    if len(data) > limit:
        raise UnreadableFile(f"standard input is larger than {limit} bytes; hetc reads {what} of at most {limit} bytes")
    return STDIN_NAME, data

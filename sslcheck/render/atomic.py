"""Write a file all at once: to a temporary name beside it, then rename (never half a file).

A symlink is written through (its target is replaced, the link kept). A stream is written in
place, since renaming over it would replace it with a regular file: `-o -`, `/dev/stdout`,
`/dev/stderr` and `/dev/fd/N` go to the process's own open descriptor (reopening one redirected
to a file, `>> log`, would truncate it), and a device or FIFO (`/dev/null`, a named pipe) is
opened and written.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import sys
import tempfile
from pathlib import Path
from typing import TextIO

from sslcheck.errors import UsageError

_DESCRIPTOR = re.compile(r"/(?:dev|proc/self)/fd/(\d+)")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _descriptor(path: str | Path) -> TextIO | int | None:
    """The open stream or descriptor that `path` names (`-` and /dev/stdout: sys.stdout,
    /dev/stderr: sys.stderr, /dev/fd/N: N), or None."""
    text = str(path)
    if text in ("-", "/dev/stdout"):
        return sys.stdout
    if text == "/dev/stderr":
        return sys.stderr
    match = _DESCRIPTOR.fullmatch(text)
    return int(match.group(1)) if match else None


def _is_stream(path: str | Path) -> bool:
    """Whether `path` exists (its symlinks followed) and is neither a regular file nor a folder."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def output_target(path: str | Path) -> Path | TextIO | int:
    """What `write_atomic(path, ...)` writes: an open descriptor, a stream, or the file (a
    symlink's target) checked as far as it can be before any work is done: a UsageError unless
    it names a file in an existing, writable folder."""
    if not str(path).strip():
        raise UsageError(f"{str(path)!r}: not a file name (empty)")
    fd = _descriptor(path)
    if fd is not None:
        return fd
    if _is_stream(path):
        return Path(path)
    try:
        os.stat(path)
    except OSError as err:  # a missing file is fine (written new); a loop would be replaced by one
        if err.errno == errno.ELOOP:
            raise UsageError(f"{path}: a symlink loop") from None
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise UsageError(f"{path}: not a file name (a folder)")
    folder = target.parent
    if not folder.is_dir():
        why = f"{folder} is not a folder" if folder.exists() else f"the folder {folder} does not exist"
        raise UsageError(f"{path}: {why}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{path}: cannot write in {folder} (permission denied)")
    return target


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write `data` to `path` atomically (same-folder temporary file + os.replace), or in place
    where `path` is a stream (module docstring)."""
    target = output_target(path)
    raw = data.encode() if isinstance(data, str) else data
    try:
        if isinstance(target, int):
            for stream in (sys.stdout, sys.stderr):  # what Python buffered goes first
                stream.flush()
            view = memoryview(raw)
            while view:
                view = view[os.write(target, view) :]
            return
        if not isinstance(target, Path):  # sys.stdout or sys.stderr, as this process holds it
            target.write(data if isinstance(data, str) else data.decode())
            target.flush()
            return
        if _is_stream(target):
            with open(target, "wb") as f:
                f.write(raw)
            return
    except BrokenPipeError:  # `-o - | head`: a closed pipe, as for any output (cli.app.closed_pipe_exit)
        raise
    except OSError as err:
        raise UsageError(f"{path}: cannot write ({err.strerror})") from None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as err:
        raise UsageError(f"{path}: cannot write in {target.parent} ({err.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, target)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise UsageError(f"{path}: cannot write ({err.strerror})") from None
        raise

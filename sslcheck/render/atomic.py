"""Write a file all at once: to a temporary name beside it, then rename (never half a file).

A symlink is written through (its target is replaced, the link kept); a device, FIFO or socket
(`-o /dev/null`, `-o /dev/stdout`, a named pipe) is written in place, since renaming over it would
replace it with a regular file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from sslcheck.errors import UsageError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _is_stream(path: Path) -> bool:
    """Whether `path` exists and is something other than a regular file or a folder."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def output_target(path: str | Path) -> Path:
    """The file that `write_atomic(path, ...)` writes (a symlink's target), checked as far as it
    can be before any work is done: a UsageError unless it names a file in an existing, writable
    folder (or an existing device or pipe)."""
    if not str(path).strip():
        raise UsageError(f"{str(path)!r}: not a file name (empty)")
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise UsageError(f"{path}: not a file name (a folder)")
    if _is_stream(target):
        return target
    folder = target.parent
    if not folder.is_dir():
        why = f"{folder} is not a folder" if folder.exists() else f"the folder {folder} does not exist"
        raise UsageError(f"{path}: {why}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{path}: cannot write in {folder} (permission denied)")
    return target


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write `data` to `path` atomically (same-folder temporary file + os.replace), or in place
    where `path` is a device or pipe."""
    target = output_target(path)
    raw = data.encode() if isinstance(data, str) else data
    if _is_stream(target):
        try:
            with open(target, "wb") as f:
                f.write(raw)
        except OSError as err:
            raise UsageError(f"{path}: cannot write ({err.strerror})") from None
        return
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

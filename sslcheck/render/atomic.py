"""Write a file all at once: to a temporary name beside it, then rename (never half a file)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sslcheck.errors import UsageError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write `data` to `path` atomically (same-folder temporary file + os.replace)."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not str(path).strip() or target.is_dir():
        raise UsageError(f"{str(path)!r}: not a file name (a folder or empty)")
    if not folder.is_dir():
        raise UsageError(f"{target}: the folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    except OSError as err:
        raise UsageError(f"{target}: cannot write in {folder} ({err.strerror})") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, target)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise UsageError(f"{target}: cannot write ({err.strerror})") from None
        raise

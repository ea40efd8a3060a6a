"""Write a file all at once: to a temporary name beside it, then rename (never half a file)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from sslcheck.errors import UsageError


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write `data` to `path` atomically (same-folder temporary file + os.replace)."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"{target}: the folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

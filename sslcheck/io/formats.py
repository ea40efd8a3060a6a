"""Which reader opens which file: the supported suffixes and the one-file dispatch."""

from __future__ import annotations

from pathlib import Path

from sslcheck.errors import InputError
from sslcheck.io.npy import NpySource
from sslcheck.io.npz import NpzSource
from sslcheck.io.safetensors import SafetensorsSource
from sslcheck.io.source import ArraySource, require_file
from sslcheck.io.torch_pt import PtSource

# suffix -> format name (the `ArraySource.format` of its reader)
SUFFIXES: dict[str, str] = {
    ".npy": "npy",
    ".npz": "npz",
    ".pt": "pt",
    ".pth": "pt",
    ".safetensors": "safetensors",
}
_READERS: dict[str, type[NpySource | NpzSource | PtSource | SafetensorsSource]] = {
    "npy": NpySource,
    "npz": NpzSource,
    "pt": PtSource,
    "safetensors": SafetensorsSource,
}


def format_of(path: Path) -> str | None:
    """The format a file's suffix names, or None for an unsupported suffix."""
    return SUFFIXES.get(path.suffix.lower())


def open_file(path: Path, key: str | None = None) -> ArraySource:
    """Open one file by its suffix; its content must be of that format."""
    fmt = format_of(path)
    if fmt is None:
        raise InputError(
            f"{path}: unknown file type {path.suffix or '(no suffix)'!r}; expected "
            f"{', '.join(SUFFIXES)}, a folder of shards or a glob pattern"
        )
    require_file(path)
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    return _READERS[fmt](path, key)

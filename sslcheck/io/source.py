"""An `ArraySource`: one validated [N, D] float array on disk, read sequentially in row chunks.

Every format reader (npy, npz, pt, safetensors, shard folders) produces one. The engine reads
both views in lockstep through `chunks`, so memory stays O(rows * D) whatever N is.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import DTypeLike

from sslcheck.errors import InputError

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def bfloat16_to_float32(raw: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Widen bfloat16 bits (stored as uint16) to float32: the bf16 bits are the f32's high half.

    With `out` (a float32 array of `raw`'s shape) the result is written there, allocating nothing.
    """
    if out is None:
        return (raw.astype(np.uint32) << 16).view(np.float32)
    bits = out.view(np.uint32)
    bits[...] = raw
    bits <<= 16
    return out


class ArraySource(ABC):
    """A [N, D] float array in a file, read as consecutive row chunks.

    Attributes: `path` (what the user named), `key` (the member / tensor name, or None),
    `n`, `d`, `dtype` (one of FLOAT_DTYPES, the dtype stored in the file), `format`
    (``npy``, ``npz``, ``pt``, ``safetensors``, ``shards``), `nbytes` (the data's size on disk).
    """

    path: str
    key: str | None
    n: int
    d: int
    dtype: str
    format: str
    nbytes: int

    @abstractmethod
    def chunks(self, rows: int, keep: int = 1) -> Iterator[np.ndarray]:
        """Yield consecutive C-contiguous [r, D] blocks covering all N rows, in order.

        Every block has exactly `rows` rows except the last (1 to `rows` rows): the engine's
        batches rely on it. Blocks are native-endian float16, float32 or float64 numpy
        arrays (bfloat16 arrives widened to float32: `block_dtype`).
        A block may be a view into a buffer that a later iteration overwrites: the last `keep`
        blocks yielded stay intact (`BufferRing`); copy what you keep longer.
        """

    @property
    def label(self) -> str:
        """`path` or `path[key]`, the name error messages use."""
        return f"{self.path}[{self.key}]" if self.key else self.path

    def notes(self) -> list[str]:
        """Remarks for `inspect` (e.g. a legacy .pt that had to be loaded whole)."""
        return []

    def where(self, row: int) -> str:
        """Row `row` (0-based) as an error message names it."""
        return f"row {row}"


def validate_shape(label: str, shape: tuple[int, ...], dtype: np.dtype | str) -> tuple[int, int, str]:
    """Check that an array is a usable [N, D] float embedding; return (N, D, dtype name)."""
    name = dtype if isinstance(dtype, str) else _dtype_name(dtype)
    if name not in FLOAT_DTYPES:
        raise InputError(f"{label}: dtype {name} is not supported; expected a float array ({', '.join(FLOAT_DTYPES)})")
    if len(shape) != 2:
        raise InputError(f"{label}: expected a 2-D [N, D] array, got {len(shape)}-D shape {tuple(shape)}")
    if not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in shape) or min(shape) < 0:
        raise InputError(f"{label}: malformed header: shape {tuple(shape)} is not two sizes >= 0")
    n, d = int(shape[0]), int(shape[1])
    if n == 0 or d == 0:
        raise InputError(f"{label}: the array is empty (shape {tuple(shape)})")
    return n, d, name


def _dtype_name(dtype: np.dtype) -> str:
    if dtype.kind == "O":
        return "object"
    if dtype.kind == "V" and dtype.itemsize == 2 and getattr(dtype, "name", "") == "bfloat16":
        return "bfloat16"
    return str(dtype.name) if dtype.fields is None else "structured"


def require_file(path: Path) -> None:
    """A clear error for a missing path or an empty file."""
    if not path.exists():
        if path.is_symlink():
            raise InputError(f"{path}: a symlink to nothing (its target is missing, or links loop)")
        raise InputError(f"{path}: no such file or folder")
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")


class KeyNotFound(InputError):
    """A key the file does not hold; `keys` lists the arrays it holds (empty: one unnamed array)."""

    def __init__(self, message: str, path: str, keys: Sequence[str]) -> None:
        super().__init__(message)
        self.path = path
        self.keys = list(keys)


def select_key(path: str, keys: Sequence[str], key: str | None) -> str:
    """Pick `key` from a container holding the arrays `keys` (its only one when `key` is None)."""
    if key is None:
        if len(keys) == 1:
            return keys[0]
        if not keys:
            raise InputError(f"{path}: holds no arrays")
        raise InputError(f"{path}: holds {len(keys)} arrays ({', '.join(keys)}); choose one with --key")
    if key not in keys:
        raise KeyNotFound(f"{path}: no array named {key!r}; it holds: {', '.join(keys) or 'nothing'}", path, keys)
    return key


def single_array_key(path: str, key: str | None, what: str) -> None:
    """A file holding one unnamed array accepts no key: say so (a `KeyNotFound` with no keys)."""
    if key is not None:
        raise KeyNotFound(f"{path}: {what} holds one array; --key {key!r} does not apply", path, [])


def block_dtype(name: str) -> np.dtype:
    """The dtype of the blocks `ArraySource.chunks` yields for a stored dtype name (one of
    FLOAT_DTYPES): bfloat16 arrives widened to float32, the others as stored."""
    return np.dtype(np.float32 if name == "bfloat16" else name)


class BufferRing:
    """`keep` arrays of one shape and dtype, handed out in turn (each allocated on first use):
    what was written into one stays intact while the next `keep - 1` are handed out, so a reader
    that reads each block into `next()` keeps its last `keep` blocks intact."""

    def __init__(self, keep: int, shape: tuple[int, ...], dtype: DTypeLike) -> None:
        if keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self._arrays: list[np.ndarray | None] = [None] * keep
        self._shape, self._dtype = shape, dtype
        self._turn = 0

    def next(self) -> np.ndarray:
        slot = self._turn % len(self._arrays)
        self._turn += 1
        array = self._arrays[slot]
        if array is None:
            array = self._arrays[slot] = np.empty(self._shape, dtype=self._dtype)
        return array


class ReadsInto(Protocol):
    def readinto(self, buffer: memoryview, /) -> int | None: ...


def as_bytes(block: np.ndarray) -> memoryview:
    """The bytes of a C-contiguous array, without a copy."""
    return memoryview(block).cast("B")  # type: ignore[arg-type]


def read_exact(f: ReadsInto, out: np.ndarray, label: str) -> None:
    """Fill the C-contiguous array `out` from `f`, looping over short reads; EOF: InputError."""
    view = as_bytes(out)
    got = 0
    while got < len(view):
        k = f.readinto(view[got:])
        if not k:
            raise InputError(f"{label}: the file ended early (truncated while reading)")
        got += k

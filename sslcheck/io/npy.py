"""`.npy` files: the header is parsed without unpickling and rows are read by offset.

Chunks come from `RawArray`: `readinto` into one reused buffer (C order) or a map per chunk
(Fortran order), never a long-lived memory map nor a whole `np.load`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from sslcheck.errors import InputError
from sslcheck.io.raw import RawArray
from sslcheck.io.source import ArraySource, single_array_key, validate_shape


def read_npy_header(
    f: BinaryIO, label: str, save_as: str = "the embeddings as a float array"
) -> tuple[tuple[int, ...], np.dtype, bool]:
    """Parse a .npy header (format 1, 2 or 3) from the file's current position; never unpickles.

    An object dtype (the data would be a pickle) is an InputError advising to save `save_as`.
    """
    try:
        version = np.lib.format.read_magic(f)
        reader = (
            np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        )  # 3.0 differs only in utf-8 field names
        shape, fortran, dtype = reader(f, max_header_size=100_000)
    except Exception as err:  # numpy raises ValueError / EOFError / SyntaxError on garbage
        raise InputError(f"{label}: not a valid .npy file ({err})") from None
    if dtype.hasobject:
        raise InputError(f"{label}: holds Python objects (a pickle); sslcheck never unpickles data. Save {save_as}")
    return tuple(shape), dtype, bool(fortran)


class NpySource(ArraySource):
    """A [N, D] array in a .npy file (C or Fortran order), read chunk by chunk at its offset."""

    format = "npy"

    def __init__(self, path: Path, key: str | None = None) -> None:
        self.path = str(path)
        self.key = None
        single_array_key(self.path, key, "a .npy file")
        with open(path, "rb") as f:
            shape, dtype, fortran = read_npy_header(f, self.path)
            offset = f.tell()
        self.n, self.d, self.dtype = validate_shape(self.path, shape, dtype)
        self._raw = RawArray(self.path, offset, dtype, self.n, self.d, fortran)
        self._raw.require_within(path.stat().st_size, self.path)
        self.nbytes = self._raw.nbytes

    def chunks(self, rows: int, keep: int = 1) -> Iterator[np.ndarray]:
        return self._raw.chunks(rows, self.label, keep)

"""`.npz` archives: each member `name.npy` is one array, read without unpickling, in chunks.

`np.load` ignores `mmap_mode` for .npz, so members are read here: a stored (uncompressed) member by
its byte offset in the archive, like a .npy file (`RawArray`, which checks the member's CRC-32 as
`zipfile` would); a compressed member streamed through `zipfile` in chunks into one reused buffer
(`zipfile` checks its CRC-32 at the end of the stream, read before the last chunk goes out). Only a
Fortran-order compressed member has to be decompressed whole (its rows are spread over the whole
stream); `notes` says so.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

from sslcheck.errors import InputError
from sslcheck.io.npy import read_npy_header
from sslcheck.io.raw import CHECK_PIECE, Checksum, RawArray, to_native
from sslcheck.io.source import ArraySource, BufferRing, read_exact, select_key, validate_shape

# What zipfile / zlib raise for a damaged, encrypted or exotic archive.
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    struct.error,
)

_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, (skipped fields), name and extra lengths


class NpzSource(ArraySource):
    """One member (`key`) of a .npz archive as a [N, D] source."""

    format = "npz"

    def __init__(self, path: Path, key: str | None = None) -> None:
        self.path = str(path)
        self.key = None
        try:
            with zipfile.ZipFile(path) as zf:
                names = [i.filename for i in zf.infolist() if i.filename.endswith(".npy")]
                members = {name.removesuffix(".npy"): name for name in names}
                if not members:
                    raise InputError(f"{self.path}: not an .npz archive (a zip file with no .npy members)")
                self.key = select_key(self.path, list(members), key)
                self._member = members[self.key]
                if Counter(names)[self._member] > 1:  # zipfile and np.load read one copy, unannounced
                    raise InputError(f"{self.label}: the archive holds {self._member} more than once")
                info = zf.getinfo(self._member)
                if info.flag_bits & 0x1:
                    raise InputError(f"{self.label}: the member is encrypted")
                with zf.open(info) as f:
                    shape, dtype, self._fortran = read_npy_header(f, self.label)  # type: ignore[arg-type]
                    self._header_len = f.tell()
        except ZIP_ERRORS as err:
            raise InputError(f"{self.label}: not a valid .npz archive ({err})") from None
        self.n, self.d, self.dtype = validate_shape(self.label, shape, dtype)
        self._np_dtype = dtype
        self.nbytes = self.n * self.d * dtype.itemsize
        if info.file_size < self._header_len + self.nbytes:
            raise InputError(
                f"{self.label}: the member is truncated: shape {shape} needs {self.nbytes} bytes "
                f"of data but only {max(info.file_size - self._header_len, 0)} bytes follow"
            )
        self._raw: RawArray | None = None
        if info.compress_type == zipfile.ZIP_STORED:
            start = _member_data_offset(path, info, self.label)
            whole = Checksum(start, start + info.file_size, info.CRC)
            offset = start + self._header_len
            self._raw = RawArray(self.path, offset, dtype, self.n, self.d, self._fortran, checksum=whole)
            self._raw.require_within(path.stat().st_size, self.label)

    def notes(self) -> list[str]:
        if self._raw is None and self._fortran:
            return ["Fortran-order array in a compressed .npz: decompressed whole into memory"]
        return []

    def chunks(self, rows: int, keep: int = 1) -> Iterator[np.ndarray]:
        if self._raw is not None:
            return self._raw.chunks(rows, self.label, keep)
        return self._stream(rows, keep)

    def _stream(self, rows: int, keep: int) -> Iterator[np.ndarray]:
        if rows < 1:
            raise ValueError(f"rows must be >= 1, got {rows}")
        try:
            with zipfile.ZipFile(self.path) as zf, zf.open(self._member) as f:
                f.read(self._header_len)
                if self._fortran:
                    # Column-major data: column j is the j-th run of N values.
                    whole = np.empty((self.d, self.n), dtype=self._np_dtype)
                    read_exact(f, whole, self.label)  # type: ignore[arg-type]
                    _read_to_the_end(f)
                    for start in range(0, self.n, rows):
                        yield to_native(np.ascontiguousarray(whole.T[start : start + rows]))
                    return
                ring = BufferRing(keep, (min(rows, self.n), self.d), self._np_dtype)
                for start in range(0, self.n, rows):
                    view = ring.next()[: min(rows, self.n - start)]
                    read_exact(f, view, self.label)  # type: ignore[arg-type]
                    if start + len(view) == self.n:  # before the last chunk goes out
                        _read_to_the_end(f)
                    yield to_native(view)
        except ZIP_ERRORS as err:
            raise InputError(f"{self.label}: the archive member is corrupt ({err})") from None


def _read_to_the_end(member: IO[bytes]) -> None:
    """Read what follows the array in a member: zipfile checks the CRC-32 once it has given out
    the member's last byte, and a member may hold bytes after the array."""
    while member.read(CHECK_PIECE):
        pass


def _member_data_offset(path: Path, info: zipfile.ZipInfo, label: str) -> int:
    """Where a member's bytes start in the archive: after its local header, name and extra field."""
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        head = f.read(_LOCAL_HEADER.size)
    if len(head) != _LOCAL_HEADER.size:
        raise InputError(f"{label}: not a valid .npz archive (truncated local header)")
    signature, name_len, extra_len = _LOCAL_HEADER.unpack(head)
    if signature != b"PK\x03\x04":
        raise InputError(f"{label}: not a valid .npz archive (bad local header)")
    return info.header_offset + _LOCAL_HEADER.size + name_len + extra_len

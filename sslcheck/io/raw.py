"""An [N, D] array stored raw at a byte offset of a file, read in row chunks.

A .npy file, a stored (uncompressed) .npz member and a .safetensors tensor all lay their data out
this way, so one reader serves them. C-order rows are read with `readinto` into one reused
buffer: a long-lived memory map would keep every page it touched resident, and a whole load
would hold the file in memory. Fortran-order rows are strided, so each chunk maps the file,
copies its rows and drops the map: no map outlives its chunk.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from sslcheck.errors import InputError
from sslcheck.io.source import BufferRing, as_bytes, bfloat16_to_float32, read_exact

CHECK_PIECE = 1 << 24  # bytes read at a time where a checksum needs bytes no chunk holds


@dataclass(frozen=True)
class Checksum:
    """The CRC-32 (zlib's) that bytes [start, stop) of the file must have: a zip member's."""

    start: int
    stop: int
    crc: int


@dataclass(frozen=True)
class RawArray:
    """`n` x `d` values of `dtype` (as stored: any byte order) at `offset` bytes into `path`.

    `bfloat16`: `dtype` is uint16 holding bfloat16 bits, widened to float32 on the way out.
    `checksum`: verified from the bytes as stored (an InputError if it differs): for C-order rows
    in the pass, before the last chunk is handed out (zlib's CRC-32 runs at ~3.5 GB/s here, ~1.2
    ms per 4 MiB chunk); for Fortran order by a sequential read before the first chunk.
    """

    path: str
    offset: int
    dtype: np.dtype
    n: int
    d: int
    fortran: bool = False
    bfloat16: bool = False
    checksum: Checksum | None = None

    @property
    def nbytes(self) -> int:
        return self.n * self.d * self.dtype.itemsize

    def require_within(self, size: int, label: str) -> None:
        """An InputError when the data would run past the `size` bytes that hold it."""
        if self.offset + self.nbytes > size:
            raise InputError(
                f"{label}: the file is truncated: shape ({self.n}, {self.d}) needs {self.nbytes} "
                f"bytes of data but only {max(size - self.offset, 0)} bytes follow the header"
            )

    def chunks(self, rows: int, label: str, keep: int = 1) -> Iterator[np.ndarray]:
        """Consecutive C-contiguous native-endian [rows, D] blocks (the last may be shorter), the
        last `keep` of them intact (`ArraySource.chunks`)."""
        if rows < 1:
            raise ValueError(f"rows must be >= 1, got {rows}")
        if self.fortran:
            if self.checksum is not None:
                with open(self.path, "rb", buffering=0) as f:
                    self._verify(f, self.checksum.start, self.checksum.stop, 0, label)
            yield from self._fortran_chunks(rows)
            return
        shape = (min(rows, self.n), self.d)
        # bfloat16 is read into one buffer and widened into the ring's; the rest is read in place
        ring = BufferRing(keep, shape, np.float32 if self.bfloat16 else self.dtype)
        raw = np.empty(shape, dtype=self.dtype) if self.bfloat16 else None
        with open(self.path, "rb", buffering=0) as f:
            crc = 0 if self.checksum is None else _crc_of(f, self.checksum.start, self.offset, 0, label)
            f.seek(self.offset)
            for start in range(0, self.n, rows):
                r = min(rows, self.n - start)
                out = ring.next()[:r]
                block = out if raw is None else raw[:r]
                read_exact(f, block, label)
                if self.checksum is not None:
                    crc = zlib.crc32(as_bytes(block), crc)  # as stored: before any byte swap
                    if start + r == self.n:  # a consumer may stop at the last chunk: check first
                        self._verify(f, self.offset + self.nbytes, self.checksum.stop, crc, label)
                yield self._widen(block, None if raw is None else out)

    def _verify(self, f: io.FileIO, start: int, stop: int, crc: int, label: str) -> None:
        """Finish the checksum with bytes [start, stop) and compare."""
        assert self.checksum is not None
        if _crc_of(f, start, stop, crc, label) != self.checksum.crc:
            raise InputError(f"{label}: the archive member is corrupt (its CRC-32 does not match its data)")

    def _fortran_chunks(self, rows: int) -> Iterator[np.ndarray]:
        for start in range(0, self.n, rows):
            mm = np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset, shape=(self.n, self.d), order="F")
            block = np.ascontiguousarray(mm[start : start + rows])
            del mm
            yield self._widen(block, None)

    def _widen(self, block: np.ndarray, out: np.ndarray | None) -> np.ndarray:
        if self.bfloat16:
            return bfloat16_to_float32(block, out)
        return to_native(block)


def _crc_of(f: io.FileIO, start: int, stop: int, crc: int, label: str) -> int:
    """`crc` continued over bytes [start, stop) of f."""
    f.seek(start)
    piece = np.empty(min(CHECK_PIECE, max(stop - start, 0)), dtype=np.uint8)
    for at in range(start, stop, CHECK_PIECE):
        view = piece[: min(CHECK_PIECE, stop - at)]
        read_exact(f, view, label)
        crc = zlib.crc32(as_bytes(view), crc)
    return crc


def to_native(block: np.ndarray) -> np.ndarray:
    """`block` in native byte order, swapped in place (torch refuses non-native arrays)."""
    if block.dtype.isnative:
        return block
    block.byteswap(inplace=True)
    return block.view(block.dtype.newbyteorder("="))

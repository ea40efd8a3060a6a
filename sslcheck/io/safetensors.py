"""`.safetensors` files, parsed here (no dependency on the `safetensors` package).

Layout (https://github.com/huggingface/safetensors#format): an 8-byte little-endian header
length, a JSON header `{name: {"dtype", "shape", "data_offsets": [begin, end]}}` (plus an
optional "__metadata__"), then the tensors' bytes, C order, little-endian, offsets counted from
the end of the header. Rows are read by offset with `RawArray`; BF16 is widened to float32.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from sslcheck.errors import InputError
from sslcheck.io.raw import RawArray
from sslcheck.io.source import ArraySource, select_key, validate_shape

# safetensors dtype -> (our dtype name, numpy dtype of the stored values)
DTYPES: dict[str, tuple[str, str]] = {
    "F16": ("float16", "<f2"),
    "BF16": ("bfloat16", "<u2"),
    "F32": ("float32", "<f4"),
    "F64": ("float64", "<f8"),
}
MAX_HEADER = 100_000_000  # the safetensors library's own limit


class SafetensorsSource(ArraySource):
    """One tensor (`key`, or the file's only tensor) of a .safetensors file."""

    format = "safetensors"

    def __init__(self, path: Path, key: str | None = None) -> None:
        self.path = str(path)
        self.key = None
        size = path.stat().st_size
        header, data_start = _read_header(path, size)
        self.key = select_key(self.path, [k for k in header if k != "__metadata__"], key)
        entry = header[self.key]
        try:
            st_dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            if not isinstance(shape, list) or not all(type(s) is int for s in shape):
                raise ValueError("the shape is not a list of integers")
            shape = tuple(shape)
            begin, end = int(begin), int(end)
        except (TypeError, KeyError, ValueError):
            raise InputError(f"{self.label}: malformed safetensors header: {entry!r}") from None
        name, stored = DTYPES.get(str(st_dtype), (str(st_dtype), ""))
        self.n, self.d, self.dtype = validate_shape(self.label, shape, name)
        raw = RawArray(self.path, data_start + begin, np.dtype(stored), self.n, self.d, bfloat16=name == "bfloat16")
        if end - begin != raw.nbytes or begin < 0:  # (validate_shape refused negative sizes)
            raise InputError(
                f"{self.label}: malformed safetensors header: shape {shape} {st_dtype} needs "
                f"{raw.nbytes} bytes, data_offsets span {end - begin}"
            )
        raw.require_within(size, self.label)
        self._raw = raw
        self.nbytes = raw.nbytes

    def chunks(self, rows: int) -> Iterator[np.ndarray]:
        return self._raw.chunks(rows, self.label)


def _read_header(path: Path, size: int) -> tuple[dict[str, dict], int]:
    """The parsed JSON header and the byte offset where tensor data starts."""
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise InputError(f"{path}: not a valid .safetensors file (shorter than 8 bytes)")
        length = int.from_bytes(prefix, "little")
        if length > min(size - 8, MAX_HEADER):
            raise InputError(
                f"{path}: not a valid .safetensors file (header length {length} "
                f"does not fit in the file's {size} bytes)"
            )
        text = f.read(length)
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not a valid .safetensors file (header is not JSON: {err})") from None
    if not isinstance(header, dict) or not all(isinstance(v, dict) for k, v in header.items() if k != "__metadata__"):
        raise InputError(f"{path}: not a valid .safetensors file (header is not a tensor table)")
    return header, 8 + length

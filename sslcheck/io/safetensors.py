"""`.safetensors` files, parsed here (no dependency on the `safetensors` package).

Layout (https://github.com/huggingface/safetensors#format): an 8-byte little-endian header
length, a JSON header `{name: {"dtype", "shape", "data_offsets": [begin, end]}}` (plus an
optional "__metadata__"), then the tensors' bytes, C order, little-endian, offsets counted from
the end of the header. Rows are read by offset with `RawArray`; BF16 is widened to float32.
"""

from __future__ import annotations

import json
import math
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
ITEM_BITS = {  # sizes to check (other dtypes: their tiling only)
    **dict.fromkeys(("BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3"), 8),
    **dict.fromkeys(("I16", "U16", "F16", "BF16"), 16),
    **dict.fromkeys(("I32", "U32", "F32"), 32),
    **dict.fromkeys(("I64", "U64", "F64"), 64),
}


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
        st_dtype, shape, begin = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"][0]
        name, stored = DTYPES.get(str(st_dtype), (str(st_dtype), ""))
        self.n, self.d, self.dtype = validate_shape(self.label, shape, name)
        # the layout was checked with the header: its bytes are its own and lie within the file
        self._raw = RawArray(
            self.path, data_start + begin, np.dtype(stored), self.n, self.d, bfloat16=name == "bfloat16"
        )
        self.nbytes = self._raw.nbytes

    def chunks(self, rows: int, keep: int = 1) -> Iterator[np.ndarray]:
        return self._raw.chunks(rows, self.label, keep)


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
    _check_layout(path, header, size - 8 - length)
    return header, 8 + length


def _is_int(x: object) -> bool:
    return type(x) is int  # not bool, not a float such as 0.7 (the format's offsets are u64)


def _check_layout(path: Path, header: dict[str, dict], buffer: int) -> None:
    """The safetensors library's own checks: every entry a dtype, a shape of integers >= 0 and
    integer offsets; the tensors' byte ranges, in order, tile the data buffer exactly (no overlap,
    no gap, nothing after), each as long as its shape and dtype need; `__metadata__` a map of
    strings. Two tensors on the same bytes would score a view against itself."""
    metadata = header.get("__metadata__") or {}  # null is accepted, as the library accepts it
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise InputError(f"{path}: not a valid .safetensors file (__metadata__ is not a map of strings)")
    spans = []
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not (
            isinstance(dtype, str)
            and isinstance(shape, list)
            and all(_is_int(s) and s >= 0 for s in shape)
            and isinstance(offsets, list)
            and len(offsets) == 2
            and all(_is_int(o) for o in offsets)
            and 0 <= offsets[0] <= offsets[1]
        ):
            raise InputError(f"{path}: malformed safetensors header for {key!r}: {entry!r}")
        bits = ITEM_BITS.get(dtype)
        if bits is not None and math.prod(shape) * bits // 8 != offsets[1] - offsets[0]:
            raise InputError(
                f"{path}: malformed safetensors header for {key!r}: shape {shape} {dtype} needs "
                f"{math.prod(shape) * bits // 8} bytes, data_offsets {offsets} span {offsets[1] - offsets[0]}"
            )
        spans.append((offsets[0], offsets[1], key))
    at = 0
    for begin, end, key in sorted(spans):
        if begin != at:
            what = "overlaps the tensor before it" if begin < at else f"leaves a gap of {begin - at} bytes before it"
            raise InputError(f"{path}: not a valid .safetensors file ({key!r} at bytes {begin}-{end} {what})")
        at = end
    if at != buffer:
        what = "truncated: its" if at > buffer else "bytes after the tensors: its"
        raise InputError(f"{path}: not a valid .safetensors file ({what} tensors take {at} bytes, it holds {buffer})")

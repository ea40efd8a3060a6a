"""`.pt` / `.pth` files: a tensor, or a dict of tensors, loaded with `weights_only=True` only.

A zip-format file (torch.save's default since 1.6) is opened with
`torch.load(path, mmap=True, weights_only=True, map_location="cpu")` once per chunk: its rows
are copied into one reused buffer and the map is dropped, so no map outlives its chunk (a
long-lived map keeps every touched page resident) and reopening costs well under a millisecond.
A legacy (non-zip) file cannot be mapped: it is loaded whole, still with `weights_only=True`,
and `notes` says so. Anything that needs arbitrary unpickling is refused, never retried unsafely.
torch is imported inside the functions: `sslcheck --help` must not import it.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sslcheck.errors import InputError
from sslcheck.io.source import ArraySource, BufferRing, block_dtype, select_key, single_array_key, validate_shape

if TYPE_CHECKING:
    import torch

LEGACY_NOTE = "legacy (non-zip) .pt: loaded whole into memory"

_ZIP_MAGIC = b"PK\x03\x04"
_REFUSAL = re.compile(
    r"(unsupported GLOBAL [\w.]+|Unsupported global: GLOBAL [\w.]+"
    r"|Unsupported operand \d+)",
    re.IGNORECASE,
)


class PtSource(ArraySource):
    """A tensor in a .pt / .pth file (the file's only tensor, or the dict entry `key`)."""

    format = "pt"

    def __init__(self, path: Path, key: str | None = None) -> None:
        self.path = str(path)
        self.key = None
        self._legacy = not _is_zip(path)
        tensor, self.key = _pick(self.path, _load(self.path, mmap=not self._legacy), key)
        dtype = str(tensor.dtype).removeprefix("torch.")
        self.n, self.d, self.dtype = validate_shape(self.label, tuple(tensor.shape), dtype)
        if str(tensor.layout) != "torch.strided":
            raise InputError(f"{self.label}: a {tensor.layout} tensor; save a dense tensor")
        if tensor.device.type == "meta":
            raise InputError(f"{self.label}: a tensor on the meta device holds no data; save a CPU tensor")
        self.nbytes = self.n * self.d * tensor.element_size()

    def notes(self) -> list[str]:
        return [LEGACY_NOTE] if self._legacy else []

    def chunks(self, rows: int, keep: int = 1) -> Iterator[np.ndarray]:
        import torch

        if rows < 1:
            raise ValueError(f"rows must be >= 1, got {rows}")
        whole = None
        if self._legacy:
            whole = _pick(self.path, _load(self.path, mmap=False), self.key)[0]
        ring = BufferRing(keep, (min(rows, self.n), self.d), block_dtype(self.dtype))
        for start in range(0, self.n, rows):
            r = min(rows, self.n - start)
            src = whole if whole is not None else _pick(self.path, _load(self.path, mmap=True), self.key)[0]
            out = ring.next()[:r]
            with torch.no_grad():  # only around the copy: grad mode must not leak to the caller
                torch.from_numpy(out).copy_(src[start : start + r])
            del src  # drops this chunk's map
            yield out


def _is_zip(path: Path) -> bool:
    """Zip (torch.save's format since 1.6) or a legacy pickle; anything else is not a .pt file."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(_ZIP_MAGIC):
        return True
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return False
    raise InputError(f"{path}: not a PyTorch file (neither torch.save's zip format nor a pickle)")


def _load(path: str, mmap: bool) -> object:
    """`torch.load` with `weights_only=True`; its failures become one-line InputErrors."""
    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. "Detected pickle protocol 4": noise for the user
            return torch.load(path, mmap=mmap, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        found = _REFUSAL.search(str(err))
        raise InputError(
            f"{path}: holds pickled Python objects that sslcheck will not execute "
            f"(torch.load(weights_only=True) refused it: {found.group(0) if found else 'unsafe'}); "
            "save a tensor or a dict of tensors"
        ) from None
    except Exception as err:  # torch raises RuntimeError, KeyError, EOFError... on a damaged file
        text = str(err).strip()
        first = text.splitlines()[0].split(". ")[0][:200] if text else type(err).__name__
        raise InputError(f"{path}: not a valid PyTorch file ({first})") from None


def _pick(path: str, obj: object, key: str | None) -> tuple[torch.Tensor, str | None]:
    """The tensor `obj` is, or its dict entry `key` (the only tensor entry when `key` is None)."""
    import torch

    if isinstance(obj, torch.Tensor):
        single_array_key(path, key, "this .pt file")
        return obj, None
    if isinstance(obj, dict):
        if key is not None and key in obj and not isinstance(obj[key], torch.Tensor):
            raise InputError(f"{path}[{key}]: is a {type(obj[key]).__name__}, not a tensor")
        tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if not tensors:
            keys = ", ".join(map(str, obj))
            raise InputError(f"{path}: holds a dict with no tensors (keys: {keys})")
        name = select_key(path, list(tensors), key)
        return tensors[name], name
    raise InputError(f"{path}: holds a {type(obj).__name__}; expected a tensor or a dict of tensors")

"""Shards: a folder, or a glob pattern, of files of one format read as one [N, D] array.

Shards are concatenated in natural sort order (part-2 before part-10) and re-blocked, so every
chunk but the last has exactly `rows` rows whatever the shard boundaries. The key (if any)
applies to every shard.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from sslcheck.errors import InputError
from sslcheck.io.formats import SUFFIXES, format_of, open_file
from sslcheck.io.source import ArraySource, BufferRing, block_dtype

GLOB_CHARS = frozenset("*?[")


def is_glob(text: str) -> bool:
    """Whether `text` is a glob pattern (has * ? or [) rather than a path."""
    return any(c in GLOB_CHARS for c in text)


def natural_key(text: str) -> list[int | str]:
    """Sort key that orders digit runs by value: "part-2" before "part-10"."""
    return [int(t) if i % 2 else t for i, t in enumerate(re.split(r"(\d+)", text, flags=re.ASCII))]


def find_shards(spec: str) -> list[Path]:
    """The shard files of a folder (files with a supported suffix) or a glob pattern (all matches).

    A folder may also hold other files (an index, a README): they are skipped. A pattern names
    its files itself, so every file it matches must be a shard.
    """
    folder = Path(spec)
    if folder.is_dir():
        files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and format_of(p) is not None]
        if not files:
            raise InputError(f"{spec}: the folder holds no shards (no {', '.join(SUFFIXES)} files)")
        return sorted(files, key=lambda p: natural_key(p.name))
    files = [Path(m) for m in glob.glob(spec, recursive=True) if Path(m).is_file()]
    if not files:
        raise InputError(f"{spec}: no files match this pattern")
    return sorted(files, key=lambda p: natural_key(str(p)))


class ShardedSource(ArraySource):
    """Shards of one format, of one D and dtype, read as their row-wise concatenation."""

    format = "shards"

    def __init__(self, spec: str, key: str | None = None) -> None:
        self.path = spec
        self.key = key
        files = find_shards(spec)
        formats = [format_of(p) for p in files]
        for p, fmt in zip(files, formats, strict=True):
            if fmt is None:
                open_file(p, key)  # raises the unknown-suffix error, naming the file
            if fmt != formats[0]:
                raise InputError(
                    f"{spec}: shards of mixed formats: {files[0].name} is {formats[0]}, "
                    f"{p.name} is {fmt}; use one format"
                )
        self.shards = [open_file(p, key) for p in files]
        first = self.shards[0]
        for s in self.shards[1:]:
            if s.d != first.d:
                raise InputError(
                    f"{spec}: shards differ in D: {first.label} has D = {first.d}, {s.label} has D = {s.d}"
                )
            if s.dtype != first.dtype:
                raise InputError(
                    f"{spec}: shards differ in dtype: {first.label} is {first.dtype}, {s.label} is {s.dtype}"
                )
        self.n = sum(s.n for s in self.shards)
        self.d, self.dtype = first.d, first.dtype
        self.nbytes = sum(s.nbytes for s in self.shards)

    def notes(self) -> list[str]:
        own = [f"{len(self.shards)} {self.shards[0].format} shards"]
        return own + [f"{s.label}: {note}" for s in self.shards for note in s.notes()]

    def where(self, row: int) -> str:
        """The global row and the shard holding it: 'row 35 (part-2.npy row 3)'."""
        start = 0
        for shard in self.shards:
            if row < start + shard.n:
                return f"row {row} ({shard.label} row {row - start})"
            start += shard.n
        return f"row {row}"

    def chunks(self, rows: int, keep: int = 1) -> Iterator[np.ndarray]:
        """A shard's full blocks as it reads them; blocks that span shards copied into a ring of
        `keep` buffers (a shard's own blocks stay intact as long: it reads one per block yielded)."""
        if rows < 1:
            raise ValueError(f"rows must be >= 1, got {rows}")
        ring = BufferRing(keep, (min(rows, self.n), self.d), block_dtype(self.dtype))  # allocates on first use
        buf = np.empty(0)
        fill = 0
        for shard in self.shards:
            for block in shard.chunks(rows, keep):
                if fill == 0 and len(block) == rows:
                    yield block  # already a full chunk: no copy
                    continue
                taken = 0
                while taken < len(block):
                    if fill == 0:
                        buf = ring.next()
                    k = min(rows - fill, len(block) - taken)
                    buf[fill : fill + k] = block[taken : taken + k]
                    fill, taken = fill + k, taken + k
                    if fill == rows:
                        yield buf
                        fill = 0
        if fill:
            yield buf[:fill]

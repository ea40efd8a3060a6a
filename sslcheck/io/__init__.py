"""Open embedding files as validated, streamed [N, D] sources (see `ArraySource`).

Formats: .npy, .npz, .pt/.pth, .safetensors, and a folder or glob pattern of shards of one of
them. Every problem with an input is an `InputError` naming the file (and key).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sslcheck.errors import InputError, UsageError
from sslcheck.io.formats import open_file
from sslcheck.io.labels import load_labels
from sslcheck.io.shards import ShardedSource, is_glob
from sslcheck.io.source import ArraySource, KeyNotFound, require_file

__all__ = ["ArraySource", "Unusable", "load_labels", "open_all", "open_array", "open_pair"]


def open_array(path: str | Path, key: str | None = None) -> ArraySource:
    """Open one view: a file of a supported format, a folder of shards or a glob of shards.

    `key` names the array inside a container (.npz member, .pt dict entry, .safetensors tensor);
    without it a container must hold exactly one array.
    """
    p = Path(path)
    if not p.exists() and is_glob(str(path)):
        return ShardedSource(str(path), key)
    require_file(p)
    if p.is_dir():
        return ShardedSource(str(path), key)
    return open_file(p, key)


@dataclass(frozen=True)
class Unusable:
    """A member of a container that is not an [N, D] float array (labels kept beside the views)."""

    path: str
    key: str
    reason: str


def open_all(path: str | Path, key: str | None = None) -> list[ArraySource | Unusable]:
    """Every array a path holds (each member of a container; `key` picks one), for `inspect`.
    A container's members that cannot be views come back as `Unusable`; a path with no usable
    array raises the first member's error."""
    if key is not None:
        return [open_array(path, key)]
    try:
        return [open_array(path, "\0")]  # no array has this name: a container lists its keys
    except KeyNotFound as err:  # (a one-array file lists none)
        if not err.keys:
            return [open_array(path)]
        members: list[ArraySource | Unusable] = []
        first: InputError | None = None
        for k in err.keys:
            try:
                members.append(open_array(path, k))
            except InputError as bad:
                first = first or bad
                members.append(Unusable(str(path), k, str(bad).removeprefix(f"{path}[{k}]: ")))
        if first is not None and all(isinstance(m, Unusable) for m in members):
            raise first from None
        return members


def open_pair(
    za: str | Path,
    zb: str | Path | None = None,
    *,
    key: str | None = None,
    key_a: str | None = None,
    key_b: str | None = None,
) -> tuple[ArraySource, ArraySource]:
    """Open both views and check they describe the same N samples in the same D dimensions.

    With `zb` None, `za` is one container holding both views, under the keys `za` and `zb`
    (or `key_a` / `key_b`).
    """
    if zb is None:
        if key is not None:
            raise UsageError(f"--key {key}: one path holds both views; name them with --key-a and --key-b")
        ka, kb = key_a or "za", key_b or "zb"
        try:
            a, b = open_array(za, ka), open_array(za, kb)
        except KeyNotFound as err:
            holds = f"it holds: {', '.join(err.keys)}" if err.keys else "it holds a single array"
            raise InputError(
                f"{err.path}: one path given, so it must hold both views under the keys "
                f"{ka!r} and {kb!r} (choose others with --key-a/--key-b); {holds}"
            ) from None
    else:
        a, b = open_array(za, key_a or key), open_array(zb, key_b or key)
    if a.d != b.d:
        raise InputError(f"views differ in D: {a.label} has D = {a.d}, {b.label} has D = {b.d}")
    if a.n != b.n:
        raise InputError(
            f"views differ in N: {a.label} has N = {a.n} rows, {b.label} has N = {b.n}; "
            "row i of each view must be the same sample"
        )
    if a.n < 2:
        raise InputError(f"{a.label}: N = {a.n}; at least 2 rows are needed (every variance divides by N - 1)")
    if a.d < 2:
        raise InputError(f"{a.label}: D = {a.d}; at least 2 dimensions are needed")
    return a, b

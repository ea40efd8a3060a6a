"""Class labels for the rows of an embedding: one integer per row, from .npy or .txt."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from sslcheck.errors import InputError
from sslcheck.io.npy import read_npy_header
from sslcheck.io.source import require_file

_INTEGER = re.compile(r"[+-]?[0-9]+")


def load_labels(path: str | Path, n: int) -> np.ndarray:
    """Read `n` integer labels (int64 [N]) from a .npy integer array or a .txt file.

    A .txt file holds one integer per line (blank lines at the end are ignored). Row i of the
    embeddings gets label i, so the count must equal `n`.
    """
    p = Path(path)
    require_file(p)
    suffix = p.suffix.lower()
    if suffix == ".npy":
        labels = _from_npy(p)
    elif suffix == ".txt":
        labels = _from_txt(p)
    else:
        raise InputError(f"{p}: unknown labels file type {suffix!r}; expected .npy or .txt")
    if len(labels) != n:
        raise InputError(f"{p}: {len(labels)} labels but the embeddings have N = {n} rows; one label per row is needed")
    return labels


def _from_npy(p: Path) -> np.ndarray:
    # The header first: it refuses pickles and garbage with a precise message.
    with open(p, "rb") as f:
        shape, dtype, _ = read_npy_header(f, str(p), "the labels as an integer array")
    if dtype.kind not in "iu":
        raise InputError(f"{p}: labels must be integers, got dtype {dtype}")
    if len(shape) != 1:
        raise InputError(f"{p}: labels must be a 1-D [N] array, got shape {shape}")
    try:
        arr = np.load(p, allow_pickle=False)  # small: one integer per row
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f"{p}: not a valid .npy file ({err})") from None
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise InputError(f"{p}: a label is larger than int64 holds")
    return arr.astype(np.int64)


def _from_txt(p: Path) -> np.ndarray:
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputError(f"{p}: not a text file (not UTF-8)") from None
    while lines and not lines[-1].strip():
        lines.pop()
    labels = []
    for i, line in enumerate(lines, start=1):
        text = line.strip()
        if not _INTEGER.fullmatch(text):
            raise InputError(f"{p}: line {i}: {text!r} is not an integer label")
        labels.append(int(text))
    try:
        return np.array(labels, dtype=np.int64)
    except OverflowError:
        raise InputError(f"{p}: a label is larger than int64 holds") from None

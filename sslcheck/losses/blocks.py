"""Row blocks for the losses that compare every row with every other: a whole set never builds its
full similarity matrix, only blocks of at most `block_elems` entries."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

BLOCK_ELEMS = 1 << 24  # similarities per block: 128 MiB in float64


def row_blocks(rows: int, cols: int, block_elems: int = BLOCK_ELEMS) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive row blocks of a rows x cols matrix, each holding at most
    `block_elems` entries (at least one row)."""
    step = max(1, min(rows, block_elems // max(1, cols)))
    for start in range(0, rows, step):
        yield start, min(start + step, rows)


def logsumexp_without(logits: Tensor, *left_out: Tensor) -> Tensor:
    """Row-wise log-sum-exp of a fresh [..., R, C] block with, in row r, the columns
    `left_out[k][r]` left out: set to -inf in place (a true mask: they contribute exactly nothing;
    no R x C mask or copy is made)."""
    rows = torch.arange(logits.shape[-2], device=logits.device)
    for cols in left_out:
        logits[..., rows, cols] = float("-inf")
    return torch.logsumexp(logits, dim=-1)

"""Row blocks for the losses that compare every row with every other: a whole set never builds its
full similarity matrix, only blocks of at most `block_elems` entries."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from typing import ClassVar

import torch
from torch import Tensor

BLOCK_ELEMS = 1 << 24  # similarities per block: 128 MiB in float64


def row_blocks(rows: int, cols: int, block_elems: int = BLOCK_ELEMS) -> Iterator[tuple[int, int]]:
    """(start, stop) of consecutive row blocks of a rows x cols matrix, each holding at most
    `block_elems` entries (at least one row)."""
    step = max(1, min(rows, block_elems // max(1, cols)))
    for start in range(0, rows, step):
        yield start, min(start + step, rows)


def matrices(x: Tensor) -> int:
    """How many [N, D] matrices (batches) x [..., N, D] holds: the factor by which a batch's row
    block of similarities grows when all batches are scored at once."""
    return math.prod(x.shape[:-2])


def leave_out(logits: Tensor, *left_out: Tensor) -> Tensor:
    """A fresh [..., R, C] block with, in row r, the columns `left_out[k][r]` set to -inf in
    place (a true mask: they contribute exactly nothing to a sum of exponentials; no R x C mask
    or copy is made)."""
    rows = torch.arange(logits.shape[-2], device=logits.device)
    minus_inf = torch.full((), float("-inf"), dtype=logits.dtype, device=logits.device)  # no CPU scalar to copy
    for cols in left_out:
        logits[..., rows, cols] = minus_inf
    return logits


def logsumexp_without(logits: Tensor, *left_out: Tensor) -> Tensor:
    """Row-wise log-sum-exp of a fresh [..., R, C] block with the columns `left_out` left out."""
    return torch.logsumexp(leave_out(logits, *left_out), dim=-1)


@functools.lru_cache(maxsize=8)
def _on_or_below_diagonal(n: int, device: torch.device) -> Tensor:
    return torch.ones(n, n, dtype=torch.bool, device=device).tril()


@functools.lru_cache(maxsize=8)
def _above_diagonal(n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    return torch.ones(n, n, dtype=dtype, device=device).triu(1)


class LogSumExp:
    """Sums of exponentials of logits, kept in the log domain: log-sum-exp with a running
    maximum, combined by logaddexp. Stable for any logits."""

    def exponentials(self, logits: Tensor) -> Tensor:
        return logits

    def exponentials_above_diagonal(self, logits: Tensor) -> Tensor:
        """`exponentials` of a fresh [..., B, B] block's entries above its diagonal, the rest
        contributing nothing to its totals."""
        return logits.masked_fill_(_on_or_below_diagonal(logits.shape[-1], logits.device), -math.inf)

    def total(self, values: Tensor, dim: int) -> Tensor:
        return torch.logsumexp(values, dim=dim)

    def add(self, x: Tensor, y: Tensor) -> Tensor:
        return torch.logaddexp(x, y)

    def log(self, x: Tensor) -> Tensor:
        return x


class SumExp(LogSumExp):
    """Plain sums of exponentials of logits, combined by addition, the log taken at the end: one
    exponential serves the sums along both dimensions of a block, where log-sum-exp takes a
    maximum and an exponential for each.

    Exact (to rounding) while every term and every sum stays a normal float: logits in
    [-top, top] with at most `terms` to a sum and top + ln(terms) within the dtype's span
    (`fits`): e^-span must not underflow, e^span not overflow: 80 in float32 (its normal floats
    run from e^-87 to e^88), 700 in float64. Shifting the logits would only trade one end of that
    range for the other."""

    SPANS: ClassVar[dict[torch.dtype, float]] = {torch.float32: 80.0, torch.float64: 700.0}

    @classmethod
    def fits(cls, top: float, terms: int, dtype: torch.dtype) -> bool:
        return top + math.log(max(terms, 1)) <= cls.SPANS.get(dtype, 0.0)

    def exponentials(self, logits: Tensor) -> Tensor:
        return logits.exp_()

    def exponentials_above_diagonal(self, logits: Tensor) -> Tensor:
        """Zeros on and below the diagonal, by multiplying with a 0/1 mask before and after the
        exponential: a -inf or a far negative logit sends exp down a path 9x to 85x slower."""
        keep = _above_diagonal(logits.shape[-1], logits.device, logits.dtype)
        terms = logits.mul_(keep).exp_()
        return terms * keep if terms.requires_grad else terms.mul_(keep)  # exp's backward needs its output

    def total(self, values: Tensor, dim: int) -> Tensor:
        return values.sum(dim)

    def add(self, x: Tensor, y: Tensor) -> Tensor:
        return x + y

    def log(self, x: Tensor) -> Tensor:
        return x.log()


def sums_of_exponentials(top: float, terms: int, dtype: torch.dtype) -> LogSumExp:
    """How to sum at most `terms` exponentials of logits in [-top, top]: plainly (`SumExp`) where
    that is exact, else in the log domain."""
    return SumExp() if SumExp.fits(top, terms, dtype) else LogSumExp()

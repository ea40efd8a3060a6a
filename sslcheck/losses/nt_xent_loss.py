"""NT-Xent, the SimCLR loss: cross-entropy of each row's positive among all 2N - 1 other rows.

Chen, Kornblith, Norouzi & Hinton, ICML 2020, arXiv:2002.05709; reference code
google-research/simclr. With u = n(za), v = n(zb), w = [u; v], s_ij = w_i . w_j / tau and
p(i) = i +/- N:

    l_i   = -s_{i,p(i)} + log sum_{j != i} exp(s_ij)
    total = mean_i l_i over 2N (``mean``: lightly, solo-learn, quadra, edifice)
            or 2 x that (``sum_directions``: the paper's l_i + l_{i+N}, TF Similarity)

Computed with a true mask of the self term, in row blocks of at most `block_elems`
similarities, so a whole set never needs a 2N x 2N matrix. Every |s_ij| <= 1/tau (rows of norm
at most 1 in every normalisation), so plain sums of exp(s_ij) are exact wherever neither e^(-1/tau)
underflows nor 2N e^(1/tau) overflows (`SumExp`; float32: 1/tau + ln 2N <= 80, tau >= 0.014 for
B = 256), and below that a stable log-sum-exp (`LogSumExp`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from sslcheck.losses.blocks import BLOCK_ELEMS, leave_out, matrices, row_blocks, sums_of_exponentials
from sslcheck.losses.normalize import RowNorm
from sslcheck.losses.pair import Batch, PairStats, View

TERMS = ("total",)


@dataclass(frozen=True)
class NTXentParams:
    """NT-Xent conventions; defaults are google-research/simclr's."""

    tau: float = 0.1
    reduction: Literal["mean", "sum_directions"] = "sum_directions"
    normalize: RowNorm = "tf"


def nt_xent_terms_of(stats: PairStats, p: NTXentParams, block_elems: int = BLOCK_ELEMS) -> dict[str, Tensor]:
    """NT-Xent of the rows in `stats` (a batch [..., B, D], or a whole set whose rows were kept).

    The 2N x 2N similarities are [[u u^T, u v^T], [v u^T, v v^T]] / tau, and the cross blocks are
    transposes of each other, so three products serve (3 N^2 D multiply-adds, not 4; a batch on the
    Gram route derives u u^T and v v^T from the upper triangles of the centred Grams VICReg uses, so
    one product remains):
    a row of u takes the log of the sum of exponentials of its rows of u u^T (self left out) and
    u v^T, a row of v that of its row of v v^T and its column of u v^T (one exponential of u v^T
    serves both where `SumExp` fits). Rows go in blocks of at most `block_elems` similarities.
    """
    mode = p.normalize
    rows = stats.rows("a")
    n = rows.shape[-2]
    scale = 1 / p.tau
    sums = sums_of_exponentials(scale, 2 * n, rows.dtype)
    lse_u, lse_vv, positives = [], [], []
    column_sum: Tensor | None = None

    def own_view(view: View, start: int, stop: int, idx: Tensor) -> Tensor:
        """Each row's sum over the other rows of its own view (itself left out). A whole block
        taken from the Gram is valid above its diagonal only: row i's sum is then that of its
        row there and of its column (the block is symmetric)."""
        upper = stats.upper_similarity(view, mode, scale) if (start, stop) == (0, n) else None
        if upper is not None:
            terms = sums.exponentials_above_diagonal(upper)
            return sums.add(sums.total(terms, -1), sums.total(terms, -2))
        similarity = stats.similarity(view, view, mode, start, stop, scale)
        return sums.total(sums.exponentials(leave_out(similarity, idx)), -1)

    for start, stop in row_blocks(n, 3 * n * matrices(rows), block_elems):
        idx = torch.arange(start, stop, device=rows.device)
        cross = stats.similarity("a", "b", mode, start, stop, scale)
        positives.append(cross[..., idx - start, idx])
        cross = sums.exponentials(cross)
        block_columns = sums.total(cross, -2)
        column_sum = block_columns if column_sum is None else sums.add(column_sum, block_columns)
        lse_u.append(sums.log(sums.add(own_view("a", start, stop, idx), sums.total(cross, -1))))
        lse_vv.append(own_view("b", start, stop, idx))
    assert column_sum is not None
    positive = torch.cat(positives, -1)
    lse_v = sums.log(sums.add(torch.cat(lse_vv, -1), column_sum))
    mean = ((torch.cat(lse_u, -1) - positive).sum(-1) + (lse_v - positive).sum(-1)) / (2 * n)
    return {"total": mean if p.reduction == "mean" else 2 * mean}


def nt_xent(za: Tensor, zb: Tensor, params: NTXentParams | None = None) -> Tensor:
    """NT-Xent of a batch za, zb: [N, D] (differentiable), usable as a training loss; [..., N, D]: one per batch."""
    return nt_xent_terms_of(Batch(za, zb), params or NTXentParams())["total"]

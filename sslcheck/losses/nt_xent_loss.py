"""NT-Xent, the SimCLR loss: cross-entropy of each row's positive among all 2N - 1 other rows.

Chen, Kornblith, Norouzi & Hinton, ICML 2020, arXiv:2002.05709; reference code
google-research/simclr. With u = n(za), v = n(zb), w = [u; v], s_ij = w_i . w_j / tau and
p(i) = i +/- N:

    l_i   = -s_{i,p(i)} + log sum_{j != i} exp(s_ij)
    total = mean_i l_i over 2N (``mean``: lightly, solo-learn, quadra, edifice)
            or 2 x that (``sum_directions``: the paper's l_i + l_{i+N}, TF Similarity)

Computed with a stable log-sum-exp and a true mask of the self term, in row blocks of at most
`block_elems` similarities, so a whole set never needs a 2N x 2N matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from sslcheck.losses.normalize import RowNorm
from sslcheck.losses.pair import Batch, PairStats

TERMS = ("total",)


@dataclass(frozen=True)
class NTXentParams:
    """NT-Xent conventions; defaults are google-research/simclr's."""

    tau: float = 0.1
    reduction: Literal["mean", "sum_directions"] = "sum_directions"
    normalize: RowNorm = "tf"


def nt_xent_terms_of(stats: PairStats, p: NTXentParams, block_elems: int = 1 << 24) -> dict[str, Tensor]:
    """NT-Xent of the rows in `stats` (a batch, or a whole set whose rows were kept)."""
    w = torch.cat([stats.normalized("a", p.normalize), stats.normalized("b", p.normalize)])
    two_n = w.shape[0]
    n = two_n // 2
    block = max(1, min(two_n, block_elems // two_n))
    total = w.new_zeros(())
    for start in range(0, two_n, block):
        rows = w[start : start + block]
        idx = torch.arange(start, start + rows.shape[0], device=w.device)
        logits = (rows @ w.T) / p.tau
        self_mask = torch.zeros_like(logits, dtype=torch.bool)
        self_mask[torch.arange(rows.shape[0], device=w.device), idx] = True
        lse = torch.logsumexp(logits.masked_fill(self_mask, float("-inf")), dim=1)
        positive = logits.gather(1, ((idx + n) % two_n)[:, None]).squeeze(1)
        total = total + (lse - positive).sum()
    mean = total / two_n
    return {"total": mean if p.reduction == "mean" else 2 * mean}


def nt_xent(za: Tensor, zb: Tensor, params: NTXentParams | None = None) -> Tensor:
    """NT-Xent of a batch za, zb: [N, D] (differentiable), usable as a training loss."""
    return nt_xent_terms_of(Batch(za, zb), params or NTXentParams())["total"]

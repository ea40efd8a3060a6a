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
    """NT-Xent of the rows in `stats` (a batch [..., B, D], or a whole set whose rows were kept).

    Rows are processed in blocks so that no more than `block_elems` similarities exist at once.
    """
    w = torch.cat([stats.normalized("a", p.normalize), stats.normalized("b", p.normalize)], dim=-2)
    two_n = w.shape[-2]
    n = two_n // 2
    batches = max(1, w[..., 0, 0].numel())
    block = max(1, min(two_n, block_elems // (two_n * batches)))
    total = w.new_zeros(w.shape[:-2])
    for start in range(0, two_n, block):
        rows = w[..., start : start + block, :]
        r = rows.shape[-2]
        idx = torch.arange(start, start + r, device=w.device)
        logits = (rows @ w.mT) / p.tau
        self_mask = torch.zeros(r, two_n, dtype=torch.bool, device=w.device)
        self_mask[torch.arange(r, device=w.device), idx] = True
        lse = torch.logsumexp(logits.masked_fill(self_mask, float("-inf")), dim=-1)
        partner = ((idx + n) % two_n).expand(logits.shape[:-1]).unsqueeze(-1)
        positive = logits.gather(-1, partner).squeeze(-1)
        total = total + (lse - positive).sum(-1)
    mean = total / two_n
    return {"total": mean if p.reduction == "mean" else 2 * mean}


def nt_xent(za: Tensor, zb: Tensor, params: NTXentParams | None = None) -> Tensor:
    """NT-Xent of a batch za, zb: [N, D] (differentiable), usable as a training loss; [..., N, D]: one per batch."""
    return nt_xent_terms_of(Batch(za, zb), params or NTXentParams())["total"]

"""DCL and DCLW: decoupled contrastive learning, the NT-Xent positive removed from the denominator.

Yeh, Hong, Hsu, Liu, Chen & LeCun, "Decoupled Contrastive Learning", ECCV 2022, arXiv:2110.06848;
matches lightly's `DCLLoss` / `DCLWLoss` (lightly/loss/dcl_loss.py). With u = n(za), v = n(zb)
(torch `F.normalize`), w = [u; v] (2N rows), s_ij = w_i . w_j / tau and p(i) = i +/- N:

    negative = mean_i log sum_{j != i, p(i)} exp(s_ij)        over 2N rows; 2N - 2 negatives each
    positive = -mean_i c_i (u_i . v_i) / tau                   the same for both directions
    total    = positive + negative = 1/2 (a->b + b->a)

DCL: c_i = 1. DCLW: c_i = 2 - N softmax_i(u_i . v_i / sigma) over the batch, without gradient
(lightly's `negative_mises_fisher_weights` detaches it), so the weights average to 1.

The negatives are computed in row blocks of at most `block_elems` similarities: never 2N x 2N.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sslcheck.losses.blocks import BLOCK_ELEMS, logsumexp_without, matrices, row_blocks
from sslcheck.losses.pair import Batch, PairStats

TERMS = ("positive", "negative", "total")


@dataclass(frozen=True)
class DCLParams:
    """DCL conventions; defaults are lightly's `DCLLoss` (tau 0.1)."""

    tau: float = 0.1

    def weights(self) -> dict[str, float]:
        return {"positive": 1.0, "negative": 1.0}


@dataclass(frozen=True)
class DCLWParams:
    """DCLW conventions; defaults are lightly's `DCLWLoss` (tau 0.1, sigma 0.5)."""

    tau: float = 0.1
    sigma: float = 0.5

    def weights(self) -> dict[str, float]:
        return {"positive": 1.0, "negative": 1.0}


def dcl_terms_of(stats: PairStats, p: DCLParams | DCLWParams, block_elems: int = BLOCK_ELEMS) -> dict[str, Tensor]:
    """DCL (or, with `DCLWParams`, DCLW) terms of the rows in `stats` (a batch [..., B, D], or a
    whole set with rows)."""
    u, v = stats.normalized("a", "torch"), stats.normalized("b", "torch")
    n = u.shape[-2]
    cos = (u * v).sum(-1)
    if isinstance(p, DCLWParams):
        weight = 2 - n * torch.softmax(cos.detach() / p.sigma, dim=-1)
        cos = weight * cos
    positive = -cos.mean(-1) / p.tau

    w = torch.cat([u, v], -2)
    two_n = w.shape[-2]
    lse_sum = w.new_zeros(w.shape[:-2])
    for start, stop in row_blocks(two_n, two_n * matrices(w), block_elems):
        logits = (w[..., start:stop, :] @ w.mT) / p.tau
        idx = torch.arange(start, stop, device=w.device)
        lse_sum = lse_sum + logsumexp_without(logits, idx, (idx + n) % two_n).sum(-1)
    negative = lse_sum / two_n
    return {"positive": positive, "negative": negative, "total": positive + negative}


def dcl_terms(za: Tensor, zb: Tensor, params: DCLParams | DCLWParams | None = None) -> dict[str, Tensor]:
    """DCL terms of a batch za, zb: [N, D] (differentiable; [..., N, D]: one per batch); pass
    `DCLWParams` for DCLW.

    >>> import torch
    >>> z = torch.eye(2, dtype=torch.float64)          # 2N - 2 = 2 negatives per row, both at 0
    >>> {k: round(v.item(), 10) for k, v in dcl_terms(z, z, DCLParams(tau=1.0)).items()}
    {'positive': -1.0, 'negative': 0.6931471806, 'total': -0.3068528194}
    """
    return dcl_terms_of(Batch(za, zb), params or DCLParams())


def dcl(za: Tensor, zb: Tensor, params: DCLParams | None = None) -> Tensor:
    """The DCL loss of a batch (lightly `DCLLoss`), usable as a training loss."""
    return dcl_terms(za, zb, params or DCLParams())["total"]


def dclw(za: Tensor, zb: Tensor, params: DCLWParams | None = None) -> Tensor:
    """The DCLW loss of a batch (lightly `DCLWLoss`), usable as a training loss."""
    return dcl_terms(za, zb, params or DCLWParams())["total"]

"""InfoNCE with cross-view negatives only (MoCo v3 / CLIP style): each query's positive among the
N keys of the other view.

Chen, Xie & He, "An Empirical Study of Training Self-Supervised Vision Transformers" (MoCo v3),
ICCV 2021, arXiv:2104.02057; the form and defaults of solo-learn's `mocov3_loss_func`
(solo/losses/mocov3.py). With u = n(za), v = n(zb) (torch `F.normalize`) and s_ij = u_i . v_j / tau:

    l(u, v) = mean_i [ log sum_j exp(s_ij) - s_ii ]          cross-entropy with targets diag
    total   = c * l(u, v)             (symmetric = false: za queries, zb keys)
              c * (l(u, v) + l(v, u)) / 2                   (symmetric = true)
    c       = 2 tau (scale_2tau = true, as solo-learn and facebookresearch/moco-v3) or 1

Computed in row blocks of at most `block_elems` similarities: never an N x N matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sslcheck.losses.blocks import BLOCK_ELEMS, matrices, row_blocks
from sslcheck.losses.pair import Batch, PairStats

TERMS = ("total",)


@dataclass(frozen=True)
class InfoNCEParams:
    """InfoNCE conventions; defaults are solo-learn's `mocov3_loss_func` (tau 0.2, x 2 tau, one direction)."""

    tau: float = 0.2
    scale_2tau: bool = True
    symmetric: bool = False


def _cross_entropy_diag(q: Tensor, k: Tensor, tau: float, block_elems: int) -> Tensor:
    """mean_i CE(q k^T / tau, i) of (each batch of) rows [..., N, D]: rows of q are queries, row
    i of k their positive key."""
    n = q.shape[-2]
    total = q.new_zeros(q.shape[:-2])
    for start, stop in row_blocks(n, n * matrices(q), block_elems):
        logits = (q[..., start:stop, :] @ k.mT) / tau
        positive = logits.diagonal(offset=start, dim1=-2, dim2=-1)
        total = total + (torch.logsumexp(logits, dim=-1) - positive).sum(-1)
    return total / n


def infonce_terms_of(stats: PairStats, p: InfoNCEParams, block_elems: int = BLOCK_ELEMS) -> dict[str, Tensor]:
    """InfoNCE of the rows in `stats` (a batch [..., B, D], or a whole set whose rows were kept)."""
    u, v = stats.normalized("a", "torch"), stats.normalized("b", "torch")
    loss = _cross_entropy_diag(u, v, p.tau, block_elems)
    if p.symmetric:
        loss = (loss + _cross_entropy_diag(v, u, p.tau, block_elems)) / 2
    return {"total": 2 * p.tau * loss if p.scale_2tau else loss}


def infonce(za: Tensor, zb: Tensor, params: InfoNCEParams | None = None) -> Tensor:
    """InfoNCE of a batch za (queries), zb (keys): [N, D] (differentiable), usable as a training
    loss; [..., N, D]: one per batch.

    >>> import torch
    >>> z = torch.eye(3, dtype=torch.float64)          # orthogonal rows, perfectly aligned views
    >>> p = InfoNCEParams(tau=1.0, scale_2tau=False)
    >>> round(infonce(z, z, p).item(), 10)            # log(e + 2) - 1
    0.5514447139
    """
    return infonce_terms_of(Batch(za, zb), params or InfoNCEParams())["total"]

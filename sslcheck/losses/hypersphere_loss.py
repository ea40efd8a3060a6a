"""Alignment and uniformity on the hypersphere.

Wang & Isola, "Understanding Contrastive Representation Learning through Alignment and Uniformity
on the Hypersphere", ICML 2020, arXiv:2005.10242; matches lightly's `HypersphereLoss`
(lightly/loss/hypersphere_loss.py), which L2-normalises its inputs (torch `F.normalize`):
with x = n(za), y = n(zb),

    alignment  = mean_i ||x_i - y_i||^alpha
    unif(x)    = log mean_{i<j} exp(-t ||x_i - x_j||^2)
    uniformity = (unif(x) + unif(y)) / 2
    total      = alignment + lam * uniformity

unif is a log-sum-exp over the N (N - 1) ordered pairs (the mean over i < j equals the mean over
i != j), computed in row blocks of at most `block_elems` entries with
||x_i - x_j||^2 = ||x_i||^2 + ||x_j||^2 - 2 x_i . x_j: never an N x N matrix, and no underflow
where lightly's exp-then-log gives -inf (large t or far-apart rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from sslcheck.losses.blocks import BLOCK_ELEMS, logsumexp_without, matrices, row_blocks
from sslcheck.losses.pair import Batch, PairStats

TERMS = ("alignment", "uniformity", "total")


@dataclass(frozen=True)
class HypersphereParams:
    """Alignment/uniformity conventions; defaults are lightly's `HypersphereLoss` (t 1, lam 1, alpha 2)."""

    t: float = 1.0
    lam: float = 1.0
    alpha: float = 2.0

    def weights(self) -> dict[str, float]:
        return {"alignment": 1.0, "uniformity": self.lam}


def uniformity_of(x: Tensor, t: float, block_elems: int = BLOCK_ELEMS) -> Tensor:
    """log mean_{i<j} exp(-t ||x_i - x_j||^2) of the rows of (each batch) x: [..., N, D], N >= 2."""
    n = x.shape[-2]
    sq = (x * x).sum(-1)
    row_lse = []
    for start, stop in row_blocks(n, n * matrices(x), block_elems):
        dot = x[..., start:stop, :] @ x.mT
        dist_sq = (sq[..., start:stop, None] + sq[..., None, :] - 2 * dot).clamp_min(0)
        row_lse.append(logsumexp_without(-t * dist_sq, torch.arange(start, stop, device=x.device)))
    return torch.logsumexp(torch.cat(row_lse, -1), dim=-1) - math.log(n * (n - 1))


def hypersphere_terms_of(stats: PairStats, p: HypersphereParams, block_elems: int = BLOCK_ELEMS) -> dict[str, Tensor]:
    """Alignment, uniformity (unweighted) and total of the rows in `stats` (a batch [..., B, D],
    or a whole set with rows)."""
    x, y = stats.normalized("a", "torch"), stats.normalized("b", "torch")
    alignment = (x - y).norm(dim=-1).pow(p.alpha).mean(-1)
    uniformity = (uniformity_of(x, p.t, block_elems) + uniformity_of(y, p.t, block_elems)) / 2
    return {"alignment": alignment, "uniformity": uniformity, "total": alignment + p.lam * uniformity}


def hypersphere_terms(za: Tensor, zb: Tensor, params: HypersphereParams | None = None) -> dict[str, Tensor]:
    """Alignment/uniformity terms of a batch za, zb: [N, D] (differentiable); [..., N, D]: one per batch.

    >>> import torch
    >>> z = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)   # antipodal: ||x_1 - x_2||^2 = 4
    >>> {k: round(v.item(), 10) for k, v in hypersphere_terms(z, z).items()}
    {'alignment': 0.0, 'uniformity': -4.0, 'total': -4.0}
    """
    return hypersphere_terms_of(Batch(za, zb), params or HypersphereParams())


def hypersphere(za: Tensor, zb: Tensor, params: HypersphereParams | None = None) -> Tensor:
    """The alignment/uniformity loss of a batch (lightly `HypersphereLoss`), usable as a training loss."""
    return hypersphere_terms(za, zb, params)["total"]

"""Negative cosine (SimSiam) and the BYOL regression loss: means of the positive pairs' cosines.

    cos_i           = za_i . zb_i / (max(||za_i||, 1e-8) max(||zb_i||, 1e-8))    torch `F.cosine_similarity`
    negative_cosine = -mean_i cos_i          Chen & He, SimSiam, CVPR 2021, arXiv:2011.10566;
                                             lightly `NegativeCosineSimilarity`, solo-learn `simsiam_loss_func`
    byol            = 2 - 2 mean_i cos_i     Grill et al., BYOL, NeurIPS 2020, arXiv:2006.07733;
                                             = mean_i ||n(za_i) - n(zb_i)||^2; solo-learn `byol_loss_func`

Neither has flavor variants (spec/losses.md §3): the same value under every flavor. Libraries guard
zero rows differently (torch `F.normalize`: 1e-12, `F.cosine_similarity`: 1e-8); the two differ only
for rows of norm below 1e-8.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from sslcheck.losses.pair import Batch, PairStats

TERMS = ("total",)


@dataclass(frozen=True)
class NegativeCosineParams:
    """Negative cosine has no parameters."""


@dataclass(frozen=True)
class BYOLParams:
    """The BYOL regression loss has no parameters."""


def _mean_cosine(stats: PairStats) -> Tensor:
    return F.cosine_similarity(stats.rows("a"), stats.rows("b"), dim=-1, eps=1e-8).mean(-1)


def negative_cosine_terms_of(stats: PairStats, p: NegativeCosineParams | None = None) -> dict[str, Tensor]:
    """-mean_i cos(za_i, zb_i) of the rows in `stats` (a batch, or a whole set with rows)."""
    return {"total": -_mean_cosine(stats)}


def byol_terms_of(stats: PairStats, p: BYOLParams | None = None) -> dict[str, Tensor]:
    """2 - 2 mean_i cos(za_i, zb_i) of the rows in `stats` (a batch, or a whole set with rows)."""
    return {"total": 2 - 2 * _mean_cosine(stats)}


def negative_cosine(za: Tensor, zb: Tensor) -> Tensor:
    """Negative cosine of a batch za, zb: [N, D] (differentiable), usable as a training loss.

    >>> import torch
    >>> negative_cosine(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[2.0, 0.0], [1.0, -1.0]])).item()
    -0.5
    """
    return negative_cosine_terms_of(Batch(za, zb))["total"]


def byol(za: Tensor, zb: Tensor) -> Tensor:
    """BYOL regression loss 2 - 2 mean cos of a batch za, zb: [N, D] (differentiable).

    >>> import torch
    >>> byol(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[2.0, 0.0], [1.0, -1.0]])).item()
    1.0
    """
    return byol_terms_of(Batch(za, zb))["total"]

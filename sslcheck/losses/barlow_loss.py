"""Barlow Twins: redundancy reduction on the cross-correlation of standardised views.

Zbontar, Jing, Misra, LeCun & Deny, ICML 2021, arXiv:2103.03230; reference code
facebookresearch/barlowtwins.

    Zn  = (Z - mean) / s(Z) per column, each view separately     s by `norm` (below)
    c   = Zan^T Zbn / N
    on_diagonal  = sum_i (1 - c_ii)^2
    off_diagonal = sum_{i != j} c_ij^2
    total        = scale * (on_diagonal + lambda * off_diagonal) + margin

Column scale s by `norm`: ``bn`` / ``nx`` sqrt(var0 + eps) (BatchNorm without affine; Nx),
``tf`` sqrt(var0) with a constant column standardised to 0 (TF Similarity), ``unbiased``
sqrt(var1 + eps). `quadra_bug` reproduces quadra 2.9's `barlowtwins_loss`, which overwrites the
standardised za with the standardised zb and correlates it with the raw zb (za is ignored).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from sslcheck.losses.pair import Batch, PairStats, View

TERMS = ("on_diagonal", "off_diagonal", "total")
ColumnNorm = Literal["bn", "tf", "nx", "unbiased"]


@dataclass(frozen=True)
class BarlowParams:
    """Barlow Twins conventions; defaults are the authors' code (`lambda_` is the JSON key `lambda`)."""

    lambda_: float = 0.0051
    scale: float = 1.0
    margin: float = 0.0
    norm: ColumnNorm = "bn"
    eps: float = 1e-5
    quadra_bug: bool = False

    def weights(self) -> dict[str, float]:
        """The factor each unweighted term carries in `total` (the margin is added)."""
        return {"on_diagonal": self.scale, "off_diagonal": self.scale * self.lambda_}


def inverse_column_scale(stats: PairStats, view: View, norm: ColumnNorm, eps: float) -> Tensor:
    """1 / s(Z) per column: the factor that standardises a centred column."""
    if norm == "unbiased":
        return torch.rsqrt(stats.col_var(view, 1) + eps)
    var0 = stats.col_var(view, 0)
    if norm == "tf":
        # TF Similarity divides by sqrt(var) and maps the 0/0 of a constant column to 0.
        return torch.where(var0 > 0, torch.rsqrt(var0.clamp_min(torch.finfo(var0.dtype).tiny)), 0.0)
    return torch.rsqrt(var0 + eps)


def barlow_terms_of(stats: PairStats, p: BarlowParams) -> dict[str, Tensor]:
    """Both Barlow Twins terms (unweighted) and the total, from a batch or the whole set."""
    if p.quadra_bug:
        s = inverse_column_scale(stats, "b", p.norm, p.eps)
        diag, off = stats.cross("b", "b", s, torch.ones_like(s))
    else:
        diag, off = stats.cross(
            "a",
            "b",
            inverse_column_scale(stats, "a", p.norm, p.eps),
            inverse_column_scale(stats, "b", p.norm, p.eps),
        )
    n = stats.n
    on_diagonal = (1 - diag / n).pow(2).sum(-1)
    off_diagonal = off / n**2
    total = p.scale * (on_diagonal + p.lambda_ * off_diagonal) + p.margin
    return {"on_diagonal": on_diagonal, "off_diagonal": off_diagonal, "total": total}


def barlow_terms(za: Tensor, zb: Tensor, params: BarlowParams | None = None) -> dict[str, Tensor]:
    """Barlow Twins terms of a batch za, zb: [N, D] (differentiable); [..., N, D]: one per batch.

    >>> import torch
    >>> z = torch.eye(2, dtype=torch.float64).repeat(4, 1)   # c = [[1, -1], [-1, 1]] up to eps
    >>> round(barlow_terms(z, z)["off_diagonal"].item(), 3)     # 2 (0.25 / (0.25 + 1e-5))^2
    2.0
    """
    return barlow_terms_of(Batch(za, zb), params or BarlowParams())


def barlow_twins(za: Tensor, zb: Tensor, params: BarlowParams | None = None) -> Tensor:
    """The Barlow Twins loss of a batch (the weighted total), usable as a training loss."""
    return barlow_terms(za, zb, params)["total"]

"""VICReg: variance-invariance-covariance regularisation.

Bardes, Ponce & LeCun, ICLR 2022, arXiv:2105.04906; reference code facebookresearch/vicreg.

    invariance = mean over N*D of (za - zb)^2
    v(Z)       = mean_k relu(gamma - sqrt(var_k(Z) + eps))       var with divisor N - var_ddof
    variance   = w * (v(za) + v(zb))                              w = 1/2 (mean) or 1 (sum)
    c(Z)       = Off(Zc^T Zc / (N - 1)) / D
    covariance = c(za) + c(zb)
    total      = lambda * invariance + mu * variance + nu * covariance
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from sslcheck.losses.pair import Batch, PairStats, View

TERMS = ("invariance", "variance", "covariance", "total")


@dataclass(frozen=True)
class VICRegParams:
    """VICReg conventions; defaults are the authors' code (`lambda_` is the JSON key `lambda`)."""

    lambda_: float = 25.0
    mu: float = 25.0
    nu: float = 1.0
    gamma: float = 1.0
    eps: float = 1e-4
    var_ddof: Literal[0, 1] = 1
    var_views: Literal["mean", "sum"] = "mean"

    def weights(self) -> dict[str, float]:
        """The factor each unweighted term carries in `total`."""
        return {"invariance": self.lambda_, "variance": self.mu, "covariance": self.nu}


def vicreg_terms_of(stats: PairStats, p: VICRegParams) -> dict[str, Tensor]:
    """Every VICReg term (unweighted) and the weighted total, from a batch or the whole set."""
    n, d = stats.n, stats.d

    def hinge(view: View) -> Tensor:
        std = torch.sqrt(stats.col_var(view, p.var_ddof) + p.eps)
        return torch.relu(p.gamma - std).mean(-1)

    def cov(view: View) -> Tensor:
        return stats.cov_offdiag_sq(view) / (n - 1) ** 2 / d

    invariance = stats.sq_diff_mean()
    variance = (0.5 if p.var_views == "mean" else 1.0) * (hinge("a") + hinge("b"))
    covariance = cov("a") + cov("b")
    total = p.lambda_ * invariance + p.mu * variance + p.nu * covariance
    return {"invariance": invariance, "variance": variance, "covariance": covariance, "total": total}


def vicreg_terms(za: Tensor, zb: Tensor, params: VICRegParams | None = None) -> dict[str, Tensor]:
    """VICReg terms of a batch za, zb: [N, D] (differentiable); [..., N, D] gives one value per batch.

    >>> import torch
    >>> z = torch.ones(4, 3, dtype=torch.float64)      # complete collapse: 25 * 0.99
    >>> round(vicreg_terms(z, z)["total"].item(), 10)
    24.75
    """
    return vicreg_terms_of(Batch(za, zb), params or VICRegParams())


def vicreg(za: Tensor, zb: Tensor, params: VICRegParams | None = None) -> Tensor:
    """The VICReg loss of a batch (the weighted total), usable as a training loss."""
    return vicreg_terms(za, zb, params)["total"]

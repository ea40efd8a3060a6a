"""Per-dimension spread of one view and the cross-view correlation, from merged moments.

All values are whole-set (all N rows) and unbiased (ddof 1), read from the float64 co-moments and
element moments that the engine merged with Chan et al.'s pairwise update (`sslcheck.stats`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from sslcheck.stats import ElementMoments


def dimension_std(m2: Tensor, n: int) -> np.ndarray:
    """std_k = sqrt(M2_kk / (N - 1)) [D] from the centred co-moment M2 [D, D]."""
    return (m2.diagonal().to(torch.float64).clamp_min(0) / (n - 1)).sqrt().cpu().numpy()


def dead_dims(std: np.ndarray, rel: float = 0.01, floor: float = 1e-8) -> int:
    """#{k : std_k <= max(rel * median(std), floor)}: dimensions that barely vary (sslcheck).

    Relative to the median so it is scale-free; the absolute floor only matters below std ~1e-6.

    >>> dead_dims(np.array([1.0, 1.0, 0.0, 0.005]))
    2
    """
    return int((std <= max(rel * float(np.median(std)), floor)).sum())


def std_metrics(std: np.ndarray, rel: float, floor: float) -> dict[str, float | int]:
    """std_mean, std_min, std_median, dead_dims and dead_fraction of one view."""
    dead = dead_dims(std, rel, floor)
    return {
        "std_mean": float(std.mean()),
        "std_min": float(std.min()),
        "std_median": float(np.median(std)),
        "dead_dims": dead,
        "dead_fraction": dead / std.shape[0],
    }


def l2_std(unit: ElementMoments) -> float:
    """mean_k std_k(n(Z)): the per-dimension std (ddof 1) of the L2-normalised rows, averaged.

    lightly's `std_of_l2_normalized` (SimSiam, Chen & He, arXiv:2011.10566) with the unbiased std;
    1/sqrt(D) for an isotropic representation, 0 when every row points the same way.
    """
    return float(unit.var(ddof=1).sqrt().mean())


def l2_metrics(unit: ElementMoments) -> dict[str, float]:
    """l2_std and l2_std_ratio = l2_std * sqrt(D) (1 isotropic, 0 collapsed to a point)."""
    value = l2_std(unit)
    return {"l2_std": value, "l2_std_ratio": value * math.sqrt(unit.mean.shape[0])}


def cross_correlation(m_ab: Tensor, m_aa: Tensor, m_bb: Tensor) -> np.ndarray:
    """Standardised cross-correlation [D, D]: M_ab / sqrt(diag(M_aa) diag(M_bb)^T).

    Barlow Twins' matrix over the whole set; 0 where either dimension's std is 0, clipped to
    [-1, 1] against rounding.
    """
    scale = torch.outer(m_aa.diagonal().clamp_min(0).sqrt(), m_bb.diagonal().clamp_min(0).sqrt())
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    corr = torch.where(scale > 0, m_ab / safe, torch.zeros_like(m_ab)).clamp(-1.0, 1.0)
    return corr.to(torch.float64).cpu().numpy()

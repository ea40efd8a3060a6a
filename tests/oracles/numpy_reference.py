"""Straightforward float64 numpy references of the losses, written from spec/losses.md only.

Deliberately naive: explicit D x D cross-correlation / covariance matrices, an explicit
2N x 2N similarity matrix with the self term masked, no Gram tricks, no merged moments. The
tests compare sslcheck's implementations (batch, whole set, engine) with these.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def _off_sq(m: np.ndarray) -> float:
    return float((m[~np.eye(m.shape[0], dtype=bool)] ** 2).sum())


def vicreg(
    za: np.ndarray,
    zb: np.ndarray,
    *,
    lambda_: float = 25.0,
    mu: float = 25.0,
    nu: float = 1.0,
    gamma: float = 1.0,
    eps: float = 1e-4,
    var_ddof: int = 1,
    var_views: str = "mean",
) -> dict[str, float]:
    """VICReg terms (spec §1)."""
    _n, d = za.shape

    def hinge(z: np.ndarray) -> float:
        return float(np.maximum(gamma - np.sqrt(z.var(axis=0, ddof=var_ddof) + eps), 0).mean())

    def cov(z: np.ndarray) -> float:
        return _off_sq(np.cov(z, rowvar=False, ddof=1)) / d

    invariance = float(((za - zb) ** 2).mean())
    variance = (0.5 if var_views == "mean" else 1.0) * (hinge(za) + hinge(zb))
    covariance = cov(za) + cov(zb)
    total = lambda_ * invariance + mu * variance + nu * covariance
    return {"invariance": invariance, "variance": variance, "covariance": covariance, "total": total}


def standardize(z: np.ndarray, norm: str, eps: float) -> np.ndarray:
    """Column standardisation of one view by Barlow's `norm` (spec §2)."""
    zc = z - z.mean(axis=0)
    if norm in ("bn", "nx"):
        return zc / np.sqrt(z.var(axis=0, ddof=0) + eps)
    if norm == "unbiased":
        return zc / np.sqrt(z.var(axis=0, ddof=1) + eps)
    if norm == "tf":
        std = np.sqrt(z.var(axis=0, ddof=0))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(std > 0, zc / std, 0.0)
    raise ValueError(norm)


def barlow(
    za: np.ndarray,
    zb: np.ndarray,
    *,
    lambda_: float = 0.0051,
    scale: float = 1.0,
    margin: float = 0.0,
    norm: str = "bn",
    eps: float = 1e-5,
    quadra_bug: bool = False,
) -> dict[str, float]:
    """Barlow Twins terms (spec §2); `quadra_bug` as quadra 2.9 ships it: c from std(zb), raw zb."""
    n = za.shape[0]
    if quadra_bug:
        # standardize(zb)'s columns sum to 0, so its product with the raw zb equals its product
        # with the centred zb; the centred form keeps the digits a large mean would cost (exact
        # rational arithmetic agreed with it to 1e-16 where the raw form was 6e-8 off)
        with np.errstate(divide="ignore", invalid="ignore"):
            c = standardize(zb, norm, eps).T @ (zb - zb.mean(axis=0)) / n
    else:
        c = standardize(za, norm, eps).T @ standardize(zb, norm, eps) / n
    on = float(((1 - np.diag(c)) ** 2).sum())
    off = _off_sq(c)
    return {"on_diagonal": on, "off_diagonal": off, "total": scale * (on + lambda_ * off) + margin}


def normalize_rows(x: np.ndarray, mode: str) -> np.ndarray:
    sq = (x * x).sum(axis=1, keepdims=True)
    if mode == "torch":
        return x / np.maximum(np.sqrt(sq), 1e-12)
    if mode == "tf":
        return x / np.sqrt(np.maximum(sq, 1e-12))
    if mode == "nx":
        return x / np.sqrt(sq + 1e-8)
    raise ValueError(mode)


def nt_xent(
    za: np.ndarray,
    zb: np.ndarray,
    *,
    tau: float = 0.1,
    reduction: str = "sum_directions",
    normalize: str = "tf",
) -> dict[str, float]:
    """NT-Xent (spec §3) from the explicit 2N x 2N similarity matrix, self term masked."""
    n = za.shape[0]
    w = np.concatenate([normalize_rows(za, normalize), normalize_rows(zb, normalize)])
    s = w @ w.T / tau
    positive = s[np.arange(2 * n), (np.arange(2 * n) + n) % (2 * n)]
    np.fill_diagonal(s, -np.inf)
    loss = logsumexp(s, axis=1) - positive
    mean = float(loss.mean())
    return {"total": mean if reduction == "mean" else 2 * mean}


REFERENCES = {"vicreg": vicreg, "barlow": barlow, "nt_xent": nt_xent}


def reference(loss: str, za: np.ndarray, zb: np.ndarray, params: object) -> dict[str, float]:
    """The reference terms of `loss` under an sslcheck params dataclass (`lambda_` etc.)."""
    import dataclasses

    return REFERENCES[loss](za, zb, **dataclasses.asdict(params))

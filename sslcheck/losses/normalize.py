"""Row L2 normalisation in each library's numeric convention."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

RowNorm = Literal["torch", "tf", "nx"]
TORCH_SQ_GUARD = 1e-24  # F.normalize's eps = 1e-12 on the norm, as a floor on its square
TF_SQ_GUARD = 1e-12  # tf.math.l2_normalize's epsilon (on the squared norm)


def inverse_norms(sq: Tensor, mode: RowNorm = "torch") -> Tensor:
    """The factor that normalises a row of squared L2 norm `sq`, guarded as the named library
    guards it: torch (`F.normalize`) 1 / max(||x||, 1e-12); tf (`tf.math.l2_normalize`)
    1 / sqrt(max(||x||^2, 1e-12)); nx (Elixir Nx) 1 / sqrt(||x||^2 + 1e-8)."""
    if mode == "torch":  # max(sqrt(sq), 1e-12) as sqrt(max(sq, 1e-24)): the same value, and a finite gradient at 0
        return sq.clamp_min(TORCH_SQ_GUARD).rsqrt()
    if mode == "tf":  # the same rsqrt as torch's wherever sq >= TF_SQ_GUARD
        return sq.clamp_min(TF_SQ_GUARD).rsqrt()
    if mode == "nx":
        return (sq + 1e-8).rsqrt()
    raise ValueError(f"unknown row normalisation {mode!r}")


def row_sq_norms(x: Tensor) -> Tensor:
    """||x_i||^2 of each row [..., N, D] -> [..., N], without an [N, D] temporary."""
    return torch.linalg.vector_norm(x, dim=-1).square()


def normalize_rows(x: Tensor, mode: RowNorm = "torch", sq: Tensor | None = None) -> Tensor:
    """Divide each row by its L2 norm, guarded as the named library guards it (`inverse_norms`);
    `sq`: the rows' squared norms (`row_sq_norms`), where the caller already has them."""
    return x * inverse_norms(row_sq_norms(x) if sq is None else sq, mode).unsqueeze(-1)

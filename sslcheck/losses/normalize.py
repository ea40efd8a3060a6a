"""Row L2 normalisation in each library's numeric convention."""

from __future__ import annotations

from typing import Literal

from torch import Tensor

RowNorm = Literal["torch", "tf", "nx"]


def normalize_rows(x: Tensor, mode: RowNorm = "torch") -> Tensor:
    """Divide each row by its L2 norm, guarded as the named library guards it.

    torch (`F.normalize`): x / max(||x||, 1e-12); tf (`tf.math.l2_normalize`):
    x / sqrt(max(||x||^2, 1e-12)); nx (Elixir Nx): x / sqrt(||x||^2 + 1e-8).
    """
    sq = (x * x).sum(-1, keepdim=True)
    if mode == "torch":
        return x / sq.sqrt().clamp_min(1e-12)
    if mode == "tf":
        return x * sq.clamp_min(1e-12).rsqrt()
    if mode == "nx":
        return x / (sq + 1e-8).sqrt()
    raise ValueError(f"unknown row normalisation {mode!r}")

"""MMCR, maximum manifold capacity representations, with one view per side.

Yerxa, Kuang, Simoncelli & Chung, "Learning Efficient Coding of Natural Images with Maximum
Manifold Capacity Representations", NeurIPS 2023, arXiv:2303.03307; matches lightly's `MMCRLoss`
(lightly/loss/mmcr_loss.py) called with online = za[:, None], momentum = zb[:, None] (k = 1 view
each). The loss does not normalise its inputs (lightly's MMCR models normalise before it):

    centroid_nuclear = ||(za + zb) / 2||_*                    nuclear norm of the N x D centroid matrix
    local_nuclear    = mean_i ||[za_i; zb_i]||_*              each row's 2 x D matrix
    total            = -centroid_nuclear + lambda * local_nuclear

For a 2 x D matrix [a; b], with b_perp = b - (a.b / ||a||^2) a,
||[a; b]||_* = s1 + s2 = sqrt(||a||^2 + ||b||^2 + 2 s1 s2) and s1 s2 = sqrt(det of the 2 x 2 Gram)
= ||a|| ||b_perp|| (accurate where a and b are nearly parallel, unlike sqrt(aa bb - ab^2)).
The N x D nuclear norm is the sum of `torch.linalg.svdvals`; a whole set with more than
`block_elems / D` rows is first reduced, block by block, to a D x D triangular factor R with the
same singular values (tall-skinny QR): O(block_elems + D^2) memory, never N x N, and backward
stable, unlike square roots of the D x D Gram's eigenvalues (sqrt(eps) ||Z|| per zero value).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from sslcheck.losses.blocks import BLOCK_ELEMS, row_blocks
from sslcheck.losses.pair import Batch, PairStats

TERMS = ("centroid_nuclear", "local_nuclear", "total")


@dataclass(frozen=True)
class MMCRParams:
    """MMCR conventions; defaults are lightly's `MMCRLoss` (`lambda_` is the JSON key `lambda`, lightly's `lmda`)."""

    lambda_: float = 5e-3

    def weights(self) -> dict[str, float]:
        return {"centroid_nuclear": -1.0, "local_nuclear": self.lambda_}


def centroid_nuclear_norm(za: Tensor, zb: Tensor, block_elems: int = BLOCK_ELEMS) -> Tensor:
    """||(za + zb) / 2||_* for za, zb: [N, D], reading at most `block_elems` centroid entries at a
    time; of each batch for [..., N, D] (whole, as batches are small)."""
    n, d = za.shape[-2:]
    if za.ndim > 2 or n * d <= block_elems or n <= d:
        return torch.linalg.svdvals((za + zb) / 2).sum(-1)
    # QR's R, unlike mode "r", carries a gradient
    mode = "reduced" if torch.is_grad_enabled() and (za.requires_grad or zb.requires_grad) else "r"
    r = za.new_zeros((0, d))
    for start, stop in row_blocks(n, d, max(block_elems, d * d)):
        stacked = torch.cat([r, (za[start:stop] + zb[start:stop]) / 2])
        r = torch.linalg.qr(stacked, mode=mode).R
    return torch.linalg.svdvals(r).sum()


def pair_nuclear_norms(za: Tensor, zb: Tensor) -> Tensor:
    """[..., N]: the nuclear norm of each row's 2 x D matrix [za_i; zb_i], in closed form."""
    aa, bb = (za * za).sum(-1), (zb * zb).sum(-1)
    along = (za * zb).sum(-1) / aa.clamp_min(torch.finfo(za.dtype).tiny)
    b_perp = zb - along.unsqueeze(-1) * za
    s1s2 = aa.sqrt() * b_perp.norm(dim=-1)
    return (aa + bb + 2 * s1s2).sqrt()


def mmcr_terms_of(stats: PairStats, p: MMCRParams, block_elems: int = BLOCK_ELEMS) -> dict[str, Tensor]:
    """MMCR terms (unweighted) and total of the rows in `stats` (a batch [..., B, D], or a whole
    set with rows)."""
    za, zb = stats.rows("a"), stats.rows("b")
    centroid = centroid_nuclear_norm(za, zb, block_elems)
    local = pair_nuclear_norms(za, zb).mean(-1)
    return {"centroid_nuclear": centroid, "local_nuclear": local, "total": -centroid + p.lambda_ * local}


def mmcr_terms(za: Tensor, zb: Tensor, params: MMCRParams | None = None) -> dict[str, Tensor]:
    """MMCR terms of a batch za, zb: [N, D] (differentiable); [..., N, D]: one per batch.

    >>> import torch
    >>> z = torch.tensor([[3.0, 0.0], [0.0, 4.0]], dtype=torch.float64)   # za = zb: centroid = z
    >>> {k: round(v.item(), 10) for k, v in mmcr_terms(z, z, MMCRParams(lambda_=1.0)).items()}
    {'centroid_nuclear': 7.0, 'local_nuclear': 4.9497474683, 'total': -2.0502525317}
    """
    return mmcr_terms_of(Batch(za, zb), params or MMCRParams())


def mmcr(za: Tensor, zb: Tensor, params: MMCRParams | None = None) -> Tensor:
    """The MMCR loss of a batch (lightly `MMCRLoss` with one view per side), usable as a training loss."""
    return mmcr_terms(za, zb, params)["total"]

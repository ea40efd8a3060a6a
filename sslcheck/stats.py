"""Mergeable sufficient statistics: counts, means and centred (co-)moments, merged in float64.

Blocks are centred in their own dtype and merged with the pairwise update of Chan, Golub & LeVeque
(1979): for parts A and B with delta = mean_B - mean_A and n = n_A + n_B,

    mean = mean_A + delta * n_B / n
    M    = M_A + M_B + (n_A n_B / n) * outer(delta_x, delta_y)

Never ``sum(x x^T) - n mu mu^T``: that cancels catastrophically for data with a large offset.
A float32 block's mean is itself inexact, so the residual mean r of the centred block is added
back exactly: ``M_block = Xc^T Yc - n r_x r_y^T`` (r is tiny, so nothing cancels).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

F64 = torch.float64


def _centre(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Centre a block in its own dtype: (centred block, exact float64 mean, residual mean of xc)."""
    approx = x.mean(0)
    xc = x - approx
    residual = xc.sum(0, dtype=F64) / x.shape[0]
    return xc, approx.to(F64) + residual, residual


@dataclass
class PairMoments:
    """Count, column means and centred co-moments of two views za, zb: [N, D].

    `m_aa = sum_i (a_i - mean_a)(a_i - mean_a)^T` (likewise `m_bb`, and `m_ab` across views), all
    float64 [D, D]. `cov_a = m_aa / (N - 1)`; the uncentred Gram is `m_aa + N mean_a mean_a^T`.
    `sq_diff = sum_i ||a_i - b_i||^2` (float64 scalar), kept apart because
    tr(m_aa) + tr(m_bb) - 2 tr(m_ab) cancels when the views are nearly equal.
    """

    n: int
    mean_a: Tensor
    mean_b: Tensor
    m_aa: Tensor
    m_bb: Tensor
    m_ab: Tensor
    sq_diff: Tensor

    @classmethod
    def empty(cls, d: int, device: torch.device | str = "cpu") -> PairMoments:
        z = torch.zeros(d, dtype=F64, device=device)
        zz = torch.zeros(d, d, dtype=F64, device=device)
        zero = torch.zeros((), dtype=F64, device=device)
        return cls(0, z, z.clone(), zz, zz.clone(), zz.clone(), zero)

    @classmethod
    def of(cls, xa: Tensor, xb: Tensor) -> PairMoments:
        """Moments of one block, its three products computed in the block's dtype."""
        moments = cls.empty(xa.shape[1], xa.device)
        moments.update(xa, xb)
        return moments

    def update(self, xa: Tensor, xb: Tensor) -> None:
        """In place: absorb the rows of one block (the engine's per-chunk step).

        The block is centred about its mean in its own dtype and its three products are taken
        there; the float64 state then absorbs them in one pass per matrix, no float64 temporaries.
        """
        ca, mean_a, res_a = _centre(xa)
        cb, mean_b, res_b = _centre(xb)
        sq_diff = (xa - xb).pow(2).sum(dtype=F64)
        self._absorb(xa.shape[0], mean_a, mean_b, ca.T @ ca, cb.T @ cb, ca.T @ cb, sq_diff, res_a, res_b)

    def merge(self, other: PairMoments) -> PairMoments:
        """The moments of both parts together (Chan et al.'s pairwise update); neither is changed."""
        out = PairMoments(
            self.n,
            self.mean_a.clone(),
            self.mean_b.clone(),
            self.m_aa.clone(),
            self.m_bb.clone(),
            self.m_ab.clone(),
            self.sq_diff.clone(),
        )
        out._absorb(other.n, other.mean_a, other.mean_b, other.m_aa, other.m_bb, other.m_ab, other.sq_diff)
        return out

    def _absorb(
        self,
        n: int,
        mean_a: Tensor,
        mean_b: Tensor,
        p_aa: Tensor,
        p_bb: Tensor,
        p_ab: Tensor,
        sq_diff: Tensor,
        res_a: Tensor | None = None,
        res_b: Tensor | None = None,
    ) -> None:
        """In place: add a part of `n` rows with exact means `mean_*` whose co-moments `p_*` were taken
        about `mean - res` (res = 0: about the means themselves). Per matrix, one pass:

            M += P - n r_x r_y^T + (n_self n / n_total) d_x d_y^T,   d = mean - mean_self

        the part's own correction and Chan's term together as one rank-2 update.
        """
        if n == 0:
            return
        total = self.n + n
        w = self.n * n / total
        da, db = mean_a - self.mean_a, mean_b - self.mean_b
        ra = torch.zeros_like(da) if res_a is None else res_a
        rb = torch.zeros_like(db) if res_b is None else res_b
        for m, p, (rx, ry), (dx, dy) in (
            (self.m_aa, p_aa, (ra, ra), (da, da)),
            (self.m_bb, p_bb, (rb, rb), (db, db)),
            (self.m_ab, p_ab, (ra, rb), (da, db)),
        ):
            m.add_(p).addmm_(torch.stack([rx, dx], 1), torch.stack([-n * ry, w * dy]))
        self.mean_a.add_(da, alpha=n / total)
        self.mean_b.add_(db, alpha=n / total)
        self.sq_diff.add_(sq_diff)
        self.n = total


@dataclass
class ElementMoments:
    """Count, mean and centred second moment of each element of a stream of [n, *shape] blocks.

    Welford / Chan merge per element; `var(ddof)` = m2 / (n - ddof). Used for the per-dimension
    moments of L2-normalised rows and for the positive-pair cosines.
    """

    n: int
    mean: Tensor
    m2: Tensor

    @classmethod
    def empty(cls, shape: tuple[int, ...] = (), device: torch.device | str = "cpu") -> ElementMoments:
        return cls(0, torch.zeros(shape, dtype=F64, device=device), torch.zeros(shape, dtype=F64, device=device))

    @classmethod
    def of(cls, x: Tensor) -> ElementMoments:
        xc, mean, res = _centre(x)
        m2 = (xc * xc).sum(0, dtype=F64) - x.shape[0] * res * res
        return cls(x.shape[0], mean, m2)

    def merge(self, other: ElementMoments) -> ElementMoments:
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        return ElementMoments(
            n,
            self.mean + delta * (other.n / n),
            self.m2 + other.m2 + delta * delta * (self.n * other.n / n),
        )

    def var(self, ddof: int = 1) -> Tensor:
        return self.m2.clamp_min(0) / (self.n - ddof)

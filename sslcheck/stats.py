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
        n = xa.shape[0]
        self._absorb(
            n,
            mean_a,
            mean_b,
            ca.T @ ca,
            cb.T @ cb,
            ca.T @ cb,
            (xa - xb).pow(2).sum(dtype=F64),
            res_a[None],
            res_b[None],
            torch.full((1,), -float(n), dtype=F64, device=res_a.device),
        )

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
        offsets_a: Tensor | None = None,
        offsets_b: Tensor | None = None,
        weights: Tensor | None = None,
    ) -> None:
        """In place: add a part of `n` rows with exact means `mean_*` whose co-moments are
        M_xy = P_xy + U_x^T diag(weights) U_y (offset rows U [m, D]: the corrections that move
        products taken about other points to the part's mean; none when P is already about it).
        With Chan's term as one more row, each matrix takes one pass:

            M += P + U_x^T diag(c) U_y,   U = [offsets; mean - mean_self],  c = [weights; n_self n / n_total]
        """
        if n == 0:
            return
        total = self.n + n
        da, db = mean_a - self.mean_a, mean_b - self.mean_b
        chan = torch.tensor([self.n * n / total], dtype=F64, device=da.device)
        ua, ub, c = da[None], db[None], chan
        if offsets_a is not None and offsets_b is not None and weights is not None:
            ua, ub, c = torch.cat([offsets_a, ua]), torch.cat([offsets_b, ub]), torch.cat([weights, chan])
        for m, p, ux, uy in ((self.m_aa, p_aa, ua, ua), (self.m_bb, p_bb, ub, ub), (self.m_ab, p_ab, ua, ub)):
            m.add_(p).addmm_(ux.T * c, uy)
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
        moments = cls.empty(tuple(x.shape[1:]), x.device)
        moments.update(x)
        return moments

    def update(self, x: Tensor) -> None:
        """In place: absorb a block [n, *shape] (centred in its own dtype, merged in float64).

        In place, so a long pass allocates no long-lived state between its transient tensors
        (such allocations pinned the heap and made memory grow with N).
        """
        xc, mean, res = _centre(x)
        self._absorb(x.shape[0], mean, (xc * xc).sum(0, dtype=F64) - x.shape[0] * res * res)

    def merge(self, other: ElementMoments) -> ElementMoments:
        """Both parts together (Chan et al.); neither is changed."""
        out = ElementMoments(self.n, self.mean.clone(), self.m2.clone())
        out._absorb(other.n, other.mean, other.m2)
        return out

    def _absorb(self, n: int, mean: Tensor, m2: Tensor) -> None:
        if n == 0:
            return
        total = self.n + n
        delta = mean - self.mean
        self.m2.add_(m2).add_(delta * delta, alpha=self.n * n / total)
        self.mean.add_(delta, alpha=n / total)
        self.n = total

    def var(self, ddof: int = 1) -> Tensor:
        return self.m2.clamp_min(0) / (self.n - ddof)

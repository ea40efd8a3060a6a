"""Mergeable sufficient statistics: counts, means and centred (co-)moments, merged in float64.

Blocks are centred in their own dtype and merged with the pairwise update of Chan, Golub & LeVeque
(1979): for parts A and B with delta = mean_B - mean_A and n = n_A + n_B,

    mean = mean_A + delta * n_B / n
    M    = M_A + M_B + (n_A n_B / n) * outer(delta_x, delta_y)

Never ``sum(x x^T) - n mu mu^T``: that cancels catastrophically for data with a large offset.
A float32 block's mean is itself inexact, so the residual mean r of the centred block is added
back: ``M_block = Xc^T Yc - n r_x r_y^T`` (r is tiny, so nothing cancels). Block reductions run
in the block's dtype (torch's cascade sums: error ~ eps log2(rows) relative to the column's
spread) and only their D-sized results are widened: a float64 copy of a block costs more than
its products' merge. A pass's blocks go through `BlockSums`: their products summed in the blocks'
dtype, the float64 state taking a group of `ABSORB_EVERY` blocks in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from sslcheck.blas import TORCH, Products

F64 = torch.float64
ABSORB_EVERY = 16  # blocks per float64 absorb in a pass (`BlockSums`)
ROUNDING_ULPS = 4  # `PairMoments.without_rounding_spread`: spreads under 4 ulps of the mean are rounding
SHIFT_SPREADS = 4  # `ElementMoments.update`: a block's mean within 1/4 of its spread of the shift
MATVEC_LOOP_MIN = 1 << 16  # entries of a CPU matrix from which `matvec` multiplies each on its own


def column_sums(x: Tensor) -> Tensor:
    """sum_i x_i over the rows of x [..., N, D] -> [..., D] (of a vector [N]: its sum).

    A matrix-vector product with ones: BLAS reads x once at memory speed, where torch's
    reduction over the rows of a row-major block ran at half that ([2048, 512]: 0.21 against
    0.32 ms; [4096, 2048]: 2.2 against 4.7 ms; one thread, data out of cache). It accumulates
    as the D x D products do (error ~ sqrt(N) eps, where torch's cascade sum has ~ eps log2 N).
    """
    return x.new_ones(x.shape[-2] if x.ndim > 1 else x.shape[0]) @ x


def matvec(m: Tensor, v: Tensor) -> Tensor:
    """m @ v for matrices m [..., R, C] and vectors v [..., C] (the same leading shape) -> [..., R].

    On the CPU each matrix of at least MATVEC_LOOP_MIN entries takes its own matrix-vector
    product: a batched product with one column ran at half that speed ([8, 512, 512]: 0.62
    against 0.32 ms; [4, 256, 512]: 0.14 against 0.06 ms; one thread, data in cache or not).
    """
    lead = m.shape[:-2]
    if m.ndim == 2:
        return torch.mv(m, v)
    one_by_one = m.device.type == "cpu" and m.shape[-2] * m.shape[-1] >= MATVEC_LOOP_MIN
    if not one_by_one or v.shape[:-1] != lead or not lead.numel():
        return (m @ v.unsqueeze(-1)).squeeze(-1)
    rows = [torch.mv(a, b) for a, b in zip(m.reshape(-1, *m.shape[-2:]), v.reshape(-1, v.shape[-1]), strict=True)]
    return torch.stack(rows).reshape(*lead, m.shape[-2])


def centred_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """The rows of x [..., n, D] about their column means as rounded in x's dtype, and those
    means [..., 1, D]."""
    mean = (column_sums(x) / x.shape[-2]).unsqueeze(-2)
    return x - mean, mean


def _sum_rows(x: Tensor) -> Tensor:
    """`column_sums` of a block [n, *shape] -> [*shape]."""
    return column_sums(x.reshape(x.shape[0], -1)).reshape(x.shape[1:])


def _centre(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Centre a block [n, *shape] in its own dtype: (centred block, float64 mean, residual mean
    of xc)."""
    n = x.shape[0]
    approx = _sum_rows(x) / n
    xc = x - approx
    residual = _sum_rows(xc).to(F64) / n
    return xc, approx.to(F64) + residual, residual


def _moments_about(x: Tensor, shift: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """A block [n, *shape]'s float64 mean and centred sum of squares, from its differences from
    `shift` [*shape] in its own dtype; and the mean's offset from the shift."""
    n = x.shape[0]
    d = x - shift
    offset = _sum_rows(d).to(F64) / n
    m2 = _sum_rows(d.square_()).to(F64) - n * offset * offset
    return shift.to(F64) + offset, m2, offset


def squared_differences(xa: Tensor, xb: Tensor) -> Tensor:
    """||a_i - b_i||^2 of each row [..., N, D] -> [..., N], in the rows' dtype (the difference's
    norm: one pass over it, not a square and a sum: 0.91 against 1.14 ms at [2048, 512])."""
    return torch.linalg.vector_norm(xa - xb, dim=-1).square()


def squared_difference_sum(xa: Tensor, xb: Tensor, rows: Tensor | None = None) -> Tensor:
    """sum_i ||a_i - b_i||^2 as a float64 scalar: row sums in the block's dtype (`rows`, where the
    caller has them), widened before the sum over rows (a float32 total of large rows would
    overflow where no row does). It is finite unless a value is NaN or Inf or a row's sum
    overflows the block's dtype."""
    return (squared_differences(xa, xb) if rows is None else rows).to(F64).sum()


@dataclass
class BatchParts:
    """A block's rows taken in parts (its batches), each centred about its own mean as rounded,
    m_p. As each group of parts arrives, its rows still in cache, their products about those
    points are added into `into` (x^T x and y^T y, upper triangles, and x^T y, in the parts'
    dtype: `BlockSums`' sums) by `products`; kept per part: m_p, the sums S_p of its rows about it
    (~0, not 0: a rounded mean is not the exact one) and its row count n_p.

    The block's exact mean is sum_p (n_p m_p + S_p) / n, and its products about any point c follow
    from the parts', exactly (`recentre`):

        sum_i (x_i - c_x)(y_i - c_y)^T = sum_p [P_p + S_x,p d_y,p^T + d_x,p S_y,p^T + n_p d_x,p d_y,p^T],
        P_p = sum_{i in p} (x_i - m_x,p)(y_i - m_y,p)^T,   d_p = m_p - c
    """

    into: tuple[Tensor, Tensor, Tensor]
    products: Products = TORCH
    counts: list[Tensor] = field(default_factory=list)
    means_a: list[Tensor] = field(default_factory=list)
    means_b: list[Tensor] = field(default_factory=list)
    sums_a: list[Tensor] = field(default_factory=list)
    sums_b: list[Tensor] = field(default_factory=list)
    total_rows: int = 0  # the counts' sum, kept on the host: no device round trip to check it

    def add(
        self, centred_a: Tensor, centred_b: Tensor, means_a: Tensor, means_b: Tensor, cross: Tensor | None = None
    ) -> None:
        """Parts [..., rows, D] centred about their means [..., 1, D]; `cross`: their cross products
        [..., D, D], where the caller took them (else the block's rows give them here)."""
        rows, d = centred_a.shape[-2:]
        flat_a, flat_b = centred_a.reshape(-1, d), centred_b.reshape(-1, d)
        aa, bb, ab = self.into
        self.products.add_self_products([flat_a, flat_b], [aa, bb])
        if cross is None:
            self.products.add_cross_product(flat_a, flat_b, ab)
        else:
            flat = cross.reshape(-1, d * d)  # summed into ab as a product with ones, like `column_sums`
            ab.view(1, -1).addmm_(flat.new_ones(1, flat.shape[0]), flat)  # [4, 512, 512]: 189 against 298 us
        for store, x in (
            (self.means_a, means_a),
            (self.means_b, means_b),
            (self.sums_a, column_sums(centred_a)),
            (self.sums_b, column_sums(centred_b)),
        ):
            store.append(x.reshape(-1, d))
        parts = self.means_a[-1].shape[0]
        self.counts.append(torch.full((parts,), float(rows), dtype=F64, device=centred_a.device))
        self.total_rows += parts * rows

    def exact_means(self, rows: int) -> tuple[Tensor, Tensor]:
        """The block's exact means (float64 [D] each), from its parts: no pass over its rows."""
        if self.total_rows != rows:
            raise ValueError(f"the parts hold {self.total_rows} rows, the block {rows}")
        counts = torch.cat(self.counts).unsqueeze(-1)
        return tuple(  # type: ignore[return-value]
            (torch.cat(means).to(F64) * counts + torch.cat(sums).to(F64)).sum(0) / rows
            for means, sums in ((self.means_a, self.sums_a), (self.means_b, self.sums_b))
        )

    def recentre(self, centre_a: Tensor, centre_b: Tensor) -> None:
        """In place: the products added into `into`, about the parts' points, moved to be about
        (centre_a, centre_b): one rank-2p update of each matrix."""
        dtype = self.into[0].dtype
        da = torch.cat(self.means_a).to(dtype) - centre_a.to(dtype)
        db = torch.cat(self.means_b).to(dtype) - centre_b.to(dtype)
        sa, sb = torch.cat(self.sums_a).to(dtype), torch.cat(self.sums_b).to(dtype)
        counts = torch.cat(self.counts).to(dtype).unsqueeze(-1)
        pairs = (((sa, da), (sa, da)), ((sb, db), (sb, db)), ((sa, da), (sb, db)))
        for out, ((sx, dx), (sy, dy)) in zip(self.into, pairs, strict=True):
            out.addmm_(torch.cat([sx, dx]).T, torch.cat([dy, sy + counts * dy]))


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

    def update(self, xa: Tensor, xb: Tensor, sq_diff: Tensor | None = None, products: Products = TORCH) -> None:
        """In place: absorb the rows of one block (`BlockSums` absorbs a pass's blocks a group at a time).

        The block is centred about its mean in its own dtype and its three products are taken
        there; the float64 state then absorbs them in one pass per matrix, no float64 temporaries.
        `sq_diff`: the block's `squared_difference_sum`, where the caller already has it;
        `products`: how the block's x^T x, y^T y and x^T y are taken (`sslcheck.blas`).
        """
        BlockSums(self, xa.dtype, products, every=1).add(xa, xb, sq_diff=sq_diff)

    def without_rounding_spread(self, eps: float, ulps: float = ROUNDING_ULPS) -> PairMoments:
        """A copy in which each dimension whose spread is under `ulps` units in the last place of
        its mean (eps: the compute dtype's) has exactly zero co-moments: that much is what the
        rounded batch means leave of a constant dimension (a float64 constant view of 5000 rows
        read std 1.4e-17 and an effective rank of 1.00005), not data."""
        out = PairMoments(
            self.n, self.mean_a, self.mean_b, self.m_aa.clone(), self.m_bb.clone(), self.m_ab.clone(), self.sq_diff
        )
        flat_a, flat_b = (
            m.diagonal() <= self.n * (ulps * eps * mean.abs()) ** 2
            for m, mean in ((self.m_aa, self.mean_a), (self.m_bb, self.mean_b))
        )
        for m, flat in ((out.m_aa, flat_a), (out.m_bb, flat_b)):
            m[flat] = 0.0
            m[:, flat] = 0.0
        out.m_ab[flat_a] = 0.0
        out.m_ab[:, flat_b] = 0.0
        return out

    def is_finite(self) -> bool:
        """False where a NaN/Inf or an overflow reached the state."""
        parts = (self.mean_a, self.mean_b, self.m_aa, self.m_bb, self.m_ab, self.sq_diff)
        return all(bool(torch.isfinite(x).all()) for x in parts)

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
        chan = torch.full((1,), self.n * n / total, dtype=F64, device=da.device)
        ua, ub, c = da[None], db[None], chan
        if offsets_a is not None and offsets_b is not None and weights is not None:
            ua, ub, c = torch.cat([offsets_a, ua]), torch.cat([offsets_b, ub]), torch.cat([weights, chan])
        for m, p, ux, uy in ((self.m_aa, p_aa, ua, ua), (self.m_bb, p_bb, ub, ub), (self.m_ab, p_ab, ua, ub)):
            m.add_(p if p.dtype == F64 else p.to(F64)).addmm_(ux.T * c, uy)
        self.mean_a.add_(da, alpha=n / total)
        self.mean_b.add_(db, alpha=n / total)
        self.sq_diff.add_(sq_diff)
        self.n = total


class BlockSums:
    """A pass's blocks absorbed into `moments` a group of `every` blocks at a time: each block's
    three products are added into sums in the blocks' dtype as BLAS writes them (`Products.add_*`:
    no temporary), and the float64 state takes one pass per matrix per group instead of per block.

    Each block c's products are taken about its rounded mean m_c (the block centred there, or its
    parts' products moved there: `BatchParts.recentre`); its exact mean mu_c = m_c + r_c and its
    residual r_c are kept. A group of n_g rows, mean
    mu_g = sum_c n_c mu_c / n_g, has the co-moments (P_c, the product about m_c, is
    M_c + n_c r_c r_c^T)

        M_g = sum_c P_c - sum_c n_c r_c r_c^T + sum_c n_c (mu_c - mu_g)(mu_c - mu_g)^T,

    the corrections being `_absorb`'s offset rows. Every P_c is a sum of centred squares of one
    block, so the group's sum in float32 adds at most ~every eps to an entry's relative error,
    beside the ~sqrt(rows) eps of each product's own sum over rows. The sums overflow `every` times
    sooner than one block's product (float32: centred squares summing past 3.4e38 over a group's
    rows, values of ~1e17), which the engine reports as values too large for the dtype. Call
    `flush` after the last block.
    """

    def __init__(
        self, moments: PairMoments, dtype: torch.dtype, products: Products = TORCH, every: int = ABSORB_EVERY
    ) -> None:
        d, device = moments.mean_a.shape[0], moments.mean_a.device
        self.moments, self._products, self._every = moments, products, every
        # allocated once, before the pass's transient tensors (see `engine._BatchValues`)
        self._sums = torch.zeros(3, d, d, dtype=dtype, device=device)  # x^T x (upper), y^T y (upper), x^T y
        self._each = (self._sums[0], self._sums[1], self._sums[2])
        self._means = torch.zeros(2, every, d, dtype=F64, device=device)
        self._residuals = torch.zeros(2, every, d, dtype=F64, device=device)
        self._counts = torch.zeros(every, dtype=F64, device=device)
        self._sq_diff = torch.zeros((), dtype=F64, device=device)
        self._blocks = 0
        self._rows = 0  # rows since the last flush, on the host

    def parts(self) -> BatchParts:
        """A block's parts whose products go straight into these sums (pass it to `add`)."""
        return BatchParts(self._each, self._products)

    def add(self, xa: Tensor, xb: Tensor, parts: BatchParts | None = None, sq_diff: Tensor | None = None) -> None:
        """Add one block: its rows, and (from `parts()`) its parts, whose products were added
        already; `sq_diff`: its `squared_difference_sum`, where the caller has it. Absorb the group
        once it is full."""
        n, k = xa.shape[0], self._blocks
        if parts is None:
            ca, mean_a, res_a = _centre(xa)
            cb, mean_b, res_b = _centre(xb)
            aa, bb, ab = self._each
            self._products.add_self_products([ca, cb], [aa, bb])
            self._products.add_cross_product(ca, cb, ab)
        else:  # the products are about the parts' points: moved to the block's rounded mean
            if parts.into is not self._each:
                raise ValueError("the parts' products went into other sums: take the parts from `parts()`")
            mean_a, mean_b = parts.exact_means(n)
            centre_a, centre_b = mean_a.to(xa.dtype), mean_b.to(xb.dtype)
            res_a, res_b = mean_a - centre_a.to(F64), mean_b - centre_b.to(F64)
            parts.recentre(centre_a, centre_b)
        self._sq_diff.add_(squared_difference_sum(xa, xb) if sq_diff is None else sq_diff)
        self._means[0, k], self._means[1, k] = mean_a, mean_b
        self._residuals[0, k], self._residuals[1, k] = res_a, res_b
        self._counts[k : k + 1] = n  # a slice: fill_, no host-device copy
        self._rows += n
        self._blocks = k + 1
        if self._blocks == self._every:
            self.flush()

    def flush(self) -> None:
        """Absorb the blocks added since the last flush (none: nothing happens)."""
        k = self._blocks
        if k == 0:
            return
        counts = self._counts[:k]
        n = counts.sum()
        means, residuals = self._means[:, :k], self._residuals[:, :k]
        mean = means[:, 0] + (counts[:, None] * (means - means[:, :1])).sum(-2) / n  # exact where the means are equal
        offsets = torch.cat([residuals, means - mean[:, None]], 1)
        aa, bb, ab = self._sums
        self.moments._absorb(
            self._rows,
            mean[0],
            mean[1],
            _mirror_upper(aa),
            _mirror_upper(bb),
            ab,
            self._sq_diff,
            offsets[0],
            offsets[1],
            torch.cat([-counts, counts]),
        )
        self._sums.zero_()
        self._sq_diff.zero_()
        self._blocks = 0
        self._rows = 0


MIRROR_BLOCK = 256  # rows and columns of the blocks `_mirror_upper` transposes


def _mirror_upper(m: Tensor, block: int = MIRROR_BLOCK) -> Tensor:
    """The symmetric matrix whose upper triangle (j >= i) is that of m [D, D].

    Block by block, each transposed in cache: adding m's upper triangle transposed as one
    strided view read a column at a time (38 against 6 ms at D = 2048, float32)."""
    out = m.triu()
    d = m.shape[0]
    for i in range(0, d, block):
        diagonal = out[i : i + block, i : i + block]
        diagonal.add_(diagonal.triu(1).mT)
        for j in range(i + block, d, block):
            out[j : j + block, i : i + block] = m[i : i + block, j : j + block].mT
    return out


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
        """In place: absorb a block [n, *shape], its differences from a shift taken in its own
        dtype and merged in float64.

        The shift is a value the data hold (the first block's first row, then the running mean
        as rounded), so a constant element keeps exactly zero moments over any number of blocks,
        and a pass over the block goes to no mean of its own. Where a block's mean lies more than
        1 / SHIFT_SPREADS of its spread from the shift (a first row, a drift), that element is
        taken again about the mean just found: the sum of squares then cancels at most
        1 + 1 / SHIFT_SPREADS^2 of itself.

        In place, so a long pass allocates no long-lived state between its transient tensors
        (such allocations pinned the heap and made memory grow with N).
        """
        n = x.shape[0]
        if n == 0:
            return
        shift = x[0] if self.n == 0 else self.mean.to(x.dtype)
        mean, m2, offset = _moments_about(x, shift)
        far = offset * offset * (n * SHIFT_SPREADS**2) > m2
        if bool(far.any()):
            mean, m2, _ = _moments_about(x, torch.where(far, mean.to(x.dtype), shift))
        self._absorb(n, mean, m2)

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

"""What a loss needs of a pair of views, computed once and shared by every loss.

`PairStats` is the interface; `Batch` computes it from the rows of one batch (as in training,
differentiable) and `WholeSet` from the merged moments of all N rows (`sslcheck.stats`).
With x_c the centred view and M_xy = x_c^T y_c:

- `sq_diff_mean`      mean over N*D of (za - zb)^2
- `col_var(v, ddof)`  diag(M_vv) / (N - ddof)
- `cov_offdiag_sq(v)` Off(M_vv) = sum of squared off-diagonal entries
- `cross(x, y, s, t)` diag and Off of diag(s) M_xy diag(t)
- `similarity(x, y, mode, start, stop, scale)` rows start:stop of scale u_x u_y^T (u: L2-normalised rows)

For D > 4B/3 a batch uses B x B Grams (Off(X^T X) = ||X X^T||_F^2 - sum diag^2 and
||X^T Y||_F^2 = <X X^T, Y Y^T>_F): O(B^2 D) instead of O(B D^2). That difference cancels when
the diagonal dominates (one column far larger than the rest); then the D x D product is used, as
it is wherever it was already taken (the engine takes x_c^T y_c per batch for the whole set).
The same centred Gram serves the contrastive self-similarities: with m the batch mean and
p = X_c m, X X^T = X_c X_c^T + p 1^T + 1 p^T + |m|^2, so once VICReg has the Gram, u u^T costs
O(B^2 + B D), not O(B^2 D).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal, Protocol

import torch
from torch import Tensor

from sslcheck.blas import TORCH, Products
from sslcheck.losses.normalize import RowNorm, inverse_norms, normalize_rows, row_sq_norms
from sslcheck.stats import PairMoments, centred_rows, column_sums, matvec, squared_differences

View = Literal["a", "b"]


class PairStats(Protocol):
    n: int
    d: int

    def sq_diff_mean(self) -> Tensor: ...
    def col_var(self, view: View, ddof: int) -> Tensor: ...
    def cov_offdiag_sq(self, view: View) -> Tensor: ...
    def cross(self, x: View, y: View, s: Tensor, t: Tensor) -> tuple[Tensor, Tensor]: ...
    def rows(self, view: View) -> Tensor: ...
    def normalized(self, view: View, mode: RowNorm) -> Tensor: ...
    def similarity(
        self, x: View, y: View, mode: RowNorm, start: int = 0, stop: int | None = None, scale: float = 1.0
    ) -> Tensor: ...
    def upper_similarity(self, view: View, mode: RowNorm, scale: float = 1.0) -> Tensor | None: ...


MATRIX = (-2, -1)
GRAM_SIMILARITY_LOSS = 16.0  # most a row's cosines may lose to the Gram derivation (4 bits), else direct


def _off_squares(m: Tensor) -> Tensor:
    """m * m with the diagonal zeroed, for (each) square matrix [..., D, D]: sums of it never
    subtract the diagonal, so nothing cancels."""
    sq = m.square()
    sq.diagonal(dim1=-2, dim2=-1).zero_()
    return sq


def _off_sq(m: Tensor) -> Tensor:
    """Sum of squared off-diagonal entries of (each) square matrix [..., D, D]."""
    return _off_squares(m).sum(MATRIX)


def _scaled_cross(m: Tensor, s: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """diag and Off of c = diag(s) m diag(t) for m [..., D, D], without forming c:
    Off(c) = (s^2)^T (m * m, its diagonal zeroed) t^2 (one pass over m, not four)."""
    sq = _off_squares(m)
    off = ((s * s) * matvec(sq, t * t)).sum(-1)
    return s * m.diagonal(dim1=-2, dim2=-1) * t, off


def _symmetric_inner(ux: Tensor, uy: Tensor) -> Tensor:
    """sum_ij X_ij Y_ij of symmetric matrices [..., B, B] given by their upper triangles (zeros
    below: `Products.grams`): twice the triangles' inner product, less their diagonals' once."""
    diagonal = (ux.diagonal(dim1=-2, dim2=-1) * uy.diagonal(dim1=-2, dim2=-1)).sum(-1)
    if ux is uy:
        return 2 * torch.linalg.vector_norm(ux, dim=MATRIX).square() - diagonal
    return 2 * (ux * uy).sum(MATRIX) - diagonal


def _gram_off(frobenius_sq: Tensor, diag_sq: Tensor) -> Tensor | None:
    """Off via the Gram identity, or None where the subtraction would lose more than ~3 bits
    (one column dominating the others) in any batch."""
    off = frobenius_sq - diag_sq
    return off if bool((off * 8 >= diag_sq).all()) else None


@dataclass(frozen=True)
class RowValues:
    """Per-row values a caller already computed from the rows of za and zb [..., N, D] (the engine,
    for a chunk): `row_sq` ||a_i||^2, ||b_i||^2 [..., N]; `sq_diff` ||a_i - b_i||^2 [..., N]. A
    `Batch` given them computes neither."""

    row_sq: tuple[Tensor, Tensor]
    sq_diff: Tensor

    def rows(self, start: int, stop: int, batch: int) -> RowValues:
        """Rows start:stop (of a [N, ...] caller) as [k, batch, ...]."""

        def part(x: Tensor) -> Tensor:
            return x[start:stop].reshape(-1, batch, *x.shape[1:])

        return RowValues((part(self.row_sq[0]), part(self.row_sq[1])), part(self.sq_diff))


class Batch:
    """The rows of a batch, za and zb: [..., B, D]; every quantity computed on first use and
    cached, or taken from `known` (`RowValues` of these same rows). `products`: how its Grams
    are taken (`sslcheck.blas`; torch's by default, differentiable)."""

    def __init__(self, za: Tensor, zb: Tensor, known: RowValues | None = None, products: Products = TORCH) -> None:
        if za.ndim < 2 or za.shape != zb.shape:
            raise ValueError(f"za and zb must both be [..., N, D]; got {tuple(za.shape)} and {tuple(zb.shape)}")
        if za.shape[-2] < 2:
            raise ValueError("a batch needs at least 2 rows (every variance divides by N - 1)")
        self.za, self.zb = za, zb
        self._blas = products
        self.n, self.d = za.shape[-2], za.shape[-1]
        self.use_gram = self.d * 3 > 4 * self.n
        self._normalized: dict[tuple[View, str], Tensor] = {}
        self._products: dict[tuple[View, View], Tensor] = {}
        self._grams: dict[View, Tensor] = {}
        self._row_sq: dict[View, Tensor] = {}
        self._sq_diff: Tensor | None = None
        self._cov_off: dict[View, Tensor] = {}
        self._gram_similarity_ok: dict[View, bool] = {}
        if known is not None:
            self._row_sq = {"a": known.row_sq[0], "b": known.row_sq[1]}
            self._sq_diff = known.sq_diff

    def rows(self, view: View) -> Tensor:
        return self.za if view == "a" else self.zb

    @cached_property
    def _centring(self) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
        """((a_c, b_c), (mean_a, mean_b)): the rows about their column means, and those means."""
        (ca, ma), (cb, mb) = centred_rows(self.za), centred_rows(self.zb)
        return (ca, cb), (ma, mb)

    @property
    def _centred(self) -> tuple[Tensor, Tensor]:
        return self._centring[0]

    def centred(self, view: View) -> Tensor:
        return self._centred[0] if view == "a" else self._centred[1]

    @cached_property
    def _col_sq(self) -> tuple[Tensor, Tensor]:
        ca, cb = self._centred
        return column_sums(ca * ca), column_sums(cb * cb)

    def means(self, view: View) -> Tensor:
        """The batch's column means: [..., 1, D]."""
        return self._centring[1][0 if view == "a" else 1]

    def has_product(self, x: View, y: View) -> bool:
        """Whether x_c^T y_c was already computed (then the cross terms use it, not the Grams)."""
        return (x, y) in self._products or (y, x) in self._products

    def product(self, x: View, y: View) -> Tensor:
        """x_c^T y_c: [..., D, D], computed once (b-a is the transpose of a-b)."""
        if (x, y) == ("b", "a"):
            return self.product("a", "b").mT
        if (x, y) not in self._products:
            self._products[(x, y)] = self.centred(x).mT @ self.centred(y)
        return self._products[(x, y)]

    def sq_diff_mean(self) -> Tensor:
        if self._sq_diff is None:
            self._sq_diff = squared_differences(self.za, self.zb)
        return self._sq_diff.sum(-1) / (self.n * self.d)

    def col_var(self, view: View, ddof: int) -> Tensor:
        return self._col_sq[0 if view == "a" else 1] / (self.n - ddof)

    def cov_offdiag_sq(self, view: View) -> Tensor:
        if view not in self._cov_off:  # the same for every flavor: one Gram check per view
            self._cov_off[view] = self._cov_offdiag_sq(view)
        return self._cov_off[view]

    def _cov_offdiag_sq(self, view: View) -> Tensor:
        if self.use_gram:
            diag = self._col_sq[0 if view == "a" else 1]
            gram = self.gram(view)
            off = _gram_off(_symmetric_inner(gram, gram), diag.square().sum(-1))
            if off is not None:
                return off
        return _off_sq(self.product(view, view))

    def cross(self, x: View, y: View, s: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        if self.use_gram and not self.has_product(x, y):
            xs, ys = self.centred(x) * s.unsqueeze(-2), self.centred(y) * t.unsqueeze(-2)
            diag = column_sums(xs * ys)
            gx, gy = self._blas.grams([xs, ys])
            off = _gram_off(_symmetric_inner(gx, gy), diag.pow(2).sum(-1))
            if off is not None:
                return diag, off
        return _scaled_cross(self.product(x, y), s, t)

    def gram(self, view: View) -> Tensor:
        """X_c X_c^T's upper triangle, zeros below it: [..., B, B], computed once, for both views
        together (VICReg and the contrastive terms share them)."""
        if view not in self._grams:
            self._grams = dict(zip(("a", "b"), self._blas.grams(self._centred), strict=True))
        return self._grams[view]

    def row_sq(self, view: View) -> Tensor:
        """||x_i||^2 of the raw rows: [..., B]."""
        if view not in self._row_sq:
            self._row_sq[view] = row_sq_norms(self.rows(view))
        return self._row_sq[view]

    def normalized(self, view: View, mode: RowNorm) -> Tensor:
        key = (view, mode)
        if key not in self._normalized:
            self._normalized[key] = normalize_rows(self.rows(view), mode, self.row_sq(view))
        return self._normalized[key]

    def similarity(
        self, x: View, y: View, mode: RowNorm, start: int = 0, stop: int | None = None, scale: float = 1.0
    ) -> Tensor:
        """`scale` times the cosines u_x[start:stop] u_y^T: [..., stop - start, B], as the rows'
        products scaled by their inverse norms (w_x x)(w_y y)^T = diag(w_x) x y^T diag(w_y): two
        passes over B^2 entries instead of normalising B D."""
        stop = self.n if stop is None else stop
        product = self.rows(x)[..., start:stop, :] @ self.rows(y).mT
        w_x = inverse_norms(self.row_sq(x)[..., start:stop], mode) * scale
        return product.mul_(w_x.unsqueeze(-1)).mul_(inverse_norms(self.row_sq(y), mode).unsqueeze(-2))

    def upper_similarity(self, view: View, mode: RowNorm, scale: float = 1.0) -> Tensor | None:
        """`scale` times the cosines u u^T of the whole batch [..., B, B] on and above the diagonal
        (below it: unspecified), from the shared centred Gram: X X^T = G_c + p 1^T + 1 p^T + |m|^2
        (p = X_c m). None off the Gram route, or where that loses more than
        GRAM_SIMILARITY_LOSS of precision: the error of entry ij grows by f_i f_j,
        f_i = (|x_c,i| + |m|) / |x_i|, which is large only for rows far shorter than the mean
        (near the origin while the data are offset)."""
        if not self.use_gram:
            return None
        g = self.gram(view)
        mean = self.means(view)
        mean_sq = mean.square().sum(MATRIX)
        row_sq = self.row_sq(view)
        if view not in self._gram_similarity_ok:  # depends on the view only, not on mode or scale
            centred_sq = g.diagonal(dim1=-2, dim2=-1)
            factor = (centred_sq.sqrt() + mean_sq.sqrt().unsqueeze(-1)).square() / row_sq
            self._gram_similarity_ok[view] = bool((factor.amax(-1) <= GRAM_SIMILARITY_LOSS).all())
        if not self._gram_similarity_ok[view]:
            return None
        p = matvec(self.centred(view), mean.squeeze(-2))
        w = inverse_norms(row_sq, mode) * scale**0.5
        ones = torch.ones_like(p)
        left, right = torch.stack([p, ones], -1), torch.stack([ones, p + mean_sq.unsqueeze(-1)], -2)
        # G_c + p 1^T + 1 (p + |m|^2)^T as one rank-2 update of G_c: one pass over B^2, not two
        raw = torch.baddbmm(g.reshape(-1, *g.shape[-2:]), left.reshape(-1, self.n, 2), right.reshape(-1, 2, self.n))
        return raw.view(g.shape).mul_(w.unsqueeze(-1)).mul_(w.unsqueeze(-2))


class WholeSet:
    """All N rows through their merged float64 moments; `rows` only where the caller kept them."""

    def __init__(self, moments: PairMoments, rows: tuple[Tensor, Tensor] | None = None) -> None:
        self.m = moments
        self.n = moments.n
        self.d = moments.mean_a.shape[0]
        self._rows = rows
        self._batch = Batch(*rows) if rows is not None else None

    def _mat(self, x: View, y: View) -> Tensor:
        if x != y:
            return self.m.m_ab if x == "a" else self.m.m_ab.T
        return self.m.m_aa if x == "a" else self.m.m_bb

    def sq_diff_mean(self) -> Tensor:
        return self.m.sq_diff / (self.n * self.d)

    def col_var(self, view: View, ddof: int) -> Tensor:
        return self._mat(view, view).diagonal() / (self.n - ddof)

    def cov_offdiag_sq(self, view: View) -> Tensor:
        return _off_sq(self._mat(view, view))

    def cross(self, x: View, y: View, s: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        return _scaled_cross(self._mat(x, y), s, t)

    @property
    def has_rows(self) -> bool:
        return self._batch is not None

    def rows(self, view: View) -> Tensor:
        return self._kept().rows(view)

    def normalized(self, view: View, mode: RowNorm) -> Tensor:
        return self._kept().normalized(view, mode)

    def similarity(
        self, x: View, y: View, mode: RowNorm, start: int = 0, stop: int | None = None, scale: float = 1.0
    ) -> Tensor:
        return self._kept().similarity(x, y, mode, start, stop, scale)

    def upper_similarity(self, view: View, mode: RowNorm, scale: float = 1.0) -> Tensor | None:
        return self._kept().upper_similarity(view, mode, scale)

    def _kept(self) -> Batch:
        if self._batch is None:
            raise ValueError("the whole-set rows were not kept")
        return self._batch

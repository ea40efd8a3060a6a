"""What a loss needs of a pair of views, computed once and shared by every loss.

`PairStats` is the interface; `Batch` computes it from the rows of one batch (as in training,
differentiable) and `WholeSet` from the merged moments of all N rows (`sslcheck.stats`).
With x_c the centred view and M_xy = x_c^T y_c:

- `sq_diff_mean`      mean over N*D of (za - zb)^2
- `col_var(v, ddof)`  diag(M_vv) / (N - ddof)
- `cov_offdiag_sq(v)` Off(M_vv) = sum of squared off-diagonal entries
- `cross(x, y, s, t)` diag and Off of diag(s) M_xy diag(t)

For D > 4B/3 a batch uses B x B Grams (Off(X^T X) = ||X X^T||_F^2 - sum diag^2 and
||X^T Y||_F^2 = <X X^T, Y Y^T>_F): O(B^2 D) instead of O(B D^2). That difference cancels when
the diagonal dominates (one column far larger than the rest); then the D x D product is used.
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal, Protocol

import torch
from torch import Tensor

from sslcheck.losses.normalize import RowNorm, normalize_rows
from sslcheck.stats import PairMoments

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


MATRIX = (-2, -1)


def _off_sq(m: Tensor) -> Tensor:
    """Sum of squared off-diagonal entries of (each) square matrix [..., D, D], masked: no cancelling."""
    eye = torch.eye(m.shape[-1], dtype=torch.bool, device=m.device)
    return m.masked_fill(eye, 0).pow(2).sum(MATRIX)


def _gram_off(frobenius_sq: Tensor, diag_sq: Tensor) -> Tensor | None:
    """Off via the Gram identity, or None where the subtraction would lose more than ~3 bits
    (one column dominating the others) in any batch."""
    off = frobenius_sq - diag_sq
    return off if bool((off * 8 >= diag_sq).all()) else None


class Batch:
    """The rows of a batch, za and zb: [..., B, D]; every quantity computed on first use and cached."""

    def __init__(self, za: Tensor, zb: Tensor) -> None:
        if za.ndim < 2 or za.shape != zb.shape:
            raise ValueError(f"za and zb must both be [..., N, D]; got {tuple(za.shape)} and {tuple(zb.shape)}")
        if za.shape[-2] < 2:
            raise ValueError("a batch needs at least 2 rows (every variance divides by N - 1)")
        self.za, self.zb = za, zb
        self.n, self.d = za.shape[-2], za.shape[-1]
        self.use_gram = self.d * 3 > 4 * self.n
        self._normalized: dict[tuple[View, str], Tensor] = {}
        self._products: dict[tuple[View, View], Tensor] = {}

    def rows(self, view: View) -> Tensor:
        return self.za if view == "a" else self.zb

    @cached_property
    def _means(self) -> tuple[Tensor, Tensor]:
        return self.za.mean(-2, keepdim=True), self.zb.mean(-2, keepdim=True)

    @cached_property
    def _centred(self) -> tuple[Tensor, Tensor]:
        mean_a, mean_b = self._means
        return self.za - mean_a, self.zb - mean_b

    def centred(self, view: View) -> Tensor:
        return self._centred[0] if view == "a" else self._centred[1]

    @cached_property
    def _col_sq(self) -> tuple[Tensor, Tensor]:
        ca, cb = self._centred
        return (ca * ca).sum(-2), (cb * cb).sum(-2)

    def product(self, x: View, y: View) -> Tensor:
        """x_c^T y_c: [..., D, D], computed once (b-a is the transpose of a-b)."""
        if (x, y) == ("b", "a"):
            return self.product("a", "b").mT
        if (x, y) not in self._products:
            self._products[(x, y)] = self.centred(x).mT @ self.centred(y)
        return self._products[(x, y)]

    def sq_diff_mean(self) -> Tensor:
        return (self.za - self.zb).pow(2).mean(MATRIX)

    def col_var(self, view: View, ddof: int) -> Tensor:
        return self._col_sq[0 if view == "a" else 1] / (self.n - ddof)

    def cov_offdiag_sq(self, view: View) -> Tensor:
        c = self.centred(view)
        if self.use_gram:
            diag = self._col_sq[0 if view == "a" else 1]
            off = _gram_off((c @ c.mT).pow(2).sum(MATRIX), diag.pow(2).sum(-1))
            if off is not None:
                return off
        return _off_sq(self.product(view, view))

    def cross(self, x: View, y: View, s: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        if self.use_gram:
            xs, ys = self.centred(x) * s.unsqueeze(-2), self.centred(y) * t.unsqueeze(-2)
            diag = (xs * ys).sum(-2)
            off = _gram_off(((xs @ xs.mT) * (ys @ ys.mT)).sum(MATRIX), diag.pow(2).sum(-1))
            if off is not None:
                return diag, off
        c = self.product(x, y) * s.unsqueeze(-1) * t.unsqueeze(-2)
        return c.diagonal(dim1=-2, dim2=-1), _off_sq(c)

    def normalized(self, view: View, mode: RowNorm) -> Tensor:
        key = (view, mode)
        if key not in self._normalized:
            self._normalized[key] = normalize_rows(self.rows(view), mode)
        return self._normalized[key]


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
        c = self._mat(x, y) * s.unsqueeze(-1) * t.unsqueeze(-2)
        return c.diagonal(), _off_sq(c)

    @property
    def has_rows(self) -> bool:
        return self._batch is not None

    def rows(self, view: View) -> Tensor:
        if self._batch is None:
            raise ValueError("the whole-set rows were not kept")
        return self._batch.rows(view)

    def normalized(self, view: View, mode: RowNorm) -> Tensor:
        if self._batch is None:
            raise ValueError("the whole-set rows were not kept")
        return self._batch.normalized(view, mode)

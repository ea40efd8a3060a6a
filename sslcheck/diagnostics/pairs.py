"""Pair-level metrics: positive-pair cosines over all N, and the sample metrics (spec §2, §3).

Sample metrics (uniformity, random-pair cosines, retrieval, kNN) run on the seeded sample of
S <= 4096 rows, in float64 (spec §1) and L2-normalised with `n(x) = x / max(||x||, 1e-12)`, in row
blocks of `block_rows(S)` x S: memory O(S * block), never S x S at once and never N x N. On data
with a large common offset every cosine is ~1 - 1e-7: float32 products there round the gap
between positive and random pairs away (offset 3e3: retrieval 0.001 in float32, 1.0 in float64).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from sslcheck.losses.normalize import TORCH_SQ_GUARD, inverse_norms, row_sq_norms
from sslcheck.stats import ElementMoments

BLOCK_ELEMENTS = 2**19  # entries of one block x S similarity block (4 MiB in float64: the size of
# the pass's chunk temporaries, whose freed heap space the blocks then reuse instead of growing it)
KNN_MAX_K = 20
RANDOM_PARTNER_SEED = 1


def block_rows(s: int) -> int:
    """Rows per block so that a block x S matrix holds about `BLOCK_ELEMENTS` entries."""
    return max(1, min(s, BLOCK_ELEMENTS // max(s, 1)))


def unit_rows(x: Tensor) -> Tensor:
    """The rows L2-normalised (torch `F.normalize`: a zero row stays 0), in float64."""
    u = x.to(torch.float64, copy=True)  # normalised in place: no second [S, D] float64 array
    return u.mul_(inverse_norms(row_sq_norms(u), "torch").unsqueeze(-1))


def positive_cosines(x: Tensor, y: Tensor, row_sq_x: Tensor, row_sq_y: Tensor, sq_diff: Tensor) -> Tensor:
    """c_i = n(x_i) . n(y_i) [n] in float64 (`unit_rows`' rule) of rows x, y [n, D], from their
    ||x_i||^2, ||y_i||^2 and ||x_i - y_i||^2: no pass over the rows.

    c_i = 1 - ||u_i - v_i||^2 / 2 with ||u_i - v_i||^2 = (||x_i - y_i||^2 - (|x_i| - |y_i|)^2)
    / (|x_i| |y_i|), which keeps the digits near 1 that a dot product of float32 unit rows rounds
    away (offset data: 1 - 5e-9 at offset 3e3, where float32 steps by 6e-8): its error is
    ~eps |x_i - y_i| / |x_i|, as that of a difference of unit rows. Rows below F.normalize's
    guard (zero rows; n(x) = x / 1e-12 under it) take s_x s_y x_i . y_i from the rows, since
    the identity would subtract numbers up to 1e12 times the result there.
    """
    sx, sy, sd = (t.to(torch.float64) for t in (row_sq_x, row_sq_y, sq_diff))
    nx, ny = sx.sqrt(), sy.sqrt()
    cosines = 1 - (sd - (nx - ny).square()).clamp_min(0) / (2 * nx * ny)
    small = ((sx < TORCH_SQ_GUARD) | (sy < TORCH_SQ_GUARD)).nonzero().squeeze(-1)
    if len(small):
        dots = (x[small].to(torch.float64) * y[small].to(torch.float64)).sum(-1)
        cosines[small] = inverse_norms(sx[small], "torch") * inverse_norms(sy[small], "torch") * dots
    return cosines


def positive_cosine_metrics(cosine: ElementMoments) -> dict[str, float]:
    """alignment, positive_cosine_mean and positive_cosine_std from the moments of all N cosines.

    c_i = n(za_i) . n(zb_i); alignment = 2 - 2 mean(c) (Wang & Isola, ICML 2020,
    arXiv:2005.10242, alpha = 2; equal to mean ||n(za_i) - n(zb_i)||^2 when no row is zero).
    positive_cosine_std is the unbiased std (ddof 1), as every std in sslcheck; spec §5's
    0.0702185806 is the ddof-1 value (ddof 0 gives 0.0696678381).
    """
    mean = min(float(cosine.mean), 1.0)  # rounding of the merge may pass the bound by 1e-16
    return {
        "alignment": max(2.0 - 2.0 * mean, 0.0),
        "positive_cosine_mean": mean,
        "positive_cosine_std": float(cosine.var(ddof=1).sqrt()),
    }


def random_partners(s: int, seed: int = RANDOM_PARTNER_SEED) -> np.ndarray:
    """A seeded single-cycle derangement: order = default_rng(seed).permutation(S),
    partner[order[t]] = order[(t + 1) % S] (spec §3). No row is its own partner when S >= 2.

    >>> p = random_partners(5)
    >>> bool((p != np.arange(5)).all()), sorted(p.tolist())
    (True, [0, 1, 2, 3, 4])
    """
    order = np.random.default_rng(seed).permutation(s)
    partner = np.empty(s, dtype=np.int64)
    partner[order] = order[(np.arange(s) + 1) % s]
    return partner


def uniformity(u: Tensor) -> float:
    """ln mean_{i<j} exp(-2 ||u_i - u_j||^2) over the rows of u [S, D] (unit rows).

    Wang & Isola, ICML 2020 (arXiv:2005.10242), t = 2. Squared distances as
    ||u_i||^2 + ||u_j||^2 - 2 u_i.u_j (clamped at 0), summed with a stable log-sum-exp per block.

    >>> u = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    >>> uniformity(u)
    -8.0
    """
    s = u.shape[0]
    sq = (u * u).sum(1)
    step = block_rows(s)
    lower = torch.ones(step, step, dtype=torch.bool, device=u.device).tril()
    parts = []
    for lo in range(0, s - 1, step):
        hi = min(lo + step, s)
        # -2 d2 = 4 u_i.u_j - 2 ||u_i||^2 - 2 ||u_j||^2, over columns j >= lo only (j > i kept)
        exponent = (u[lo:hi] @ u[lo:].T).mul_(4.0)
        exponent.sub_(2.0 * sq[lo:hi, None]).sub_(2.0 * sq[None, lo:]).clamp_max_(0.0)
        exponent[:, : hi - lo].masked_fill_(lower[: hi - lo, : hi - lo], -math.inf)
        parts.append(torch.logsumexp(exponent.flatten(), 0))
    total = torch.logsumexp(torch.stack(parts), 0)
    return min(float(total) - math.log(s * (s - 1) / 2), 0.0)  # a mean of values <= 1: its log is <= 0


def retrieval_top1(ua: Tensor, ub: Tensor) -> float:
    """Share of rows i with u_a_i.u_b_i > u_a_i.u_b_j for every other j: ties miss.

    Each block's diagonal and off-diagonal entries come from the same product, so exact
    duplicates tie (and miss) rather than win by rounding.

    >>> ua = torch.eye(3, dtype=torch.float64)
    >>> retrieval_top1(ua, ua), retrieval_top1(ua, ua[[0, 0, 1]])
    (1.0, 0.0)
    """
    s = ua.shape[0]
    step = block_rows(s)
    hits = 0
    for lo in range(0, s, step):
        hi = min(lo + step, s)
        sim = ua[lo:hi] @ ub.T
        rows = torch.arange(hi - lo, device=ua.device)
        own = sim[rows, rows + lo].clone()
        sim[rows, rows + lo] = -math.inf
        hits += int((own > sim.max(1).values).sum())
    return hits / s


def knn_top1(u: Tensor, labels: np.ndarray, k: int | None = None) -> float:
    """Leave-one-out cosine kNN accuracy on the rows of u [S, D] with integer labels [S].

    k = min(20, S - 1) neighbours (the row itself excluded, duplicates of it kept), ordered by
    (-cosine, row position): among equal cosines at the k-th place the earlier rows enter.
    Majority vote; a vote tie goes to the smallest label. Returns the share of rows whose vote
    equals their own label.

    >>> u = torch.tensor([[1.0, 0], [1, 0], [0, 1], [0, 1]], dtype=torch.float64)
    >>> knn_top1(u, np.array([0, 0, 1, 1]), k=1)
    1.0
    """
    s = u.shape[0]
    k = min(KNN_MAX_K, s - 1) if k is None else k
    classes, codes_np = np.unique(labels, return_inverse=True)
    codes = torch.from_numpy(codes_np.reshape(-1).astype(np.int64)).to(u.device)
    step = block_rows(s)
    correct = 0
    for lo in range(0, s, step):
        hi = min(lo + step, s)
        sim = u[lo:hi] @ u.T
        rows = torch.arange(hi - lo, device=u.device)
        sim[rows, rows + lo] = -math.inf
        kth = torch.topk(sim, k, dim=1).values[:, -1:]
        above = sim > kth
        tied = sim == kth
        room = k - above.sum(1, keepdim=True)
        chosen = above | (tied & (tied.cumsum(1) <= room))
        neighbours = chosen.nonzero()[:, 1].reshape(hi - lo, k)
        votes = torch.zeros(hi - lo, len(classes), dtype=torch.int64, device=u.device)
        votes.scatter_add_(1, codes[neighbours], torch.ones_like(neighbours))
        # argmax returns the first maximum: classes are sorted, so ties go to the smallest label
        correct += int((votes.argmax(1) == codes[lo:hi]).sum())
    return correct / s


def pair_metrics(
    ua: Tensor, ub: Tensor, cosine: ElementMoments, labels: np.ndarray | None
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Every `diagnostics.pair` metric in spec §2 order, and the sample's cosine arrays.

    `ua`, `ub`: unit rows of the sample [S, D] (`unit_rows`); `cosine`: moments of all N
    positive cosines; `labels`: int [S] or None (then `knn_top1` is absent). random cosines use
    the unbiased std, like the positive ones.
    """
    s = ua.shape[0]
    positive = (ua * ub).sum(1)
    partner = torch.from_numpy(random_partners(s)).to(ua.device)
    random = (ua * ub[partner]).sum(1)
    exact = positive_cosine_metrics(cosine)
    random_mean = float(random.mean())
    out: dict[str, float] = {
        **exact,
        "random_cosine_mean": random_mean,
        "random_cosine_std": float(random.std(correction=1)) if s > 1 else math.nan,
        "cosine_gap": exact["positive_cosine_mean"] - random_mean,
        "retrieval_top1": retrieval_top1(ua, ub),
        "retrieval_top1_chance": 1.0 / s,
    }
    if labels is not None:
        out["knn_top1"] = knn_top1(ua, np.asarray(labels))
    arrays = {
        "pair.positive_cosines": positive.cpu().numpy(),
        "pair.random_cosines": random.cpu().numpy(),
    }
    return out, arrays

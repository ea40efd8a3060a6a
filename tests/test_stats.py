"""PairMoments / ElementMoments: merging any split equals one-shot numpy moments.

Co-moment errors are measured against the natural scale of each entry,
`|M_ij - ref_ij| / sqrt(ref_ii ref_jj)` (Cauchy-Schwarz bounds |M_ij| by it), because an
off-diagonal co-moment of uncorrelated columns is ~0 and has no useful relative error of its own.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sslcheck import blas, stats
from sslcheck.stats import BatchParts, BlockSums, ElementMoments, PairMoments, squared_difference_sum

F32_EPS = 2.0**-24


def data(n: int, d: int, seed: int, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = np.exp(rng.uniform(-1, 1, d))
    a = rng.standard_normal((n, d)) * scale + rng.standard_normal(d) + offset
    b = 0.6 * a + rng.standard_normal((n, d)) * scale + offset * 0.5
    return a, b


def reference(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """np.cov-style centred products in float64."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    ca, cb = a - a.mean(0), b - b.mean(0)
    return {
        "mean_a": a.mean(0),
        "mean_b": b.mean(0),
        "m_aa": ca.T @ ca,
        "m_bb": cb.T @ cb,
        "m_ab": ca.T @ cb,
        "sq_diff": ((a - b) ** 2).sum(),
    }


def scaled_error(got: PairMoments, want: dict[str, np.ndarray], a: np.ndarray, b: np.ndarray) -> float:
    """Largest error of the means (per column std) and co-moments (per natural scale)."""
    va, vb = np.diag(want["m_aa"]), np.diag(want["m_bb"])
    errs = [
        np.abs(got.mean_a.numpy() - want["mean_a"]) / np.sqrt(va / len(a)),
        np.abs(got.mean_b.numpy() - want["mean_b"]) / np.sqrt(vb / len(b)),
        np.abs(got.m_aa.numpy() - want["m_aa"]) / np.sqrt(np.outer(va, va)),
        np.abs(got.m_bb.numpy() - want["m_bb"]) / np.sqrt(np.outer(vb, vb)),
        np.abs(got.m_ab.numpy() - want["m_ab"]) / np.sqrt(np.outer(va, vb)),
        np.abs(got.sq_diff.numpy() - want["sq_diff"]) / want["sq_diff"],
    ]
    return float(max(e.max() for e in errs))


def split(n: int, cuts: list[int]) -> list[slice]:
    edges = [0, *sorted(set(cuts)), n]
    return [slice(lo, hi) for lo, hi in itertools.pairwise(edges) if hi > lo]


def merge_all(parts: list[PairMoments], order: list[int], tree: bool) -> PairMoments:
    """Merge in the given order, sequentially or as a balanced tree."""
    items = [parts[i] for i in order]
    if not tree:
        out = PairMoments.empty(items[0].mean_a.shape[0])
        for p in items:
            out = out.merge(p)
        return out
    while len(items) > 1:
        items = [items[i].merge(items[i + 1]) if i + 1 < len(items) else items[i] for i in range(0, len(items), 2)]
    return items[0]


@st.composite
def splits(draw: st.DrawFn) -> tuple[int, int, int, list[int], list[int], bool, float]:
    n = draw(st.integers(3, 60))
    d = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    cuts = draw(st.lists(st.integers(1, n - 1), min_size=2, max_size=min(8, n - 1), unique=True))
    k = len(split(n, cuts))
    order = draw(st.permutations(list(range(k))))
    tree = draw(st.booleans())
    offset = draw(st.sampled_from([0.0, 3.0, -50.0]))
    return n, d, seed, cuts, list(order), tree, offset


@settings(max_examples=150, deadline=None)
@given(splits())
def test_pair_moments_merge_of_any_split_equals_one_shot(case: tuple) -> None:
    n, d, seed, cuts, order, tree, offset = case
    a, b = data(n, d, seed, offset)
    parts = [PairMoments.of(torch.from_numpy(a[s]), torch.from_numpy(b[s])) for s in split(n, cuts)]
    assert len(parts) >= 3
    got = merge_all(parts, order, tree)
    assert got.n == n
    assert scaled_error(got, reference(a, b), a, b) < 1e-12
    # the one-shot `of` agrees too, and the diagonal is relatively exact
    one = PairMoments.of(torch.from_numpy(a), torch.from_numpy(b))
    np.testing.assert_allclose(got.m_aa.diagonal().numpy(), one.m_aa.diagonal().numpy(), rtol=1e-12)
    np.testing.assert_allclose(got.m_bb.diagonal().numpy(), one.m_bb.diagonal().numpy(), rtol=1e-12)


@settings(max_examples=150, deadline=None)
@given(splits(), st.sampled_from([(), (3,), (2, 2)]))
def test_element_moments_merge_of_any_split_equals_one_shot(case: tuple, shape: tuple[int, ...]) -> None:
    n, _, seed, cuts, order, _, offset = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape)) * np.exp(rng.uniform(-1, 1, shape)) + offset
    parts = [ElementMoments.of(torch.from_numpy(x[s])) for s in split(n, cuts)]
    out = ElementMoments.empty(shape)
    for i in order:
        out = out.merge(parts[i])
    mean = x.mean(0)
    m2 = ((x - mean) ** 2).sum(0)
    assert out.n == n
    np.testing.assert_allclose(out.mean.numpy(), mean, rtol=0, atol=1e-12 * (np.abs(mean) + x.std(0)).max())
    np.testing.assert_allclose(out.m2.numpy(), m2, rtol=1e-12)
    np.testing.assert_allclose(out.var(1).numpy(), x.var(0, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(out.var(0).numpy(), x.var(0), rtol=1e-12)


@pytest.mark.parametrize("shape", [(), (5,)])
def test_element_moments_of_constant_float32_elements_are_exactly_zero(shape: tuple[int, ...]) -> None:
    """Blocks of a constant (every row the same float32 values, which a float32 sum of 2048 of
    them divided by 2048 need not give back: l2_std read 4e-10 for a constant view of 5000 rows
    when blocks were centred about such means): a mean of exactly that value and a zero second
    moment, over any number of blocks updated in place or merged."""
    rng = np.random.default_rng(9)
    row = torch.from_numpy(np.asarray(rng.standard_normal(shape) * 0.1 + 0.3)).float()
    x = row.expand(2048, *shape).contiguous()
    running = ElementMoments.empty(shape)
    merged = ElementMoments.empty(shape)
    for _ in range(3):
        running.update(x)
        merged = merged.merge(ElementMoments.of(x))
    for e in (running, merged):
        assert e.n == 3 * 2048 and bool((e.m2 == 0).all())
        np.testing.assert_array_equal(e.mean.numpy(), row.double().numpy())


def test_element_moments_of_drifting_float32_blocks() -> None:
    """Blocks whose means move many spreads from the running mean (rows sorted by a drifting
    offset) are taken again about their own: within float32 accuracy of the float64 moments."""
    rng = np.random.default_rng(10)
    blocks = [(rng.standard_normal((2048, 6)) + 50.0 * k).astype(np.float32) for k in range(4)]
    e = ElementMoments.empty((6,))
    for block in blocks:
        e.update(torch.from_numpy(block))
    x = np.concatenate(blocks).astype(np.float64)
    # a block's mean: a float32 sum of its differences from the shift (each within ~4 spreads),
    # |error| <~ eps * max |d| per term averaged: 16 eps spreads, the spread here 1
    np.testing.assert_allclose(e.mean.numpy(), x.mean(0), rtol=0, atol=16 * F32_EPS)
    np.testing.assert_allclose(e.m2.numpy(), ((x - x.mean(0)) ** 2).sum(0), rtol=4 * np.sqrt(2048) * F32_EPS)


def test_merge_with_empty() -> None:
    a, b = data(10, 4, 0)
    m = PairMoments.of(torch.from_numpy(a), torch.from_numpy(b))
    empty = PairMoments.empty(4)
    for merged in (m.merge(empty), empty.merge(m)):
        assert merged.n == 10
        for field in ("mean_a", "mean_b", "m_aa", "m_bb", "m_ab"):
            assert torch.equal(getattr(merged, field), getattr(m, field))
    both = empty.merge(PairMoments.empty(4))
    assert both.n == 0 and both.m_ab.shape == (4, 4) and both.mean_a.abs().sum() == 0

    x = torch.from_numpy(a)
    e = ElementMoments.of(x)
    for merged in (e.merge(ElementMoments.empty((4,))), ElementMoments.empty((4,)).merge(e)):
        assert merged.n == 10 and torch.equal(merged.mean, e.mean) and torch.equal(merged.m2, e.m2)
    assert ElementMoments.empty().merge(ElementMoments.empty()).n == 0


def test_single_row_blocks() -> None:
    """Blocks of one row (m = 0) merge like any other."""
    a, b = data(7, 3, 1, offset=5.0)
    out = PairMoments.empty(3)
    for i in range(7):
        out = out.merge(PairMoments.of(torch.from_numpy(a[i : i + 1]), torch.from_numpy(b[i : i + 1])))
    assert scaled_error(out, reference(a, b), a, b) < 1e-12


def test_constant_column_has_exactly_zero_moments() -> None:
    a, b = data(12, 3, 2)
    a[:, 1] = 3.0
    out = PairMoments.empty(3)
    for s in split(12, [4, 9]):
        out = out.merge(PairMoments.of(torch.from_numpy(a[s]), torch.from_numpy(b[s])))
    assert float(out.m_aa[1, 1]) == 0.0
    assert float(out.m_ab[1].abs().sum()) == 0.0
    assert float(out.mean_a[1]) == 3.0


def test_spreads_under_a_few_ulps_of_the_mean_are_rounding() -> None:
    """Dimensions spread less than ROUNDING_ULPS units in the last place of their mean get exactly
    zero co-moments (with either view); the others keep theirs, however small."""
    from sslcheck.stats import ROUNDING_ULPS

    eps = float(np.finfo(np.float64).eps)
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal((500, 4)), rng.standard_normal((500, 4))
    a[:, 1] = 3.0 + eps * 3.0 * rng.choice([-1, 1], 500)  # ~1 ulp: rounding
    a[:, 2] = 3.0 + 10 * ROUNDING_ULPS * eps * 3.0 * rng.choice([-1, 1], 500)  # well above: data
    b[:, 3] = -7.0
    m = PairMoments.of(torch.from_numpy(a), torch.from_numpy(b))
    got = m.without_rounding_spread(eps)
    flat_a, flat_b = [1], [3]
    for mat, rows, cols in ((got.m_aa, flat_a, flat_a), (got.m_bb, flat_b, flat_b), (got.m_ab, flat_a, flat_b)):
        assert (mat.numpy()[rows] == 0).all() and (mat.numpy()[:, cols] == 0).all()
    keep_a, keep_b = [0, 2, 3], [0, 1, 2]
    np.testing.assert_array_equal(got.m_aa.numpy()[np.ix_(keep_a, keep_a)], m.m_aa.numpy()[np.ix_(keep_a, keep_a)])
    np.testing.assert_array_equal(got.m_ab.numpy()[np.ix_(keep_a, keep_b)], m.m_ab.numpy()[np.ix_(keep_a, keep_b)])
    assert float(got.m_aa[2, 2]) > 0 and float(m.m_aa[1, 1]) > 0  # the copy changed, the original did not


@pytest.mark.parametrize("n,d,parts", [(1000, 8, 7), (4096, 16, 4), (300, 5, 30)])
def test_float32_blocks_with_a_large_offset(n: int, d: int, parts: int) -> None:
    """float32 blocks, every column offset by 1e4 (spread ~1): compared with float64 moments of
    the same float32 values.

    Observed: means within ~5e-12 of a column's standard error (the residual mean of the centred
    block, cascade-summed, is tiny); co-moments within 1e-7 .. 1.5e-6 of their natural scale, i.e. 0.3 .. 1.2 x
    sqrt(rows) * 2^-24 for blocks of `rows` rows. That is float32 accuracy: the D x D products are
    computed in the block's dtype, each entry accumulating `rows` float32 terms (random-walk
    error ~ sqrt(rows) * 2^-24, worst case rows * 2^-24). Tolerance: 4 x sqrt(rows) * 2^-24.
    The naive sum(x x^T) - n mu mu^T in float32 is off by ~100 x the value here.
    """
    rng = np.random.default_rng(n)
    a64, b64 = data(n, d, n)
    a = (a64 + 1e4).astype(np.float32)
    b = (b64 + 1e4).astype(np.float32)
    cuts = sorted(rng.choice(np.arange(1, n), parts - 1, replace=False).tolist())
    out = PairMoments.empty(d)
    for s in split(n, cuts):
        out = out.merge(PairMoments.of(torch.from_numpy(a[s]), torch.from_numpy(b[s])))
    rows = max(s.stop - s.start for s in split(n, cuts))
    want = reference(a, b)
    va, vb = np.diag(want["m_aa"]), np.diag(want["m_bb"])
    assert np.abs(out.mean_a.numpy() - want["mean_a"]).max() < 1e-10 * np.sqrt(va / n).min()
    assert np.abs(out.mean_b.numpy() - want["mean_b"]).max() < 1e-10 * np.sqrt(vb / n).min()
    assert scaled_error(out, want, a, b) < 4 * np.sqrt(rows) * F32_EPS

    naive = (a.T @ a).astype(np.float64) - n * np.outer(a.mean(0, dtype=np.float64), a.mean(0, dtype=np.float64))
    assert np.abs(np.diag(naive) - va).max() / va.min() > 1e-2  # what the centring avoids

    e = ElementMoments.empty((d,))
    for s in split(n, cuts):
        e = e.merge(ElementMoments.of(torch.from_numpy(a[s])))
    # centred in float32 (exact: x - mean loses nothing for nearby values), squares rounded once
    # and summed over rows by a float32 matrix-vector product, which accumulates as the D x D
    # products do (random-walk error ~ sqrt(rows) * 2^-24, observed up to 1.0e-6 at 4096 rows)
    np.testing.assert_allclose(e.m2.numpy(), va, rtol=4 * np.sqrt(rows) * F32_EPS)
    np.testing.assert_allclose(e.mean.numpy(), want["mean_a"], rtol=1e-14)


# --- a pass's blocks absorbed a group at a time ----------------------------------------------


@settings(max_examples=100, deadline=None)
@given(splits(), st.integers(1, 5), st.booleans())
def test_block_sums_equal_one_shot_moments(case: tuple, every: int, numpy_route: bool) -> None:
    """Blocks of any sizes, absorbed `every` at a time (the last group partial, absorbed by
    `flush`), give the one-shot float64 moments, on numpy's BLAS route and on torch's."""
    n, d, seed, cuts, _, _, offset = case
    a, b = data(n, d, seed, offset)
    got = PairMoments.empty(d)
    with blas.products(torch.device("cpu"), torch.float64) as route:
        sums = BlockSums(got, torch.float64, route if numpy_route else blas.TORCH, every=every)
        for s in split(n, cuts):
            sums.add(torch.from_numpy(a[s]), torch.from_numpy(b[s]))
        sums.flush()
        sums.flush()  # nothing pending: no change
    assert got.n == n
    assert scaled_error(got, reference(a, b), a, b) < 1e-12


def test_block_sums_of_a_constant_column_are_exactly_zero() -> None:
    """Equal block means give the group exactly that mean (no rounding of a weighted average),
    so a constant column keeps exactly zero moments across groups and a partial last block."""
    a, b = data(100, 3, 2)
    a[:, 1] = 0.1 * np.pi
    got = PairMoments.empty(3)
    sums = BlockSums(got, torch.float64, every=3)
    for s in split(100, [16, 32, 48, 64, 80, 96]):
        sums.add(torch.from_numpy(a[s]), torch.from_numpy(b[s]))
    sums.flush()
    assert float(got.m_aa[1, 1]) == 0.0 and float(got.m_ab[1].abs().sum()) == 0.0
    assert float(got.mean_a[1]) == 0.1 * np.pi


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_float32_block_sums_with_a_large_offset(offset: float) -> None:
    """float32 blocks summed 16 at a time in float32 before the float64 absorb: within the same
    float32 bound as one block of that many rows (the sum of 16 centred products adds ~16 eps)."""
    rows, blocks, d = 512, 16, 12
    a64, b64 = data(rows * blocks, d, 5)
    a, b = (a64 + offset).astype(np.float32), (b64 + offset).astype(np.float32)
    got = PairMoments.empty(d)
    with blas.products(torch.device("cpu"), torch.float32) as route:
        sums = BlockSums(got, torch.float32, route)
        for i in range(blocks):
            sums.add(torch.from_numpy(a[i * rows : (i + 1) * rows]), torch.from_numpy(b[i * rows : (i + 1) * rows]))
        sums.flush()
    assert scaled_error(got, reference(a, b), a, b) < 4 * np.sqrt(rows) * F32_EPS


@pytest.mark.parametrize("d", [1, 5, 255, 256, 257, 700])
@pytest.mark.parametrize("block", [1, 3, 256])
def test_mirror_upper_is_the_symmetric_matrix_of_the_upper_triangle(d: int, block: int) -> None:
    """Transposed block by block, any D against any block size: exactly triu(m) + triu(m, 1)^T,
    whatever the lower triangle held (SYRK leaves it unspecified)."""
    from sslcheck.stats import _mirror_upper

    m = torch.from_numpy(np.random.default_rng(d).standard_normal((d, d)))
    upper = np.triu(m.numpy())
    np.testing.assert_array_equal(_mirror_upper(m, block).numpy(), upper + np.triu(upper, 1).T)


# --- a block's rows taken in parts (the engine's batches) ----------------------------------


def add_parts(
    parts: BatchParts, a: np.ndarray, b: np.ndarray, spans: tuple[tuple[int, int, int], ...], products: bool = True
) -> BatchParts:
    """Rows lo:hi in parts of `rows` rows each, per (rows, lo, hi), as the engine's batches give
    them: each part centred about its mean (in the rows' dtype), with its cross product (unless
    `products` is False: the engine's Gram route, where the parts take it)."""
    t = torch.from_numpy
    for rows, lo, hi in spans:
        pa, pb = a[lo:hi].reshape(-1, rows, a.shape[1]), b[lo:hi].reshape(-1, rows, b.shape[1])
        ma, mb = pa.mean(-2, keepdims=True), pb.mean(-2, keepdims=True)
        ca, cb = pa - ma, pb - mb
        parts.add(t(ca), t(cb), t(ma), t(mb), t(np.swapaxes(ca, -1, -2) @ cb) if products else None)
    return parts


def empty_parts(d: int, dtype: torch.dtype = torch.float64, route: blas.Products = blas.TORCH) -> BatchParts:
    zeros = torch.zeros(3, d, d, dtype=dtype)
    return BatchParts((zeros[0], zeros[1], zeros[2]), route)


@pytest.mark.parametrize("products", [True, False])
def test_batch_parts_products_recentred_about_any_point(products: bool) -> None:
    """sum_p [P_p + S_x,p d_y,p^T + d_x,p S_y,p^T + n_p d_x,p d_y,p^T] = sum_i (x_i - c_x)(y_i - c_y)^T,
    for x^T x, y^T y (upper triangles) and x^T y, parts of unequal sizes added in any grouping,
    their cross products given or taken from their rows."""
    a, b = data(45, 6, 11)
    with blas.products(torch.device("cpu"), torch.float64) as route:
        parts = add_parts(empty_parts(6, route=route), a, b, ((5, 0, 20), (10, 20, 40), (5, 40, 45)), products)
        centre_a, centre_b = np.full(6, 0.3), np.linspace(-1, 1, 6)
        parts.recentre(torch.from_numpy(centre_a), torch.from_numpy(centre_b))
    aa, bb, ab = (x.numpy() for x in parts.into)
    np.testing.assert_allclose(np.triu(aa), np.triu((a - centre_a).T @ (a - centre_a)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.triu(bb), np.triu((b - centre_b).T @ (b - centre_b)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ab, (a - centre_a).T @ (b - centre_b), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="45 rows, the block 44"):
        parts.exact_means(44)


def test_block_sums_take_only_their_own_parts() -> None:
    a, b = data(40, 5, 12)
    sums = BlockSums(PairMoments.empty(5), torch.float64)
    parts = add_parts(empty_parts(5), a, b, ((10, 0, 40),))
    with pytest.raises(ValueError, match="other sums"):
        sums.add(torch.from_numpy(a), torch.from_numpy(b), parts)


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_batch_parts_give_the_exact_block_means(offset: float) -> None:
    """sum_p (n_p m_p + S_p) / n, with m_p the parts' means as rounded to float32 and S_p the sums
    of the rows about them: the float64 mean of the float32 rows, to float64 rounding of the
    spread (a float32 mean of offset rows is off by ~eps * offset)."""
    a64, b64 = data(96, 5, 14)
    a, b = (a64 + offset).astype(np.float32), (b64 - offset).astype(np.float32)
    parts = add_parts(empty_parts(5, torch.float32), a, b, ((16, 0, 64), (32, 64, 96)), products=False)
    got_a, got_b = (x.numpy() for x in parts.exact_means(96))
    for got, x in ((got_a, a), (got_b, b)):
        want = x.astype(np.float64).mean(0)
        assert np.abs(got - want).max() < 1e-6 * x.std(0).min()  # float32 sums of centred rows
        assert offset == 0 or np.abs(x.mean(0, dtype=np.float32) - want).max() > 1e-4 * x.std(0).min()


def moments_by_parts(
    a: np.ndarray, b: np.ndarray, spans: tuple[tuple[int, int, int], ...], products: bool, route: blas.Products
) -> PairMoments:
    """One block absorbed as the engine absorbs a chunk: its batches' products, then the block."""
    m = PairMoments.empty(a.shape[1])
    sums = BlockSums(m, torch.from_numpy(a).dtype, route, every=1)
    parts = add_parts(sums.parts(), a, b, spans, products)
    sums.add(torch.from_numpy(a), torch.from_numpy(b), parts)
    return m


@pytest.mark.parametrize("products", [True, False])
def test_block_sums_by_parts_equal_the_plain_update(products: bool) -> None:
    a, b = data(45, 5, 12, offset=50.0)
    plain = PairMoments.empty(5)
    plain.update(torch.from_numpy(a), torch.from_numpy(b))
    with blas.products(torch.device("cpu"), torch.float64) as route:
        by_parts = moments_by_parts(a, b, ((10, 0, 40), (5, 40, 45)), products, route)
    assert scaled_error(by_parts, reference(a, b), a, b) < 1e-13
    for got, want in ((by_parts.m_aa, plain.m_aa), (by_parts.m_bb, plain.m_bb), (by_parts.m_ab, plain.m_ab)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-11, atol=1e-9)


@pytest.mark.parametrize("offset", [0.0, 1e2, 1e4])
def test_float32_batch_parts_with_a_large_offset(offset: float) -> None:
    """float32 parts about their rounded means: the sums S_p of the rows about them put back what
    the rounding takes (without them the cross moment was 4e-5 off at offset 1e4, found in review);
    within float32 accuracy of the float64 moments of the same values, like the plain update, on
    numpy's BLAS route as on torch's, the cross products given or not."""
    a64, b64 = data(2048 + 100, 16, 21)
    a, b = (a64 + offset).astype(np.float32), (a64 + 1e-3 * b64 + offset).astype(np.float32)
    want = reference(a, b)
    spans = ((256, 0, 2048), (100, 2048, 2148))
    plain = PairMoments.empty(16)
    plain.update(torch.from_numpy(a), torch.from_numpy(b))
    assert scaled_error(plain, want, a, b) < 4 * np.sqrt(2048) * F32_EPS
    with blas.products(torch.device("cpu"), torch.float32) as numpy_route:
        for route, products in itertools.product((numpy_route, blas.TORCH), (True, False)):
            m = moments_by_parts(a, b, spans, products, route)
            assert scaled_error(m, want, a, b) < 4 * np.sqrt(2048) * F32_EPS, (route, products)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_bad_value_makes_the_squared_difference_sum_non_finite(value: float) -> None:
    """The engine's NaN/Inf test: the sum is finite exactly when both blocks are."""
    a, b = data(20, 4, 13)
    assert np.isfinite(float(squared_difference_sum(torch.from_numpy(a), torch.from_numpy(b))))
    for x, y in ((a.copy(), b), (a, b.copy())):
        (x if x is not a else y)[7, 2] = value
        assert not np.isfinite(float(squared_difference_sum(torch.from_numpy(x), torch.from_numpy(y))))
    both = a.copy()
    both[3, 1] = np.inf
    assert not np.isfinite(float(squared_difference_sum(torch.from_numpy(both), torch.from_numpy(both))))


def test_squared_difference_sum_of_large_float32_rows() -> None:
    """Squares near 4e34 whose float32 total would overflow (found in review): rows are summed in
    float32, the rows' sums in float64."""
    a = np.full((4096, 8), 1e17, dtype=np.float32)
    got = float(squared_difference_sum(torch.from_numpy(a), torch.from_numpy(-a)))
    assert got == pytest.approx(4096 * 8 * (2 * 1e17) ** 2, rel=1e-6)


@pytest.mark.parametrize(
    "lead, rows, cols", [((), 300, 257), ((3,), 256, 257), ((2, 3), 300, 300), ((4,), 5, 7), ((0,), 300, 300)]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matvec_equals_float64_products(lead: tuple[int, ...], rows: int, cols: int, dtype: torch.dtype) -> None:
    """Each matrix's own product (large matrices, one at a time) and the batched one (small) agree
    with numpy's float64 product to float32's accumulation error."""
    rng = np.random.default_rng(7)
    m, v = rng.standard_normal((*lead, rows, cols)), rng.standard_normal((*lead, cols))
    got = stats.matvec(torch.tensor(m, dtype=dtype), torch.tensor(v, dtype=dtype))
    ref = np.einsum("...rc,...c->...r", m, v)
    scale = np.sqrt(np.einsum("...rc,...c->...r", m * m, v * v))  # |products|: the sum's natural scale
    eps = torch.finfo(dtype).eps
    assert got.shape == (*lead, rows) and got.dtype == dtype
    assert np.all(np.abs(got.double().numpy() - ref) <= 4 * np.sqrt(cols) * eps * scale)
    assert stats.MATVEC_LOOP_MIN <= 300 * 300  # the large cases take the per-matrix route


def test_matvec_gradients_equal_the_batched_products() -> None:
    """The per-matrix route is differentiable (the losses built on it are training losses)."""
    m = torch.randn(2, 256, 256, dtype=torch.float64, requires_grad=True)
    v = torch.randn(2, 256, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 256, dtype=torch.float64)
    got = torch.autograd.grad((stats.matvec(m, v) * w).sum(), (m, v))
    ref = torch.autograd.grad(((m @ v.unsqueeze(-1)).squeeze(-1) * w).sum(), (m, v))
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-12)

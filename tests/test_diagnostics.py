"""Collapse diagnostics end to end through the engine (spec/diagnostics.md).

Spec §5's reference values are pinned; every metric is checked against an independent numpy /
scipy implementation written here (SVD of the raw matrix, np.cov, full S x S matrices, loops);
the synthetic cases of §4 reproduce their table; invariances and the §6 pitfalls are checked.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist

from sslcheck.diagnostics import DEFAULT_THRESHOLDS, PAIR_METRICS, VIEW_METRICS, dimensions, pairs
from sslcheck.engine import Settings, evaluate_files
from sslcheck.errors import UsageError
from sslcheck.result import Result

VIEW_KEYS = [
    "std_mean",
    "std_min",
    "std_median",
    "dead_dims",
    "dead_fraction",
    "effective_rank",
    "effective_rank_centered",
    "rank_ratio",
    "rank_ratio_centered",
    "stable_rank",
    "numerical_rank",
    "alpha_req",
    "l2_std",
    "l2_std_ratio",
    "uniformity",
    "eigenvalues_top",
    "eigenvalues",
]
PAIR_KEYS = [
    "alignment",
    "positive_cosine_mean",
    "positive_cosine_std",
    "random_cosine_mean",
    "random_cosine_std",
    "cosine_gap",
    "retrieval_top1",
    "retrieval_top1_chance",
]
ARRAY_KEYS = {
    "za.eigenvalues",
    "za.std",
    "za.alpha_req_k",
    "za.alpha_req_fit",
    "zb.eigenvalues",
    "zb.std",
    "zb.alpha_req_k",
    "zb.alpha_req_fit",
    "pair.positive_cosines",
    "pair.random_cosines",
    "pair.cross_correlation",
}
FAST: tuple[str, ...] = ()  # no loss: these tests are about the diagnostics


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Any:
    """Many small torch ops: one thread is faster than two fighting over a loaded machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run(
    folder: Path,
    za: np.ndarray,
    zb: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    dtype: Literal["float32", "float64"] = "float64",
    **options: Any,
) -> Result:
    """Write the views (and labels) as .npy files and evaluate them with `evaluate_files`."""
    folder.mkdir(parents=True, exist_ok=True)
    pa, pb = folder / "za.npy", folder / "zb.npy"
    np.save(pa, za)
    np.save(pb, zb)
    lab = None
    if labels is not None:
        lab = str(folder / "labels.npy")
        np.save(lab, labels)
    options.setdefault("losses", FAST)
    result = evaluate_files(str(pa), str(pb), Settings(dtype=dtype, **options), labels=lab)
    json.dumps(result.to_dict(), allow_nan=False)  # JSON-ready: no NaN / Inf anywhere
    return result


def diag(result: Result) -> dict[str, Any]:
    return result.to_dict()["diagnostics"]


# ---------------------------------------------------------------------------------------------
# Independent references (numpy / scipy only)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def rankme(sigma: np.ndarray) -> float:
    p = sigma / sigma.sum() + 1e-7
    return float(np.exp(-np.sum(p * np.log(p))))


def ref_view(z: np.ndarray) -> dict[str, Any]:
    """Per-view metrics from the raw matrix: SVDs, np.cov, np.std, pdist."""
    n, d = z.shape
    m = min(n, d)
    sigma = np.linalg.svd(z, compute_uv=False)[:m]
    sigma_c = np.linalg.svd(z - z.mean(0), compute_uv=False)[:m]
    lam = np.sort(np.linalg.eigvalsh(np.cov(z, rowvar=False)))[::-1].clip(0)
    std = z.std(0, ddof=1)
    rank = int(np.linalg.matrix_rank(np.cov(z, rowvar=False)))
    r = min(rank, d, n - 1)
    k = np.arange(6, min(100, r) + 1) if min(100, r) - 5 >= 3 else np.arange(1, min(100, r) + 1)
    # polyfit's w multiplies the unsquared residual: sqrt(1/k) weighs squared residuals by 1/k
    alpha = -np.polyfit(np.log(k), np.log(lam[k - 1]), 1, w=np.sqrt(1.0 / k))[0] if r >= 3 else None
    u = unit(z)
    l2 = float(u.std(0, ddof=1).mean())
    dead = int(np.sum(std <= max(0.01 * np.median(std), 1e-8)))
    return {
        "std_mean": std.mean(),
        "std_min": std.min(),
        "std_median": np.median(std),
        "dead_dims": dead,
        "dead_fraction": dead / d,
        "effective_rank": rankme(sigma),
        "effective_rank_centered": rankme(sigma_c),
        "rank_ratio": rankme(sigma) / m,
        "rank_ratio_centered": rankme(sigma_c) / min(n - 1, d),
        "stable_rank": lam.sum() / lam.max(),
        "numerical_rank": rank,
        "alpha_req": alpha,
        "l2_std": l2,
        "l2_std_ratio": l2 * math.sqrt(d),
        "uniformity": math.log(np.mean(np.exp(-2 * pdist(u, "sqeuclidean")))),
        "eigenvalues_top": lam[:10],
        "eigenvalues": lam,
        "std": std,
        "k": k,
    }


def ref_pair(za: np.ndarray, zb: np.ndarray, labels: np.ndarray | None = None) -> dict[str, Any]:
    """Pair metrics with full S x S matrices and plain loops."""
    ua, ub = unit(za), unit(zb)
    s = len(za)
    c = np.einsum("ij,ij->i", ua, ub)
    order = np.random.default_rng(1).permutation(s)
    partner = {int(order[t]): int(order[(t + 1) % s]) for t in range(s)}
    rc = np.array([ua[i] @ ub[partner[i]] for i in range(s)])
    sim = ua @ ub.T
    hits = [all(sim[i, i] > sim[i, j] for j in range(s) if j != i) for i in range(s)]
    out = {
        "alignment": np.mean(np.sum((ua - ub) ** 2, 1)),
        "positive_cosine_mean": c.mean(),
        "positive_cosine_std": c.std(ddof=1),
        "random_cosine_mean": rc.mean(),
        "random_cosine_std": rc.std(ddof=1),
        "cosine_gap": c.mean() - rc.mean(),
        "retrieval_top1": np.mean(hits),
        "retrieval_top1_chance": 1 / s,
        "positive_cosines": c,
        "random_cosines": rc,
    }
    if labels is not None:
        k = min(20, s - 1)
        saa = ua @ ua.T
        right = 0
        for i in range(s):
            near = sorted((j for j in range(s) if j != i), key=lambda j: (-saa[i, j], j))[:k]
            votes = Counter(int(labels[j]) for j in near)
            top = max(votes.values())
            right += min(lab for lab, v in votes.items() if v == top) == labels[i]
        out["knn_top1"] = right / s
    return out


def assert_close(got: Any, want: Any, rtol: float, atol: float = 0.0, key: str = "") -> None:
    if key.split(".")[-1].startswith("eigenvalues"):
        # eigen-solvers are accurate to ~eps * lambda_1 in absolute terms, either route
        atol = max(atol, 1e-13 * float(np.max(want)))
    if want is None:
        assert got is None, key
    elif isinstance(want, (int, np.integer)) and not isinstance(want, bool):
        assert got == want, key
    else:
        np.testing.assert_allclose(
            np.asarray(got, dtype=float), np.asarray(want, dtype=float), rtol=rtol, atol=atol, err_msg=key
        )


def well_conditioned(rng: np.random.Generator, n: int, d: int, cond: float, offset: float = 0.0) -> np.ndarray:
    """U diag(s) V^T with s log-spaced from 1 to 1/cond (so sigma_min / sigma_1 = 1/cond)."""
    m = min(n, d)
    u, _ = np.linalg.qr(rng.standard_normal((n, m)))
    v, _ = np.linalg.qr(rng.standard_normal((d, m)))
    s = np.geomspace(1.0, 1.0 / cond, m) * math.sqrt(n)
    return (u * s) @ v.T + offset


# ---------------------------------------------------------------------------------------------
# Spec §5: pinned reference values


def spec5() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    za = rng.standard_normal((64, 16))
    zb = za + 0.5 * rng.standard_normal((64, 16))
    return za, zb, np.arange(64) % 4


SPEC5_VIEWS = {
    "za": {
        "std_mean": 0.9624712358,
        "std_min": 0.7744998726,
        "std_median": 0.9697379252,
        "dead_dims": 0,
        "dead_fraction": 0.0,
        "effective_rank": 15.45406637,
        "effective_rank_centered": 15.45553256,
        "rank_ratio": 0.9658791478,
        "rank_ratio_centered": 0.9659707852,
        "stable_rank": 7.389172324,
        "numerical_rank": 16,
        "alpha_req": 1.141706174,
        "l2_std": 0.2476249714,
        "l2_std_ratio": 0.9904998854,
        "uniformity": -3.493425467,
        "eigenvalues_top": [
            2.036229181,
            1.69134312,
            1.517265501,
            1.368273766,
            1.161311517,
            1.088992612,
            0.9712235213,
            0.8810191795,
            0.7740619182,
            0.7209369296,
        ],
    },
    "zb": {
        "std_mean": 1.051771958,
        "std_min": 0.7747616755,
        "std_median": 1.051927889,
        "dead_dims": 0,
        "dead_fraction": 0.0,
        "effective_rank": 15.41808619,
        "effective_rank_centered": 15.40643987,
        "rank_ratio": 0.9636303867,
        "rank_ratio_centered": 0.9629024916,
        "stable_rank": 7.190037448,
        "numerical_rank": 16,
        "alpha_req": 1.145870486,
        "l2_std": 0.2478098007,
        "l2_std_ratio": 0.9912392029,
        "uniformity": -3.502938896,
        "eigenvalues_top": [
            2.51249205,
            2.021517382,
            1.810960576,
            1.755858372,
            1.431824206,
            1.248176258,
            1.146805391,
            1.036479274,
            0.8831973149,
            0.8074648576,
        ],
    },
}
SPEC5_PAIR = {
    "alignment": 0.2671525782,
    "positive_cosine_mean": 0.8664237109,
    "positive_cosine_std": 0.0702185806,
    "random_cosine_mean": -0.008548550432,
    "random_cosine_std": 0.2599687639,
    "cosine_gap": 0.8749722613,
    "retrieval_top1": 0.984375,
    "retrieval_top1_chance": 0.015625,
    "knn_top1": 0.234375,
}


@pytest.fixture(scope="module")
def spec5_result(tmp_path_factory: pytest.TempPathFactory) -> Result:
    za, zb, labels = spec5()
    return run(tmp_path_factory.mktemp("spec5"), za, zb, labels)


@pytest.mark.parametrize("view", ["za", "zb"])
def test_spec5_view_values(spec5_result: Result, view: str) -> None:
    got = diag(spec5_result)[view]
    assert list(got) == VIEW_KEYS
    for key, want in SPEC5_VIEWS[view].items():
        # the spec prints 10 significant digits: rtol 1e-9 is as tight as they allow
        assert_close(got[key], want, rtol=1e-9, key=f"{view}.{key}")


def test_spec5_pair_values_and_verdict(spec5_result: Result) -> None:
    got = diag(spec5_result)["pair"]
    assert list(got) == [*PAIR_KEYS, "knn_top1"]
    for key, want in SPEC5_PAIR.items():
        assert_close(got[key], want, rtol=1e-9, key=key)
    assert spec5_result.verdict == {"status": "healthy", "reasons": [], "findings": []}


def test_exported_key_lists() -> None:
    assert list(VIEW_METRICS) == VIEW_KEYS
    assert list(PAIR_METRICS) == [*PAIR_KEYS, "knn_top1"]


def test_positive_cosine_std_is_unbiased(spec5_result: Result) -> None:
    za, zb, _ = spec5()
    c = np.einsum("ij,ij->i", unit(za), unit(zb))
    got = diag(spec5_result)["pair"]["positive_cosine_std"]
    assert got == pytest.approx(c.std(ddof=1), rel=1e-12)
    assert got != pytest.approx(c.std(ddof=0), rel=1e-4)  # spec §5 rules ddof 0 out


def test_spec5_biased_l2_std_differs(spec5_result: Result) -> None:
    # spec §6: TF Similarity's biased proj_std would read 0.2456827847 (x sqrt((N-1)/N))
    got = diag(spec5_result)["za"]["l2_std"]
    assert got * math.sqrt(63 / 64) == pytest.approx(0.2456827847, rel=1e-9)


def test_arrays(spec5_result: Result) -> None:
    za, zb, _ = spec5()
    arrays = spec5_result.arrays
    assert set(arrays) == ARRAY_KEYS
    for view, z in (("za", za), ("zb", zb)):
        ref = ref_view(z)
        np.testing.assert_allclose(arrays[f"{view}.eigenvalues"], ref["eigenvalues"], rtol=1e-10)
        np.testing.assert_allclose(arrays[f"{view}.std"], ref["std"], rtol=1e-12)
        np.testing.assert_array_equal(arrays[f"{view}.alpha_req_k"], ref["k"])
        intercept, alpha = arrays[f"{view}.alpha_req_fit"]
        assert alpha == diag(spec5_result)[view]["alpha_req"]
        lam = ref["eigenvalues"][ref["k"].astype(int) - 1]
        resid = np.log(lam) - (intercept - alpha * np.log(ref["k"]))
        assert abs(np.sum(resid / ref["k"])) < 1e-10  # the weighted normal equation
    pair = ref_pair(za, zb)
    np.testing.assert_allclose(arrays["pair.positive_cosines"], pair["positive_cosines"], rtol=1e-12)
    np.testing.assert_allclose(arrays["pair.random_cosines"], pair["random_cosines"], rtol=1e-12)
    corr = np.corrcoef(za, zb, rowvar=False)[:16, 16:]
    np.testing.assert_allclose(arrays["pair.cross_correlation"], corr, rtol=1e-10, atol=1e-14)


def test_cross_correlation_zero_where_std_is_zero() -> None:
    import torch

    z = torch.tensor([[1.0, 5.0], [2.0, 5.0], [4.0, 5.0]], dtype=torch.float64)
    zc = z - z.mean(0)
    m = zc.T @ zc
    corr = dimensions.cross_correlation(m, m, m)
    # M_00 / (sqrt(M_00) sqrt(M_00)) is 1 up to the rounding of the two square roots (1 ulp on
    # AVX-512 builds); every entry of the constant dimension is exactly 0, not NaN
    assert corr[0, 0] == pytest.approx(1.0, rel=4 * np.finfo(np.float64).eps)
    assert corr[0, 1] == corr[1, 0] == corr[1, 1] == 0.0


# ---------------------------------------------------------------------------------------------
# Independent references on random shapes


SHAPES = [(200, 16), (40, 64), (300, 7), (9, 5), (5, 9), (130, 130)]


@pytest.mark.parametrize("file_dtype", ["float64", "float32"])
@pytest.mark.parametrize(("n", "d"), SHAPES)
def test_against_references_float64(tmp_path: Path, n: int, d: int, file_dtype: str) -> None:
    rng = np.random.default_rng(n * 1000 + d)
    za = well_conditioned(rng, n, d, cond=1e4, offset=0.3).astype(file_dtype)
    zb = (za + 0.4 * rng.standard_normal((n, d))).astype(file_dtype)
    labels = rng.integers(0, 3, n)
    result = run(tmp_path, za, zb, labels)
    got = diag(result)
    a64, b64 = za.astype(np.float64), zb.astype(np.float64)
    for view, z in (("za", a64), ("zb", b64)):
        ref = ref_view(z)
        for key in VIEW_KEYS:
            assert_close(got[view][key], ref[key], rtol=1e-8, atol=1e-300, key=f"{view}.{key}")
    ref = ref_pair(a64, b64, labels)
    for key in [*PAIR_KEYS, "knn_top1"]:
        assert_close(got["pair"][key], ref[key], rtol=1e-8, atol=1e-13, key=key)


EIG_FLOOR = 1e-3


@pytest.mark.parametrize(("n", "d"), [(500, 24), (30, 48)])
def test_against_references_float32_compute(tmp_path: Path, n: int, d: int) -> None:
    rng = np.random.default_rng(d)
    za = well_conditioned(rng, n, d, cond=5.0, offset=0.5).astype(np.float32)
    zb = (za + 0.3 * rng.standard_normal((n, d))).astype(np.float32)
    labels = rng.integers(0, 4, n)
    result = run(tmp_path, za, zb, labels, dtype="float32")
    got = diag(result)
    for view, z in (("za", za.astype(np.float64)), ("zb", zb.astype(np.float64))):
        ref = ref_view(z)
        for key in VIEW_KEYS:
            if key in ("alpha_req", "numerical_rank"):
                continue
            if key.startswith("eigenvalues"):
                keep = ref[key] >= EIG_FLOOR * ref[key][0]
                assert_close(np.asarray(got[view][key])[keep], ref[key][keep], rtol=1e-4)
            else:
                assert_close(got[view][key], ref[key], rtol=1e-4, atol=1e-6, key=f"{view}.{key}")
    ref = ref_pair(za.astype(np.float64), zb.astype(np.float64), labels)
    for key in [*PAIR_KEYS, "knn_top1"]:
        tol = 1.0 / n if key in ("retrieval_top1", "knn_top1") else 1e-5  # one near-tie may flip
        assert_close(got["pair"][key], ref[key], rtol=1e-4, atol=tol, key=key)


EPS32 = float(np.finfo(np.float32).eps)


@pytest.mark.parametrize("offset", [1e3, 3e3, 1e4])
def test_offset_data_keeps_its_pair_metrics_in_float32(tmp_path: Path, offset: float) -> None:
    """A common offset makes every cosine ~1 - 1e-8: float32 dot products (spacing 6e-8 below 1)
    had called this healthy pair complete_collapse (retrieval 0.001 at 3e3). The sample metrics
    are float64, so they match the float64 reference on the same float32 values to rounding; the
    positive cosines over all N come from ||u_a - u_b||^2, whose float32 rounding moves each
    cosine by at most ~2 eps ||u_a - u_b|| (eps of float32, |u| = 1)."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((1000, 64))
    b = a + 0.3 * rng.standard_normal(a.shape)
    za, zb = (a + offset).astype(np.float32), (b + offset).astype(np.float32)
    result = run(tmp_path, za, zb, dtype="float32")
    got = diag(result)
    a64, b64 = za.astype(np.float64), zb.astype(np.float64)
    ref = ref_pair(a64, b64)
    assert result.verdict["status"] == "healthy"
    assert got["pair"]["retrieval_top1"] == ref["retrieval_top1"] == 1.0
    for key in ("random_cosine_mean", "random_cosine_std"):  # float64 dot products: a few eps each
        assert_close(got["pair"][key], ref[key], rtol=0, atol=1e-15, key=key)
    for view, z in (("za", a64), ("zb", b64)):  # Gram-form distances: a few float64 eps per pair
        assert_close(got[view]["uniformity"], ref_view(z)["uniformity"], rtol=0, atol=1e-13, key="uniformity")
    spread = math.sqrt(ref["alignment"])  # the rms of ||u_a - u_b||
    assert_close(got["pair"]["alignment"], ref["alignment"], rtol=4 * EPS32 / spread, key="alignment")
    for key in ("positive_cosine_mean", "positive_cosine_std"):
        assert_close(got["pair"][key], ref[key], rtol=0, atol=4 * EPS32 * spread, key=key)


def test_identical_collapsed_views_stay_in_range(tmp_path: Path) -> None:
    """Every row the same vector, za == zb: alignment is 0 and the positive cosine 1 exactly
    (u_a - u_b = 0), uniformity 0 within rounding and never above it (spec §2 ranges)."""
    row = np.random.default_rng(2).standard_normal(16)
    z = np.tile(row, (300, 1))
    got = diag(run(tmp_path, z, z, dtype="float32"))["pair"]
    assert got["alignment"] == 0.0 and got["positive_cosine_mean"] == 1.0
    assert 1.0 - 1e-15 <= got["random_cosine_mean"] <= 1.0
    unif = diag(run(tmp_path, z, z, dtype="float32"))["za"]["uniformity"]
    assert -1e-14 <= unif <= 0.0


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_positive_cosines_equal_dot_products_of_unit_rows(dtype: str) -> None:
    """From row norms and squared differences alone, against the float64 dot products of
    F.normalize's unit rows (n(x) = x / max(|x|, 1e-12)): float64 inputs to rounding; float32
    inputs to eps |x - y| / |x| (the rows as given, exact in float64), zero and tiny rows
    exactly."""
    import torch

    from sslcheck.losses.normalize import row_sq_norms
    from sslcheck.stats import squared_differences

    rng = np.random.default_rng(3)
    x = rng.standard_normal((9, 5))
    y = rng.standard_normal((9, 5))
    x[1], y[2] = 0.0, 0.0  # zero rows normalise to 0: cosine 0
    x[3], y[3] = 1e-14 * x[3], -1e-14 * x[3]  # under F.normalize's guard: |u| = 1e-2, cosine -1e-4
    y[4] = -x[4]  # antipodal
    y[5] = 2.5 * x[5]  # parallel: cosine 1
    y[6] = x[6] + 1e-4 * rng.standard_normal(5)  # nearly equal: 1 - c ~ 1e-9
    x[7:] += 3e3  # a large common offset: every cosine ~1 - 1e-7
    y[7:] += 3e3
    x, y = x.astype(dtype).astype(np.float64), y.astype(dtype).astype(np.float64)
    tx, ty = torch.from_numpy(x.astype(dtype)), torch.from_numpy(y.astype(dtype))
    got = pairs.positive_cosines(tx, ty, row_sq_norms(tx), row_sq_norms(ty), squared_differences(tx, ty)).numpy()
    nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
    want = np.einsum("ij,ij->i", x / np.maximum(nx, 1e-12)[:, None], y / np.maximum(ny, 1e-12)[:, None])
    eps = np.finfo(dtype).eps
    bound = 8 * eps * (np.linalg.norm(x - y, axis=1) / np.maximum(nx, 1e-300) + eps)
    np.testing.assert_array_less(np.abs(got - want), np.maximum(bound, 4e-16))
    assert got[1] == got[2] == 0.0
    assert got[3] == pytest.approx(-(nx[3] ** 2) / 1e-24, rel=1e-12)
    assert 1 - want[6] > 1e-10 and abs((1 - got[6]) / (1 - want[6]) - 1) < 1e-2 * (dtype == "float32") + 1e-6


def test_sample_follows_spec_rule(tmp_path: Path) -> None:
    """N > sample size: the sample is np.sort(default_rng(0).choice(N, S)), in index order."""
    rng = np.random.default_rng(5)
    n, s = 700, 150
    za = rng.standard_normal((n, 12))
    zb = za + 0.8 * rng.standard_normal((n, 12))
    labels = rng.integers(0, 5, n)
    result = run(tmp_path, za, zb, labels, sample_size=s)
    idx = np.sort(np.random.default_rng(0).choice(n, s, replace=False))
    got = diag(result)
    ref = ref_pair(za[idx], zb[idx], labels[idx])
    for key in ("random_cosine_mean", "random_cosine_std", "retrieval_top1", "knn_top1"):
        assert got["pair"][key] == pytest.approx(ref[key], rel=1e-9, abs=1e-14), key
    assert got["pair"]["retrieval_top1_chance"] == 1 / s
    assert got["za"]["uniformity"] == pytest.approx(ref_view(za[idx])["uniformity"], rel=1e-9)
    # the exact metrics still cover all N rows
    c = np.einsum("ij,ij->i", unit(za), unit(zb))
    assert got["pair"]["positive_cosine_std"] == pytest.approx(c.std(ddof=1), rel=1e-9)
    assert got["za"]["effective_rank"] == pytest.approx(ref_view(za)["effective_rank"], rel=1e-9)
    np.testing.assert_allclose(
        result.arrays["pair.positive_cosines"], np.einsum("ij,ij->i", unit(za[idx]), unit(zb[idx])), rtol=1e-12
    )


def test_knn_only_with_labels(tmp_path: Path) -> None:
    za, zb, _ = spec5()
    assert "knn_top1" not in diag(run(tmp_path, za, zb))["pair"]


def test_knn_tie_rules() -> None:
    import torch

    # row 0's neighbours: rows 1 and 2 tie (same vector); k = 1 takes the earlier (row 1)
    u = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.6, 0.8], [0.0, 1.0]], dtype=torch.float64)
    assert pairs.knn_top1(u, np.array([5, 5, 7, 7]), k=1) == pytest.approx(np.mean([True, False, False, False]))
    # vote ties (one 3, one 9 among k = 2) go to the smallest label: rows 0 and 2 right
    u = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.8, -0.6]], dtype=torch.float64)
    assert pairs.knn_top1(u, np.array([3, 9, 3]), k=2) == pytest.approx(2 / 3)


def test_retrieval_ties_miss() -> None:
    import torch

    ua = torch.eye(4, dtype=torch.float64)
    ub = ua.clone()
    ub[1] = ub[0]  # za_0 sees zb_0 and zb_1 equally close: a tie, a miss; za_1 misses too
    assert pairs.retrieval_top1(ua, ub) == 0.5


def test_blocked_sample_metrics_match_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    rng = np.random.default_rng(3)
    ua = pairs.unit_rows(torch.from_numpy(rng.standard_normal((97, 6))))
    ub = pairs.unit_rows(ua + 0.7 * torch.from_numpy(rng.standard_normal((97, 6))))
    labels = rng.integers(0, 4, 97)
    whole = (pairs.uniformity(ua), pairs.retrieval_top1(ua, ub), pairs.knn_top1(ua, labels))
    monkeypatch.setattr(pairs, "BLOCK_ELEMENTS", 97 * 7)  # blocks of 7 rows
    assert pairs.block_rows(97) == 7
    blocked = (pairs.uniformity(ua), pairs.retrieval_top1(ua, ub), pairs.knn_top1(ua, labels))
    assert blocked[0] == pytest.approx(whole[0], rel=1e-13)
    assert blocked[1:] == whole[1:]


def test_uniformity_is_stable_for_antipodal_rows() -> None:
    import torch

    u = torch.tensor([[1.0, 0.0]] * 3 + [[-1.0, 0.0]] * 3, dtype=torch.float64)
    # 6 of 15 pairs at distance 0, 9 at squared distance 4
    assert pairs.uniformity(u) == pytest.approx(math.log((6 + 9 * math.exp(-8)) / 15), rel=1e-14)


def test_zero_row_normalises_to_zero(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    za = rng.standard_normal((50, 8))
    zb = za + 0.2 * rng.standard_normal((50, 8))
    za[7] = 0.0
    result = run(tmp_path, za, zb)
    assert result.arrays["pair.positive_cosines"][7] == 0.0
    c = np.einsum("ij,ij->i", unit(za), unit(zb))
    got = diag(result)["pair"]
    assert got["positive_cosine_mean"] == pytest.approx(c.mean(), rel=1e-12)
    assert got["alignment"] == pytest.approx(2 - 2 * c.mean(), rel=1e-12)
    assert diag(result)["za"]["l2_std"] == pytest.approx(unit(za).std(0, ddof=1).mean(), rel=1e-12)


# ---------------------------------------------------------------------------------------------
# Spec §4: the synthetic cases (N = 4096, D = 64). cases.py is not available; these follow the
# described structure and reproduce the za column of the table at its printed digits, except
# where the table depends on how zb was drawn (c rank 4: retrieval 0.094, alpha 0.154; d k^-2:
# retrieval 0.90), which are checked qualitatively.

N4, D4 = 4096, 64


def _healthy(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    za = rng.standard_normal((N4, D4))
    return za, za + 0.1 * rng.standard_normal((N4, D4))


def _low_rank(rank: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((D4, rank)))
    g = rng.standard_normal((N4, rank))
    za = g @ basis.T + 1e-6 * rng.standard_normal((N4, D4))
    zb = (g + 0.3 * rng.standard_normal((N4, rank))) @ basis.T + 1e-6 * rng.standard_normal((N4, D4))
    return za, zb


def _power_law(power: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = np.arange(1, D4 + 1) ** (-power / 2)  # lambda_k ~ k^-power
    rotation, _ = np.linalg.qr(rng.standard_normal((D4, D4)))
    g = rng.standard_normal((N4, D4)) * scale
    return g @ rotation.T, (g + 0.1 * rng.standard_normal((N4, D4)) * scale) @ rotation.T


def _case(name: str) -> tuple[np.ndarray, np.ndarray]:
    a = _healthy(1)
    if name == "a":
        return a
    if name == "b":
        rng = np.random.default_rng(2)
        v = rng.standard_normal(D4)
        return v + 1e-6 * rng.standard_normal((N4, D4)), v + 1e-6 * rng.standard_normal((N4, D4))
    if name in ("c4", "c16"):
        return _low_rank(4, 3) if name == "c4" else _low_rank(16, 4)
    if name in ("d1", "d2"):
        return _power_law(1.0, 5) if name == "d1" else _power_law(2.0, 6)
    if name == "e":
        return a[0] + 100.0, a[1] + 100.0
    if name in ("f-3", "f+3"):
        scale = 1e-3 if name == "f-3" else 1e3
        return a[0] * scale, a[1] * scale
    if name == "g":
        live = np.arange(D4) >= 8
        return a[0] * live, a[1] * live
    assert name == "h"
    return a[0], np.random.default_rng(7).standard_normal((N4, D4))


# (l2_std_ratio, retrieval_top1, effective_rank, effective_rank_centered, rank_ratio_centered,
#  alpha_req, dead_dims, status, finding rules); None: not pinned (see the note above)
TABLE: dict[str, tuple[Any, ...]] = {
    "a": ("0.9999", "1", "63.87", "63.87", "0.998", "0.144", 0, "healthy", []),
    "b": (
        "1.0e-6",
        "2.4e-4",
        "1.000",
        "63.88",
        "0.998",
        "0.143",
        0,
        "complete_collapse",
        ["complete_collapse", "complete_collapse"],
    ),
    "c4": (
        "0.940",
        None,
        "4.001",
        "4.001",
        "0.0625",
        None,
        0,
        "dimensional_collapse",
        ["dimensional_collapse", "dimensional_collapse"],
    ),
    "c16": ("0.991", "0.999", "15.99", "15.99", "0.250", "16.7", 0, "healthy", ["low_rank", "low_rank"]),
    "d1": ("0.991", "1", "54.86", "54.86", "0.857", "1.019", 0, "healthy", []),
    "d2": ("0.953", None, "29.06", "29.06", "0.454", "2.008", 0, "healthy", []),
    "e": ("0.0099", "1", "1.754", "63.87", "0.998", "0.144", 0, "healthy", ["common_offset", "common_offset"]),
    "f-3": ("0.9999", "1", "63.87", "63.87", "0.998", "0.144", 0, "healthy", []),
    "f+3": ("0.9999", "1", "63.87", "63.87", "0.998", "0.144", 0, "healthy", []),
    "g": ("0.935", "1", "55.91", "55.91", "0.874", "0.142", 8, "healthy", ["dead_dims", "dead_dims"]),
    "h": ("0.9999", "2.4e-4", "63.87", "63.87", "0.998", "0.144", 0, "unaligned", ["unaligned"]),
}
TABLE_KEYS = (
    "l2_std_ratio",
    "retrieval_top1",
    "effective_rank",
    "effective_rank_centered",
    "rank_ratio_centered",
    "alpha_req",
)


def printed(value: float, text: str) -> bool:
    """`value` rounds to `text` at the digits `text` prints (both significant and decimal forms)."""
    digits = text.split("e")[0].lstrip("-").split(".")
    decimals = len(digits[1]) if len(digits) > 1 else 0
    if "e" in text:
        return f"{value:.{decimals}e}" == f"{float(text):.{decimals}e}"
    return round(value, decimals) == pytest.approx(float(text), abs=1e-12)


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Result]:
    out: dict[tuple[str, str], Result] = {}
    dtypes: tuple[Literal["float64", "float32"], ...] = ("float64", "float32")
    for name in TABLE:
        za, zb = _case(name)
        for dtype in dtypes:
            out[(name, dtype)] = run(tmp_path_factory.mktemp(name), za, zb, dtype=dtype)
    return out


@pytest.mark.parametrize("name", list(TABLE))
def test_spec4_table(cases: dict[tuple[str, str], Result], name: str) -> None:
    result = cases[(name, "float64")]
    za, pair = diag(result)["za"], diag(result)["pair"]
    values = {**za, "retrieval_top1": pair["retrieval_top1"]}
    *expected, dead, status, rules = TABLE[name]
    for key, text in zip(TABLE_KEYS, expected, strict=True):
        if text is not None:
            assert printed(values[key], text), (name, key, values[key], text)
    assert za["dead_dims"] == dead
    assert result.verdict["status"] == status
    assert [f["rule"] for f in result.verdict["findings"]] == rules


@pytest.mark.parametrize("name", list(TABLE))
def test_spec4_status_in_float32(cases: dict[tuple[str, str], Result], name: str) -> None:
    assert cases[(name, "float32")].verdict["status"] == TABLE[name][7]


def test_spec4_qualitative(cases: dict[tuple[str, str], Result]) -> None:
    get = {name: diag(cases[(name, "float64")]) for name in TABLE}
    # rank 4: the centred ratio is ~4/64, retrieval far below 1, yet not complete collapse
    assert get["c4"]["za"]["rank_ratio_centered"] == pytest.approx(4 / 64, rel=1e-3)
    assert 0.05 <= get["c4"]["pair"]["retrieval_top1"] < 0.2
    assert get["c4"]["za"]["alpha_req"] < 0.2  # the cliff sits before k = 6
    assert get["c4"]["za"]["numerical_rank"] == 64  # numerical_rank counts the noise floor
    assert get["c4"]["za"]["stable_rank"] == pytest.approx(3.9, abs=0.05)
    assert get["a"]["za"]["stable_rank"] == pytest.approx(50.9, abs=0.1)
    assert get["d2"]["pair"]["retrieval_top1"] >= 0.9
    assert get["h"]["pair"]["cosine_gap"] == pytest.approx(-0.004, abs=5e-4)
    # b: uncentred RankMe sees one point, centred RankMe sees the isotropic noise
    assert get["b"]["za"]["l2_std_ratio"] < 1e-5
    assert get["b"]["pair"]["retrieval_top1"] == 1 / 4096
    # sigma, not sigma^2 (spec §6): RankMe on the eigenvalues would read 28.8 and 4.7
    for name, on_eigenvalues in (("d1", 28.8), ("d2", 4.7)):
        lam = np.asarray(get[name]["za"]["eigenvalues"])
        assert rankme(lam) == pytest.approx(on_eigenvalues, abs=0.05)
    # f: scale-free
    for key in (
        "l2_std_ratio",
        "rank_ratio",
        "rank_ratio_centered",
        "stable_rank",
        "alpha_req",
        "dead_dims",
        "uniformity",
    ):
        for scaled in ("f-3", "f+3"):
            assert get[scaled]["za"][key] == pytest.approx(get["a"]["za"][key], rel=1e-9), key
    # e: offset-free in the centred spectrum, not in l2 / cosines
    assert get["e"]["za"]["effective_rank_centered"] == pytest.approx(
        get["a"]["za"]["effective_rank_centered"], rel=1e-9
    )
    assert get["e"]["za"]["eigenvalues"] == pytest.approx(get["a"]["za"]["eigenvalues"], rel=1e-9)


# ---------------------------------------------------------------------------------------------
# Spec §6 pitfalls and degenerate inputs


def eps_floor_rank(m: int, rank: int = 1) -> float:
    """RankMe of `rank` equal sigma and m - rank zeros, with the 1e-7 floor, in closed form."""
    p_live, p_dead = 1 / rank + 1e-7, 1e-7
    entropy = -(rank * p_live * math.log(p_live) + (m - rank) * p_dead * math.log(p_dead))
    return math.exp(entropy)


def test_rank_one_reads_the_epsilon_floor(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    za = np.outer(rng.standard_normal(200), rng.standard_normal(64))
    result = run(tmp_path, za, za + 0.01 * rng.standard_normal(za.shape))
    got = diag(result)["za"]
    assert got["effective_rank"] == pytest.approx(eps_floor_rank(64), rel=1e-9)
    assert got["effective_rank_centered"] == pytest.approx(eps_floor_rank(64), rel=1e-9)
    assert f"{got['effective_rank']:.6f}" == "1.000101"
    assert got["alpha_req"] is None  # r = 1 < 3
    assert result.verdict["status"] == "dimensional_collapse"
    assert any(
        f["rule"] == "undefined" and f["metric"] == "diagnostics.za.alpha_req" for f in result.verdict["findings"]
    )


def test_two_antipodal_points_have_no_one_over_n_floor(tmp_path: Path) -> None:
    v = np.random.default_rng(1).standard_normal(768)
    z = np.stack([v, -v])
    got = diag(run(tmp_path, z, z))["za"]
    assert f"{got['rank_ratio_centered']:.6f}" == "1.000002"  # the 1/N-floor bug reads 0.5
    assert got["rank_ratio_centered"] == pytest.approx(eps_floor_rank(2), rel=1e-9)


def test_equal_singular_values(tmp_path: Path) -> None:
    q, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((128, 64)))
    got = diag(run(tmp_path, 3.0 * q, 3.0 * q))["za"]
    assert f"{got['effective_rank']:.4f}" == "64.0013"
    assert got["effective_rank"] == pytest.approx(eps_floor_rank(64, 64), rel=1e-9)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("value", [0.0, 0.1, 123.456])
@pytest.mark.parametrize("n", [100, 5000])  # 5000: several chunks, whose float32 means need not be the row
def test_constant_view(tmp_path: Path, dtype: Literal["float32", "float64"], value: float, n: int) -> None:
    rng = np.random.default_rng(4)
    row = value * rng.standard_normal(32) if value else np.zeros(32)
    za = np.tile(row, (n, 1))
    zb = rng.standard_normal((n, 32))
    result = run(tmp_path, za, zb, dtype=dtype)
    got = diag(result)["za"]
    for key in ("effective_rank_centered", "rank_ratio_centered", "stable_rank", "alpha_req"):
        assert got[key] is None, key
    assert got["std_mean"] == 0.0
    assert got["dead_dims"] == 32
    assert got["l2_std"] == 0.0 and got["l2_std_ratio"] == 0.0
    assert got["numerical_rank"] == 0
    assert got["eigenvalues"] == [0.0] * 32
    assert (got["effective_rank"] is None) == (value == 0.0)
    assert result.verdict["status"] == "complete_collapse"
    undefined = [f for f in result.verdict["findings"] if f["rule"] == "undefined"]
    assert any("diagnostics.za.stable_rank" in f["metrics"] for f in undefined)
    assert any("covariance is zero" in r for r in result.verdict["reasons"])
    assert np.isnan(result.arrays["za.alpha_req_fit"]).all() and result.arrays["za.alpha_req_k"].size == 0


def test_few_rows_leave_alpha_undefined(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    za = rng.standard_normal((3, 10))
    got = diag(run(tmp_path, za, za + 0.1 * rng.standard_normal((3, 10))))["za"]
    assert got["alpha_req"] is None  # r <= N - 1 = 2
    assert got["rank_ratio_centered"] == pytest.approx(ref_view(za)["rank_ratio_centered"], rel=1e-8)


def test_alpha_short_range_falls_back_to_k_from_1(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    za = well_conditioned(rng, 50, 7, cond=30.0)  # r = 7: k = 6..7 is 2 points, so k = 1..7
    result = run(tmp_path, za, za + 0.1 * rng.standard_normal((50, 7)))
    np.testing.assert_array_equal(result.arrays["za.alpha_req_k"], np.arange(1, 8))
    assert diag(result)["za"]["alpha_req"] == pytest.approx(ref_view(za)["alpha_req"], rel=1e-9)


# ---------------------------------------------------------------------------------------------
# Invariances (hypothesis)

EXACT = [
    "std_mean",
    "std_min",
    "std_median",
    "dead_dims",
    "effective_rank",
    "effective_rank_centered",
    "rank_ratio",
    "rank_ratio_centered",
    "stable_rank",
    "numerical_rank",
    "alpha_req",
    "l2_std",
    "l2_std_ratio",
    "eigenvalues",
]
ROTATION_FREE = [
    "effective_rank",
    "effective_rank_centered",
    "rank_ratio",
    "rank_ratio_centered",
    "stable_rank",
    "numerical_rank",
    "alpha_req",
    "uniformity",
    "eigenvalues",
]
SCALE_FREE = [
    "dead_dims",
    "dead_fraction",
    "effective_rank",
    "effective_rank_centered",
    "rank_ratio",
    "rank_ratio_centered",
    "stable_rank",
    "numerical_rank",
    "alpha_req",
    "l2_std",
    "l2_std_ratio",
    "uniformity",
]
PAIR_ALL = [*PAIR_KEYS, "knn_top1"]
hsettings = settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
shapes = st.tuples(st.integers(12, 60), st.integers(3, 20), st.integers(0, 2**16))


def pair_of(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    za = well_conditioned(rng, n, d, cond=50.0, offset=rng.uniform(-1, 1))
    return za, za + 0.5 * rng.standard_normal((n, d))


def same(a: dict[str, Any], b: dict[str, Any], keys: list[str], rtol: float = 1e-9) -> None:
    for key in keys:
        assert_close(a[key], b[key], rtol=rtol, atol=1e-12, key=key)


@hsettings
@given(shapes)
def test_row_permutation(tmp_path: Path, shape: tuple[int, int, int]) -> None:
    n, d, seed = shape
    za, zb = pair_of(n, d, seed)
    perm = np.random.default_rng(seed + 1).permutation(n)
    one, two = diag(run(tmp_path / "1", za, zb)), diag(run(tmp_path / "2", za[perm], zb[perm]))
    for view in ("za", "zb"):
        same(one[view], two[view], [*EXACT, "uniformity"])
    same(one["pair"], two["pair"], ["alignment", "positive_cosine_mean", "positive_cosine_std", "retrieval_top1"])


@hsettings
@given(shapes)
def test_orthogonal_rotation(tmp_path: Path, shape: tuple[int, int, int]) -> None:
    n, d, seed = shape
    za, zb = pair_of(n, d, seed)
    rotation, _ = np.linalg.qr(np.random.default_rng(seed + 2).standard_normal((d, d)))
    labels = np.random.default_rng(seed).integers(0, 3, n)
    one = diag(run(tmp_path / "1", za, zb, labels))
    two = diag(run(tmp_path / "2", za @ rotation, zb @ rotation, labels))
    for view in ("za", "zb"):
        same(one[view], two[view], ROTATION_FREE, rtol=1e-8)
    same(one["pair"], two["pair"], PAIR_ALL, rtol=1e-8)


@hsettings
@given(shapes, st.sampled_from([1e-3, 1e3, 7.5]))
def test_global_scaling(tmp_path: Path, shape: tuple[int, int, int], scale: float) -> None:
    n, d, seed = shape
    za, zb = pair_of(n, d, seed)
    labels = np.random.default_rng(seed).integers(0, 3, n)
    r1, r2 = run(tmp_path / "1", za, zb, labels), run(tmp_path / "2", za * scale, zb * scale, labels)
    one, two = diag(r1), diag(r2)
    for view in ("za", "zb"):
        same(one[view], two[view], SCALE_FREE)
        assert_close(two[view]["std_mean"], scale * one[view]["std_mean"], rtol=1e-9)
        assert_close(
            two[view]["eigenvalues"], np.multiply(scale**2, one[view]["eigenvalues"]), rtol=1e-9, atol=1e-12 * scale**2
        )
    same(one["pair"], two["pair"], PAIR_ALL)
    assert r1.verdict["status"] == r2.verdict["status"]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(2, 97), st.integers(1, 300), st.booleans())
def test_batch_and_chunk_sizes_change_nothing(
    tmp_path: Path,
    batch: int,
    chunk: int,
    contrastive: bool,
) -> None:
    rng = np.random.default_rng(batch * 1000 + chunk)
    za = rng.standard_normal((420, 10)) + 2.0
    zb = za + 0.6 * rng.standard_normal((420, 10))
    labels = rng.integers(0, 4, 420)
    base = run(tmp_path / "1", za, zb, labels, sample_size=150)
    losses = ("vicreg", "nt_xent") if contrastive else FAST  # nt_xent keeps every row in memory
    other = run(tmp_path / "2", za, zb, labels, sample_size=150, batch_size=batch, chunk_rows=chunk, losses=losses)
    one, two = diag(base), diag(other)
    for view in ("za", "zb"):
        same(one[view], two[view], VIEW_KEYS)
    same(one["pair"], two["pair"], PAIR_ALL)
    for key in ("pair.positive_cosines", "pair.random_cosines"):
        np.testing.assert_array_equal(base.arrays[key], other.arrays[key])


# ---------------------------------------------------------------------------------------------
# Thresholds through the engine


def test_threshold_override(tmp_path: Path) -> None:
    za, zb = _case("c4")
    result = run(tmp_path, za, zb, thresholds={"dimensional_rank_ratio_centered": 0.05})
    assert result.verdict["status"] == "healthy"
    assert [f["rule"] for f in result.verdict["findings"]] == ["low_rank", "low_rank"]


def test_unknown_threshold_is_a_usage_error(tmp_path: Path) -> None:
    za, zb, _ = spec5()
    with pytest.raises(UsageError, match="dimensional_rank_ratio_centered"):
        run(tmp_path, za, zb, thresholds={"dimensional_rank_ratio": 0.2})


def test_default_thresholds_are_the_spec() -> None:
    assert DEFAULT_THRESHOLDS == {
        "complete_l2_std_ratio": 0.1,
        "complete_retrieval_min": 0.05,
        "complete_retrieval_chance_factor": 5.0,
        "dimensional_rank_ratio_centered": 0.1,
        "unaligned_cosine_gap": 0.1,
        "warn_rank_ratio_centered": 0.3,
        "warn_dead_dims": 0.0,
        "dead_rel": 0.01,
        "dead_abs": 1e-8,
    }


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dead_dims_are_scale_free(tmp_path: Path, dtype: Literal["float32", "float64"]) -> None:
    # spec §4: an absolute `std < 1e-4` rule would call every dimension of (a) * 1e-5 dead
    za = 1e-5 * np.random.default_rng(12).standard_normal((500, 64))
    result = run(tmp_path, za, za * 1.01, dtype=dtype)
    assert diag(result)["za"]["dead_dims"] == 0
    assert not any(f["rule"] == "dead_dims" for f in result.verdict["findings"])


def test_dead_threshold_overrides(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    za = rng.standard_normal((80, 10)) * np.array([1.0] * 8 + [0.02, 0.005])
    zb = za + 0.1 * rng.standard_normal((80, 10))
    assert diag(run(tmp_path / "1", za, zb))["za"]["dead_dims"] == 1
    assert diag(run(tmp_path / "2", za, zb, thresholds={"dead_rel": 0.05}))["za"]["dead_dims"] == 2
    result = run(tmp_path / "3", za, zb, thresholds={"dead_abs": 10.0})
    assert diag(result)["za"]["dead_dims"] == 10
    assert not any(
        f["rule"] == "dead_dims"
        for f in run(tmp_path / "4", za, zb, thresholds={"warn_dead_dims": 1}).verdict["findings"]
    )


def test_finding_paths_resolve(cases: dict[tuple[str, str], Result]) -> None:
    for (_, dtype), result in cases.items():
        if dtype != "float64":
            continue
        data = result.to_dict()
        assert result.verdict["reasons"] == [f["message"] for f in result.verdict["findings"]]
        for finding in result.verdict["findings"]:
            node: Any = data
            for part in finding["metric"].split("."):
                node = node[part]
            assert node == finding["value"]
            assert finding["kind"] in ("fail", "warn", "note")


@pytest.mark.parametrize("numpy_max_dim", [0, 10**9])
def test_both_cpu_eigen_solvers_give_the_reference_spectrum(monkeypatch, numpy_max_dim: int) -> None:
    """Above NUMPY_EIGEN_MAX_DIM (_MKL_NATIVE on an Intel CPU) torch's LAPACK solves the spectra,
    numpy's below: both give np.linalg.eigvalsh's eigenvalues of the same matrix, descending,
    negatives clipped."""
    import torch

    from sslcheck.diagnostics import spectrum

    monkeypatch.setattr(spectrum, "NUMPY_EIGEN_MAX_DIM", numpy_max_dim)
    monkeypatch.setattr(spectrum, "NUMPY_EIGEN_MAX_DIM_MKL_NATIVE", numpy_max_dim)
    x = np.random.default_rng(3).standard_normal((40, 12)) * np.arange(1, 13) ** -1.0
    m = x.T @ x
    m -= np.median(np.linalg.eigvalsh(m)) * np.eye(12)  # its 6 smallest eigenvalues negative: clipped to 0
    ref = np.sort(np.linalg.eigvalsh(m))[::-1].clip(0)
    got = spectrum._descending_eigenvalues(torch.from_numpy(m))
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-14 * ref[0])
    assert (got[:-1] >= got[1:]).all() and (got == 0).sum() == 6


@pytest.mark.parametrize("mkl_native", [False, True])
def test_the_cpu_eigen_solver_follows_the_cpu(monkeypatch, mkl_native: bool) -> None:
    """numpy's LAPACK up to D = 3072 (1024 where torch's MKL runs on an Intel CPU), torch's above."""
    import torch

    from sslcheck.diagnostics import spectrum

    monkeypatch.setattr(spectrum, "_mkl_native", lambda: mkl_native)
    calls: list[str] = []
    numpy_solve, torch_solve = np.linalg.eigvalsh, torch.linalg.eigvalsh
    monkeypatch.setattr(np.linalg, "eigvalsh", lambda m: calls.append("numpy") or numpy_solve(m))
    monkeypatch.setattr(torch.linalg, "eigvalsh", lambda m: calls.append("torch") or torch_solve(m))
    for d in (1024, 1025, 3072, 3073):
        spectrum._descending_eigenvalues(torch.eye(d, dtype=torch.float64))
    assert calls == (["numpy", "torch", "torch", "torch"] if mkl_native else ["numpy", "numpy", "numpy", "torch"])


@pytest.mark.parametrize("offset", [0.0, 1e3])
def test_spectra_from_the_rows_equal_those_from_the_moments(offset: float) -> None:
    """N < D with every row kept: the N x N Grams of the rows give the D x D matrices' spectra
    (Z Z^T and Z^T Z share their nonzero eigenvalues), also about a large common offset."""
    import torch

    from sslcheck.diagnostics.spectrum import view_spectrum

    rng = np.random.default_rng(5)
    z = torch.from_numpy(rng.standard_normal((30, 50)) @ np.diag(np.linspace(1, 0.1, 50)) + offset)
    zc = z - z.mean(0)
    eps = float(torch.finfo(torch.float64).eps)
    from_moments = view_spectrum(30, z.mean(0), zc.T @ zc, eps)
    from_rows = view_spectrum(30, z.mean(0), zc.T @ zc, eps, rows=z)
    for moments, rows in ((from_moments.covariance, from_rows.covariance), (from_moments.gram, from_rows.gram)):
        assert rows.shape == (50,) and (rows[30:] == 0).all()
        np.testing.assert_allclose(rows, moments, rtol=1e-9, atol=1e-12 * moments[0])
    ref = np.linalg.svd(zc.numpy(), compute_uv=False) ** 2 / 29  # the covariance's from an SVD
    np.testing.assert_allclose(from_rows.covariance[:29], ref[:29], rtol=1e-9)


@pytest.mark.parametrize(("n", "d", "solved"), [(30, 50, 30), (2, 6, 2), (40, 40, 40), (60, 40, 40)])
def test_the_engine_solves_n_by_n_spectra_where_every_row_is_kept_and_n_is_below_d(
    tmp_path: Path, monkeypatch, n: int, d: int, solved: int
) -> None:
    """The route is taken (the solver sees N x N matrices) only for N < D, and its metrics are
    the float64 references' (N = 2: one centred eigenvalue; N = D and N > D: D x D)."""
    from sslcheck.diagnostics import spectrum

    sizes: list[int] = []
    solve = spectrum._descending_eigenvalues
    monkeypatch.setattr(spectrum, "_descending_eigenvalues", lambda m: sizes.append(m.shape[0]) or solve(m))
    rng = np.random.default_rng(n + d)
    za = rng.standard_normal((n, d)) + 0.5
    zb = za + 0.3 * rng.standard_normal((n, d))
    got = diag(run(tmp_path, za, zb, None))
    assert sizes == [solved] * 4
    for view, z in (("za", za), ("zb", zb)):
        ref = ref_view(z)
        for key in ("effective_rank", "effective_rank_centered", "stable_rank", "rank_ratio"):
            assert_close(got[view][key], ref[key], rtol=1e-9, atol=1e-300, key=f"{view}.{key}")

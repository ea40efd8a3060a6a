"""sslcheck.losses against naive float64 numpy references, spec §5, hand cases, gradients, --set."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sslcheck.errors import UsageError
from sslcheck.losses.barlow_loss import BarlowParams, barlow_terms, barlow_terms_of, barlow_twins
from sslcheck.losses.blocks import LogSumExp, SumExp, sums_of_exponentials
from sslcheck.losses.flavors import FLAVORS, LOSSES, params_dict, resolve_params
from sslcheck.losses.normalize import normalize_rows
from sslcheck.losses.nt_xent_loss import NTXentParams, nt_xent, nt_xent_terms_of
from sslcheck.losses.pair import Batch
from sslcheck.losses.vicreg_loss import VICRegParams, vicreg, vicreg_terms, vicreg_terms_of
from tests.data import views
from tests.oracles import numpy_reference as ref

RTOL = 1e-10
# (N, D): D > 4N/3 takes the B x B Gram route, D <= 4N/3 the direct D x D route.
GRAM_SHAPES = [(2, 3), (3, 5), (5, 16), (8, 16), (6, 40)]
DIRECT_SHAPES = [(2, 2), (7, 3), (16, 8), (30, 5), (12, 16)]
SHAPES = GRAM_SHAPES + DIRECT_SHAPES

VICREG_PARAMS = [
    VICRegParams(),
    VICRegParams(var_views="sum"),
    VICRegParams(var_ddof=0),
    VICRegParams(var_ddof=0, var_views="sum", gamma=1.5, eps=1e-3, lambda_=3.0, mu=7.0, nu=0.5),
]
BARLOW_PARAMS = [
    BarlowParams(),
    BarlowParams(norm="nx", eps=1e-4, lambda_=5e-3),
    BarlowParams(norm="tf", eps=0.0, margin=1e-12),
    BarlowParams(norm="unbiased", eps=0.0),
    BarlowParams(norm="unbiased", eps=1e-5, scale=0.024),
    BarlowParams(norm="unbiased", eps=0.0, quadra_bug=True, lambda_=5e-3),
    BarlowParams(norm="bn", quadra_bug=True),
]
NT_XENT_PARAMS = [
    NTXentParams(tau=t, reduction=r, normalize=m)
    for t in (0.0014, 0.05, 0.5, 1.0)  # 0.0014: 1 / tau beyond float64's SumExp span
    for r in ("mean", "sum_directions")
    for m in ("torch", "tf", "nx")
]


def t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x)


def assert_terms(got: dict[str, torch.Tensor], want: dict[str, float], rtol: float = RTOL) -> None:
    assert set(got) == set(want)
    for k, v in want.items():
        assert float(got[k]) == pytest.approx(v, rel=rtol, abs=1e-14), k  # abs: (1 - c_ii)^2 of c_ii = 1 +- ulp


def spec_reference_input() -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    za = rng.standard_normal((8, 16))
    zb = za + 0.5 * rng.standard_normal((8, 16))
    return t(za), t(zb)


# --- routes -------------------------------------------------------------------------------


@pytest.mark.parametrize("n,d", GRAM_SHAPES)
def test_gram_shapes_take_the_gram_route(n: int, d: int) -> None:
    za, zb = views(n, d, 0)
    assert Batch(t(za), t(zb)).use_gram


@pytest.mark.parametrize("n,d", DIRECT_SHAPES)
def test_direct_shapes_take_the_direct_route(n: int, d: int) -> None:
    za, zb = views(n, d, 0)
    assert not Batch(t(za), t(zb)).use_gram


@pytest.mark.parametrize("n,d", SHAPES)
def test_both_routes_agree(n: int, d: int) -> None:
    """Forcing the other route gives the same second-moment quantities."""
    za, zb = views(n, d, 1)
    b1, b2 = Batch(t(za), t(zb)), Batch(t(za), t(zb))
    b2.use_gram = not b1.use_gram
    for view in ("a", "b"):
        assert float(b1.cov_offdiag_sq(view)) == pytest.approx(float(b2.cov_offdiag_sq(view)), rel=1e-11)
    s = t(np.random.default_rng(2).uniform(0.5, 2, d))
    for x, y in (("a", "b"), ("b", "a"), ("b", "b")):
        (d1, o1), (d2, o2) = b1.cross(x, y, s, 1 / s), b2.cross(x, y, s, 1 / s)
        np.testing.assert_allclose(d1.numpy(), d2.numpy(), rtol=1e-11)
        assert float(o1) == pytest.approx(float(o2), rel=1e-11)


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("big", [1e2, 1e3, 1e4])
def test_gram_route_with_a_dominant_column(big: float, dtype: torch.dtype, rtol: float) -> None:
    """One column `big` x the others: ||X X^T||_F^2 - sum diag^2 would cancel catastrophically
    (float32 at 1e3: 1e-2 relative error, at 1e4: all digits); the value must stay accurate."""
    rng = np.random.default_rng(14)
    za = rng.standard_normal((8, 16))
    za[:, 0] *= big
    zb = za + 0.5 * rng.standard_normal((8, 16))
    batch = Batch(t(za).to(dtype), t(zb).to(dtype))
    assert batch.use_gram
    got = vicreg_terms_of(batch, VICRegParams())
    want = ref.vicreg(za, zb)
    assert float(got["covariance"]) == pytest.approx(want["covariance"], rel=rtol)
    s = t(rng.uniform(0.5, 2, 16)).to(dtype)
    s[0] *= big
    (_, off), (_, off_direct) = batch.cross("a", "b", s, s), Batch(t(za), t(zb)).cross("a", "b", s.double(), s.double())
    assert float(off) == pytest.approx(float(off_direct), rel=rtol)


# --- against the numpy references ---------------------------------------------------------


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("p", VICREG_PARAMS, ids=str)
def test_vicreg_matches_reference(n: int, d: int, p: VICRegParams) -> None:
    za, zb = views(n, d, n * 100 + d)
    want = ref.vicreg(za, zb, **dataclasses.asdict(p))
    assert_terms(vicreg_terms(t(za), t(zb), p), want)
    assert float(vicreg(t(za), t(zb), p)) == pytest.approx(want["total"], rel=RTOL)


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("p", BARLOW_PARAMS, ids=str)
def test_barlow_matches_reference(n: int, d: int, p: BarlowParams) -> None:
    za, zb = views(n, d, n * 100 + d)
    want = ref.barlow(za, zb, **dataclasses.asdict(p))
    assert_terms(barlow_terms(t(za), t(zb), p), want)
    assert float(barlow_twins(t(za), t(zb), p)) == pytest.approx(want["total"], rel=RTOL)


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("p", NT_XENT_PARAMS, ids=str)
def test_nt_xent_matches_reference(n: int, d: int, p: NTXentParams) -> None:
    za, zb = views(n, d, n * 100 + d)
    want = ref.nt_xent(za, zb, **dataclasses.asdict(p))
    assert float(nt_xent(t(za), t(zb), p)) == pytest.approx(want["total"], rel=RTOL)


@pytest.mark.parametrize("block_elems", [1, 7, 40, 1 << 24])
def test_nt_xent_row_blocks_change_nothing(block_elems: int) -> None:
    za, zb = views(9, 5, 3)
    p = NTXentParams(tau=0.2, reduction="mean", normalize="torch")
    got = nt_xent_terms_of(Batch(t(za), t(zb)), p, block_elems=block_elems)["total"]
    assert float(got) == pytest.approx(ref.nt_xent(za, zb, **dataclasses.asdict(p))["total"], rel=RTOL)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 12),
    d=st.integers(2, 20),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([1e-2, 1.0, 30.0]),
)
def test_random_shapes_every_flavor(n: int, d: int, seed: int, scale: float) -> None:
    za, zb = views(n, d, seed, scale)
    batch = Batch(t(za), t(zb))
    for loss in ref.REFERENCES:
        spec = LOSSES[loss]
        for flavor in FLAVORS:
            p = resolve_params(loss, flavor)
            want = ref.reference(loss, za, zb, p)
            got = spec.compute(batch, p)
            for k in spec.terms:
                # sslcheck's Gram route and the reference's D x D matrix differ by rounding only
                assert float(got[k]) == pytest.approx(want[k], rel=1e-9, abs=1e-13), (loss, flavor, k)


def test_tf_norm_maps_a_constant_column_to_zero() -> None:
    za, zb = views(6, 4, 5)
    za[:, 1] = 3.0
    zb[:, 2] = -2.0
    p = resolve_params("barlow", "tf-similarity")
    got = barlow_terms(t(za), t(zb), p)
    want = ref.barlow(za, zb, **dataclasses.asdict(p))
    assert_terms(got, want)
    assert all(math.isfinite(float(v)) for v in got.values())
    # the two constant columns contribute (1 - 0)^2 each to the on-diagonal term
    assert float(got["on_diagonal"]) >= 2.0


def test_quadra_bug_ignores_za_and_is_nan_on_a_constant_column() -> None:
    za, zb = views(6, 4, 6)
    p = resolve_params("barlow", "quadra")
    assert p.quadra_bug
    other = views(6, 4, 7)[0]
    assert_terms(barlow_terms(t(other), t(zb), p), {k: float(v) for k, v in barlow_terms(t(za), t(zb), p).items()})
    zb[:, 0] = 3.0
    assert all(math.isnan(float(v)) for v in barlow_terms(t(za), t(zb), p).values())


# --- spec §5 reference values ---------------------------------------------------------------

SPEC_VALUES: dict[tuple[str, str], dict[str, float]] = {
    **{
        ("vicreg", f): {
            "invariance": 0.28476280128,
            "variance": 0.09950453283,
            "covariance": 5.47987465050,
            "total": 15.086558003,
        }
        for f in ("paper", "lightly")
    },
    **{
        ("vicreg", f): {
            "invariance": 0.28476280128,
            "variance": 0.19900906567,
            "covariance": 5.47987465050,
            "total": 17.574171324,
        }
        for f in ("solo-learn", "quadra")
    },
    ("vicreg", "tf-similarity"): {"variance": 0.12434915101, "total": 15.707673458},
    ("vicreg", "edifice"): {"variance": 0.24869830202, "total": 18.816402233},
    ("barlow", "paper"): {"on_diagonal": 0.30947706596, "off_diagonal": 37.974672396, "total": 0.50314789518},
    ("barlow", "lightly"): {"on_diagonal": 0.30947706596, "off_diagonal": 37.974672396, "total": 0.49935042794},
    # solo-learn: the paper's terms, lambda 0.0051, x scale 0.024 (§2 table)
    ("barlow", "solo-learn"): {
        "on_diagonal": 0.30947706596,
        "off_diagonal": 37.974672396,
        "total": 0.024 * 0.50314789518,
    },
    ("barlow", "tf-similarity"): {"on_diagonal": 0.30942529626, "off_diagonal": 37.975686387, "total": 0.49930372820},
    ("barlow", "edifice"): {"total": 0.4997708736},
    ("barlow", "quadra"): {"total": 1.1522839886641},
    ("nt_xent", "paper"): {"total": 0.06074520605},
    ("nt_xent", "lightly"): {"total": 1.3090208148555},
    ("nt_xent", "solo-learn"): {"total": 0.03037260302},
    ("nt_xent", "quadra"): {"total": 1.938539406},
}


@pytest.mark.parametrize("key", list(SPEC_VALUES), ids=lambda k: f"{k[0]}-{k[1]}")
def test_spec_reference_values(key: tuple[str, str]) -> None:
    loss, flavor = key
    za, zb = spec_reference_input()
    got = LOSSES[loss].compute(Batch(za, zb), resolve_params(loss, flavor))
    for term, value in SPEC_VALUES[key].items():
        assert float(got[term]) == pytest.approx(value, rel=1e-9), term


def test_every_flavor_has_a_spec_value_or_a_stated_relation() -> None:
    covered = set(SPEC_VALUES) | {("nt_xent", "edifice"), ("nt_xent", "tf-similarity")}
    assert covered == {(loss, f) for loss in ref.REFERENCES for f in FLAVORS}


def test_spec_nt_xent_edifice_is_5e10_off_torch_normalisation() -> None:
    za, zb = spec_reference_input()
    edifice = float(nt_xent(za, zb, resolve_params("nt_xent", "edifice")))
    lightly = float(nt_xent(za, zb, resolve_params("nt_xent", "lightly")))
    assert lightly == pytest.approx(1.3090208148555, rel=1e-12)
    assert (edifice - lightly) / lightly == pytest.approx(5.4e-10, abs=0.05e-10)


def test_spec_nt_xent_tf_similarity_is_twice_the_mean_at_its_tau() -> None:
    za, zb = spec_reference_input()
    p = resolve_params("nt_xent", "tf-similarity")
    assert (p.tau, p.reduction, p.normalize) == (0.05, "sum_directions", "tf")
    mean = float(nt_xent(za, zb, NTXentParams(tau=0.05, reduction="mean", normalize="tf")))
    assert float(nt_xent(za, zb, p)) == pytest.approx(2 * mean, rel=1e-14)


@pytest.mark.parametrize(
    "tau,value", [(0.5, 1.3090208148555), (0.2, 0.3111511831), (0.1, 0.03037260302), (1.0, 1.938539406)]
)
def test_spec_nt_xent_mean_over_2n(tau: float, value: float) -> None:
    za, zb = spec_reference_input()
    assert float(nt_xent(za, zb, NTXentParams(tau=tau, reduction="mean", normalize="torch"))) == pytest.approx(
        value, rel=1e-9
    )


def test_spec_std_of_normalized_rows() -> None:
    za, _ = spec_reference_input()
    u = normalize_rows(za, "torch")
    assert float(u.std(0).mean()) == pytest.approx(0.2451382254, rel=1e-9)
    assert float(u.std(0, correction=0).mean()) == pytest.approx(0.2293058130, rel=1e-9)


# --- hand-computed cases --------------------------------------------------------------------


@pytest.mark.parametrize(
    "flavor,total",
    [
        ("paper", 24.75),
        ("lightly", 24.75),
        ("tf-similarity", 24.75),
        ("solo-learn", 49.5),
        ("quadra", 49.5),
        ("edifice", 49.5),
    ],
)
def test_vicreg_complete_collapse(flavor: str, total: float) -> None:
    z = torch.full((5, 3), 0.25, dtype=torch.float64)
    got = vicreg_terms(z, z.clone(), resolve_params("vicreg", flavor))
    assert float(got["invariance"]) == 0.0
    assert float(got["covariance"]) == 0.0
    assert float(got["variance"]) == pytest.approx(total / 25, rel=1e-14)  # w * 2 * (1 - 0.01)
    assert float(got["total"]) == pytest.approx(total, rel=1e-14)


def test_vicreg_hand_case() -> None:
    """za = [[1, 0], [-1, 0]], zb = [[0, 1], [0, -1]]: var1 = (2, 0) and (0, 2); no covariance."""
    za = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    zb = torch.tensor([[0.0, 1.0], [0.0, -1.0]], dtype=torch.float64)
    got = vicreg_terms(za, zb)
    hinge = (0 + (1 - math.sqrt(1e-4))) / 2  # column with var 2 has std > 1: no hinge
    assert float(got["invariance"]) == pytest.approx(1.0, rel=1e-15)  # (1 + 1 + 1 + 1) / 4
    assert float(got["variance"]) == pytest.approx(hinge, rel=1e-14)
    assert float(got["covariance"]) == 0.0
    assert float(got["total"]) == pytest.approx(25 + 25 * hinge, rel=1e-14)


def test_barlow_hand_case() -> None:
    """Two orthogonal +-1 columns, za = zb: c is diagonal; var0 = 1, var1 = 4/3."""
    col = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]], dtype=torch.float64)
    bn = barlow_terms(col, col.clone())
    assert float(bn["on_diagonal"]) == pytest.approx(2 * (1 - 1 / (1 + 1e-5)) ** 2, rel=1e-9)
    assert float(bn["off_diagonal"]) == 0.0
    tf = barlow_terms(col, col.clone(), resolve_params("barlow", "tf-similarity"))
    assert float(tf["on_diagonal"]) == 0.0
    assert float(tf["total"]) == 1e-12
    quadra = barlow_terms(torch.zeros_like(col), col.clone(), resolve_params("barlow", "quadra"))
    assert float(quadra["on_diagonal"]) == pytest.approx(2 * (1 - math.sqrt(3 / 4)) ** 2, rel=1e-13)
    assert float(quadra["off_diagonal"]) == 0.0


@pytest.mark.parametrize("tau", [0.1, 0.5, 1.0])
def test_nt_xent_hand_case(tau: float) -> None:
    """Orthonormal rows, za = zb: each row sees its positive at 1/tau and two negatives at 0."""
    z = torch.eye(2, dtype=torch.float64) * 3.0
    mean = math.log(1 + 2 * math.exp(-1 / tau))
    assert float(nt_xent(z, z.clone(), NTXentParams(tau=tau, reduction="mean"))) == pytest.approx(mean, rel=1e-13)
    assert float(nt_xent(z, z.clone(), NTXentParams(tau=tau))) == pytest.approx(2 * mean, rel=1e-13)


def test_nt_xent_zero_row_is_finite_under_every_normalisation() -> None:
    za, zb = views(4, 3, 8)
    za[1] = 0.0
    for mode in ("torch", "tf", "nx"):
        p = NTXentParams(tau=0.5, normalize=mode)
        got = float(nt_xent(t(za), t(zb), p))
        assert math.isfinite(got)
        assert got == pytest.approx(ref.nt_xent(za, zb, **dataclasses.asdict(p))["total"], rel=RTOL)


def test_nt_xent_small_tau_is_finite_and_exact() -> None:
    """tau = 0.01: raw exp(1/tau) overflows float32 (solo-learn's NaN); the stable log-sum-exp does
    not. In float32 the logits ~ 100 leave an absolute error ~ 100 * 2^-24 on a loss ~ 6e-4."""
    za, zb = views(6, 4, 9)
    p = NTXentParams(tau=0.01, reduction="mean", normalize="torch")
    want = ref.nt_xent(za, zb, **dataclasses.asdict(p))["total"]
    assert float(nt_xent(t(za), t(zb), p)) == pytest.approx(want, rel=RTOL)
    got32 = float(nt_xent(t(za).float(), t(zb).float(), p))
    assert math.isfinite(got32)
    assert got32 == pytest.approx(want, abs=100 * 2.0**-24 * 4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_plain_sums_equal_the_log_sum_exp(dtype: torch.dtype) -> None:
    """Logits in [-top, top] with top + ln(terms) at the dtype's span: the plain sums, taken along
    rows and columns of one exponentiated block and combined by addition, give the same logs as
    the stable log-sum-exp, to the dtype's rounding of float64's."""
    span = SumExp.SPANS[dtype]
    top = span - math.log(9)  # at most 9 terms to a sum
    assert SumExp.fits(top, 9, dtype) and not SumExp.fits(top * 1.01, 9, dtype)
    assert not SumExp.fits(1.0, 1, torch.float16)
    rng = np.random.default_rng(1)
    logits = top * (2 * rng.random((2, 7, 9)) - 1)
    logits[0, 0], logits[0, 1] = top, -top  # a whole row at each end of the range
    want_rows = np.log(np.exp(logits).sum(-1))
    want_cols = np.log(np.exp(logits).sum(-2))
    for sums in (SumExp(), LogSumExp()):
        e = sums.exponentials(t(logits).to(dtype, copy=True))
        rows = sums.log(sums.add(sums.total(e[..., :3], -1), sums.total(e[..., 3:], -1)))
        cols = sums.log(sums.add(sums.total(e[:, :4], -2), sums.total(e[:, 4:], -2)))
        eps = float(torch.finfo(dtype).eps)
        np.testing.assert_allclose(rows.double().numpy(), want_rows, rtol=0, atol=16 * eps * span)
        np.testing.assert_allclose(cols.double().numpy(), want_cols, rtol=0, atol=16 * eps * span)


@pytest.mark.parametrize("sums", [SumExp(), LogSumExp()])
def test_a_symmetric_blocks_sums_from_above_its_diagonal(sums: LogSumExp) -> None:
    """A row's sum over the rest of a symmetric block is that of its row above the diagonal and
    of its column there: whatever is on and below the diagonal counts for nothing."""
    rng = np.random.default_rng(2)
    s = rng.uniform(-5, 5, (3, 6, 6))
    s = s + np.swapaxes(s, -1, -2)
    garbage = np.tril(rng.uniform(-1e3, 1e3, (6, 6)))  # what a Gram-derived block holds below
    logits = t(np.triu(s, 1) + garbage)
    terms = sums.exponentials_above_diagonal(logits)
    got = sums.log(sums.add(sums.total(terms, -1), sums.total(terms, -2))).numpy()
    off_diagonal = np.where(np.eye(6, dtype=bool), -np.inf, s)
    np.testing.assert_allclose(got, np.log(np.exp(off_diagonal).sum(-1)), rtol=1e-13)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sums_of_exponentials_leave_the_log_domain_only_where_exact(dtype: torch.dtype) -> None:
    span = SumExp.SPANS[dtype]
    assert type(sums_of_exponentials(span - math.log(1000), 1000, dtype)) is SumExp
    assert type(sums_of_exponentials(span - math.log(1000) + 0.01, 1000, dtype)) is LogSumExp
    assert type(sums_of_exponentials(1.0, 2, torch.float16)) is LogSumExp


def test_nt_xent_float32_at_the_edge_of_the_plain_sums() -> None:
    """1 / tau + ln(2N) = 80, the widest float32 span for plain sums: a row's 16 terms up to
    e^77.2 sum below e^80, and opposite rows (cosine -1) put terms at e^-77.2: all normal floats,
    and the float32 value equals the float64 reference (on the same rounded rows) to the rounding
    of logits ~ 80."""
    za, zb = views(8, 4, 3)
    za[1], zb[5] = -za[0], -zb[4]
    tau = 1 / (SumExp.SPANS[torch.float32] - math.log(16))
    assert type(sums_of_exponentials(1 / tau, 16, torch.float32)) is SumExp
    p = NTXentParams(tau=tau, reduction="mean", normalize="torch")
    a32, b32 = t(za).float(), t(zb).float()
    want = ref.nt_xent(a32.double().numpy(), b32.double().numpy(), **dataclasses.asdict(p))["total"]
    got = float(nt_xent(a32, b32, p))
    assert got == pytest.approx(want, abs=80 * 2.0**-24 * 8)


def test_batch_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="at least 2 rows"):
        Batch(torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"\[\.\.\., N, D\]"):
        Batch(torch.zeros(4, 3), torch.zeros(4, 2))
    with pytest.raises(ValueError, match=r"\[\.\.\., N, D\]"):
        Batch(torch.zeros(4), torch.zeros(4))


def test_leading_batch_dims_give_one_value_per_batch() -> None:
    """[k, B, D] inputs equal k separate [B, D] batches (the engine scores chunks this way)."""
    gen = torch.Generator().manual_seed(5)
    for d in (8, 200):  # direct and Gram routes
        za = torch.randn(3, 32, d, dtype=torch.float64, generator=gen)
        zb = za + 0.5 * torch.randn(3, 32, d, dtype=torch.float64, generator=gen)
        for terms_of in (vicreg_terms, barlow_terms):
            stacked = terms_of(za, zb)
            for i in range(3):
                for term, value in terms_of(za[i], zb[i]).items():
                    torch.testing.assert_close(stacked[term][i], value, rtol=1e-12, atol=0)
        torch.testing.assert_close(
            nt_xent(za, zb), torch.stack([nt_xent(za[i], zb[i]) for i in range(3)]), rtol=1e-12, atol=0
        )


# --- differentiability ----------------------------------------------------------------------

GRAD_CASES = [
    ("vicreg", VICRegParams()),
    ("vicreg", VICRegParams(var_ddof=0, var_views="sum")),
    ("barlow", BarlowParams()),
    ("barlow", BarlowParams(norm="tf", eps=0.0)),
    ("barlow", BarlowParams(norm="nx", eps=1e-4)),
    ("barlow", BarlowParams(norm="unbiased", eps=0.0, quadra_bug=True)),
    ("nt_xent", NTXentParams(tau=0.5, reduction="mean", normalize="torch")),
    ("nt_xent", NTXentParams(tau=0.1, normalize="tf")),
    ("nt_xent", NTXentParams(tau=0.5, normalize="nx")),
    ("nt_xent", NTXentParams(tau=0.0025, reduction="mean", normalize="torch")),  # LogSumExp in float64
]


@pytest.mark.parametrize("n,d", [(4, 8), (6, 3)], ids=["gram", "direct"])
@pytest.mark.parametrize("loss,p", GRAD_CASES, ids=lambda x: str(x))
def test_gradcheck(loss: str, p: object, n: int, d: int) -> None:
    za, zb = views(n, d, 11, scale=0.6)  # stds away from gamma = 1: the hinge is smooth there
    a = t(za).requires_grad_(True)
    b = t(zb).requires_grad_(True)

    def f(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return LOSSES[loss].compute(Batch(x, y), p)["total"]

    f(a, b).backward()
    assert b.grad is not None and torch.isfinite(b.grad).all()
    if getattr(p, "quadra_bug", False):
        # quadra 2.9's bug ignores za: no gradient reaches it
        assert a.grad is None
        assert torch.autograd.gradcheck(lambda y: f(t(za), y), (t(zb).requires_grad_(True),))
    else:
        assert a.grad is not None and torch.isfinite(a.grad).all()
        assert torch.autograd.gradcheck(f, (t(za).requires_grad_(True), t(zb).requires_grad_(True)))


def test_public_losses_are_differentiable_in_float32() -> None:
    za, zb = views(8, 16, 12)
    for fn in (vicreg, barlow_twins, nt_xent):
        a = t(za).float().requires_grad_(True)
        fn(a, t(zb).float()).backward()
        assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0


# --- --set parsing ----------------------------------------------------------------------------


def test_resolve_params_presets_are_the_flavor_table() -> None:
    assert params_dict(resolve_params("vicreg", "solo-learn"))["var_views"] == "sum"
    assert params_dict(resolve_params("vicreg", "tf-similarity"))["var_ddof"] == 0
    assert params_dict(resolve_params("barlow", "lightly"))["lambda"] == 5e-3
    assert params_dict(resolve_params("barlow", "solo-learn"))["scale"] == 0.024
    assert params_dict(resolve_params("barlow", "edifice"))["eps"] == 1e-4
    assert params_dict(resolve_params("nt_xent", "quadra"))["tau"] == 1.0
    assert set(params_dict(resolve_params("vicreg", "paper"))) == {
        "lambda",
        "mu",
        "nu",
        "gamma",
        "eps",
        "var_ddof",
        "var_views",
    }
    assert {"lambda", "scale", "margin", "norm", "eps"} <= set(params_dict(resolve_params("barlow", "paper")))
    assert set(params_dict(resolve_params("nt_xent", "paper"))) == {"tau", "reduction", "normalize"}


@pytest.mark.parametrize(
    "loss,flavor,overrides,expected",
    [
        ("vicreg", "paper", {"mu": "50"}, {"mu": 50.0}),
        ("vicreg", "paper", {"lambda": "1e-3", "nu": "2"}, {"lambda_": 1e-3, "nu": 2.0}),
        ("vicreg", "lightly", {"var_ddof": "0", "var_views": "sum"}, {"var_ddof": 0, "var_views": "sum"}),
        ("vicreg", "paper", {"eps": "0"}, {"eps": 0.0}),
        ("barlow", "paper", {"norm": "tf", "margin": "1e-12"}, {"norm": "tf", "margin": 1e-12}),
        ("barlow", "quadra", {"quadra_bug": "false"}, {"quadra_bug": False}),
        ("barlow", "paper", {"quadra_bug": "True"}, {"quadra_bug": True}),
        (
            "nt_xent",
            "paper",
            {"tau": "0.2", "reduction": "mean", "normalize": "nx"},
            {"tau": 0.2, "reduction": "mean", "normalize": "nx"},
        ),
    ],
)
def test_set_overrides(loss: str, flavor: str, overrides: dict[str, str], expected: dict[str, object]) -> None:
    preset = resolve_params(loss, flavor)
    p = resolve_params(loss, flavor, overrides)
    for field, value in expected.items():
        assert getattr(p, field) == value
        assert type(getattr(p, field)) is type(value)
    untouched = {f.name for f in dataclasses.fields(p)} - set(expected)
    assert all(getattr(p, f) == getattr(preset, f) for f in untouched)
    assert resolve_params(loss, flavor) == preset  # presets are not mutated


def test_set_override_changes_the_value() -> None:
    za, zb = spec_reference_input()
    p = resolve_params("vicreg", "paper", {"mu": "50"})
    assert float(vicreg(za, zb, p)) == pytest.approx(15.086558003 + 25 * 0.09950453283, rel=1e-9)


@pytest.mark.parametrize(
    "loss,overrides,match",
    [
        ("vicreg", {"alpha": "1"}, "unknown parameter"),
        ("vicreg", {"lambda_": "1"}, "unknown parameter"),
        ("nt_xent", {"temperature": "0.5"}, "unknown parameter"),
        ("vicreg", {"mu": "abc"}, "expected a number"),
        ("vicreg", {"mu": "nan"}, "finite"),
        ("vicreg", {"mu": "inf"}, "finite"),
        ("vicreg", {"var_ddof": "2"}, "expected one of"),
        ("vicreg", {"var_ddof": "one"}, "expected one of"),
        ("vicreg", {"var_views": "median"}, "expected one of"),
        ("vicreg", {"eps": "-1e-4"}, ">= 0"),
        ("barlow", {"norm": "layer"}, "expected one of"),
        ("barlow", {"quadra_bug": "maybe"}, "true or false"),
        ("nt_xent", {"tau": "0"}, "> 0"),
        ("nt_xent", {"tau": "-0.1"}, "> 0"),
        ("nt_xent", {"reduction": "sum"}, "expected one of"),
        ("nt_xent", {"normalize": "l2"}, "expected one of"),
    ],
)
def test_set_rejects(loss: str, overrides: dict[str, str], match: str) -> None:
    with pytest.raises(UsageError, match=match):
        resolve_params(loss, "paper", overrides)


def test_barlow_terms_of_whole_set_equals_batch() -> None:
    """The moments-only path (WholeSet) gives the batch's values for every Barlow norm."""
    from sslcheck.losses.pair import WholeSet
    from sslcheck.stats import PairMoments

    za, zb = views(10, 6, 13)
    whole = WholeSet(PairMoments.of(t(za), t(zb)))
    for p in BARLOW_PARAMS:
        want = ref.barlow(za, zb, **dataclasses.asdict(p))
        assert_terms(barlow_terms_of(whole, p), want)

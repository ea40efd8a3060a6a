"""The relative losses (InfoNCE, DCL, DCLW, negative cosine, BYOL, hypersphere, MMCR): spec §5
values, naive float64 numpy references, row blocks, invariances, gradients, the real libraries
(lightly 1.6, solo-learn 1.0.2, quadra 2.9) and the engine.

The numpy references below take `(za, zb, **dataclasses.asdict(params))` and return every term,
the same contract as `tests/oracles/numpy_reference.py`.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sslcheck.errors import UsageError
from sslcheck.losses import (
    BYOLParams,
    DCLParams,
    DCLWParams,
    HypersphereParams,
    InfoNCEParams,
    MMCRParams,
    NegativeCosineParams,
    byol,
    dcl,
    dcl_terms,
    dclw,
    hypersphere,
    hypersphere_terms,
    infonce,
    mmcr,
    mmcr_terms,
    negative_cosine,
)
from sslcheck.losses.dcl_loss import dcl_terms_of
from sslcheck.losses.flavors import FLAVORS, LOSSES, params_dict, resolve_params
from sslcheck.losses.hypersphere_loss import hypersphere_terms_of
from sslcheck.losses.infonce_loss import infonce_terms_of
from sslcheck.losses.mmcr_loss import centroid_nuclear_norm, mmcr_terms_of, pair_nuclear_norms
from sslcheck.losses.pair import Batch
from tests.data import views
from tests.oracles import lightly_loss, why_not

NEW_LOSSES = ("infonce", "dcl", "dclw", "negative_cosine", "byol", "hypersphere", "mmcr")
RTOL = 1e-10
SHAPES = [(2, 2), (2, 5), (3, 7), (5, 16), (8, 16), (7, 3), (16, 8), (30, 5), (12, 40)]


def t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x)


def spec_reference_input() -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    za = rng.standard_normal((8, 16))
    zb = za + 0.5 * rng.standard_normal((8, 16))
    return t(za), t(zb)


# --- naive float64 numpy references (explicit matrices, python loops) --------------------


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def ref_infonce(za: np.ndarray, zb: np.ndarray, tau: float, scale_2tau: bool, symmetric: bool) -> dict[str, float]:
    def one_way(q: np.ndarray, k: np.ndarray) -> float:
        s = _unit(q) @ _unit(k).T / tau
        return float(np.mean([math.log(np.exp(s[i]).sum()) - s[i, i] for i in range(len(s))]))

    loss = (one_way(za, zb) + one_way(zb, za)) / 2 if symmetric else one_way(za, zb)
    return {"total": 2 * tau * loss if scale_2tau else loss}


def ref_dcl(za: np.ndarray, zb: np.ndarray, tau: float, sigma: float | None = None) -> dict[str, float]:
    """lightly's DCLLoss._loss, written out: positive -s_ii (x weight), negatives 2N - 2 terms."""
    u, v = _unit(za), _unit(zb)
    n = len(u)
    cos = np.array([u[i] @ v[i] for i in range(n)])
    weight = np.ones(n)
    if sigma is not None:
        e = np.exp(cos / sigma)
        weight = 2 - n * e / e.sum()
    positive, negative = 0.0, 0.0
    for x, y in ((u, v), (v, u)):
        for i in range(n):
            positive += -weight[i] * (x[i] @ y[i]) / tau
            negs = [x[i] @ x[j] / tau for j in range(n) if j != i] + [x[i] @ y[j] / tau for j in range(n) if j != i]
            negative += math.log(sum(math.exp(s) for s in negs))
    positive, negative = positive / (2 * n), negative / (2 * n)
    return {"positive": positive, "negative": negative, "total": positive + negative}


def ref_dclw(za: np.ndarray, zb: np.ndarray, tau: float, sigma: float) -> dict[str, float]:
    return ref_dcl(za, zb, tau, sigma)


def _cosines(za: np.ndarray, zb: np.ndarray) -> np.ndarray:
    return np.array([a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) for a, b in zip(za, zb, strict=True)])


def ref_negative_cosine(za: np.ndarray, zb: np.ndarray) -> dict[str, float]:
    return {"total": float(-_cosines(za, zb).mean())}


def ref_byol(za: np.ndarray, zb: np.ndarray) -> dict[str, float]:
    return {"total": float(2 - 2 * _cosines(za, zb).mean())}


def ref_hypersphere(za: np.ndarray, zb: np.ndarray, t: float, lam: float, alpha: float) -> dict[str, float]:
    x, y = _unit(za), _unit(zb)
    n = len(x)
    alignment = float(np.mean([np.linalg.norm(x[i] - y[i]) ** alpha for i in range(n)]))

    def unif(z: np.ndarray) -> float:
        pairs = [math.exp(-t * np.sum((z[i] - z[j]) ** 2)) for i, j in itertools.combinations(range(n), 2)]
        return math.log(sum(pairs) / len(pairs))

    uniformity = (unif(x) + unif(y)) / 2
    return {"alignment": alignment, "uniformity": uniformity, "total": alignment + lam * uniformity}


def ref_mmcr(za: np.ndarray, zb: np.ndarray, lambda_: float) -> dict[str, float]:
    centroid = float(np.linalg.svd((za + zb) / 2, compute_uv=False).sum())
    local = float(
        np.mean([np.linalg.svd(np.stack([a, b]), compute_uv=False).sum() for a, b in zip(za, zb, strict=True)])
    )
    return {"centroid_nuclear": centroid, "local_nuclear": local, "total": -centroid + lambda_ * local}


REFERENCES: dict[str, Callable[..., dict[str, float]]] = {
    "infonce": ref_infonce,
    "dcl": ref_dcl,
    "dclw": ref_dclw,
    "negative_cosine": ref_negative_cosine,
    "byol": ref_byol,
    "hypersphere": ref_hypersphere,
    "mmcr": ref_mmcr,
}


def reference(loss: str, za: np.ndarray, zb: np.ndarray, params: Any) -> dict[str, float]:
    return REFERENCES[loss](za, zb, **dataclasses.asdict(params))


def ours(loss: str, za: torch.Tensor, zb: torch.Tensor, params: Any, **kw: Any) -> dict[str, float]:
    return {k: float(v) for k, v in LOSSES[loss].compute(Batch(za, zb), params, **kw).items()}


def assert_terms(got: dict[str, float], want: dict[str, float], rtol: float = RTOL, abs_: float = 1e-13) -> None:
    assert set(got) == set(want)
    for k, v in want.items():
        assert got[k] == pytest.approx(v, rel=rtol, abs=abs_), k


PARAMS: dict[str, list[Any]] = {
    "infonce": [
        InfoNCEParams(),
        InfoNCEParams(tau=0.05, scale_2tau=False),
        InfoNCEParams(tau=1.0, symmetric=True),
        InfoNCEParams(tau=0.5, scale_2tau=False, symmetric=True),
    ],
    "dcl": [DCLParams(), DCLParams(tau=0.05), DCLParams(tau=1.0)],
    "dclw": [DCLWParams(), DCLWParams(tau=0.5, sigma=0.1), DCLWParams(tau=1.0, sigma=2.0)],
    "negative_cosine": [NegativeCosineParams()],
    "byol": [BYOLParams()],
    "hypersphere": [
        HypersphereParams(),
        HypersphereParams(t=2.0),
        HypersphereParams(t=0.5, lam=3.0, alpha=1.0),
        HypersphereParams(t=10.0, lam=0.5, alpha=1.5),
    ],
    "mmcr": [MMCRParams(), MMCRParams(lambda_=0.0), MMCRParams(lambda_=2.0)],
}
CASES = [(loss, p) for loss, ps in PARAMS.items() for p in ps]


# --- spec §5 ------------------------------------------------------------------------------


SPEC = {
    ("infonce", "total"): 0.06831063796445,
    ("dcl", "total"): -4.030072726,
    ("dclw", "total"): -4.0175396564124,
    ("negative_cosine", "total"): -0.8803755107,
    ("byol", "total"): 0.2392489786,
    ("hypersphere", "alignment"): 0.2392489786,
    ("hypersphere", "total"): -1.643803642,
    ("mmcr", "total"): -29.078887795537,
}


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("loss,term", list(SPEC))
def test_spec_reference_values(loss: str, term: str, flavor: str) -> None:
    za, zb = spec_reference_input()
    p = resolve_params(loss, flavor)
    got = ours(loss, za, zb, p)
    want = SPEC[(loss, term)]
    if loss == "hypersphere" and flavor == "quadra" and term == "total":  # quadra's own loss has t = 2
        want = ref_hypersphere(za.numpy(), zb.numpy(), **dataclasses.asdict(p))["total"]
    assert got[term] == pytest.approx(want, rel=1e-9)


def test_spec_values_through_the_public_functions() -> None:
    za, zb = spec_reference_input()
    public = {
        "infonce": infonce(za, zb),
        "dcl": dcl(za, zb),
        "dclw": dclw(za, zb),
        "negative_cosine": negative_cosine(za, zb),
        "byol": byol(za, zb),
        "hypersphere": hypersphere(za, zb),
        "mmcr": mmcr(za, zb),
    }
    for loss, value in public.items():
        assert float(value) == pytest.approx(SPEC[(loss, "total")], rel=1e-9), loss


def test_spec_relations() -> None:
    """BYOL = 2 + 2 x negative cosine = the hypersphere alignment at alpha 2; DCL's positive is the
    negative cosine / tau."""
    za, zb = spec_reference_input()
    neg = float(negative_cosine(za, zb))
    assert float(byol(za, zb)) == pytest.approx(2 + 2 * neg, rel=1e-14)
    assert float(hypersphere_terms(za, zb)["alignment"]) == pytest.approx(2 + 2 * neg, rel=1e-13)
    assert float(dcl_terms(za, zb)["positive"]) == pytest.approx(neg / 0.1, rel=1e-14)
    mmcr_parts = mmcr_terms(za, zb)
    assert float(mmcr_parts["total"]) == pytest.approx(
        -float(mmcr_parts["centroid_nuclear"]) + 5e-3 * float(mmcr_parts["local_nuclear"]), rel=1e-15
    )


# --- against the numpy references ---------------------------------------------------------


@pytest.mark.parametrize("n,d", SHAPES)
@pytest.mark.parametrize("loss,p", CASES, ids=str)
def test_matches_reference(loss: str, p: Any, n: int, d: int) -> None:
    za, zb = views(n, d, n * 100 + d)
    assert_terms(ours(loss, t(za), t(zb), p), reference(loss, za, zb, p))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 12),
    d=st.integers(1, 20),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([1e-3, 1.0, 30.0]),
)
def test_random_shapes_every_flavor(n: int, d: int, seed: int, scale: float) -> None:
    za, zb = views(n, d, seed, scale)
    for loss in NEW_LOSSES:
        for flavor in FLAVORS:
            p = resolve_params(loss, flavor)
            assert_terms(ours(loss, t(za), t(zb), p), reference(loss, za, zb, p), abs_=1e-12)


def test_infonce_is_the_torch_transcription_of_solo_learns_mocov3_loss_func() -> None:
    """solo-learn's mocov3_loss_func (main branch; the 1.0.2 wheel has none), transcribed."""
    za, zb = views(10, 6, 11)
    q, k = torch.nn.functional.normalize(t(za), dim=1), torch.nn.functional.normalize(t(zb), dim=1)
    for tau in (0.2, 0.07, 1.0):
        logits = torch.einsum("nc,mc->nm", [q, k]) / tau
        want = torch.nn.functional.cross_entropy(logits, torch.arange(10)) * (2 * tau)
        assert float(infonce(t(za), t(zb), InfoNCEParams(tau=tau))) == pytest.approx(float(want), rel=1e-13)


# --- row blocks ---------------------------------------------------------------------------


BLOCKED: dict[str, Callable[..., dict[str, torch.Tensor]]] = {
    "infonce": infonce_terms_of,
    "dcl": dcl_terms_of,
    "dclw": dcl_terms_of,
    "hypersphere": hypersphere_terms_of,
    "mmcr": mmcr_terms_of,
}


@pytest.mark.parametrize("block_elems", [1, 7, 40, 150])
@pytest.mark.parametrize("n,d", [(9, 5), (30, 4), (13, 13), (6, 20), (41, 2)])
@pytest.mark.parametrize("loss", list(BLOCKED))
def test_row_blocks_change_nothing(loss: str, n: int, d: int, block_elems: int) -> None:
    za, zb = views(n, d, 3)
    for p in PARAMS[loss]:
        whole = {k: float(v) for k, v in BLOCKED[loss](Batch(t(za), t(zb)), p).items()}
        blocked = {k: float(v) for k, v in BLOCKED[loss](Batch(t(za), t(zb)), p, block_elems=block_elems).items()}
        assert_terms(blocked, whole, rtol=1e-12)
        assert_terms(blocked, reference(loss, za, zb, p))


@pytest.mark.parametrize("block_elems", [1, 40, 150])
@pytest.mark.parametrize("loss", list(BLOCKED))
def test_row_blocks_of_stacked_batches_change_nothing(loss: str, block_elems: int) -> None:
    """[3, B, D] rows in row blocks (each block spans all three batches) give each batch's value."""
    za, zb = views(36, 5, 8)
    stacked = Batch(t(za).reshape(3, 12, 5), t(zb).reshape(3, 12, 5))
    for p in PARAMS[loss]:
        got = BLOCKED[loss](stacked, p, block_elems=block_elems)
        for i in range(3):
            rows = slice(12 * i, 12 * (i + 1))
            assert_terms({k: float(v[i]) for k, v in got.items()}, reference(loss, za[rows], zb[rows], p))


@pytest.mark.parametrize("n,d", [(50, 3), (200, 8), (33, 16)])
def test_centroid_nuclear_norm_by_tall_skinny_qr(n: int, d: int) -> None:
    """Blocks of block_elems / D rows reduced to a D x D triangular factor: same singular values."""
    za, zb = views(n, d, 4)
    want = np.linalg.svd((za + zb) / 2, compute_uv=False).sum()
    for block_elems in (1, d * d, 5 * d, 10**9):
        assert float(centroid_nuclear_norm(t(za), t(zb), block_elems)) == pytest.approx(want, rel=1e-12)


def test_mmcr_collapse_is_exact() -> None:
    """A rank-one centroid (all rows equal) and parallel pairs: the closed forms stay exact, where
    square roots of Gram eigenvalues or of aa * bb - ab^2 would be off by ~sqrt(eps)."""
    rng = np.random.default_rng(5)
    row = rng.standard_normal(7)
    za = np.tile(row, (40, 1))
    zb = 3 * za
    want_centroid = 2 * np.linalg.norm(row) * math.sqrt(40)
    for block_elems in (1, 10**9):
        got = float(centroid_nuclear_norm(t(za), t(zb), block_elems))
        assert got == pytest.approx(want_centroid, rel=1e-13)
    local = pair_nuclear_norms(t(za), t(zb)).numpy()
    np.testing.assert_allclose(local, math.sqrt(10) * np.linalg.norm(row), rtol=1e-14)


# --- invariances ---------------------------------------------------------------------------


SYMMETRIC = {
    "infonce": [InfoNCEParams(symmetric=True)],
    "dcl": PARAMS["dcl"],
    "dclw": PARAMS["dclw"],
    "negative_cosine": PARAMS["negative_cosine"],
    "byol": PARAMS["byol"],
    "hypersphere": PARAMS["hypersphere"],
    "mmcr": PARAMS["mmcr"],
}
SCALE_FREE = ("infonce", "dcl", "dclw", "negative_cosine", "byol", "hypersphere")  # rows normalised first


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 10), d=st.integers(2, 12), seed=st.integers(0, 2**32 - 1))
def test_invariances(n: int, d: int, seed: int) -> None:
    """Same permutation of both views' rows; the same orthogonal rotation of both views; a positive
    rescaling of each row (normalised losses); MMCR is positively homogeneous of degree 1."""
    za, zb = views(n, d, seed)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    rot = np.linalg.qr(rng.standard_normal((d, d)))[0]
    row_a, row_b = np.exp(rng.uniform(-2, 2, (n, 1))), np.exp(rng.uniform(-2, 2, (n, 1)))
    for loss, p in CASES:
        base = ours(loss, t(za), t(zb), p)
        assert_terms(ours(loss, t(za[perm]), t(zb[perm]), p), base, rtol=1e-11, abs_=1e-12)
        assert_terms(ours(loss, t(za @ rot), t(zb @ rot), p), base, rtol=1e-11, abs_=1e-12)
        if loss in SCALE_FREE:
            assert_terms(ours(loss, t(za * row_a), t(zb * row_b), p), base, rtol=1e-11, abs_=1e-12)
        if loss == "mmcr":
            scaled = {k: v * 3.5 for k, v in base.items()}
            assert_terms(ours(loss, t(3.5 * za), t(3.5 * zb), p), scaled, rtol=1e-12)


@pytest.mark.parametrize("loss", list(SYMMETRIC))
def test_view_swap(loss: str) -> None:
    za, zb = views(9, 6, 8)
    for p in SYMMETRIC[loss]:
        assert_terms(ours(loss, t(zb), t(za), p), ours(loss, t(za), t(zb), p), rtol=1e-13)


def test_one_way_infonce_is_not_symmetric() -> None:
    za, zb = views(9, 6, 8)
    p = InfoNCEParams()
    assert ours("infonce", t(zb), t(za), p)["total"] != pytest.approx(ours("infonce", t(za), t(zb), p)["total"])


def test_dclw_weights_average_to_one() -> None:
    """The weights 2 - N softmax_i sum to N; equal positive cosines (here all 1) make them all 1
    and DCLW equal to DCL. Unequal cosines do not."""
    za, zb = views(6, 4, 9)
    assert_terms(ours("dclw", t(za), t(za), DCLWParams()), ours("dcl", t(za), t(za), DCLParams()))
    assert ours("dclw", t(za), t(zb), DCLWParams())["total"] != pytest.approx(
        ours("dcl", t(za), t(zb), DCLParams())["total"]
    )


def test_hypersphere_uniformity_does_not_underflow() -> None:
    """lightly's exp-then-log gives log(0) = -inf for antipodal rows at t = 500; the exact value
    is -t * 4."""
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)
    got = hypersphere_terms(z, z, HypersphereParams(t=500.0))
    assert float(got["uniformity"]) == pytest.approx(-2000.0, rel=1e-15)


# --- gradients -----------------------------------------------------------------------------


def _gradcheck(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], n: int = 4, d: int = 3) -> None:
    za, zb = views(n, d, 12)
    a, b = t(za).requires_grad_(), t(zb).requires_grad_()
    assert torch.autograd.gradcheck(fn, (a, b))


@pytest.mark.parametrize(
    "fn",
    [
        lambda a, b: infonce(a, b),
        lambda a, b: infonce(a, b, InfoNCEParams(tau=0.5, symmetric=True)),
        lambda a, b: dcl(a, b),
        lambda a, b: negative_cosine(a, b),
        lambda a, b: byol(a, b),
        lambda a, b: hypersphere(a, b),
        lambda a, b: hypersphere(a, b, HypersphereParams(t=2.0, lam=0.5, alpha=1.0)),
        lambda a, b: mmcr(a, b, MMCRParams(lambda_=0.5)),
        lambda a, b: dcl_terms_of(Batch(a, b), DCLParams(), block_elems=3)["total"],
        lambda a, b: hypersphere_terms_of(Batch(a, b), HypersphereParams(), block_elems=3)["total"],
    ],
    ids=["infonce", "infonce-sym", "dcl", "negcos", "byol", "hyp", "hyp-alpha1", "mmcr", "dcl-blocks", "hyp-blocks"],
)
def test_gradcheck(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    _gradcheck(fn)


def test_gradcheck_mmcr_tall_skinny_qr() -> None:
    """N > D with tiny blocks: the centroid goes through the blocked QR, which must differentiate."""
    _gradcheck(lambda a, b: mmcr_terms_of(Batch(a, b), MMCRParams(lambda_=0.5), block_elems=1)["total"], n=9, d=3)


def test_dclw_gradient_treats_the_weights_as_constants() -> None:
    """lightly detaches the DCLW weights: the gradient is that of the weighted DCL with the weights frozen."""
    za, zb = views(5, 4, 13)
    a, b = t(za).requires_grad_(), t(zb).requires_grad_()
    dclw(a, b).backward()
    u0, v0 = torch.nn.functional.normalize(t(za), dim=1), torch.nn.functional.normalize(t(zb), dim=1)
    frozen = 2 - 5 * torch.softmax((u0 * v0).sum(1) / 0.5, dim=0)

    def weighted(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        terms = dcl_terms(x, y, DCLParams(tau=0.1))
        u, v = torch.nn.functional.normalize(x, dim=1), torch.nn.functional.normalize(y, dim=1)
        return terms["negative"] - (frozen * (u * v).sum(1)).mean() / 0.1

    a2, b2 = t(za).requires_grad_(), t(zb).requires_grad_()
    weighted(a2, b2).backward()
    assert a.grad is not None and a2.grad is not None and b.grad is not None and b2.grad is not None
    np.testing.assert_allclose(a.grad.numpy(), a2.grad.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(b.grad.numpy(), b2.grad.numpy(), rtol=1e-12, atol=1e-14)


# --- real libraries ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lightly() -> Any:
    lib = lightly_loss()
    if lib is None:
        pytest.skip(why_not("lightly"))
    return lib


def _load_file(package: str, *parts: str) -> Any:
    """One loss file of an installed package, executed standalone (these import only torch)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{package} is not installed")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.is_file():
        pytest.skip(f"{package} has no {'/'.join(parts)}")
    file_spec = importlib.util.spec_from_file_location(f"_test_losses_more_{package}_{path.stem}", path)
    assert file_spec is not None and file_spec.loader is not None
    module = importlib.util.module_from_spec(file_spec)
    file_spec.loader.exec_module(module)
    return module


ORACLE_SHAPES = [(2, 3), (5, 16), (8, 16), (16, 8), (32, 12), (7, 64)]
# lightly's negative_mises_fisher_weights wraps a tensor in torch.tensor(...)
LIGHTLY_DCLW_WARNING = "ignore:To copy construct from a tensor:UserWarning"


def check(got: float, want: torch.Tensor | float, rtol: float = 1e-8) -> None:
    want = float(want)
    assert math.isfinite(want)
    assert got == pytest.approx(want, rel=rtol)


@pytest.mark.oracle
@pytest.mark.parametrize("n,d", ORACLE_SHAPES)
@pytest.mark.parametrize("tau", [0.1, 0.5, 0.07])
def test_lightly_dcl(lightly: Any, n: int, d: int, tau: float) -> None:
    za, zb = (t(x) for x in views(n, d, 21))
    want = lightly.DCLLoss(temperature=tau)(za, zb)
    check(ours("dcl", za, zb, resolve_params("dcl", "lightly", {"tau": str(tau)}))["total"], want)


@pytest.mark.filterwarnings(LIGHTLY_DCLW_WARNING)
@pytest.mark.oracle
@pytest.mark.parametrize("n,d", ORACLE_SHAPES)
@pytest.mark.parametrize("tau,sigma", [(0.1, 0.5), (0.2, 0.1), (1.0, 2.0)])
def test_lightly_dclw(lightly: Any, n: int, d: int, tau: float, sigma: float) -> None:
    from functools import partial

    dcl_module = importlib.import_module("lightly.loss.dcl_loss")
    za, zb = (t(x) for x in views(n, d, 22))
    p = resolve_params("dclw", "lightly", {"tau": str(tau), "sigma": str(sigma)})
    got = ours("dclw", za, zb, p)["total"]
    check(got, lightly.DCLWLoss(temperature=tau, sigma=sigma)(za, zb))
    weight_fn = partial(dcl_module.negative_mises_fisher_weights, sigma=sigma)
    check(got, lightly.DCLLoss(temperature=tau, weight_fn=weight_fn)(za, zb))


@pytest.mark.filterwarnings(LIGHTLY_DCLW_WARNING)
@pytest.mark.oracle
def test_lightly_dcl_defaults_are_the_presets(lightly: Any) -> None:
    za, zb = spec_reference_input()
    check(ours("dcl", za, zb, resolve_params("dcl", "paper"))["total"], lightly.DCLLoss()(za, zb), 1e-12)
    check(ours("dclw", za, zb, resolve_params("dclw", "paper"))["total"], lightly.DCLWLoss()(za, zb), 1e-12)


@pytest.mark.filterwarnings(LIGHTLY_DCLW_WARNING)
@pytest.mark.oracle
@pytest.mark.parametrize("n,d", ORACLE_SHAPES)
def test_lightly_dcl_gradients(lightly: Any, n: int, d: int) -> None:
    za, zb = views(n, d, 23)
    for ours_fn, theirs in ((dcl, lightly.DCLLoss()), (dclw, lightly.DCLWLoss())):
        a, b = t(za).requires_grad_(), t(zb).requires_grad_()
        a2, b2 = t(za).requires_grad_(), t(zb).requires_grad_()
        ours_fn(a, b).backward()
        theirs(a2, b2).backward()
        assert a.grad is not None and a2.grad is not None and b.grad is not None and b2.grad is not None
        np.testing.assert_allclose(a.grad.numpy(), a2.grad.numpy(), rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(b.grad.numpy(), b2.grad.numpy(), rtol=1e-8, atol=1e-12)


@pytest.mark.oracle
@pytest.mark.parametrize("n,d", ORACLE_SHAPES)
def test_lightly_negative_cosine(lightly: Any, n: int, d: int) -> None:
    za, zb = (t(x) for x in views(n, d, 24))
    want = lightly.NegativeCosineSimilarity()(za, zb)
    for flavor in FLAVORS:
        check(ours("negative_cosine", za, zb, resolve_params("negative_cosine", flavor))["total"], want, 1e-12)


@pytest.mark.oracle
@pytest.mark.parametrize("n,d", ORACLE_SHAPES)
@pytest.mark.parametrize("t_,lam,alpha", [(1.0, 1.0, 2.0), (2.0, 0.5, 1.0), (0.3, 4.0, 3.0)])
def test_lightly_hypersphere(lightly: Any, n: int, d: int, t_: float, lam: float, alpha: float) -> None:
    module = importlib.import_module("lightly.loss.hypersphere_loss")
    za, zb = (t(x) for x in views(n, d, 25))
    want = module.HypersphereLoss(t=t_, lam=lam, alpha=alpha)(za, zb)
    p = resolve_params("hypersphere", "lightly", {"t": str(t_), "lam": str(lam), "alpha": str(alpha)})
    check(ours("hypersphere", za, zb, p)["total"], want)


@pytest.mark.oracle
def test_lightly_hypersphere_defaults_are_the_preset(lightly: Any) -> None:
    module = importlib.import_module("lightly.loss.hypersphere_loss")
    za, zb = spec_reference_input()
    got = ours("hypersphere", za, zb, resolve_params("hypersphere", "lightly"))["total"]
    check(got, module.HypersphereLoss()(za, zb), 1e-12)


@pytest.mark.oracle
@pytest.mark.parametrize("n,d", ORACLE_SHAPES)
@pytest.mark.parametrize("lam", [5e-3, 0.0, 1.0])
def test_lightly_mmcr(lightly: Any, n: int, d: int, lam: float) -> None:
    za, zb = (t(x) for x in views(n, d, 26))
    want = lightly.MMCRLoss(lmda=lam)(za[:, None], zb[:, None])
    check(ours("mmcr", za, zb, resolve_params("mmcr", "lightly", {"lambda": str(lam)}))["total"], want)


@pytest.mark.oracle
def test_lightly_mmcr_default_is_the_preset(lightly: Any) -> None:
    za, zb = spec_reference_input()
    check(
        ours("mmcr", za, zb, resolve_params("mmcr", "lightly"))["total"], lightly.MMCRLoss()(za[:, None], zb[:, None])
    )


@pytest.mark.oracle
@pytest.mark.parametrize("n,d", ORACLE_SHAPES)
def test_solo_learn_byol_and_simsiam(n: int, d: int) -> None:
    byol_module = _load_file("solo", "losses", "byol.py")
    simsiam_module = _load_file("solo", "losses", "simsiam.py")
    za, zb = (t(x) for x in views(n, d, 27))
    for simplified in (True, False):
        want_byol = byol_module.byol_loss_func(za, zb, simplified=simplified)
        check(ours("byol", za, zb, resolve_params("byol", "solo-learn"))["total"], want_byol, 1e-12)
        want_neg = simsiam_module.simsiam_loss_func(za, zb, simplified=simplified)
        check(
            ours("negative_cosine", za, zb, resolve_params("negative_cosine", "solo-learn"))["total"], want_neg, 1e-12
        )


@pytest.mark.oracle
@pytest.mark.parametrize("n,d", ORACLE_SHAPES)
def test_quadra_byol_simsiam_and_hyperspherical(n: int, d: int) -> None:
    byol_module = _load_file("quadra", "losses", "ssl", "byol.py")
    simsiam_module = _load_file("quadra", "losses", "ssl", "simsiam.py")
    hyper = _load_file("quadra", "losses", "ssl", "hyperspherical.py")
    za, zb = (t(x) for x in views(n, d, 28))
    check(
        ours("byol", za, zb, resolve_params("byol", "quadra"))["total"], byol_module.byol_regression_loss(za, zb), 1e-12
    )
    # quadra averages two (predictor, target) pairs; with the same pair twice it is one pair's value
    want_neg = simsiam_module.simsiam_loss(za, za, zb, zb)
    check(ours("negative_cosine", za, zb, resolve_params("negative_cosine", "quadra"))["total"], want_neg, 1e-12)
    # TLHyperspherical: align_loss + (uniform_loss(x) + uniform_loss(y)) / 2 on L2-normalised embeddings
    x, y = torch.nn.functional.normalize(za, dim=1), torch.nn.functional.normalize(zb, dim=1)
    want_hyp = hyper.align_loss(x, y) + (hyper.uniform_loss(x) + hyper.uniform_loss(y)) / 2
    check(ours("hypersphere", za, zb, resolve_params("hypersphere", "quadra"))["total"], want_hyp)


# --- registry, parameters ------------------------------------------------------------------


def test_every_new_loss_is_registered_for_every_flavor() -> None:
    for loss in NEW_LOSSES:
        spec = LOSSES[loss]
        assert spec.from_rows
        assert set(spec.presets) == set(FLAVORS) == set(spec.sources)
        assert all(spec.sources[fl] for fl in FLAVORS)
        za, zb = spec_reference_input()
        for fl in FLAVORS:
            assert tuple(spec.compute(Batch(za, zb), spec.presets[fl])) == spec.terms
            weights = spec.weights(spec.presets[fl])
            assert set(weights) <= set(spec.terms) - {"total"}


def test_parameter_names_are_the_specs() -> None:
    names = {loss: sorted(params_dict(LOSSES[loss].presets["paper"])) for loss in NEW_LOSSES}
    assert names == {
        "infonce": ["scale_2tau", "symmetric", "tau"],
        "dcl": ["tau"],
        "dclw": ["sigma", "tau"],
        "negative_cosine": [],
        "byol": [],
        "hypersphere": ["alpha", "lam", "t"],
        "mmcr": ["lambda"],
    }
    assert params_dict(resolve_params("infonce", "edifice")) == {"tau": 0.2, "scale_2tau": True, "symmetric": False}
    assert params_dict(resolve_params("mmcr", "lightly")) == {"lambda": 5e-3}
    assert params_dict(resolve_params("dclw", "quadra")) == {"tau": 0.1, "sigma": 0.5}
    assert params_dict(resolve_params("hypersphere", "lightly")) == {"t": 1.0, "lam": 1.0, "alpha": 2.0}
    assert params_dict(resolve_params("hypersphere", "quadra")) == {"t": 2.0, "lam": 1.0, "alpha": 2.0}


def test_set_overrides() -> None:
    p = resolve_params("infonce", "paper", {"symmetric": "true", "scale_2tau": "no", "tau": "0.5"})
    assert p == InfoNCEParams(tau=0.5, scale_2tau=False, symmetric=True)
    assert resolve_params("mmcr", "paper", {"lambda": "0.1"}) == MMCRParams(lambda_=0.1)
    for loss, name, raw in [
        ("dcl", "tau", "0"),
        ("dclw", "sigma", "-1"),
        ("hypersphere", "t", "0"),
        ("mmcr", "lambda", "x"),
    ]:
        with pytest.raises(UsageError):
            resolve_params(loss, "paper", {name: raw})
    with pytest.raises(UsageError):
        resolve_params("byol", "paper", {"tau": "1"})


def test_weights_reproduce_the_total() -> None:
    za, zb = spec_reference_input()
    for loss in ("dcl", "dclw", "hypersphere", "mmcr"):
        p = resolve_params(loss, "paper", {"lambda": "0.3"} if loss == "mmcr" else None)
        got = ours(loss, za, zb, p)
        weights = LOSSES[loss].weights(p)
        assert sum(w * got[k] for k, w in weights.items()) == pytest.approx(got["total"], rel=1e-14)


# --- engine --------------------------------------------------------------------------------


def _engine_inputs(tmp_path: Path, n: int = 40, d: int = 6) -> tuple[np.ndarray, np.ndarray, str, str]:
    za, zb = views(n, d, 31)
    pa, pb = tmp_path / "za.npy", tmp_path / "zb.npy"
    np.save(pa, za)
    np.save(pb, zb)
    return za, zb, str(pa), str(pb)


def test_engine_whole_set_and_batches(tmp_path: Path) -> None:
    from sslcheck.engine import Settings, evaluate_files

    za, zb, pa, pb = _engine_inputs(tmp_path)
    result = evaluate_files(pa, pb, Settings(losses=("all",), dtype="float64", batch_size=16, chunk_rows=32))
    data = result.to_dict()
    json.dumps(data, allow_nan=False)
    for loss in NEW_LOSSES:
        p = resolve_params(loss, "paper")
        block = data["losses"][loss]
        assert block["params"] == params_dict(p)
        assert block["source"] == LOSSES[loss].sources["paper"]
        assert block["n_batches"] == 2  # 40 rows, B = 16, the short batch dropped
        assert_terms(block["whole_set"], reference(loss, za, zb, p), rtol=1e-10, abs_=1e-12)
        batch_refs = [reference(loss, za[i : i + 16], zb[i : i + 16], p) for i in (0, 16)]
        for term in LOSSES[loss].terms:
            values = [r[term] for r in batch_refs]
            assert block["per_batch"][term]["mean"] == pytest.approx(np.mean(values), rel=1e-10, abs=1e-12)
            assert block["per_batch"][term]["min"] == pytest.approx(min(values), rel=1e-10, abs=1e-12)


def test_engine_every_flavor(tmp_path: Path) -> None:
    from sslcheck.engine import Settings, evaluate_files

    za, zb, pa, pb = _engine_inputs(tmp_path, n=12, d=5)
    settings_ = Settings(losses=NEW_LOSSES, flavor="all", dtype="float64", batch_size=None)
    data = evaluate_files(pa, pb, settings_).to_dict()
    json.dumps(data, allow_nan=False)
    for loss in NEW_LOSSES:
        for fl, block in data["losses"][loss]["by_flavor"].items():
            want = reference(loss, za, zb, resolve_params(loss, fl))
            assert_terms(block["whole_set"], want, rtol=1e-10, abs_=1e-12)
            assert block["per_batch"]["total"]["mean"] == pytest.approx(want["total"], rel=1e-10, abs=1e-12)


def test_engine_whole_set_follows_the_work_limit(tmp_path: Path) -> None:
    from sslcheck.engine import Settings, evaluate_files

    za, zb, pa, pb = _engine_inputs(tmp_path)
    settings_ = Settings(losses=NEW_LOSSES, dtype="float64", batch_size=16, contrastive_work_limit=1000, chunk_rows=16)
    data = evaluate_files(pa, pb, settings_).to_dict()
    json.dumps(data, allow_nan=False)
    row_means = {"negative_cosine", "byol"}  # means of per-row cosines: exact at any size (spec/cli.md)
    for loss in set(NEW_LOSSES) - row_means:
        block = data["losses"][loss]
        assert all(v is None for v in block["whole_set"].values())
        assert "limit" in block["whole_set_note"]
        assert block["per_batch"]["total"]["mean"] is not None
    cos = (za * zb).sum(1) / (np.linalg.norm(za, axis=1) * np.linalg.norm(zb, axis=1))
    assert data["losses"]["negative_cosine"]["whole_set"]["total"] == pytest.approx(-cos.mean(), rel=1e-12)
    assert data["losses"]["byol"]["whole_set"]["total"] == pytest.approx(2 - 2 * cos.mean(), rel=1e-12)
    assert "whole_set_note" not in data["losses"]["byol"]

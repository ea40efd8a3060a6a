"""Batch's shared quantities: the contrastive similarities derived from the centred Gram, and
Barlow's cross terms taken from a D x D product, against explicit float64 computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sslcheck.losses.normalize import inverse_norms, normalize_rows, row_sq_norms
from sslcheck.losses.nt_xent_loss import NTXentParams, nt_xent_terms_of
from sslcheck.losses.pair import Batch
from tests.data import views
from tests.oracles import numpy_reference as ref

MODES = ("torch", "tf", "nx")


def t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x))


def cosines(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Explicit cosine matrix of the rows (float64)."""
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)) @ np.swapaxes(
        y / np.linalg.norm(y, axis=-1, keepdims=True), -1, -2
    )


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("lead", [(), (3,), (2, 2)])
def test_gram_similarity_equals_the_direct_product(mode: str, lead: tuple[int, ...]) -> None:
    """On the Gram route (D > 4B/3) u u^T comes from X_c X_c^T + p 1^T + 1 p^T + |m|^2: on and
    above the diagonal the same matrix as normalising the rows and multiplying (and as the
    direct `similarity`), for every leading batch shape."""
    rng = np.random.default_rng(3)
    za, zb = rng.standard_normal((*lead, 12, 40)) + 2.0, rng.standard_normal((*lead, 12, 40)) - 1.0
    batch = Batch(t(za), t(zb))
    assert batch.use_gram
    upper = (..., *np.triu_indices(12))
    for view, x in (("a", za), ("b", zb)):
        got = batch.upper_similarity(view, mode, scale=2.5)
        assert got is not None
        u = normalize_rows(t(x), mode).numpy()
        want = 2.5 * u @ np.swapaxes(u, -1, -2)
        np.testing.assert_allclose(got.numpy()[upper], want[upper], rtol=1e-12, atol=1e-13)
        direct = batch.similarity(view, view, mode, scale=2.5).numpy()
        np.testing.assert_allclose(direct, want, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(batch.similarity("a", "b", "torch").numpy(), cosines(za, zb), rtol=1e-12, atol=1e-13)


def test_no_gram_similarity_off_the_gram_route() -> None:
    za, zb = views(12, 8, 2)
    batch = Batch(t(za), t(zb))
    assert not batch.use_gram and batch.upper_similarity("a", "torch") is None


def test_similarity_row_blocks_are_slices_of_the_whole() -> None:
    za, zb = views(10, 30, 4)
    batch = Batch(t(za), t(zb))
    whole = cosines(za, za)
    np.testing.assert_allclose(batch.similarity("a", "a", "torch", 3, 7).numpy(), whole[3:7], rtol=1e-12)


def test_a_row_near_the_origin_falls_back_to_the_direct_product() -> None:
    """Offset data with one row near the origin: the Gram derivation would lose that row's
    cosines to cancellation (|m|^2 ~ 1e4 x |x_i|^2), so the direct product is used, and float32
    cosines stay within float32 accuracy of the float64 ones."""
    rng = np.random.default_rng(5)
    z = rng.standard_normal((16, 64)) * 0.1 + 10.0
    z[3] = 0.05 * rng.standard_normal(64)  # |x_3| ~ 0.4 while |mean| ~ 75
    batch32 = Batch(t(z).float(), t(z).float())
    assert batch32.upper_similarity("a", "tf") is None
    got = batch32.similarity("a", "a", "tf").double().numpy()
    np.testing.assert_allclose(got, cosines(z, z), atol=2e-6)
    # without the guard, the derivation is visibly off for that row
    upper = batch32.gram("a").double().numpy()
    g = upper + np.triu(upper, 1).T
    c = z.astype(np.float32).astype(np.float64)
    m = c.mean(0)
    raw = g + ((c - m) @ m)[:, None] + ((c - m) @ m)[None, :] + m @ m
    derived = raw / np.outer(np.linalg.norm(c, axis=1), np.linalg.norm(c, axis=1))
    assert np.abs(derived[3] - cosines(z, z)[3]).max() > 1e-4


@pytest.mark.parametrize("dtype,atol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_nt_xent_on_the_gram_route_equals_the_reference(dtype: torch.dtype, atol: float) -> None:
    za, zb = views(24, 64, 6)
    for p in (NTXentParams(), NTXentParams(tau=0.5, reduction="mean", normalize="torch"), NTXentParams(tau=0.001)):
        batch = Batch(t(za).to(dtype), t(zb).to(dtype))
        assert batch.use_gram
        got = float(nt_xent_terms_of(batch, p)["total"])
        assert got == pytest.approx(ref.reference("nt_xent", za, zb, p)["total"], abs=atol)


def test_inverse_norms_match_the_libraries_guards() -> None:
    sq = torch.tensor([4.0, 1e-30, 0.0], dtype=torch.float64)
    np.testing.assert_allclose(inverse_norms(sq, "torch").numpy(), [0.5, 1e12, 1e12])
    np.testing.assert_allclose(inverse_norms(sq, "tf").numpy(), [0.5, 1e6, 1e6])
    np.testing.assert_allclose(inverse_norms(sq, "nx").numpy(), [1 / np.sqrt(4 + 1e-8), 1e4, 1e4])


@pytest.mark.parametrize("lead", [(), (4,)])
def test_cross_terms_from_a_product_equal_the_explicit_matrix(lead: tuple[int, ...]) -> None:
    """With the D x D product already taken, Barlow's diag and Off of diag(s) M diag(t) come from
    it in one pass; compared with forming c and masking its diagonal."""
    rng = np.random.default_rng(7)
    za, zb = rng.standard_normal((*lead, 10, 30)), rng.standard_normal((*lead, 10, 30))
    s, w = rng.uniform(0.5, 2, (*lead, 30)), rng.uniform(0.5, 2, (*lead, 30))
    batch = Batch(t(za), t(zb))
    batch.product("a", "b")
    assert batch.use_gram and batch.has_product("a", "b")
    diag, off = batch.cross("a", "b", t(s), t(w))
    ca, cb = za - za.mean(-2, keepdims=True), zb - zb.mean(-2, keepdims=True)
    c = s[..., :, None] * (np.swapaxes(ca, -1, -2) @ cb) * w[..., None, :]
    np.testing.assert_allclose(diag.numpy(), np.diagonal(c, axis1=-2, axis2=-1), rtol=1e-12)
    want_off = (c**2).sum((-2, -1)) - (np.diagonal(c, axis1=-2, axis2=-1) ** 2).sum(-1)
    np.testing.assert_allclose(off.numpy(), want_off, rtol=1e-11)


@pytest.mark.parametrize("mode", MODES)
def test_a_zero_row_has_a_finite_gradient(mode: str) -> None:
    """F.normalize's max(||x||, 1e-12) has a finite gradient at a zero row; so must ours (the
    torch mode took sqrt(0)'s infinite slope before, found in review)."""
    x = torch.zeros(3, 4, dtype=torch.float64)
    x[1] = torch.tensor([1.0, 2.0, 0.0, -1.0], dtype=torch.float64)
    x.requires_grad_(True)
    normalize_rows(x, mode).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())
    if mode == "torch":
        ref_x = x.detach().clone().requires_grad_(True)
        torch.nn.functional.normalize(ref_x, dim=1).sum().backward()
        np.testing.assert_allclose(x.grad.numpy(), ref_x.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_a_batch_given_its_row_values_scores_the_same() -> None:
    """`RowValues` from the caller (the engine's chunk) replace the batch's own row norms and
    squared differences: every loss term is unchanged."""
    from sslcheck.losses.flavors import LOSSES, resolve_params
    from sslcheck.losses.pair import RowValues
    from sslcheck.stats import squared_differences

    za, zb = (t(x) for x in views(48, 20, 9))
    known = RowValues((row_sq_norms(za), row_sq_norms(zb)), squared_differences(za, zb))
    for loss in LOSSES:
        spec, p = LOSSES[loss], resolve_params(loss, "paper")
        plain = spec.compute(Batch(za.reshape(3, 16, 20), zb.reshape(3, 16, 20)), p)
        seeded = spec.compute(Batch(za.reshape(3, 16, 20), zb.reshape(3, 16, 20), known.rows(0, 48, 16)), p)
        for term in spec.terms:
            np.testing.assert_allclose(seeded[term].numpy(), plain[term].numpy(), rtol=1e-13, err_msg=f"{loss}.{term}")


@pytest.mark.parametrize("d", [6, 40])  # D < B and D > 4B/3: both of Batch's routes
def test_every_loss_scores_a_stack_of_batches_as_each_batch_alone(d: int) -> None:
    """[k, B, D] rows give one value per batch, each the value of that batch alone, for every
    loss under every flavor (and InfoNCE's symmetric form): the engine scores k batches at once."""
    from sslcheck.losses.flavors import FLAVORS, LOSSES, resolve_params

    za, zb = (t(x) for x in views(48, d, 17))
    stacked = Batch(za.reshape(3, 16, d), zb.reshape(3, 16, d))
    cases = [(loss, resolve_params(loss, fl)) for loss in LOSSES for fl in FLAVORS]
    cases.append(("infonce", resolve_params("infonce", "paper", {"symmetric": "true"})))
    for loss, p in cases:
        spec = LOSSES[loss]
        together = spec.compute(stacked, p)
        alone = [spec.compute(Batch(za[i : i + 16], zb[i : i + 16]), p) for i in (0, 16, 32)]
        for term in spec.terms:
            assert together[term].shape == (3,), (loss, term)
            want = np.array([float(a[term]) for a in alone])
            got = together[term].numpy()
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, err_msg=f"{loss}.{term} {p}")

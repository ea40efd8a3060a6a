"""Symmetric products: numpy's SYRK route and torch's against x^T x and x x^T in float64, the
thread count they leave behind, and the route the engine takes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sslcheck import blas
from sslcheck.engine import Settings, evaluate_files
from sslcheck.process import OPENMP_SPIN_COUNT, spin_briefly

CPU = torch.device("cpu")


@pytest.mark.parametrize("d,width", [(7, None), (256, None), (300, 128), (600, None), (600, 256), (1030, 512)])
def test_symmetric_product_equals_the_full_product(d: int, width: int | None) -> None:
    """Upper-triangle blocks (the last one narrower where D is no multiple of the width) and
    their mirrored copies give x^T x."""
    x = np.random.default_rng(d).standard_normal((50, d))
    got = blas.symmetric_product(torch.from_numpy(x), width).numpy()
    np.testing.assert_allclose(got, x.T @ x, rtol=1e-12, atol=1e-11)


def within_rounding(
    got: torch.Tensor, x: np.ndarray, want: np.ndarray, dtype: torch.dtype, where: object = Ellipsis
) -> bool:
    """Entrywise |error| <= n eps (|x|^T |x|) for a product summing n terms (Higham, Accuracy
    and Stability of Numerical Algorithms, eq. 3.5), with x the factor whose rows are summed over;
    `where` indexes the entries checked (all by default)."""
    n = x.shape[-2]
    bound = n * torch.finfo(dtype).eps * (np.swapaxes(np.abs(x), -1, -2) @ np.abs(x))
    return bool((np.abs(got.double().numpy() - want)[where] <= bound[where]).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("count", [1, 2, 3])
@pytest.mark.parametrize("threads", [1, 2])
def test_products_equal_the_float64_ones(dtype: torch.dtype, count: int, threads: int) -> None:
    """x^T x (its upper triangle) and x^T y of chunks added into zeros, and the upper triangle of
    x x^T of batches [k, B, D] and [B, D] (zeros below it), on the route `products` picks and on
    torch's: within rounding of float64."""
    rng = np.random.default_rng(count)
    chunks = [torch.from_numpy(rng.standard_normal((300, 70)) + 2.0).to(dtype) for _ in range(count)]
    batches = [
        torch.from_numpy(rng.standard_normal(shape) - 1.0).to(dtype) for shape in [(5, 12, 40), (12, 40)][:count]
    ]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with blas.products(CPU, dtype) as route:
            got = []
            for r in (route, blas.TORCH):
                selfs, cross = torch.zeros(count, 70, 70, dtype=dtype), torch.zeros(70, 70, dtype=dtype)
                r.add_self_products(chunks, list(selfs))
                r.add_cross_product(chunks[0], chunks[-1] - 3.0, cross)
                got.append((selfs, r.grams(batches), cross))
    finally:
        torch.set_num_threads(before)
    first, last = chunks[0].double().numpy(), (chunks[-1] - 3.0).double().numpy()
    upper = np.triu_indices(70)
    for selfs, grams, cross in got:
        bound = first.shape[0] * torch.finfo(dtype).eps * (np.abs(first).T @ np.abs(last))
        assert (np.abs(cross.double().numpy() - first.T @ last) <= bound).all()
        for x, p in zip(chunks, selfs, strict=True):
            x64 = x.double().numpy()
            assert within_rounding(p, x64, x64.T @ x64, dtype, upper)
        for x, g in zip(batches, grams, strict=True):
            assert_upper_gram(g, x, dtype)


def assert_upper_gram(g: torch.Tensor, x: torch.Tensor, dtype: torch.dtype) -> None:
    """g: the upper triangle of x x^T within rounding of float64, exactly zero below it."""
    xt = np.swapaxes(x.double().numpy(), -1, -2)  # x x^T sums over the columns of x
    b = x.shape[-2]
    assert g.dtype == dtype and g.shape == (*x.shape[:-1], b)
    assert within_rounding(g, xt, np.swapaxes(xt, -1, -2) @ xt, dtype, (..., *np.triu_indices(b)))
    assert (g.numpy()[..., np.tril_indices(b, -1)[0], np.tril_indices(b, -1)[1]] == 0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_grams_without_cblas_are_numpy_products_cut_to_their_upper_triangle(
    monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype
) -> None:
    monkeypatch.setattr(blas, "cblas", lambda: None)
    x = torch.from_numpy(np.random.default_rng(4).standard_normal((3, 20, 30))).to(dtype)
    with blas.products(CPU, dtype) as route:
        (g,) = route.grams([x])
    assert_upper_gram(g, x, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("route_name", ["route", "torch", "no CBLAS"])
def test_added_products_accumulate_into_their_outputs(
    monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype, route_name: str
) -> None:
    """add_self_products / add_cross_product add x^T x (its upper triangle) and x^T y into what
    the outputs hold, call after call, within rounding of float64: on the route `products` picks
    (CBLAS with beta = 1), on torch's, and by numpy's product and an addition where no CBLAS is found."""
    if route_name == "no CBLAS":
        monkeypatch.setattr(blas, "cblas", lambda: None)
    rng = np.random.default_rng(7)
    x1, x2, y = (torch.from_numpy(rng.standard_normal((300, 70)) + shift).to(dtype) for shift in (2.0, 2.0, -1.0))
    start = torch.from_numpy(rng.standard_normal((3, 70, 70))).to(dtype)
    outs = start.clone()
    with blas.products(CPU, dtype) as route:
        r = blas.TORCH if route_name == "torch" else route
        for _ in range(2):
            r.add_self_products([x1, x2], [outs[0], outs[1]])
            r.add_cross_product(x1, y, outs[2])
    upper = np.triu_indices(70)
    everywhere = (slice(None), slice(None))
    for got, before, x, other, where in (
        (outs[0], start[0], x1, x1, upper),
        (outs[1], start[1], x2, x2, upper),
        (outs[2], start[2], x1, y, everywhere),
    ):
        x64, o64 = x.double().numpy(), other.double().numpy()
        b64 = before.double().numpy()
        want = b64 + 2 * x64.T @ o64
        # two products of 300 terms each and the additions into the output (Higham eq. 3.5)
        bound = (2 * 300 + 2) * torch.finfo(dtype).eps * (np.abs(b64) + 2 * np.abs(x64).T @ np.abs(o64))
        assert (np.abs(got.double().numpy() - want)[where] <= bound[where]).all()


@pytest.mark.parametrize(
    "layout", ["column-major", "one row of unit strides", "float32 into float64", "float64 into float32"]
)
def test_added_products_of_arrays_cblas_does_not_take(layout: str) -> None:
    """Arrays the CBLAS kernels cannot take as they are (a column-major block, strides that are
    no leading dimension, a dtype other than the output's) go through numpy's product and an
    addition: the same sums, and nothing written outside the outputs (found in review: a
    column-major block had left the cross product unchanged)."""
    rng = np.random.default_rng(8)
    dtype, out_dtype = {"float32 into float64": (torch.float32, torch.float64)}.get(
        layout, (torch.float64, torch.float32 if layout == "float64 into float32" else torch.float64)
    )
    if layout == "column-major":
        x, y = (torch.from_numpy(np.asfortranarray(rng.standard_normal((64, 6)))) for _ in range(2))
    elif layout == "one row of unit strides":
        x, y = (torch.from_numpy(rng.standard_normal((6, 1))).T for _ in range(2))
    else:
        x, y = (torch.from_numpy(rng.standard_normal((64, 6))).to(dtype) for _ in range(2))
    guarded = torch.zeros(2, 3, 6, 6, dtype=out_dtype)  # [0] the outputs, [1] a guard behind them
    with blas.products(CPU, torch.float64) as route:
        route.add_self_products([x, y], [guarded[0, 0], guarded[0, 1]])
        route.add_cross_product(x, y, guarded[0, 2])
    x64, y64 = x.double().numpy(), y.double().numpy()
    tol = 1e-12 if out_dtype == torch.float64 and dtype == torch.float64 else 1e-5
    upper = np.triu_indices(6)
    for got, want in ((guarded[0, 0], x64.T @ x64), (guarded[0, 1], y64.T @ y64)):
        np.testing.assert_allclose(got.double().numpy()[upper], want[upper], rtol=tol, atol=tol)
    np.testing.assert_allclose(guarded[0, 2].double().numpy(), x64.T @ y64, rtol=tol, atol=tol)
    assert not guarded[1].any()


def test_openblas_thread_count_is_restored() -> None:
    """The pass holds OpenBLAS at one thread and gives back the count it found."""
    threads = blas.openblas_threads()
    if threads is None:
        pytest.skip("numpy is not built on a bundled OpenBLAS")
    before = threads.get()
    with blas.products(CPU, torch.float32) as route:
        if torch.get_num_threads() <= blas.MAX_WORKERS:
            assert threads.get() == 1
        route.add_self_products([torch.ones(4, 3)], [torch.zeros(3, 3)])
    assert threads.get() == before


@pytest.mark.parametrize(
    "why", ["no OpenBLAS", "more threads than workers", "float16", "raises inside"], ids=lambda s: s.replace(" ", "-")
)
def test_routes_fall_back_to_torch(monkeypatch: pytest.MonkeyPatch, why: str) -> None:
    """Without a usable OpenBLAS, beyond MAX_WORKERS threads or for other dtypes, torch's
    products serve; an error inside the pass still restores OpenBLAS's thread count."""
    dtype = torch.float16 if why == "float16" else torch.float32
    if why == "no OpenBLAS":
        monkeypatch.setattr(blas, "openblas_threads", lambda: None)
    if why == "more threads than workers":
        monkeypatch.setattr(torch, "get_num_threads", lambda: blas.MAX_WORKERS + 1)
    if why == "raises inside":
        threads = blas.openblas_threads()
        if threads is None:
            pytest.skip("numpy is not built on a bundled OpenBLAS")
        before = threads.get()
        with pytest.raises(RuntimeError), blas.products(CPU, dtype):
            raise RuntimeError("a failing chunk")
        assert threads.get() == before
        return
    with blas.products(CPU, dtype) as route:
        assert route is blas.TORCH
        p = torch.zeros(2, 2, dtype=dtype)
        route.add_self_products([torch.arange(6.0).reshape(3, 2).to(dtype)], [p])
        (g,) = route.grams([torch.arange(6.0).reshape(3, 2).to(dtype)])
    assert p.tolist() == [[20.0, 26.0], [26.0, 35.0]]  # columns (0, 2, 4), (1, 3, 5)
    assert g.tolist() == [[1.0, 3.0, 5.0], [0.0, 13.0, 23.0], [0.0, 0.0, 41.0]]  # rows (0, 1), (2, 3), (4, 5)


@pytest.mark.parametrize("batch_size", [256, 8])
def test_engine_results_equal_on_both_routes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch_size: int) -> None:
    """The numbers do not depend on which library took the products (the chunks' x^T x, and at
    B = 8 < D / 4 the batches' Grams too): every loss and diagnostic agrees to float32 rounding."""
    rng = np.random.default_rng(3)
    za = (rng.standard_normal((3000, 40)) * np.linspace(0.2, 2, 40) + 1.5).astype(np.float32)
    zb = (za + 0.3 * rng.standard_normal(za.shape)).astype(np.float32)
    pa, pb = tmp_path / "za.npy", tmp_path / "zb.npy"
    np.save(pa, za)
    np.save(pb, zb)
    settings = Settings(batch_size=batch_size, chunk_rows=1024)
    default = evaluate_files(str(pa), str(pb), settings).to_dict()
    monkeypatch.setattr(blas, "openblas_threads", lambda: None)
    fallback = evaluate_files(str(pa), str(pb), settings).to_dict()

    def numbers(x: object, path: str = "") -> dict[str, float]:
        if isinstance(x, dict):
            return {k: v for key, val in x.items() for k, v in numbers(val, f"{path}.{key}").items()}
        if isinstance(x, list):
            return {k: v for i, val in enumerate(x) for k, v in numbers(val, f"{path}[{i}]").items()}
        return {path: float(x)} if isinstance(x, float) else {}

    a, b = numbers(default), numbers(fallback)
    assert a.keys() == b.keys() and len(a) > 50
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key


def test_spin_briefly_sets_a_default_only() -> None:
    env: dict[str, str] = {}
    spin_briefly(env)
    assert env == {"GOMP_SPINCOUNT": OPENMP_SPIN_COUNT}
    env = {"GOMP_SPINCOUNT": "INFINITY"}
    spin_briefly(env)
    assert env == {"GOMP_SPINCOUNT": "INFINITY"}

"""Symmetric products: numpy's SYRK route and torch's block-triangular one against x^T x in
float64, the thread count they leave behind, and the route the engine takes."""

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


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("count", [1, 2, 3])
@pytest.mark.parametrize("threads", [1, 2])
def test_symmetric_products_equal_x_t_x(dtype: torch.dtype, count: int, threads: int) -> None:
    """Each matrix's x^T x, symmetric, within the rounding bound of its sums: entrywise
    |error| <= n eps (|x|^T |x|) (Higham, Accuracy and Stability, eq. 3.5)."""
    rng = np.random.default_rng(count)
    xs = [torch.from_numpy(rng.standard_normal((300, 70)) + 2.0).to(dtype) for _ in range(count)]
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with blas.symmetric_products(CPU, dtype) as products:
            got = products(xs)
    finally:
        torch.set_num_threads(before)
    eps = torch.finfo(dtype).eps
    for x, p in zip(xs, got, strict=True):
        x64 = x.double().numpy()
        assert p.dtype == dtype and p.shape == (70, 70)
        np.testing.assert_array_equal(p.numpy(), p.numpy().T)
        error = np.abs(p.double().numpy() - x64.T @ x64)
        assert (error <= 300 * eps * (np.abs(x64).T @ np.abs(x64))).all()


def test_openblas_thread_count_is_restored() -> None:
    """The pass holds OpenBLAS at one thread and gives back the count it found."""
    threads = blas.openblas_threads()
    if threads is None:
        pytest.skip("numpy is not built on a bundled OpenBLAS")
    before = threads.get()
    with blas.symmetric_products(CPU, torch.float32) as products:
        if torch.get_num_threads() <= blas.MAX_WORKERS:
            assert threads.get() == 1
        products([torch.ones(4, 3)])
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
        with pytest.raises(RuntimeError), blas.symmetric_products(CPU, dtype):
            raise RuntimeError("a failing chunk")
        assert threads.get() == before
        return
    with blas.symmetric_products(CPU, dtype) as products:
        assert products is blas.torch_self_products
        (p,) = products([torch.arange(6.0).reshape(3, 2).to(dtype)])
    assert p.tolist() == [[20.0, 26.0], [26.0, 35.0]]  # columns (0, 2, 4), (1, 3, 5)


def test_engine_results_equal_on_both_routes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole-set statistics do not depend on which library took the products: every loss
    and diagnostic agrees to float32 rounding."""
    rng = np.random.default_rng(3)
    za = (rng.standard_normal((3000, 40)) * np.linspace(0.2, 2, 40) + 1.5).astype(np.float32)
    zb = (za + 0.3 * rng.standard_normal(za.shape)).astype(np.float32)
    pa, pb = tmp_path / "za.npy", tmp_path / "zb.npy"
    np.save(pa, za)
    np.save(pb, zb)
    settings = Settings(batch_size=256, chunk_rows=1024)
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

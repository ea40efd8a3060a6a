"""The compute device: `--device` resolved, chunks moved there, full-precision float32 products on a
GPU. The GPU tests run where torch sees one and are skipped elsewhere (CI has none);
`benchmarks/cuda_check.py` runs them with the end-to-end comparison on a GPU machine."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from sslcheck.device import full_float32_products, resolve_device, to_device
from sslcheck.engine import Settings, evaluate_files
from sslcheck.errors import UsageError
from sslcheck.render.flat import flatten
from tests.data import views

CPU = torch.device("cpu")
CUDA = torch.device("cuda")  # a name only: constructing it needs no GPU
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_resolve_device() -> None:
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto") == (CUDA if torch.cuda.is_available() else CPU)
    with pytest.raises(UsageError, match="expected auto, cpu or cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA device"):
            resolve_device("cuda")


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("compute", [torch.float32, torch.float64])
def test_to_device_on_the_cpu(dtype: type, compute: torch.dtype) -> None:
    block = np.random.default_rng(0).normal(size=(5, 3)).astype(dtype)
    x = to_device(block, CPU, compute)
    assert x.dtype == compute and x.device == CPU
    np.testing.assert_array_equal(x.numpy(), block.astype(torch.empty(0, dtype=compute).numpy().dtype))
    assert np.shares_memory(x.numpy(), block) == (x.dtype == torch.from_numpy(block).dtype)


PER_BACKEND_API = hasattr(torch.backends.cuda.matmul, "fp32_precision")  # torch >= 2.9


@pytest.fixture
def precision() -> Iterator[None]:
    """Restores the process's float32 precision after the test (the default: every backend
    inheriting, "none", which reads as "highest")."""
    before = torch.get_float32_matmul_precision()
    yield
    if PER_BACKEND_API:  # back to inheriting (the legacy setter would pin matmul to one value)
        torch.backends.fp32_precision = "none"
        torch.backends.cuda.matmul.fp32_precision = "none"
    if before != "highest" or not PER_BACKEND_API:
        torch.set_float32_matmul_precision(before)


def enable_tf32(how: str) -> None:
    """TF32 for float32 products, the ways a training script sets it."""
    if how == "legacy":
        torch.set_float32_matmul_precision("high")
    else:
        (torch.backends.cuda.matmul if how == "matmul" else torch.backends).fp32_precision = "tf32"


TF32_WAYS = ["legacy", "matmul", "all backends"] if PER_BACKEND_API else ["legacy"]


def test_full_float32_products_on_a_gpu_and_back(precision: None) -> None:
    torch.set_float32_matmul_precision("high")  # a training script's TF32
    with full_float32_products(CUDA):
        assert torch.get_float32_matmul_precision() == "highest"
    assert torch.get_float32_matmul_precision() == "high"
    with pytest.raises(KeyError), full_float32_products(CUDA):
        raise KeyError("the pass failed")
    assert torch.get_float32_matmul_precision() == "high"
    with full_float32_products(CPU):  # nothing to change on the CPU
        assert torch.get_float32_matmul_precision() == "high"


@pytest.mark.skipif(not PER_BACKEND_API, reason="torch < 2.9 has no per-backend precision")
@pytest.mark.parametrize("how", ["matmul", "all backends"])
def test_full_float32_products_under_the_per_backend_api(precision: None, how: str) -> None:
    """There the legacy getter raises ("a mix of the legacy and new APIs"): the pass must not."""
    enable_tf32(how)
    with full_float32_products(CUDA):
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    assert torch.backends.cuda.matmul.fp32_precision == "tf32"


# --- on a GPU ---------------------------------------------------------------------------------


@needs_gpu
def test_to_device_on_a_gpu_keeps_each_chunk_of_a_reused_buffer() -> None:
    """The reader refills one buffer chunk after chunk (as the sources do), and nothing waits
    between the chunks: each device tensor must still hold its own chunk's values."""
    buffer = np.empty((2048, 512), np.float32)
    sent = []
    for i in range(64):
        buffer[:] = i
        sent.append(to_device(buffer[: 2048 - i], CUDA, torch.float32))
    torch.cuda.synchronize()
    for i, x in enumerate(sent):
        assert x.device.type == "cuda" and x.shape == (2048 - i, 512)
        assert bool((x == i).all()), i


@needs_gpu
def test_to_device_on_a_gpu_converts_there() -> None:
    block = np.random.default_rng(1).normal(size=(300, 7)).astype(np.float16)
    x = to_device(block, CUDA, torch.float64)
    assert x.dtype == torch.float64
    np.testing.assert_array_equal(x.cpu().numpy(), block.astype(np.float64))


def numbers(result_dict: dict) -> dict[str, float]:
    """Every numeric leaf of a result, by its JSON path (the device named in settings left out)."""
    return {
        path: float(v)
        for path, v in flatten(result_dict)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and path != "settings.device"
    }


def assert_equal_results(cpu: dict, gpu: dict, rtol: float, atol: float) -> None:
    want, got = numbers(cpu), numbers(gpu)
    assert want.keys() == got.keys()
    for path, value in want.items():
        assert math.isclose(got[path], value, rel_tol=rtol, abs_tol=atol), (path, got[path], value)
    assert gpu["verdict"] == cpu["verdict"]


def score(tmp_path: Path, device: str, dtype: str, **settings: object) -> dict:
    za, zb = views(3000, 96, 7, scale=0.6, spread=0.3)
    pa, pb = tmp_path / "za.npy", tmp_path / "zb.npy"
    np.save(pa, za.astype(np.float32))
    np.save(pb, zb.astype(np.float32))
    s = Settings(device=device, dtype=dtype, batch_size=128, chunk_rows=512, **settings)  # type: ignore[arg-type]
    return evaluate_files(str(pa), str(pb), s).to_dict()


@needs_gpu
@pytest.mark.parametrize("losses", [None, ("all",)])
def test_a_gpu_scores_what_the_cpu_scores_in_float64(tmp_path: Path, losses: tuple[str, ...] | None) -> None:
    extra = {} if losses is None else {"losses": losses}
    assert_equal_results(
        score(tmp_path, "cpu", "float64", **extra), score(tmp_path, "cuda", "float64", **extra), 1e-9, 1e-12
    )


@needs_gpu
@pytest.mark.parametrize("how", [None, *TF32_WAYS])
def test_a_gpu_scores_what_the_cpu_scores_in_float32_even_under_tf32(
    tmp_path: Path, precision: None, how: str | None
) -> None:
    """float32 tolerance: sums in another order, ~sqrt(N) eps relative (CPU runs that differ only
    in chunking or product route agree within 2e-7). TF32 (10 mantissa bits, eps 1e-3) left on by
    the caller would move the Grams' terms far beyond it."""
    cpu = score(tmp_path, "cpu", "float32")
    if how is not None:
        enable_tf32(how)
    assert_equal_results(cpu, score(tmp_path, "cuda", "float32"), 2e-5, 1e-6)
    if how is not None and how != "legacy":
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"

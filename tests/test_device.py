"""The compute device: `--device` resolved, chunks moved there, full-precision float32 products on a
GPU. The GPU tests run where torch sees one and are skipped elsewhere (CI has none);
`benchmarks/cuda_check.py` runs them with the end-to-end comparison on a GPU machine."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from sslcheck.device import full_float32_products, resolve_device, to_device
from sslcheck.engine import Settings, evaluate_files
from sslcheck.errors import UsageError
from sslcheck.render.flat import numeric_leaves
from tests.data import save_pair, views

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
BACKENDS = ("", "cuda.matmul", "mkldnn", "mkldnn.matmul", "mkldnn.conv", "mkldnn.rnn", "cudnn", "cudnn.conv")
BACKENDS += ("cudnn.rnn",)


def _backend(name: str) -> Any:
    return functools.reduce(getattr, name.split(".") if name else [], torch.backends)


def precision_state() -> dict[str, object]:
    """Every float32-precision setting of the process, as torch reads them."""
    state: dict[str, object] = {name: getattr(_backend(name), "fp32_precision", None) for name in BACKENDS}
    try:
        state["legacy"] = torch.get_float32_matmul_precision()
    except RuntimeError:  # a mix of the legacy and per-backend settings
        state["legacy"] = "mixed"
    return state


@pytest.fixture
def precision() -> Iterator[None]:
    """The process's float32 precision back as it was after the test (the legacy setter first:
    it pins backends, which are then set back one by one), checked."""
    before = precision_state()
    yield
    legacy = before["legacy"]
    torch.set_float32_matmul_precision(legacy if legacy != "mixed" else "highest")  # type: ignore[arg-type]
    if PER_BACKEND_API:
        for name in BACKENDS:
            _backend(name).fp32_precision = before[name]
    assert precision_state() == before, "the test left the precision changed"


def enable_tf32(how: str) -> None:
    """TF32 for float32 products, the ways a training script sets it."""
    if how == "legacy":
        torch.set_float32_matmul_precision("high")
    elif how == "allow_tf32":
        torch.backends.cuda.matmul.allow_tf32 = True
    else:
        (torch.backends.cuda.matmul if how == "matmul" else torch.backends).fp32_precision = "tf32"


TF32_WAYS = ["legacy", "allow_tf32", *(["matmul", "all backends"] if PER_BACKEND_API else [])]


def cublas_precision() -> str:
    """What cuBLAS's float32 products run at: "ieee" or "tf32"."""
    if PER_BACKEND_API:
        own = torch.backends.cuda.matmul.fp32_precision
        return own if own != "none" else "ieee"  # "none": nothing set anywhere, torch's default
    return "ieee" if torch.get_float32_matmul_precision() == "highest" else "tf32"


@pytest.mark.parametrize("how", [None, *TF32_WAYS])
def test_full_float32_products_on_a_gpu_and_back(precision: None, how: str | None) -> None:
    """IEEE inside, every setting as it was after (also after an exception); nothing on the CPU."""
    if how is not None:
        enable_tf32(how)
    assert cublas_precision() == ("ieee" if how is None else "tf32")
    before = precision_state()
    with full_float32_products(CUDA):
        assert cublas_precision() == "ieee"
    assert precision_state() == before
    with pytest.raises(KeyError), full_float32_products(CUDA):
        raise KeyError("the pass failed")
    assert precision_state() == before
    with full_float32_products(CPU):
        assert precision_state() == before


@pytest.mark.parametrize("threads", [1, 2])
def test_a_callers_autocast_changes_no_number(tmp_path: Path, threads: int) -> None:
    """Under torch.autocast("cpu") (bfloat16 products) the pass still computes in float32, with
    one worker (the caller's thread) and with two."""
    threads_before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        want = score(tmp_path, "cpu", "float32", threads=threads)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = score(tmp_path, "cpu", "float32", threads=threads)
    finally:
        torch.set_num_threads(threads_before)
    assert got == want


def test_full_float32_products_keeps_inheritance(precision: None) -> None:
    """cuBLAS's setting inheriting the process-wide one still follows it after a pass."""
    if not PER_BACKEND_API:
        pytest.skip("torch < 2.9 has no per-backend precision")
    with full_float32_products(CUDA):
        pass
    torch.backends.fp32_precision = "tf32"
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


def numbers(result: dict) -> dict[str, float]:
    """Every number of a result by its JSON path, bar the device it names."""
    return {path: v for path, v in numeric_leaves(result).items() if path != "settings.device"}


def assert_equal_results(cpu: dict, gpu: dict, rtol: float, atol: float) -> None:
    want, got = numbers(cpu), numbers(gpu)
    assert want.keys() == got.keys()
    for path, value in want.items():
        assert math.isclose(got[path], value, rel_tol=rtol, abs_tol=atol), (path, got[path], value)
    assert gpu["verdict"] == cpu["verdict"]


def score(tmp_path: Path, device: str, dtype: str, **settings: object) -> dict:
    za, zb = views(3000, 96, 7, scale=0.6, spread=0.3)
    pa, pb = save_pair(tmp_path, za.astype(np.float32), zb.astype(np.float32))
    s = Settings(device=device, dtype=dtype, batch_size=128, chunk_rows=512, **settings)  # type: ignore[arg-type]
    return evaluate_files(pa, pb, s).to_dict()


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
    """The float32 tolerance: sums in another order, ~sqrt(N) eps relative at worst (CPU runs that
    differ only in chunking or product route agree within 2e-7 here). TF32 left on by the caller
    (operands rounded to 10 bits, ~5e-4 relative per product, partly averaged out in sums) must
    change nothing beyond it; that the guard sets and restores the precision is tested above,
    without a GPU."""
    cpu = score(tmp_path, "cpu", "float32")
    if how is not None:
        enable_tf32(how)
    assert_equal_results(cpu, score(tmp_path, "cuda", "float32"), 2e-5, 1e-6)
    assert cublas_precision() == ("ieee" if how is None else "tf32")

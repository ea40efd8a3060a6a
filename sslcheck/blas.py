"""Symmetric products x^T x through numpy's BLAS, which has the SYRK torch lacks.

SYRK computes one triangle of x^T x: half a full product's multiply-adds, where torch's
block-triangular `symmetric_product` still takes 5/8 of them at lower efficiency. But two
thread pools on one CPU fight: OpenBLAS's threads spin after each call and starve torch's
(110 ms instead of 50 per chunk, measured). So during a pass OpenBLAS is held at one thread and
the products of a step run side by side, one per worker thread (the GIL is released inside BLAS):
no second pool stays awake. Measured on 2 cores ([2048, D] float32 centred chunks, both views,
between torch ops, with OpenMP's spin shortened as the CLI does, `sslcheck.process`): 6.5 ms against
torch's 11.5 at D = 512, 99 against 126 at D = 2048.

`symmetric_products` is the route: numpy's on the CPU where numpy's OpenBLAS can be held at one
thread and torch runs at most two threads (not measured beyond two cores: there torch's own pool
splits the work), torch's block-triangular products elsewhere (a GPU, another BLAS, more threads).
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

MAX_WORKERS = 2
_SETTERS = (
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),  # numpy >= 2
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),  # numpy 1.x wheels
    ("openblas_get_num_threads", "openblas_set_num_threads"),
)


class SelfProducts(Protocol):
    """Maps matrices x [n, D] to their x^T x [D, D]."""

    def __call__(self, xs: Sequence[Tensor], /) -> list[Tensor]: ...


class _Threads(Protocol):
    def get(self) -> int: ...
    def set(self, n: int) -> None: ...


class _OpenBLASThreads:
    def __init__(self, lib: ctypes.CDLL, get: str, set_: str) -> None:
        self._get, self._set = getattr(lib, get), getattr(lib, set_)
        self._get.restype = ctypes.c_int

    def get(self) -> int:
        return int(self._get())

    def set(self, n: int) -> None:
        self._set(ctypes.c_int(n))


@cache
def openblas_threads() -> _Threads | None:
    """The thread-count control of the OpenBLAS that numpy's wheels bundle, or None (numpy built
    on another BLAS, or its library not found)."""
    folder = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for path in sorted(folder.glob("lib*openblas*")):
        try:
            lib = ctypes.CDLL(str(path))  # numpy has loaded it already: the same handle
        except OSError:
            continue
        for get, set_ in _SETTERS:
            if hasattr(lib, get) and hasattr(lib, set_):
                return _OpenBLASThreads(lib, get, set_)
    return None


class _NumpySyrk:
    """x^T x of several matrices, one single-threaded SYRK per worker thread."""

    def __init__(self, workers: int) -> None:
        self._pool = ThreadPoolExecutor(workers - 1) if workers > 1 else None

    def __call__(self, xs: Sequence[Tensor]) -> list[Tensor]:
        if self._pool is None or len(xs) < 2:
            return [_syrk(x) for x in xs]
        later = [self._pool.submit(_syrk, x) for x in xs[1:]]
        return [_syrk(xs[0]), *(f.result() for f in later)]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def _syrk(x: Tensor) -> Tensor:
    a = x.numpy()
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is the engine's to report, as torch's route
        return torch.from_numpy(a.T @ a)  # numpy's matmul calls SYRK for a.T @ a


def symmetric_product(x: Tensor, width: int | None = None) -> Tensor:
    """x^T x [D, D] from the upper triangle of its column blocks: k = ceil(D / width) blocks take
    k (k + 1) / 2 products instead of k^2 (torch has no SYRK). The default width, 128 / 256 / 512
    columns from D = 256 / 512 / 2048 on, is what ran fastest here: 1.1-1.45x a full product
    (narrower blocks lose more to GEMM efficiency than they save; benchmarks/README.md)."""
    d = x.shape[1]
    width = width or (512 if d >= 2048 else 256 if d >= 512 else 128)
    if d < 2 * width:
        return x.T @ x
    out = torch.empty(d, d, dtype=x.dtype, device=x.device)
    for i in range(0, d, width):
        for j in range(i, d, width):
            block = torch.mm(x[:, i : i + width].T, x[:, j : j + width], out=out[i : i + width, j : j + width])
            if j != i:
                out[j : j + width, i : i + width] = block.T
    return out


def torch_self_products(xs: Sequence[Tensor]) -> list[Tensor]:
    """x^T x of each matrix by torch (any device, dtype or autograd)."""
    return [symmetric_product(x) for x in xs]


@contextmanager
def symmetric_products(device: torch.device, dtype: torch.dtype) -> Iterator[SelfProducts]:
    """For the duration of a pass: a function mapping matrices [n, D] to their x^T x [D, D], on
    numpy's SYRK route where it applies (module docstring), else torch's. OpenBLAS's thread
    count is restored on exit."""
    threads = openblas_threads()
    workers = torch.get_num_threads()
    if device.type != "cpu" or dtype not in (torch.float32, torch.float64) or threads is None or workers > MAX_WORKERS:
        yield torch_self_products
        return
    before = threads.get()
    threads.set(1)
    syrk = _NumpySyrk(workers)
    try:
        yield syrk
    finally:
        syrk.close()
        threads.set(before)

"""A pass's large products, x^T x of a chunk and x x^T of a batch (its Gram), through numpy's
BLAS, which has the SYRK torch lacks; and x^T y of a chunk, shared out the same way.

SYRK computes one triangle of a symmetric product: half a full product's multiply-adds, where
torch's block-triangular `symmetric_product` still takes 5/8 of them at lower efficiency and
its batched Grams take all of them. But two thread pools on one CPU fight: OpenBLAS's threads
spin after each call and starve torch's (110 ms instead of 50 per chunk, measured). So during a
pass OpenBLAS is held at one thread and the products of a step run side by side, one
single-threaded call after another on each worker thread (the GIL is released inside BLAS): no
second pool stays awake. Measured on 2 cores, both views, between torch operations, with
OpenMP's spin shortened as the CLI does (`sslcheck.process`): the centred [2048, D] chunks'
x^T x in 6.5 ms against torch's 11.5 at D = 512, 99 against 126 at D = 2048; the Grams of
8 batches [256, D] in 4.3 ms against 5.6 at D = 512, 14.9 against 22.4 at D = 2048; a chunk's
x^T y (no triangle to save) in 82 against 89 ms at D = 2048, equal at D = 512.

A pass adds its chunks' products into running sums (`add_self_products`, `add_cross_product`):
through CBLAS with beta = 1 (numpy's matmul has none) the kernel adds them as it writes, with no
temporary and no extra pass over D^2 entries, so the float64 state absorbs them once per 16 chunks
(`sslcheck.stats.BlockSums`) instead of once per chunk, which cost 12-16 ms a chunk at D = 2048.

`products` gives the route for a pass: numpy's on the CPU where numpy's OpenBLAS can be held at
one thread and torch runs at most two threads (not measured beyond two cores: there torch's own
pool splits the work), torch's (`TORCH`) elsewhere: a GPU, another BLAS, more threads, autograd.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator, Sequence
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


class Products(Protocol):
    """How a pass takes its large products."""

    def grams(self, xs: Sequence[Tensor], /) -> list[Tensor]:
        """The upper triangle (j >= i) of x x^T [..., B, B], zeros below it, of each (batch of)
        matrices x [..., B, D]: consumers sum over a symmetric matrix from its upper triangle
        (`losses.pair._symmetric_inner`), and mirroring it took a fifth of a [256, 512] Gram's time."""
        ...

    def add_self_products(self, xs: Sequence[Tensor], outs: Sequence[Tensor], /) -> None:
        """outs[k] += x_k^T x_k in the upper triangle (j >= i) of each [D, D] out; what the lower
        triangle then holds is unspecified."""
        ...

    def add_cross_product(self, x: Tensor, y: Tensor, out: Tensor, /) -> None:
        """out += x^T y."""
        ...


class _OpenBLASThreads:
    def __init__(self, lib: ctypes.CDLL, get: str, set_: str) -> None:
        self._get, self._set = getattr(lib, get), getattr(lib, set_)
        self._get.restype = ctypes.c_int

    def get(self) -> int:
        return int(self._get())

    def set(self, n: int) -> None:
        self._set(ctypes.c_int(n))


def _openblas_libraries() -> Iterator[ctypes.CDLL]:
    """The OpenBLAS libraries numpy's wheels bundle (numpy has loaded them: the same handles)."""
    folder = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for path in sorted(folder.glob("lib*openblas*")):
        try:
            yield ctypes.CDLL(str(path))
        except OSError:
            continue


@cache
def openblas_threads() -> _OpenBLASThreads | None:
    """The thread-count control of the OpenBLAS that numpy's wheels bundle, or None (numpy built
    on another BLAS, or its library not found)."""
    for lib in _openblas_libraries():
        for get, set_ in _SETTERS:
            if hasattr(lib, get) and hasattr(lib, set_):
                return _OpenBLASThreads(lib, get, set_)
    return None


# (a, b, out): `_upper_grams` sets out's upper triangle to a a^T (b None); `_add` adds out += a^T b (b None: a^T a)
_Job = tuple[np.ndarray, np.ndarray | None, np.ndarray]


class _CBLAS:
    """OpenBLAS's 64-bit-integer CBLAS SYRK and GEMM with beta = 1 (numpy's matmul has no beta):
    a product added into its output as the kernel writes it, with no temporary and no second
    pass over D^2 entries. Row-major; upper triangle for SYRK."""

    ROW_MAJOR, NO_TRANS, TRANS, UPPER = 101, 111, 112, 121

    def __init__(self, lib: ctypes.CDLL, prefix: str, suffix: str) -> None:
        self._fn = {}
        for dtype, scalar, letter in ((np.float32, ctypes.c_float, "s"), (np.float64, ctypes.c_double, "d")):
            syrk, gemm = getattr(lib, f"{prefix}{letter}syrk{suffix}"), getattr(lib, f"{prefix}{letter}gemm{suffix}")
            enum, size, ptr = ctypes.c_int, ctypes.c_int64, ctypes.c_void_p
            # (order, uplo, trans, n, k, alpha, a, lda, beta, c, ldc)
            syrk.argtypes = [enum, enum, enum, size, size, scalar, ptr, size, scalar, ptr, size]
            # (order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
            gemm.argtypes = [enum, enum, enum, size, size, size, scalar, ptr, size, ptr, size, scalar, ptr, size]
            syrk.restype = gemm.restype = None
            self._fn[np.dtype(dtype)] = (syrk, gemm)

    def takes(self, x: np.ndarray, y: np.ndarray | None, out: np.ndarray) -> bool:
        """Whether the kernels take these arrays as they are: one float dtype, unit column
        strides and row strides of at least a row (else numpy's product serves)."""
        arrays = (x, out) if y is None else (x, y, out)
        return (
            x.dtype in self._fn
            and all(a.dtype == x.dtype and a.ndim == 2 and a.strides[1] == a.itemsize for a in arrays)
            and all(a.strides[0] >= max(1, a.shape[1]) * a.itemsize for a in arrays)
            and (y is not None or x.flags.c_contiguous)
        )

    def add_syrk(self, x: np.ndarray, out: np.ndarray) -> None:
        """out += x^T x (upper triangle) for x [n, D], out [D, D], both C-contiguous."""
        syrk, _ = self._fn[x.dtype]
        n, d = x.shape
        syrk(self.ROW_MAJOR, self.UPPER, self.TRANS, d, n, 1.0, x.ctypes.data, d, 1.0, out.ctypes.data, out.shape[1])

    def upper_gram(self, x: np.ndarray, out: np.ndarray) -> None:
        """The upper triangle of out [B, B] = x x^T for x [B, D], both C-contiguous (beta = 0:
        nothing below the diagonal is written)."""
        syrk, _ = self._fn[x.dtype]
        b, d = x.shape
        syrk(self.ROW_MAJOR, self.UPPER, self.NO_TRANS, b, d, 1.0, x.ctypes.data, d, 0.0, out.ctypes.data, out.shape[1])

    def add_gemm(self, x: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
        """out += x^T y for x [n, m] and y [n, D] with unit column stride, out [m, D] C-contiguous rows."""
        _, gemm = self._fn[x.dtype]
        (n, m), d = x.shape, y.shape[1]
        lda, ldb, ldc = (z.strides[0] // z.itemsize for z in (x, y, out))
        gemm(
            self.ROW_MAJOR,
            self.TRANS,
            self.NO_TRANS,
            m,
            d,
            n,
            1.0,
            x.ctypes.data,
            lda,
            y.ctypes.data,
            ldb,
            1.0,
            out.ctypes.data,
            ldc,
        )


@cache
def cblas() -> _CBLAS | None:
    """numpy's bundled OpenBLAS's CBLAS with 64-bit integers (the ILP64 builds numpy's wheels
    ship), or None: then a product is taken by numpy and added (one more pass)."""
    for lib in _openblas_libraries():
        for prefix, suffix in (("scipy_cblas_", "64_"), ("cblas_", "64_")):
            if all(hasattr(lib, f"{prefix}{f}{suffix}") for f in ("ssyrk", "sgemm", "dsyrk", "dgemm")):
                return _CBLAS(lib, prefix, suffix)
    return None


class _NumpyProducts:
    """Products by numpy's BLAS (SYRK for the symmetric ones), the calls shared out among worker
    threads."""

    def __init__(self, workers: int) -> None:
        self._workers = workers
        self._pool = ThreadPoolExecutor(workers - 1) if workers > 1 else None

    def grams(self, xs: Sequence[Tensor]) -> list[Tensor]:
        outs, jobs = [], []
        for x in xs:
            a = x.reshape(-1, *x.shape[-2:]).numpy()
            out = np.zeros((a.shape[0], a.shape[1], a.shape[1]), dtype=a.dtype)
            jobs += [(a[i], None, out[i]) for i in range(a.shape[0])]
            outs.append(torch.from_numpy(out).reshape(*x.shape[:-1], x.shape[-2]))
        self._run(jobs, _upper_grams)
        return outs

    def add_self_products(self, xs: Sequence[Tensor], outs: Sequence[Tensor]) -> None:
        self._run([(x.numpy(), None, out.numpy()) for x, out in zip(xs, outs, strict=True)], _add)

    def add_cross_product(self, x: Tensor, y: Tensor, out: Tensor) -> None:
        """By rows of out, a share per worker (a GEMM has no triangle to save: one-threaded
        calls side by side still ran 7% faster than torch's two threads at D = 2048, and equal at
        D = 512). On one thread (each chunk worker's), torch's GEMM (MKL in its x86 wheels), which
        ran 10% faster than OpenBLAS's there: [4096, 2048]^T [4096, 2048] 185 against 206 ms."""
        if self._workers == 1:
            out.addmm_(x.T, y)
            return
        a, b, o = x.numpy(), y.numpy(), out.numpy()
        share = -(-a.shape[1] // self._workers)
        self._run([(a[:, i : i + share], b, o[i : i + share]) for i in range(0, a.shape[1], share)], _add)

    def _run(self, jobs: Sequence[_Job], work: Callable[[Sequence[_Job]], None]) -> None:
        """`work` on the jobs, dealt out in contiguous shares, the caller's thread taking the first."""
        share = max(1, -(-len(jobs) // self._workers))
        first, *rest = [jobs[i : i + share] for i in range(0, len(jobs), share)] or [[]]
        later = [self._pool.submit(work, part) for part in rest] if self._pool else []
        work(first)
        for f in later:
            f.result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


def _upper_grams(jobs: Sequence[_Job]) -> None:
    """The upper triangle of a a^T into each zeroed out, by CBLAS's SYRK where numpy's OpenBLAS
    has it (numpy's product mirrors the triangle it computed: 65 of 330 us at [256, 512])."""
    lib = cblas()
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is the engine's to report, as torch's route
        for a, _, out in jobs:
            if lib is not None and lib.takes(a, None, out):
                lib.upper_gram(a, out)
            else:
                out[...] = np.triu(a @ a.T)


def _add(jobs: Sequence[_Job]) -> None:
    """out += x^T y for each job (x [n, D], y None: x^T x, its upper triangle), by CBLAS with
    beta = 1 where numpy's OpenBLAS has it, else by numpy's product and an addition."""
    lib = cblas()
    with np.errstate(over="ignore", invalid="ignore"):
        for x, y, out in jobs:
            if lib is None or not lib.takes(x, y, out):
                out += x.T @ (x if y is None else y)
            elif y is None:
                lib.add_syrk(x, out)
            else:
                lib.add_gemm(x, y, out)


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


class TorchProducts:
    """Products by torch: any device or dtype; the Grams differentiable."""

    def grams(self, xs: Sequence[Tensor]) -> list[Tensor]:
        return [torch.triu(x @ x.mT) for x in xs]

    def add_self_products(self, xs: Sequence[Tensor], outs: Sequence[Tensor]) -> None:
        """Block-triangular on the CPU (k (k + 1) / 2 of k^2 block products: 3/4 of the
        multiply-adds at D = 512, 5/8 at 2048); on a GPU one fused product and add, whose launch
        costs more there than the multiply-adds the split would save (`stats.BlockSums` keeps
        the sums' upper triangle, so either serves)."""
        for x, out in zip(xs, outs, strict=True):
            if x.device.type == "cpu":
                out.add_(symmetric_product(x))
            else:
                out.addmm_(x.T, x)

    def add_cross_product(self, x: Tensor, y: Tensor, out: Tensor) -> None:
        out.addmm_(x.T, y)


TORCH = TorchProducts()


@contextmanager
def products(device: torch.device, dtype: torch.dtype) -> Iterator[Products]:
    """For the duration of a pass: numpy's SYRK route where it applies (module docstring), else
    `TORCH`. OpenBLAS's thread count is restored on exit."""
    threads = openblas_threads()
    workers = torch.get_num_threads()
    if device.type != "cpu" or dtype not in (torch.float32, torch.float64) or threads is None or workers > MAX_WORKERS:
        yield TORCH
        return
    before = threads.get()
    threads.set(1)
    route = _NumpyProducts(workers)
    try:
        yield route
    finally:
        route.close()
        threads.set(before)

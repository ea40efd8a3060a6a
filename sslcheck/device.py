"""The compute device: which one `--device` names, how a chunk gets there, and full-precision
float32 products on a GPU.

On a GPU the pass is a pipeline: each chunk is copied into pinned (page-locked) host memory and
sent with an asynchronous copy, so the host returns at once to read the next chunk from the file
while the device still works on this one. The pinned buffers come from torch's caching host
allocator, which records an event behind every asynchronous copy from a block and hands the block
out again only once that event has completed (`CachingHostAllocator_recordEvent`, called by
torch's copy kernel): a buffer is never refilled while its copy is in flight, with no ring of
buffers and no stream bookkeeping here. Copy and computation share the current stream, so every
kernel sees its chunk complete.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import Tensor

from sslcheck.errors import UsageError


def resolve_device(name: str) -> torch.device:
    """`--device auto|cpu|cuda` as a torch device; auto is the GPU where torch sees one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available (torch.cuda.is_available() is False)")
    if name not in ("cpu", "cuda"):
        raise UsageError(f"--device {name}: expected auto, cpu or cuda")
    return torch.device(name)


def to_device(block: np.ndarray, device: torch.device, dtype: torch.dtype) -> Tensor:
    """A chunk as read (numpy, any layout) on `device` in `dtype`.

    On the CPU this is a view wherever the dtypes agree (the block may live in a read buffer that
    the next chunk overwrites: the pass is done with it by then). On a GPU: pinned memory, an
    asynchronous copy in the file's dtype, then the conversion on the device."""
    x = torch.from_numpy(block)
    if device.type != "cpu":
        x = x.pin_memory().to(device, non_blocking=True)
    return x.to(dtype)


@contextmanager
def full_float32_products(device: torch.device) -> Iterator[None]:
    """float32 matrix products in IEEE float32 on a GPU for the duration, whatever the process set.

    A training script often enables TF32 (`torch.set_float32_matmul_precision("high")`, or
    torch >= 2.9's `torch.backends.cuda.matmul.fp32_precision = "tf32"`), which lets cuBLAS round
    operands to 10 mantissa bits: a Gram's entries would then be off by ~1e-3 relative. The
    setting is process-wide, so it is restored after the pass, through the API it was set by (the
    legacy getter refuses to read a per-backend setting). On the CPU nothing changes (no TF32)."""
    if device.type == "cpu":
        yield
        return
    matmul = torch.backends.cuda.matmul
    set_precision: Callable[[str], None]
    try:
        before, full = torch.get_float32_matmul_precision(), "highest"
        set_precision = torch.set_float32_matmul_precision
    except RuntimeError:  # set through the per-backend API

        def set_precision(value: str) -> None:
            matmul.fp32_precision = value

        before, full = matmul.fp32_precision, "ieee"
    set_precision(full)
    try:
        yield
    finally:
        set_precision(before)

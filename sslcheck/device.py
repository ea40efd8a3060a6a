"""The compute device: which one `--device` names, how a chunk gets there, and full-precision
float32 products on a GPU.

On a GPU the pass is a pipeline: each chunk is copied into pinned (page-locked) host memory and
sent with an asynchronous copy, so the host returns at once to read the next chunk from the file
while the device still works on this one. (The host does wait where it reads a value back: a
chunk's NaN/Inf test and TF's normalisation guard, and on the Gram route each batch group's
precision checks; what overlaps the read is the chunk's work queued after the last of these.) The
pinned buffers come from torch's caching host allocator, which records an event behind every
asynchronous copy from a block and hands the block out again only once that event has completed
(`CachingHostAllocator_recordEvent`, called by torch's copy kernel): a buffer is never refilled
while its copy is in flight, with no ring of buffers and no stream bookkeeping here. Copy and
computation share the current stream, so every kernel sees its chunk complete.
"""

from __future__ import annotations

from collections.abc import Iterator
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
    """Products in the compute dtype for the duration, whatever the caller set: no autocast (a
    caller's `torch.autocast` would run them in bfloat16 or float16), and on a GPU float32 in
    IEEE float32.

    A training script often enables TF32 (`torch.set_float32_matmul_precision("high")`, or
    `torch.backends.cuda.matmul.fp32_precision = "tf32"`), which lets cuBLAS round operands to 10
    mantissa bits (~5e-4 relative per product). The setting is process-wide, so only cuBLAS's is
    changed, and restored after the pass: through torch >= 2.9's per-backend setting where it
    exists (the legacy setter would also pin oneDNN's and drop what inherits), where a value
    equal to the process-wide one goes back to inheriting it; else the legacy one. Autocast is
    per thread: the pass's worker threads (`sslcheck.parallel`) never see the caller's."""
    with torch.autocast(device.type, enabled=False), _ieee_float32(device):
        yield


@contextmanager
def _ieee_float32(device: torch.device) -> Iterator[None]:
    if device.type == "cpu":  # no TF32 there
        yield
        return
    matmul = torch.backends.cuda.matmul
    if not hasattr(matmul, "fp32_precision"):  # torch < 2.9
        before = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")
        try:
            yield
        finally:
            torch.set_float32_matmul_precision(before)
        return
    own = matmul.fp32_precision  # as read: its own value, or the one it inherits
    inherited = own == getattr(torch.backends, "fp32_precision", None)  # the process-wide one
    matmul.fp32_precision = "ieee"
    try:
        yield
    finally:
        matmul.fp32_precision = "none" if inherited else own

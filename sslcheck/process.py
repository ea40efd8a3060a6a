"""Process-wide settings for long streaming passes, which the CLI applies to its own process
(the library never changes them): glibc's heap reuse and how long OpenMP's idle threads spin;
and the memory the process can still get (`available_memory`, read by the engine and the
benchmarks alike: no torch here).

Memory (glibc; a no-op elsewhere). A pass allocates the same transient tensors chunk after chunk,
from 1 to ~64 MiB each. glibc serves those above its mmap threshold with fresh mmaps, which the
kernel zero-fills page by page on every allocation: with the threshold pinned at 4 MiB, 15 of 18 s
at N = 2^18, D = 512 were system time in page faults (measured). Its default threshold floats up
after large frees, and its trim threshold hands freed heap back to the kernel, so the same faults
recur, just less often. So the CLI raises both: the transients come from the heap and are reused
chunk after chunk, and the resident set settles at the largest working set of one chunk, whatever N
is (measured flat from N = 2^17 to 2^20; benchmarks/README.md). And one heap (arena) serves every
thread: glibc gives each new thread an arena of its own, so the pass's two worker threads
(`sslcheck.parallel`) each kept a high-water mark of transients the other could not reuse (peak
RssAnon at N = 2^18, D = 512: 403 MB with an arena each, 367 MB with one, at the same speed).

Threads. torch's OpenMP threads (libgomp) spin for GOMP_SPINCOUNT = 300000 rounds after each
operation before they sleep: milliseconds in which they hold a core that numpy's single-threaded
SYRK calls (`sslcheck.blas`) need. 10000 rounds still bridge the gap between torch's back-to-back
operations (the elementwise passes ran no slower, measured) and leave the cores to the products.
libgomp reads the variable when torch is imported, so it is set first.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import MutableMapping
from functools import cache
from pathlib import Path

MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 512 << 20
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
OPENMP_SPIN_COUNT = "10000"


@cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018  (glibc has it; musl and macOS do not)
        return libc
    except (OSError, AttributeError):
        return None


def keep_heap_for_reuse(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> None:
    """Serve allocations below `mmap_threshold` from the heap, keep up to `trim_threshold` of
    freed heap for reuse, and one heap for all threads created from now on (process-wide glibc
    settings). The CLI, which owns its process, sets them before it starts any thread."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)
        libc.mallopt(M_TRIM_THRESHOLD, trim_threshold)
        libc.mallopt(M_ARENA_MAX, 1)


def spin_briefly(environ: MutableMapping[str, str] = os.environ) -> None:
    """Shorten the spin of torch's idle OpenMP threads (GOMP_SPINCOUNT), unless the user set it;
    effective only before torch is imported."""
    environ.setdefault("GOMP_SPINCOUNT", OPENMP_SPIN_COUNT)


def tune_process() -> None:
    """What the CLI applies to its process before a command runs: `spin_briefly`, `keep_heap_for_reuse`."""
    spin_briefly()
    keep_heap_for_reuse()


def meminfo() -> dict[str, int]:
    """/proc/meminfo's figures in bytes (MemTotal, MemAvailable, SwapFree, ...), or {} where it
    cannot be read (not Linux)."""
    try:
        text = Path("/proc/meminfo").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if parts and parts[0].isdigit():
            out[name] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    return out


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None  # absent, or "max" (no limit)


def available_memory() -> int | None:
    """Bytes this process can still get, or None where that is not known: MemAvailable plus
    SwapFree from /proc/meminfo, and no more than its cgroup's limit less its usage (a
    container's memory limit, v2 or v1)."""
    fields = meminfo()
    if "MemAvailable" not in fields:
        return None
    free = fields["MemAvailable"] + fields.get("SwapFree", 0)
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:
            free = min(free, max(limit - usage, 0))
    return free

"""The one-pass engine: both views read once, in chunks, into per-batch loss terms and merged
statistics; whole-set losses and diagnostics follow from those statistics.

Per chunk of C rows (a multiple of the batch size B): the chunk's centred co-moments (three D x D
products in the compute dtype, added into sums there and merged in float64 16 chunks at a time:
`sslcheck.stats.BlockSums`); the loss terms of each batch
of B rows, every loss sharing the batch's cached statistics (`sslcheck.losses.pair.Batch`); the
moments of L2-normalised rows and positive-pair cosines; the rows of the seeded pair sample.
Memory is O(D^2 + C D + S D) whatever N is; nothing builds an N x N matrix. On two CPU threads and
up to D = 2048, chunks are dealt to two worker threads, each with its own statistics, merged after
the pass (`sslcheck.parallel`, `chunk_workers`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from sslcheck import blas
from sslcheck.device import full_float32_products, resolve_device, to_device
from sslcheck.diagnostics.pairs import positive_cosines
from sslcheck.errors import InputError, UsageError
from sslcheck.io import ArraySource, open_pair
from sslcheck.losses.flavors import (
    FLAVORS,
    LOSSES,
    check_flavor,
    loss_key,
    params_dict,
    resolve_params,
)
from sslcheck.losses.normalize import normalize_rows, row_sq_norms
from sslcheck.losses.pair import Batch, RowValues, WholeSet
from sslcheck.parallel import blocks_to_keep, deal
from sslcheck.process import available_memory
from sslcheck.result import InputInfo, LossResult, Result, Summary, finite_or_none
from sslcheck.stats import (
    BatchParts,
    BlockSums,
    ElementMoments,
    PairMoments,
    centred_rows,
    squared_difference_sum,
    squared_differences,
)

DEFAULT_LOSSES = ("vicreg", "barlow", "nt_xent")
CONTRASTIVE_WORK_LIMIT = 2**38  # (2N)^2 * D multiply-adds for an exact whole-set contrastive value
SAMPLE_SIZE = 4096
CHUNK_ELEMS = 1 << 20  # values per view in one chunk (see chunk_size)
GROUP_ELEMS = 1 << 21  # similarities per group of batches scored at once (bounds transient memory)
PRODUCT_ELEMS = 1 << 21  # D x D entries per group (batched products slowed down at 64 MiB: measured)
PRODUCT_ROUTE_RATIO = 4  # per-batch D x D products below D = 4B, B x B Grams from there (see _score_batches)
MIN_CHUNK_ROWS = 2048  # at large D the products' own overhead per call must be amortised (see chunk_size)
DD_MATRICES_AT_PEAK = 12  # float64 D x D matrices held at the peak of a run (see _raise_if_too_large)
MEMORY_CHECK_FROM = 1 << 30  # bytes of D x D statistics from which the free memory is checked
MAX_THREADS = 1024  # --threads above this is refused: 30000 crashed libgomp (a segfault from 60000)
PARALLEL_MAX_DIM = 2048  # chunks dealt to worker threads up to this D (see chunk_workers)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Settings:
    """How to evaluate: which losses under which flavor(s), batching, precision and device.

    `batch_size` None means one batch of all N rows (`--batch-size all`); B >= N means the same.
    `chunk_rows` None picks the chunk size from D (`chunk_size`).
    `overrides` maps loss -> {param: value string} (`--set loss.param=value`).
    """

    losses: Sequence[str] = DEFAULT_LOSSES
    flavor: str = "paper"
    overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    batch_size: int | None = 256
    drop_last: bool = True
    dtype: Literal["float32", "float64"] = "float32"
    device: str = "auto"
    threads: int | None = None
    chunk_rows: int | None = None
    sample_size: int = SAMPLE_SIZE
    contrastive_work_limit: int = CONTRASTIVE_WORK_LIMIT
    thresholds: Mapping[str, float] = field(default_factory=dict)

    def loss_keys(self) -> list[str]:
        if any(name.strip().lower() == "all" for name in self.losses):
            return list(LOSSES)
        keys = [loss_key(name) for name in self.losses]
        return list(dict.fromkeys(keys))

    def flavors(self) -> list[str]:
        flavor = check_flavor(self.flavor)
        return list(FLAVORS) if flavor == "all" else [flavor]


def chunk_size(rows: int | None, bsz: int | None, d: int) -> int:
    """Rows read per chunk: `rows` if given, else about CHUNK_ELEMS values (4 MiB of float32)
    within [2048, 8192]; then a multiple of the batch size (at least one batch), so that no
    batch straddles two chunks.

    Equal-sized chunks make the same small transient tensors chunk after chunk, which the heap
    reuses (`sslcheck.process`). Measured with `score` at D = 512: 2048 rows (8 batches a group)
    24.9 s and 255 MB at N = 2^20, flat from 2^17; 4096 rows 24.7 s and 329 MB; 8192 rows (16 a
    group) 466 MB at 2^20 against 354 MB at 2^17, growing with N (the heap fragmented). At
    D = 2048, N = 2^18, two chunk workers (the float64 absorb once per 8 chunks then, `BlockSums`):
    2048 rows 28.1-29.9 s and 1.16-1.21 GB peak RSS against 28.2-30.3 s and 1.33-1.48 GB in the
    4096-row chunks of 2 D rows taken before, alternating, three pairs. First-touched memory
    costs time on a VM (zeroed pages: 9-12 us per 4 KiB page measured here, 2.3 s per GB).
    """
    target = rows or min(8192, max(MIN_CHUNK_ROWS, CHUNK_ELEMS // d))
    return target if bsz is None else bsz * max(1, target // bsz)


def sample_indices(n: int, size: int = SAMPLE_SIZE) -> np.ndarray:
    """The pair-metric sample: all rows if N <= size, else a seeded sorted choice (spec §3)."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, size, replace=False))


class _RowKeeper:
    """Copies the rows at sorted global indices `idx` out of the chunk stream."""

    def __init__(self, idx: np.ndarray, d: int, dtype: torch.dtype, device: torch.device) -> None:
        self._host_idx = idx
        self.idx = torch.from_numpy(idx).to(device)  # once: no host-to-device copy per chunk
        self.a = torch.empty(len(idx), d, dtype=dtype, device=device)
        self.b = torch.empty(len(idx), d, dtype=dtype, device=device)
        self._filled = 0

    def take(self, start: int, xa: Tensor, xb: Tensor) -> None:
        lo = int(np.searchsorted(self._host_idx, start))
        hi = int(np.searchsorted(self._host_idx, start + xa.shape[0]))
        if hi > lo:
            local = self.idx[lo:hi] - start
            self.a[lo:hi] = xa.index_select(0, local)
            self.b[lo:hi] = xb.index_select(0, local)


class _Finite:
    """NaN/Inf scan of one view, part of the pass: how many values and the first row holding
    one, of those that are NaN/Inf in the file (`in_file`) and of those that overflow the
    compute dtype (`overflow`)."""

    def __init__(self, source: ArraySource, dtype: torch.dtype) -> None:
        self.source, self.dtype = source, dtype
        self.in_file, self.overflow = _BadValues(), _BadValues()

    @property
    def bad(self) -> bool:
        return bool(self.in_file.count or self.overflow.count)

    def check(self, start: int, x: Tensor, raw: np.ndarray) -> bool:
        """Scan x, the rows `raw` of the file as converted to the compute dtype."""
        ok = torch.isfinite(x)
        if bool(ok.all()):
            return True
        in_file = ~torch.from_numpy(np.isfinite(raw)).to(ok.device)
        self.in_file.add(start, in_file)
        self.overflow.add(start, ~ok & ~in_file)
        return False

    def raise_if_bad(self) -> None:
        found = self.in_file
        if found.count:
            raise InputError(
                f"{self.source.label}: {found.count} NaN/Inf value{'s' if found.count > 1 else ''}; "
                f"the first in {self.source.where(found.first_row)}"
            )
        found = self.overflow
        if found.count:
            name = str(self.dtype).removeprefix("torch.")
            raise InputError(
                f"{self.source.label}: {found.count} value{'s' if found.count > 1 else ''} too large for "
                f"{name} (the first in {self.source.where(found.first_row)}); use --dtype float64"
            )


class _BadValues:
    """A count of bad values and the first row (global) holding one; -1 while there is none.
    Workers add their chunks in any order (hence a lock, and the least row)."""

    def __init__(self) -> None:
        self.count, self.first_row = 0, -1
        self._lock = threading.Lock()

    def add(self, start: int, bad: Tensor) -> None:
        """Count the True entries of `bad`, a mask of the rows from global row `start` on."""
        rows = bad.any(1).nonzero()
        count = int(bad.sum())
        with self._lock:
            self.count += count
            if len(rows) and (self.first_row < 0 or start + int(rows[0]) < self.first_row):
                self.first_row = start + int(rows[0])


def _no_bad_values(sq_diff: Tensor, start: int, views: tuple[tuple[Tensor, np.ndarray, _Finite], ...]) -> bool:
    """Whether a chunk holds no NaN or Inf, scanning it value by value only where its sum of
    squared differences (`squared_difference_sum`) is not finite: one scalar test per chunk
    instead of a pass over every value. `views`: each view's converted rows, rows as read and
    scan. Nothing is computed from a bad chunk (a solver would fail on it); a finite chunk
    whose sum overflowed passes, and the overflow check after the pass reports it."""
    if bool(torch.isfinite(sq_diff)):
        return True
    return all([finite.check(start, x, raw) for x, raw, finite in views])


def _chunk_pairs(za: ArraySource, zb: ArraySource, rows: int, keep: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    yield from zip(za.chunks(rows, keep), zb.chunks(rows, keep), strict=True)


@torch.inference_mode()
def evaluate(
    za: ArraySource,
    zb: ArraySource,
    settings: Settings | None = None,
    labels: np.ndarray | None = None,
    progress: Progress | None = None,
) -> Result:
    """Score a pair of views in one pass: every selected loss (per batch and whole set), the
    collapse diagnostics and the verdict."""
    s = settings or Settings()
    if s.threads is not None and (isinstance(s.threads, bool) or not isinstance(s.threads, int) or s.threads < 1):
        raise UsageError(f"--threads {s.threads}: expected a positive number of threads")
    if s.threads is not None and s.threads > MAX_THREADS:
        raise UsageError(
            f"--threads {s.threads}: at most {MAX_THREADS} (tens of thousands make OpenMP fail to start them)"
        )
    device = resolve_device(s.device)
    threads = torch.get_num_threads()  # the caller's, restored after (torch's setting is process-wide)
    try:
        if s.threads is not None:
            torch.set_num_threads(s.threads)
        with full_float32_products(device):
            return _evaluate(za, zb, s, device, labels, progress)
    finally:
        torch.set_num_threads(threads)


def _evaluate(
    za: ArraySource,
    zb: ArraySource,
    s: Settings,
    device: torch.device,
    labels: np.ndarray | None,
    progress: Progress | None,
) -> Result:
    from sslcheck.diagnostics import diagnose, resolve_thresholds

    resolve_thresholds(s.thresholds)  # a misspelt threshold fails before the pass, not after
    dtype = torch.float64 if s.dtype == "float64" else torch.float32
    n, d = za.n, za.d
    losses = s.loss_keys()
    flavors = s.flavors()
    params = {(loss, fl): resolve_params(loss, fl, s.overrides.get(loss)) for loss in losses for fl in flavors}
    for loss in set(s.overrides) - set(losses):  # a --set for a loss not selected is still checked
        resolve_params(loss_key(loss), flavors[0], s.overrides[loss])
    if s.batch_size is not None and s.batch_size < 2:
        raise UsageError(f"--batch-size {s.batch_size}: a batch needs at least 2 rows")
    one_batch = s.batch_size is None or s.batch_size >= n
    bsz = n if one_batch else int(s.batch_size)  # type: ignore[arg-type]
    if not one_batch and not s.drop_last and n % bsz == 1:
        raise InputError(
            f"--keep-last: the last batch would hold 1 row (N = {n}, B = {bsz}); a batch needs "
            "at least 2 rows (drop it, the default, or choose another batch size)"
        )
    chunk = chunk_size(s.chunk_rows, bsz if not one_batch else None, d)
    rows_losses = [loss for loss in losses if LOSSES[loss].from_rows]
    contrastive_whole = bool(rows_losses) and (2 * n) ** 2 * d <= s.contrastive_work_limit
    sample_idx = sample_indices(n, s.sample_size)
    keeper = _RowKeeper(np.arange(n) if contrastive_whole else sample_idx, d, dtype, device)

    _raise_if_too_large(d, device, za, zb)
    batch_terms = _BatchValues(params, 0 if one_batch else n // bsz + (0 if s.drop_last or n % bsz == 0 else 1), device)
    finite_a, finite_b = _Finite(za, dtype), _Finite(zb, dtype)
    setup = _PassSetup(
        d=d,
        device=device,
        dtype=dtype,
        bsz=None if one_batch else bsz,
        drop_last=s.drop_last,
        params=params,
        workers=chunk_workers(device, d),
        batch_terms=batch_terms,
        keeper=keeper,
        finite=(finite_a, finite_b),
    )
    moments, l2a, l2b, cosine, row_sums = _run_pass(setup, za, zb, chunk, progress)
    finite_a.raise_if_bad()
    finite_b.raise_if_bad()
    if not moments.is_finite():
        raise InputError(
            f"{za.label}, {zb.label}: values too large for {s.dtype}: their second moments overflow{_wider(dtype)}"
        )
    moments = moments.without_rounding_spread(torch.finfo(dtype).eps)
    for source, mean, m2, kept in (
        (za, moments.mean_a, moments.m_aa, keeper.a),
        (zb, moments.mean_b, moments.m_bb, keeper.b),
    ):
        _raise_if_underflowing(source, mean, m2, n, kept, s.dtype)

    whole = WholeSet(moments, (keeper.a, keeper.b) if contrastive_whole else None)
    results = _loss_results(losses, flavors, params, whole, batch_terms, row_sums, one_batch, n, d, s)
    sample_a, sample_b = (
        (keeper.a[torch.from_numpy(sample_idx).to(device)], keeper.b[torch.from_numpy(sample_idx).to(device)])
        if contrastive_whole
        else (keeper.a, keeper.b)
    )

    diagnostics, verdict, arrays = diagnose(
        moments=moments,
        l2a=l2a,
        l2b=l2b,
        cosine=cosine,
        sample_a=sample_a,
        sample_b=sample_b,
        labels=None if labels is None else labels[sample_idx],
        thresholds=s.thresholds,
    )
    warnings = [LOSSES[loss].warnings[fl] for loss in losses for fl in flavors if fl in LOSSES[loss].warnings]
    warnings += [w for source, rows in ((za, sample_a), (zb, sample_b)) if (w := _zero_rows_warning(source, rows, n))]
    if _same_array(za, zb):
        warnings.append(
            f"za and zb are the same array ({za.label}): the views are identical, so alignment is 0 "
            "and retrieval perfect by construction"
        )
    settings_out = {
        "batch_size": bsz,
        "drop_last": s.drop_last,
        "dtype": s.dtype,
        "device": device.type,
        "flavor": check_flavor(s.flavor),
        "losses": losses,
        "overrides": {k: dict(v) for k, v in s.overrides.items() if v},
        "sample_size": len(sample_idx),
    }
    return Result(
        za=InputInfo(za.path, za.key, (n, d), za.dtype, za.format),
        zb=InputInfo(zb.path, zb.key, (zb.n, zb.d), zb.dtype, zb.format),
        settings=settings_out,
        losses=results,
        diagnostics=diagnostics,
        verdict=verdict,
        warnings=warnings,
        arrays=arrays,
    )


def _raise_if_too_large(d: int, device: torch.device, za: ArraySource, zb: ArraySource) -> None:
    """Refuse, before the pass, a D whose D x D statistics cannot fit in memory: peak RSS is
    about DD_MATRICES_AT_PEAK float64 D x D matrices (measured 10-12: 1.8-2.2 GB at D = 4096,
    5.7 GB at D = 8192), so D = 16384 needs ~26 GB, which the kernel would answer by killing
    the process unannounced. Checked from MEMORY_CHECK_FROM bytes on (D ~ 3300), on the CPU."""
    need = DD_MATRICES_AT_PEAK * 8 * d * d
    if need < MEMORY_CHECK_FROM or device.type != "cpu":  # small D always fits; a GPU's memory is its own
        return
    free = available_memory()
    if free is not None and need > free:
        raise InputError(
            f"{za.label}, {zb.label}: D = {d} needs about {need / 1e9:.1f} GB of memory for its D x D "
            f"statistics, and {free / 1e9:.1f} GB is available"
        )


def _zero_rows_warning(source: ArraySource, rows: Tensor, n: int) -> str:
    """A warning where rows of the sample (all N rows up to SAMPLE_SIZE) are all zeros, as padding
    or failed embeddings are: they enter every statistic and would pass unseen; else ''."""
    zero = int((rows == 0).all(1).sum())
    if not zero:
        return ""
    where = f"{zero} of its {n} rows" if rows.shape[0] == n else f"{zero} of its {rows.shape[0]} sampled rows"
    return f"{source.label}: {where} are all zeros (padding or failed embeddings?); they count in every statistic"


def _same_array(za: ArraySource, zb: ArraySource) -> bool:
    """Whether both views were read from the same array (one file and key given twice)."""
    if za.key != zb.key:
        return False
    try:
        return za.path == zb.path or os.path.samefile(za.path, zb.path)
    except OSError:  # a glob of shards is no file
        return False


def _wider(dtype: torch.dtype) -> str:
    """The way out of a range error, where there is one: ' (use --dtype float64)'."""
    return " (use --dtype float64)" if dtype == torch.float32 else ""


def _raise_if_underflowing(
    source: ArraySource, mean: Tensor, m2: Tensor, n: int, kept: Tensor, dtype_name: str
) -> None:
    """A view whose values' mean square E[x_k^2] = mean_k^2 + M2_kk / N, in every dimension, is
    below the compute dtype's smallest normal number (float32: 1.2e-38): its squares underflow,
    its second moments read 0 and every std with them. Values of 1e-30 in float32 are refused;
    5e-19 (squares 2.5e-37) score. A view of exact zeros, whose kept rows are all 0, is data,
    not underflow."""
    tiny = torch.finfo(kept.dtype).tiny
    mean_square = float((mean.double().square() + m2.diagonal().double().clamp_min(0) / n).max())
    if mean_square < tiny and bool((kept != 0).any()):
        raise InputError(
            f"{source.label}: values too small for {dtype_name}: their mean square ({mean_square:.3g}) is "
            f"below its smallest normal number ({tiny:.3g}), so their squares underflow{_wider(kept.dtype)}"
        )


def chunk_workers(device: torch.device, d: int) -> int:
    """Threads that take whole chunks (`sslcheck.parallel`): torch's thread count on a CPU with
    up to `blas.MAX_WORKERS` of them and D <= PARALLEL_MAX_DIM, where it was measured; else 1.

    With two: `score` at N = 2^20, D = 512 19.9-20.5 s against 22.1-24.2 s (36-38 against
    39-43 s CPU); N = 2^17, D = 1024 9.1-9.8 against 10.2-11.1 s; N = 2^18, D = 2048 41.8-48.9 s
    (mean 45.2, 80-87 s CPU) against 45.1-52.5 s (mean 48.1, 82-89 s CPU), alternating, five
    pairs, with 1.5-1.6 GB peak RSS against 0.92-0.96 GB (each worker's read buffers and D x D
    sums). Above D = 2048 the second worker's buffers grow as D^2 and D C (untested). More
    threads than blas.MAX_WORKERS go to torch's own pool (unmeasured here), and a GPU has one
    stream."""
    threads = torch.get_num_threads()
    return threads if device.type == "cpu" and 1 < threads <= blas.MAX_WORKERS and d <= PARALLEL_MAX_DIM else 1


def _merged(
    passes: Sequence[_Pass],
) -> tuple[PairMoments, ElementMoments, ElementMoments, ElementMoments, dict[tuple[str, str], dict[str, Any]]]:
    """The workers' statistics together, merged in worker order: the same result on every run."""
    first = passes[0]
    moments, l2a, l2b, cosine, row_sums = first.moments, first.l2a, first.l2b, first.cosine, first.row_sums
    for part in passes[1:]:
        moments, l2a, l2b, cosine = (
            moments.merge(part.moments),
            l2a.merge(part.l2a),
            l2b.merge(part.l2b),
            cosine.merge(part.cosine),
        )
        row_sums = {key: {t: v + part.row_sums[key][t] for t, v in terms.items()} for key, terms in row_sums.items()}
    return moments, l2a, l2b, cosine, row_sums


def _serial(
    pairs: Iterator[tuple[np.ndarray, np.ndarray]], part: _Pass, progress: Callable[[int], None] | None
) -> None:
    """The pass on this thread (one worker: the blocks as read, no copies)."""
    start = 0
    for ca, cb in pairs:
        part.chunk(start, ca, cb)
        start += ca.shape[0]
        if progress:
            progress(start)


@dataclass(frozen=True)
class _PassSetup:
    """What every worker of a pass shares: how to compute (`bsz` None: one batch of all rows),
    and where per-batch values and kept rows (each at its own index) and NaN/Inf counts go."""

    d: int
    device: torch.device
    dtype: torch.dtype
    bsz: int | None
    drop_last: bool
    params: Mapping[tuple[str, str], Any]
    workers: int
    batch_terms: _BatchValues
    keeper: _RowKeeper
    finite: tuple[_Finite, _Finite]


def _run_pass(
    setup: _PassSetup, za: ArraySource, zb: ArraySource, rows: int, progress: Progress | None
) -> tuple[PairMoments, ElementMoments, ElementMoments, ElementMoments, dict[tuple[str, str], dict[str, Any]]]:
    """Read every chunk of `rows` rows once, on this thread or dealt to `setup.workers` threads
    (each running its operations on its share of torch's threads, on the blocks as read), and
    return the merged statistics."""
    one = setup.workers == 1
    pairs = _chunk_pairs(za, zb, rows, 1 if one else blocks_to_keep(setup.workers))
    threads = torch.get_num_threads()
    torch.set_num_threads(threads // setup.workers)
    try:
        with blas.products(setup.device, setup.dtype) as products:
            passes = [_Pass(setup, products) for _ in range(setup.workers)]
            report = (lambda done: progress(done, za.n)) if progress else None
            if one:
                _serial(pairs, passes[0], report)
            else:
                deal(pairs, [part.chunk for part in passes], report)
            for part in passes:
                part.blocks.flush()
    finally:
        torch.set_num_threads(threads)
    return _merged(passes)


class _Pass:
    """The statistics of one worker's chunks (all of them with one worker), merged after the pass."""

    def __init__(self, setup: _PassSetup, products: blas.Products) -> None:
        self.setup, self.products = setup, products
        self.moments = PairMoments.empty(setup.d, setup.device)
        self.blocks = BlockSums(self.moments, setup.dtype, products)
        self.l2a = ElementMoments.empty((setup.d,), setup.device)
        self.l2b = ElementMoments.empty((setup.d,), setup.device)
        self.cosine = ElementMoments.empty((), setup.device)
        self.row_sums = {k: dict.fromkeys(LOSSES[k[0]].terms, 0.0) for k in setup.params if LOSSES[k[0]].row_mean}

    @torch.inference_mode()
    def chunk(self, start: int, ca: np.ndarray, cb: np.ndarray) -> None:
        """Absorb the chunk whose first row is global row `start` (`ca`, `cb` as read)."""
        setup = self.setup
        xa, xb = to_device(ca, setup.device, setup.dtype), to_device(cb, setup.device, setup.dtype)
        finite_a, finite_b = setup.finite
        if finite_a.bad or finite_b.bad:  # a bad value was seen: count the rest, compute nothing more
            finite_a.check(start, xa, ca)
            finite_b.check(start, xb, cb)
            return
        rows = _row_values(xa, xb)
        sq_diff = squared_difference_sum(xa, xb, rows.sq_diff)
        if not _no_bad_values(sq_diff, start, ((xa, ca, finite_a), (xb, cb, finite_b))):
            return
        parts = None
        if setup.bsz is not None:
            parts = self.blocks.parts()
            _score_batches(
                xa,
                xb,
                rows,
                parts,
                self.products,
                setup.bsz,
                setup.drop_last,
                setup.params,
                setup.batch_terms,
                start,
                setup.workers,
            )
        self.blocks.add(xa, xb, parts, sq_diff)
        sq_a, sq_b = rows.row_sq
        self.l2a.update(normalize_rows(xa, "torch", sq_a))
        self.l2b.update(normalize_rows(xb, "torch", sq_b))
        self.cosine.update(positive_cosines(xa, xb, sq_a, sq_b, rows.sq_diff))
        setup.keeper.take(start, xa, xb)
        _accumulate_row_means(xa, xb, rows, setup.params, self.row_sums)


def _row_values(xa: Tensor, xb: Tensor) -> RowValues:
    """A chunk's per-row values, computed once for its batches and its statistics: squared norms
    and squared differences (every normalisation then scales by the inverse norms: the rows are
    never normalised whole)."""
    return RowValues((row_sq_norms(xa), row_sq_norms(xb)), squared_differences(xa, xb))


def _accumulate_row_means(
    xa: Tensor,
    xb: Tensor,
    rows: RowValues,
    params: Mapping[tuple[str, str], Any],
    sums: dict[tuple[str, str], dict[str, Any]],
) -> None:
    """Add each row-mean loss's chunk value times the chunk's rows (exact whole-set means)."""
    if not sums:
        return
    count = xa.shape[0]
    # a Batch needs 2 rows; a row mean of one row is that of the row twice
    chunk = Batch(xa.expand(2, -1), xb.expand(2, -1)) if count == 1 else Batch(xa, xb, rows)
    for key, values in _terms_by_key(chunk, {key: params[key] for key in sums}):
        terms = sums[key]
        for term, value in values.items():
            terms[term] = terms[term] + value.double() * count


def _terms_by_key(
    batch: Batch, params: Mapping[tuple[str, str], Any]
) -> Iterator[tuple[tuple[str, str], Mapping[str, Tensor]]]:
    """Each (loss, flavor)'s terms on `batch`, computed once per distinct (loss, parameters):
    flavors that agree on a loss's parameters (`--flavor all`: MMCR's six, most of InfoNCE's)
    share one computation, and on a GPU its host synchronisations."""
    done: dict[tuple[str, Any], Mapping[str, Tensor]] = {}
    for (loss, fl), p in params.items():
        if (loss, p) not in done:
            done[(loss, p)] = LOSSES[loss].compute(batch, p)
        yield (loss, fl), done[(loss, p)]


class _BatchValues:
    """Every batch's term values, written into float64 buffers allocated before the pass: no
    long-lived allocation happens between the pass's transient tensors (such allocations pinned
    the heap, and memory grew with N)."""

    def __init__(self, params: Mapping[tuple[str, str], Any], capacity: int, device: torch.device) -> None:
        self.values = {
            key: {term: torch.empty(capacity, dtype=torch.float64, device=device) for term in LOSSES[key[0]].terms}
            for key in params
        }

    def put(self, key: tuple[str, str], first: int, terms: Mapping[str, Tensor]) -> None:
        """The values of batches first, first + 1, ... (each worker writes its own batches; a
        pass that scores every chunk fills every slot, and one that does not raises)."""
        for term, value in terms.items():
            flat = value.reshape(-1)
            self.values[key][term][first : first + flat.numel()] = flat

    def get(self, key: tuple[str, str]) -> dict[str, np.ndarray]:
        return {term: buf.cpu().numpy() for term, buf in self.values[key].items()}


def _score_batches(
    xa: Tensor,
    xb: Tensor,
    rows: RowValues,
    parts: BatchParts,
    products: blas.Products,
    bsz: int,
    drop_last: bool,
    params: Mapping[tuple[str, str], Any],
    out: _BatchValues,
    start: int,
    workers: int = 1,
) -> None:
    """Score every batch of B rows in a chunk whose first row is global row `start` (a multiple
    of B): full batches k at a time as [k, B, D] (every loss takes them so; k keeps the 2B x 2B
    similarity blocks near GROUP_ELEMS and any k D x D products near PRODUCT_ELEMS), a short last
    one on its own unless it is dropped; each batch's values go to its index in `out`. With
    several `workers` scoring chunks at once, each takes 1 / workers of those limits (peak RssAnon
    at N = 2^18, D = 512, two workers: 333-353 MB in groups of 4 batches, 362-381 MB in groups of
    8, equally fast).

    Every batch's rows, as it centred them (a dropped short last batch's too), go to `parts`,
    which adds their whole-set products while they are in cache: the chunk is never centred as a
    whole. Below D = PRODUCT_ROUTE_RATIO * B each batch's x_c^T y_c serves both Barlow's cross
    terms and the whole-set cross moment (one D x D product per row where Barlow's Grams and a
    chunk product take 2 B D + D^2). From there on the batches use B x B Grams (`Batch`) and
    `parts` takes the cross products of the centred rows, since per-batch D x D products cost
    more in passes over D^2 entries (and force k = 1) than the Grams' extra multiply-adds
    (N = 2^18, D = 2048 = 8B: 42-43 s instead of 45-47 s).
    """
    d = xa.shape[1]
    full = xa.shape[0] // bsz * bsz
    by_product = d < PRODUCT_ROUTE_RATIO * bsz
    k = GROUP_ELEMS // workers // (2 * bsz) ** 2
    step = bsz * max(1, min(k, PRODUCT_ELEMS // workers // d**2) if by_product else k)
    groups = [
        (
            xa[i : min(i + step, full)].reshape(-1, bsz, d),
            xb[i : min(i + step, full)].reshape(-1, bsz, d),
            rows.rows(i, min(i + step, full), bsz),
            (start + i) // bsz,
        )
        for i in range(0, full, step)
    ]
    if full < xa.shape[0]:
        ra, rb = xa[full:], xb[full:]
        if not drop_last:
            groups.append(
                (ra.unsqueeze(0), rb.unsqueeze(0), rows.rows(full, xa.shape[0], ra.shape[0]), (start + full) // bsz)
            )
        else:
            (ca, ma), (cb, mb) = centred_rows(ra), centred_rows(rb)
            parts.add(ca, cb, ma, mb, ca.T @ cb if by_product else None)
    for ga, gb, known, first in groups:
        batch = Batch(ga, gb, known, products)
        parts.add(
            batch.centred("a"),
            batch.centred("b"),
            batch.means("a"),
            batch.means("b"),
            batch.product("a", "b") if by_product else None,
        )
        for key, terms in _terms_by_key(batch, params):
            out.put(key, first, terms)


def _loss_results(
    losses: list[str],
    flavors: list[str],
    params: Mapping[tuple[str, str], Any],
    whole: WholeSet,
    batch_terms: _BatchValues,
    row_sums: Mapping[tuple[str, str], dict[str, Any]],
    one_batch: bool,
    n: int,
    d: int,
    s: Settings,
) -> dict[str, LossResult]:
    out: dict[str, LossResult] = {}
    for loss in losses:
        spec = LOSSES[loss]
        by_flavor: dict[str, LossResult] = {}
        for fl in flavors:
            p = params[(loss, fl)]
            notes: list[str] = []
            note = None
            whole_terms: dict[str, float | None]
            if spec.row_mean:
                whole_terms = {k: finite_or_none(v / n) for k, v in row_sums[(loss, fl)].items()}
            elif spec.from_rows and not whole.has_rows:
                whole_terms = dict.fromkeys(spec.terms)
                note = (
                    f"not computed: (2N)^2 * D = {(2 * n) ** 2 * d:.3g} multiply-adds exceeds the "
                    f"exact-computation limit {s.contrastive_work_limit:.3g}; see per_batch"
                )
            else:
                whole_terms = {k: finite_or_none(v) for k, v in spec.compute(whole, p).items()}
            undefined = [k for k, v in whole_terms.items() if v is None]
            if undefined and note is None:
                notes.append(f"undefined for this input (NaN or Inf): whole_set {', '.join(undefined)}")
            if one_batch:
                values = {k: np.array([] if v is None else [v]) for k, v in whole_terms.items()}
                n_batches = 1 if note is None else 0
            else:
                values = batch_terms.get((loss, fl))
                n_batches = len(next(iter(values.values())))
            per_batch = {k: Summary.of(v) for k, v in values.items()}
            if n_batches and any(summary.mean is None for summary in per_batch.values()) and note is None:
                notes.append("undefined (NaN or Inf) in at least one batch: per_batch summary is null")
            by_flavor[fl] = LossResult(
                name=loss,
                flavor=fl,
                source=spec.sources[fl],
                params=params_dict(p),
                weights=spec.weights(p),
                n_batches=n_batches,
                whole_set=whole_terms,
                per_batch=per_batch,
                per_batch_values=values,
                whole_set_note=note,
                notes=notes,
            )
        top = by_flavor["paper"] if "paper" in by_flavor and len(flavors) > 1 else by_flavor[flavors[0]]
        if len(flavors) > 1:
            top.by_flavor = by_flavor
        out[loss] = top
    return out


def evaluate_files(
    za: str,
    zb: str | None = None,
    settings: Settings | None = None,
    *,
    key: str | None = None,
    key_a: str | None = None,
    key_b: str | None = None,
    labels: str | None = None,
    progress: Progress | None = None,
) -> Result:
    """Open the two views (or one file holding both) and `evaluate` them."""
    a, b = open_pair(za, zb, key=key, key_a=key_a, key_b=key_b)
    lab = None
    if labels is not None:
        from sslcheck.io.labels import load_labels

        lab = load_labels(labels, a.n)
    return evaluate(a, b, settings, labels=lab, progress=progress)

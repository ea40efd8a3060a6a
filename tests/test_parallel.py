"""Chunks dealt round-robin to worker threads (`sslcheck.parallel`), and the engine's result with
one worker against two."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from sslcheck.engine import Settings, chunk_workers, evaluate_files
from sslcheck.errors import InputError
from sslcheck.parallel import blocks_to_keep, deal
from sslcheck.render.flat import numeric_leaves
from sslcheck.result import Result
from tests.data import save_pair, views


def ring_source(blocks: list[np.ndarray], keep: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yields each block (and its negation) from a ring of `keep` reused pairs of buffers, as the
    readers do (`ArraySource.chunks(rows, keep)`), reading ahead as soon as it is asked: a
    consumer still working on a block that was read over would see a later block's values."""
    ring = [(np.empty_like(blocks[0]), np.empty_like(blocks[0])) for _ in range(keep)]
    for j, block in enumerate(blocks):
        buf_a, buf_b = ring[j % keep]
        a, b = buf_a[: len(block)], buf_b[: len(block)]
        a[:] = block
        np.negative(block, out=b)
        yield a, b


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_each_worker_gets_its_chunks_in_order_intact(workers: int) -> None:
    """From a source that keeps only `blocks_to_keep(W)` blocks, each chunk holds its own values
    until its consumer returns, however far the workers fall out of step."""
    rng = np.random.default_rng(0)
    blocks = [rng.standard_normal((7, 3)) for _ in range(20)] + [rng.standard_normal((4, 3))]
    seen: list[list[tuple[int, np.ndarray, np.ndarray]]] = [[] for _ in range(workers)]

    def consumer(w: int):  # type: ignore[no-untyped-def]
        def consume(start: int, a: np.ndarray, b: np.ndarray) -> None:
            first = a.copy(), b.copy()
            time.sleep(0.002 * ((start + 2 * w) % 5))  # workers finish out of step
            np.testing.assert_array_equal(a, first[0])  # still intact at the end
            np.testing.assert_array_equal(b, first[1])
            seen[w].append((start, *first))

        return consume

    progress: list[int] = []
    deal(ring_source(blocks, blocks_to_keep(workers)), [consumer(w) for w in range(workers)], progress.append)
    starts = np.cumsum([0] + [len(b) for b in blocks])
    for w in range(workers):
        mine = list(range(w, len(blocks), workers))
        assert [start for start, _, _ in seen[w]] == [starts[j] for j in mine]
        for (_, a, b), j in zip(seen[w], mine, strict=True):
            np.testing.assert_array_equal(a, blocks[j])
            np.testing.assert_array_equal(b, -blocks[j])
    assert progress == list(starts[1:])


def test_a_worker_error_is_raised_and_every_thread_stops() -> None:
    before = threading.active_count()
    read = []

    def source() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for j in range(1000):
            read.append(j)
            yield np.zeros((2, 2)), np.zeros((2, 2))

    def fails(start: int, a: np.ndarray, b: np.ndarray) -> None:
        if start >= 6:
            raise ArithmeticError("worker 1 failed")

    with pytest.raises(ArithmeticError, match="worker 1 failed"):
        deal(source(), [lambda *args: None, fails])
    assert len(read) < 1000  # dealing stopped
    assert threading.active_count() == before


def test_the_error_of_the_first_failing_chunk_is_raised() -> None:
    """As a one-thread pass would raise it, whichever worker failed first in time."""

    def source() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for _ in range(6):
            yield np.zeros((2, 2)), np.zeros((2, 2))

    def late(start: int, a: np.ndarray, b: np.ndarray) -> None:  # worker 0: chunks 0, 2, 4
        if start == 4:
            raise ValueError("chunk 2")

    def early(start: int, a: np.ndarray, b: np.ndarray) -> None:  # worker 1: chunks 1, 3, 5
        time.sleep(0.05)
        if start == 2:
            raise ValueError("chunk 1")

    with pytest.raises(ValueError, match="chunk 1"):
        deal(source(), [late, early])


def test_no_pairs_and_fewer_pairs_than_workers() -> None:
    got: list[int] = []
    deal(iter([]), [lambda start, a, b: got.append(start)] * 3)
    assert got == []
    deal(iter([(np.ones((3, 2)), np.ones((3, 2)))]), [lambda start, a, b: got.append(start)] * 3)
    assert got == [0]


def test_a_read_error_is_raised_and_every_thread_stops() -> None:
    before = threading.active_count()

    def source() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for _ in range(5):
            yield np.zeros((2, 2)), np.zeros((2, 2))
        raise OSError("the file ended early")

    with pytest.raises(OSError, match="ended early"):
        deal(source(), [lambda *args: None, lambda *args: None])
    assert threading.active_count() == before


@pytest.fixture
def restore_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def score(tmp_path: Path, threads: int, **settings: object) -> Result:
    za, zb = views(2000, 40, 11, scale=0.6, spread=0.3)
    pa, pb = save_pair(tmp_path, za, zb)
    s = Settings(threads=threads, batch_size=64, chunk_rows=256, losses=("all",), **settings)  # type: ignore[arg-type]
    return evaluate_files(pa, pb, s)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_two_workers_score_what_one_scores(tmp_path: Path, restore_threads: None, dtype: str) -> None:
    """Another grouping of the same sums: every number equal to rounding, per-batch values in
    batch order; the same on every run; the caller's thread count restored."""
    torch.set_num_threads(2)
    assert chunk_workers(torch.device("cpu"), 40) == 2
    one = score(tmp_path, 1, dtype=dtype)
    assert torch.get_num_threads() == 2
    two = score(tmp_path, 2, dtype=dtype)
    assert two.to_dict() == score(tmp_path, 2, dtype=dtype).to_dict()  # chunk j always to worker j mod 2
    rtol = 1e-12 if dtype == "float64" else 1e-5
    for loss, top in one.losses.items():
        for term, values in top.per_batch_values.items():
            np.testing.assert_allclose(two.losses[loss].per_batch_values[term], values, rtol=rtol, atol=1e-12)
    want, got = numeric_leaves(one.to_dict()), numeric_leaves(two.to_dict())
    assert want.keys() == got.keys()
    for path, value in want.items():
        assert got[path] == pytest.approx(value, rel=rtol, abs=1e-12), path
    assert two.verdict == one.verdict


@pytest.mark.parametrize(
    ("n", "settings"),
    [
        (2000, {"drop_last": False}),  # a short last batch (2000 = 31 x 64 + 16), written at index 31
        (200, {}),  # N within one chunk: the second worker gets nothing
        (2000, {"batch_size": None}),  # one batch of all rows: no per-batch values
        (2000, {"batch_size": 8}),  # D = 40 >= 4B: Grams per batch, the chunk's own cross product (as D = 2048)
    ],
)
def test_two_workers_at_the_edges(tmp_path: Path, restore_threads: None, n: int, settings: dict) -> None:
    za, zb = views(n, 40, 12, scale=0.6, spread=0.3)
    pa, pb = save_pair(tmp_path, za, zb)
    base = {"batch_size": 64, "chunk_rows": 256, "dtype": "float64", **settings}
    one, two = (evaluate_files(pa, pb, Settings(threads=t, **base)) for t in (1, 2))  # type: ignore[arg-type]
    for loss, top in one.losses.items():
        assert two.losses[loss].n_batches == top.n_batches
        for term, values in top.per_batch_values.items():
            np.testing.assert_allclose(two.losses[loss].per_batch_values[term], values, rtol=1e-12, atol=1e-12)
    want, got = numeric_leaves(one.to_dict()), numeric_leaves(two.to_dict())
    for path, value in want.items():
        assert got[path] == pytest.approx(value, rel=1e-12, abs=1e-12), path


def _write_view(folder: Path, name: str, view: np.ndarray, fmt: str) -> str:
    """One view in `fmt`: each reader reuses its own ring of buffers (`ArraySource.chunks`)."""
    if fmt == "npz_compressed":
        np.savez_compressed(folder / f"{name}.npz", view)
        return str(folder / f"{name}.npz")
    if fmt == "pt":
        torch.save(torch.from_numpy(view), folder / f"{name}.pt")
        return str(folder / f"{name}.pt")
    if fmt == "safetensors_bf16":
        safetensors.torch.save_file({"z": torch.from_numpy(view).to(torch.bfloat16)}, folder / f"{name}.safetensors")
        return str(folder / f"{name}.safetensors")
    shards = folder / name  # shards of 300 rows: chunks of 256 rows span them
    shards.mkdir()
    for i, start in enumerate(range(0, len(view), 300)):
        np.save(shards / f"part-{i}.npy", view[start : start + 300])
    return str(shards)


@pytest.mark.parametrize("fmt", ["npz_compressed", "pt", "safetensors_bf16", "shards"])
def test_two_workers_score_what_one_scores_from_every_reader(tmp_path: Path, restore_threads: None, fmt: str) -> None:
    """The workers hold blocks as the readers read them: a reader that reused a buffer too soon
    would hand a worker another chunk's rows."""
    za, zb = views(2000, 40, 14, scale=0.6, spread=0.3)
    pa, pb = (_write_view(tmp_path, name, view, fmt) for name, view in (("za", za), ("zb", zb)))
    base = {"batch_size": 64, "chunk_rows": 256, "dtype": "float64"}
    one, two = (evaluate_files(pa, pb, Settings(threads=t, **base)) for t in (1, 2))  # type: ignore[arg-type]
    want, got = numeric_leaves(one.to_dict()), numeric_leaves(two.to_dict())
    assert want.keys() == got.keys()
    for path, value in want.items():
        assert got[path] == pytest.approx(value, rel=1e-12, abs=1e-12), path


def test_two_workers_name_the_first_bad_row(tmp_path: Path, restore_threads: None) -> None:
    """NaN in chunk 1 (worker 1) and chunk 2 (worker 0): the first row named is chunk 1's, the
    count is of both, whichever worker got there first."""
    za, zb = views(2000, 8, 13)
    za[300, 2] = za[600, 1] = za[601, 5] = np.nan
    pa, pb = save_pair(tmp_path, za, zb)
    with pytest.raises(InputError, match=r"3 NaN/Inf values; the first in row 300"):
        evaluate_files(pa, pb, Settings(threads=2, batch_size=64, chunk_rows=256))


def test_chunk_workers_only_where_measured(restore_threads: None) -> None:
    torch.set_num_threads(2)
    assert chunk_workers(torch.device("cpu"), 2048) == 2
    assert chunk_workers(torch.device("cpu"), 2049) == 1  # unmeasured: the second buffers grow as D^2
    assert chunk_workers(torch.device("cuda"), 64) == 1  # one stream
    torch.set_num_threads(1)
    assert chunk_workers(torch.device("cpu"), 64) == 1

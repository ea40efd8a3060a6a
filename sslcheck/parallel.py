"""A pass's chunks dealt round-robin to worker threads, each keeping its own statistics.

On two cores torch splits each of a chunk's ~400 operations (D = 512) over both threads, and
between operations one core waits while Python dispatches the next. Two threads that each take
whole chunks, every operation on one thread, keep both cores busy (`score`, alternating with the
one-worker pass: N = 2^20, D = 512 19.9-20.5 s against 22.1-24.2 s wall, 36-38 against 39-43 s CPU;
where it applies: `sslcheck.engine.chunk_workers`). Chunk j goes to worker j mod W, in order, so
each worker's statistics cover a fixed set of chunks and the merged result is the same on every
run. A source's block is valid only until it reads the next one, so each is copied into one of its
worker's two buffers: the reader fills one while the worker works on the other. numpy and threading
only; the workers do the rest.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Sequence

import numpy as np

Consumer = Callable[[int, np.ndarray, np.ndarray], None]
BUFFERS = 2  # per worker: one being worked on, one being filled


class _Worker(threading.Thread):
    """Runs `consume(start, a, b)` on each pair it is handed, in the order handed."""

    def __init__(self, consume: Consumer, stop: threading.Event, name: str) -> None:
        super().__init__(daemon=True, name=name)
        self.consume, self.stop = consume, stop
        self.inbox: queue.SimpleQueue[tuple[int, int, int] | None] = queue.SimpleQueue()
        self.free: queue.SimpleQueue[int] = queue.SimpleQueue()
        self.buffers: list[tuple[np.ndarray, np.ndarray] | None] = [None] * BUFFERS
        self.error: tuple[int, BaseException] | None = None  # the failed chunk's first row, the error
        for slot in range(BUFFERS):
            self.free.put(slot)

    def run(self) -> None:
        while (item := self.inbox.get()) is not None:
            start, slot, rows = item
            pair = self.buffers[slot]
            if self.error is None and pair is not None and not self.stop.is_set():
                try:
                    self.consume(start, pair[0][:rows], pair[1][:rows])
                except BaseException as err:  # handed to the caller, which stops dealing
                    self.error = (start, err)
            self.free.put(slot)

    def fill(self, slot: int, a: np.ndarray, b: np.ndarray) -> None:
        """Copy a pair into one of this worker's buffers (allocated on first use, or when a
        block is larger or of another dtype than the buffer)."""
        pair = self.buffers[slot]
        if pair is None or any(len(buf) < len(x) or buf.dtype != x.dtype for buf, x in zip(pair, (a, b), strict=True)):
            pair = (np.empty_like(a), np.empty_like(b))
            self.buffers[slot] = pair
        np.copyto(pair[0][: len(a)], a)
        np.copyto(pair[1][: len(b)], b)


def deal(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    consumers: Sequence[Consumer],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Call consumers[j % W](start, a, b) for the j-th pair of blocks (start: its first row), each
    consumer on its own thread, on a copy of the blocks; `progress(rows read)` after each pair.
    Returns when every pair is consumed. An error is raised here once every thread has stopped:
    the reader's (or an interrupt), else that of the failed chunk that comes first in the file,
    as a one-thread pass would raise it; once a worker has failed, dealing stops."""
    stop = threading.Event()
    workers = [_Worker(consume, stop, f"sslcheck-chunks-{w}") for w, consume in enumerate(consumers)]
    start = 0
    try:
        for worker in workers:
            worker.start()
        for j, (a, b) in enumerate(pairs):
            worker = workers[j % len(workers)]
            slot = worker.free.get()
            if any(w.error is not None for w in workers):
                break
            worker.fill(slot, a, b)
            worker.inbox.put((start, slot, len(a)))
            start += len(a)
            if progress:
                progress(start)
    except BaseException:
        stop.set()  # the workers drop what they hold instead of finishing it
        raise
    finally:
        for worker in workers:
            worker.inbox.put(None)
        for worker in workers:
            if worker.ident is not None:  # started
                worker.join()
    errors = sorted((w.error for w in workers if w.error is not None), key=lambda e: e[0])
    for worker in workers:  # an error's traceback would otherwise keep the buffers alive
        worker.buffers = [None] * BUFFERS
        worker.error = None
    if errors:
        raise errors[0][1]

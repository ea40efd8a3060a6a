"""A pass's chunks dealt round-robin to worker threads, each keeping its own statistics.

On two cores torch splits each of a chunk's ~400 operations (D = 512) over both threads, and
between operations one core waits while Python dispatches the next. Two threads that each take
whole chunks, every operation on one thread, keep both cores busy (`score`, alternating with the
one-worker pass: N = 2^20, D = 512 19.9-20.5 s against 22.1-24.2 s wall, 36-38 against 39-43 s CPU;
where it applies: `sslcheck.engine.chunk_workers`). Chunk j goes to worker j mod W, in order, so
each worker's statistics cover a fixed set of chunks and the merged result is the same on every
run. Each worker holds at most two chunks (one it works on, one waiting), so the source must keep
its last `blocks_to_keep(W)` blocks intact (`ArraySource.chunks(rows, keep)`): the workers take the
blocks as read, with no copy (copying 4 GiB into the workers' buffers took 2.3 s of CPU at
N = 2^18, D = 2048, and `score` 40.0-41.7 s against 41.6-42.8 s, alternating, three pairs).
numpy and threading only; the workers do the rest.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Sequence

import numpy as np

Consumer = Callable[[int, np.ndarray, np.ndarray], None]
HELD = 2  # chunks per worker: one being worked on, one waiting


def blocks_to_keep(workers: int) -> int:
    """How many of its latest blocks a source must keep intact for `deal` to `workers`: chunk j
    is done before chunk j + workers * HELD is handed out, so before chunk j + workers * HELD + 1
    is read."""
    return workers * HELD + 1


class _Worker(threading.Thread):
    """Runs `consume(start, a, b)` on each pair it is handed, in the order handed."""

    def __init__(self, consume: Consumer, stop: threading.Event, name: str) -> None:
        super().__init__(daemon=True, name=name)
        self.consume, self.stop = consume, stop
        self.inbox: queue.SimpleQueue[tuple[int, np.ndarray, np.ndarray] | None] = queue.SimpleQueue()
        self.room = threading.Semaphore(HELD)  # taken when a chunk is handed in, released when it is done
        self.error: tuple[int, BaseException] | None = None  # the failed chunk's first row, the error

    def run(self) -> None:
        while (item := self.inbox.get()) is not None:
            start, a, b = item
            if self.error is None and not self.stop.is_set():
                try:
                    self.consume(start, a, b)
                except BaseException as err:  # handed to the caller, which stops dealing
                    self.error = (start, err)
            self.room.release()


def deal(
    pairs: Iterable[tuple[np.ndarray, np.ndarray]],
    consumers: Sequence[Consumer],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Call consumers[j % W](start, a, b) for the j-th pair of blocks (start: its first row), each
    consumer on its own thread, on the blocks as read (`pairs` keeps its last `blocks_to_keep(W)`
    intact); `progress(rows read)` after each pair.
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
            worker.room.acquire()
            if any(w.error is not None for w in workers):
                break
            worker.inbox.put((start, a, b))
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
    for worker in workers:  # an error's traceback would otherwise keep the blocks alive
        worker.error = None
    if errors:
        raise errors[0][1]

"""Where sslcheck's time goes: the engine run in this process with timers wrapped around its
functions (monkeypatching; sslcheck's code is not edited). Run by bench.py as a child.

    stages.py ZA ZB [--threads T] [--trace FILE]

Each wrapped call is timed with perf_counter (wall) and process_time (CPU of all threads). Times
are exclusive: a timed call nested in another (a loss inside the batch loop) is subtracted from
its parent, so the stages add up to the instrumented total and `engine (other)` is the rest of
`evaluate`. A thread samples RssAnon every 10 ms and charges it to the innermost open stage
(`peak_anon`: the highest sample seen while that stage ran; short spikes can be missed).
Prints one JSON line: {"stages": {name: {"wall", "cpu", "calls", "peak_anon"}}, "total_wall", ...}.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import io
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def rss_anon() -> int:
    """This process's RssAnon in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    return 0


class Timers:
    """Exclusive wall / CPU time per stage, with a stack for nested calls; a sampling thread
    charges the process's RssAnon to the innermost open stage every `interval` seconds."""

    def __init__(self, interval: float = 0.01, trace: bool = False) -> None:
        self.trace: list[tuple[float, int, str]] | None = [] if trace else None
        self.t0 = time.perf_counter()
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.peak_anon: dict[str, int] = {}
        self._stack: list[list[float]] = []  # [child wall, child cpu] of each open call
        self._names: list[str] = []
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, args=(interval,), daemon=True)
        self._sampler.start()

    def _sample(self, interval: float) -> None:
        while not self._done.wait(interval):
            try:
                name = self._names[-1]
            except IndexError:
                continue
            anon = rss_anon()
            if self.trace is not None:
                self.trace.append((time.perf_counter() - self.t0, anon, name))
            if anon > self.peak_anon.get(name, 0):
                self.peak_anon[name] = anon

    def close(self) -> None:
        self._done.set()
        self._sampler.join()

    def run(self, stage: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        self._stack.append([0.0, 0.0])
        self._names.append(stage)
        w0, c0 = time.perf_counter(), time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            w, c = time.perf_counter() - w0, time.process_time() - c0
            self._names.pop()
            child_w, child_c = self._stack.pop()
            self.wall[stage] = self.wall.get(stage, 0.0) + w - child_w
            self.cpu[stage] = self.cpu.get(stage, 0.0) + c - child_c
            self.calls[stage] = self.calls.get(stage, 0) + 1
            if self._stack:
                self._stack[-1][0] += w
                self._stack[-1][1] += c

    def wrap(self, stage: str | Callable[..., str], fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            name = stage(*args, **kwargs) if callable(stage) else stage
            return self.run(name, fn, *args, **kwargs)

        return timed

    def wrap_iter(self, stage: str, fn: Callable[..., Iterator[Any]]) -> Callable[..., Iterator[Any]]:
        """Time each `next` of the iterator `fn` returns (reading happens inside `next`)."""

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Iterator[Any]:
            it = iter(self.run(stage, fn, *args, **kwargs))
            while True:
                try:
                    item = self.run(stage, next, it)
                except StopIteration:
                    return
                yield item

        return timed


def instrument(t: Timers) -> list[str]:
    """Wrap the engine's stages; returns what could not be instrumented (the code moved)."""
    import sslcheck.diagnostics as diagnostics
    import sslcheck.diagnostics.spectrum as spectrum
    import sslcheck.engine as engine
    import sslcheck.losses.flavors as flavors
    from sslcheck import stats
    from sslcheck.losses.pair import Batch
    from sslcheck.stats import ElementMoments, PairMoments

    missing: list[str] = []

    def patch(owner: Any, attr: str, stage: str, *, method: str = "", iterator: bool = False) -> None:
        raw = owner.__dict__.get(attr) if isinstance(owner, type) else getattr(owner, attr, None)
        if raw is None:
            missing.append(f"{getattr(owner, '__name__', owner)}.{attr}")
            return
        if method == "classmethod":
            setattr(owner, attr, classmethod(t.wrap(stage, raw.__func__)))
        elif iterator:
            setattr(owner, attr, t.wrap_iter(stage, raw))
        else:
            setattr(owner, attr, t.wrap(stage, raw))

    if hasattr(engine, "chunk_workers"):  # the timers keep one stack of open stages: one worker thread
        engine.chunk_workers = lambda *args: 1
    patch(engine, "open_pair", "open files")
    patch(engine, "_chunk_pairs", "read", iterator=True)
    patch(engine._Finite, "check", "NaN/Inf scan")
    patch(PairMoments, "merge", "merge (float64)")
    if hasattr(stats, "BlockSums"):  # chunk products summed, absorbed in float64 8 chunks at a time
        patch(stats.BlockSums, "add", "whole-set products + merge (chunk route)")
        patch(stats.BlockSums, "flush", "whole-set products + merge (chunk route)")
    if hasattr(stats.BatchParts, "add"):  # the batches' centred rows' products, as they come
        patch(stats.BatchParts, "add", "whole-set products + merge (chunk route)")
    else:
        patch(PairMoments, "update", "whole-set products + merge (chunk route)")
    patch(Batch, "product", "per-batch D x D products (Barlow, whole-set cross)")
    patch(Batch, "gram", "per-batch Grams (VICReg, NT-Xent)")
    patch(ElementMoments, "merge", "merge (float64)")
    patch(ElementMoments, "of", "row-norm / cosine moments", method="classmethod")
    patch(ElementMoments, "update", "row-norm / cosine moments")
    patch(engine, "normalize_rows", "row-norm / cosine moments")
    patch(engine._RowKeeper, "take", "keep sample rows")
    patch(engine, "_score_batches", "batch loop (other: grouping, Batch, stack)")
    patch(engine, "_loss_results", "loss results (stack, summaries)")
    patch(spectrum, "_descending_eigenvalues", "eigen-solves (eigvalsh)")
    patch(diagnostics, "pair_metrics", "sample metrics")
    patch(diagnostics, "uniformity", "sample metrics")
    patch(diagnostics, "unit_rows", "sample metrics")
    patch(diagnostics, "diagnose", "diagnostics (other: std, alpha fit, cross-corr, verdict)")

    def loss_stage(spec: Any) -> Callable[..., str]:
        def name(stats: Any, *_: Any, **__: Any) -> str:
            if isinstance(stats, Batch):
                return "contrastive (per batch)" if spec.from_rows else "per-batch terms (VICReg, Barlow)"
            return "contrastive (whole set)" if spec.from_rows else "whole-set losses (from moments)"

        return name

    for key, spec in list(flavors.LOSSES.items()):
        flavors.LOSSES[key] = dataclasses.replace(spec, compute=t.wrap(loss_stage(spec), spec.compute))
    return missing


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("za")
    ap.add_argument("zb")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--trace", metavar="FILE", help="write every memory sample (seconds, RssAnon bytes, stage) as TSV")
    args = ap.parse_args()

    # the CLI tunes its process (glibc's heap, OpenMP's spin: sslcheck.process) before torch is
    # imported; do the same, so time and memory compare
    try:
        from sslcheck.process import tune_process
    except ImportError:
        try:
            from sslcheck.memory import keep_heap_for_reuse as tune_process  # earlier versions
        except ImportError:
            tune_process = None
    malloc_pinned = tune_process is not None
    if tune_process is not None:
        tune_process()
    w0, c0 = time.perf_counter(), time.process_time()
    import torch

    from sslcheck.engine import Settings, evaluate_files

    import_wall, import_cpu = time.perf_counter() - w0, time.process_time() - c0
    import_anon = rss_anon()
    t = Timers(trace=bool(args.trace))
    missing = instrument(t)
    settings = Settings(threads=args.threads) if args.threads else Settings()

    result = t.run("engine (other)", evaluate_files, args.za, args.zb, settings)

    def render() -> None:
        from rich.console import Console

        from sslcheck.render.table import print_table

        data = result.to_dict()
        print_table(data, Console(file=io.StringIO(), width=160))

    t.run("render (to_dict + table)", render)
    report_note = None
    try:
        from sslcheck.render.report import write_report
    except ImportError as err:  # `sslcheck report` not there (yet)
        report_note = f"no report renderer: {err}"
    else:
        folder = Path(tempfile.mkdtemp(prefix="sslcheck-stages-"))
        try:
            t.run("report render (write_report)", write_report, result, folder / "report", force=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    t.close()
    if args.trace and t.trace is not None:
        Path(args.trace).write_text("".join(f"{s:.3f}\t{a}\t{n}\n" for s, a, n in t.trace))
    stages = {
        k: {"wall": t.wall[k], "cpu": t.cpu[k], "calls": t.calls[k], "peak_anon": t.peak_anon.get(k)} for k in t.wall
    }
    stages["import (torch + sslcheck)"] = {"wall": import_wall, "cpu": import_cpu, "calls": 1, "peak_anon": import_anon}
    print(
        json.dumps(
            {
                "stages": stages,
                "total_wall": time.perf_counter() - w0,
                "total_cpu": time.process_time() - c0,
                "torch_threads": torch.get_num_threads(),
                "not_instrumented": missing,
                "report_note": report_note,
                "malloc_pinned": malloc_pinned,
                "verdict": result.verdict.get("status") if isinstance(result.verdict, dict) else None,
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()

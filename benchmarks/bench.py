"""sslcheck benchmark: the tool against the read + products + eigen-solve bound and against the naive
path, with wall / CPU time, peak memory and a per-stage breakdown. Not part of the test suite.

    .venv/bin/python benchmarks/bench.py            # the full run (N = 2^16..2^20; long, ~GBs of disk)
    .venv/bin/python benchmarks/bench.py --quick    # a smoke run (N = 2^14..2^15), a few minutes

See benchmarks/README.md for what every number means.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
GiB = 2**30
MB = 1e6

# (D, log2 N, kind): "full" runs bound, score, report, naive and the stage breakdown;
# "memory" (the issue-3 check) runs the bound and score only.
FULL_SIZES = (
    [(128, k, "full") for k in range(16, 21)]
    + [(512, k, "full") for k in range(16, 21)]
    + [(2048, k, "full") for k in range(16, 19)]
    + [(256, 17, "memory"), (256, 19, "memory")]
)
QUICK_SIZES = [(128, 15, "full")] + [(512, k, "full") for k in (14, 15)] + [(256, 15, "memory"), (256, 16, "memory")]
# The sizes each target is judged at; --quick judges the same rules at small analogs.
FULL_REFS = {"big": 20, "flat_lo": 17, "mem_n": 18, "d2048_n": 18, "i3_hi": 19, "i3_lo": 17}
QUICK_REFS = {"big": 15, "flat_lo": 14, "mem_n": 15, "d2048_n": 15, "i3_hi": 16, "i3_lo": 15}
STARTUP_RUNS = 5
QUICK_STARTUP_RUNS = 3

# Every stage the breakdown prints, in display order, with the group its time counts toward
# (None: shown, not summed). One list, so the order and the group sums cannot drift apart.
STAGES: list[tuple[str, str | None]] = [
    ("import (torch + sslcheck)", "fixed"),
    ("open files", "streaming pass"),
    ("read", "streaming pass"),
    ("NaN/Inf scan", "streaming pass"),
    ("whole-set products + merge (chunk route)", "streaming pass"),
    ("merge (float64)", "streaming pass"),
    ("row-norm / cosine moments", "streaming pass"),
    ("keep sample rows", "streaming pass"),
    ("per-batch terms (VICReg, Barlow)", "streaming pass"),
    ("per-batch D x D products (Barlow, whole-set cross)", "streaming pass"),
    ("per-batch Grams (VICReg, NT-Xent)", "streaming pass"),
    ("contrastive (per batch)", "streaming pass"),
    ("batch loop (other: grouping, Batch, stack)", "streaming pass"),
    ("whole-set losses (from moments)", "after the pass"),
    ("contrastive (whole set)", "after the pass"),
    ("loss results (stack, summaries)", "after the pass"),
    ("eigen-solves (eigvalsh)", "after the pass"),
    ("sample metrics", "after the pass"),
    ("diagnostics (other: std, alpha fit, cross-corr, verdict)", "after the pass"),
    ("engine (other)", "fixed"),
    ("render (to_dict + table)", "fixed"),
    ("report render (write_report)", None),
]
STAGE_ORDER = [stage for stage, _ in STAGES]
STAGE_GROUPS = {
    group: [stage for stage, g in STAGES if g == group] for group in ("streaming pass", "after the pass", "fixed")
}


def say(text: str = "") -> None:
    print(text, flush=True)


def fmt_s(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:.3f} s" if x < 10 else f"{x:.1f} s"


def fmt_mb(b: float | None) -> str:
    return "n/a" if b is None else f"{b / MB:.0f} MB"


def fmt_x(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}x"


def parse_sizes(text: str) -> list[tuple[int, int, str]]:
    """`D:K[-K2]` items, comma-separated (K = log2 N): `512:16-20,2048:18` -> [(512, 16), ...]."""
    out: list[tuple[int, int, str]] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        try:
            d_text, _, k_text = item.partition(":")
            lo, _, hi = k_text.partition("-")
            d, k_lo = int(d_text), int(lo)
            k_hi = int(hi) if hi else k_lo
        except ValueError:
            raise SystemExit(f"--sizes {item!r}: expected D:K or D:K1-K2 (K = log2 N), e.g. 512:16-20") from None
        if d < 2 or k_lo < 1 or k_hi < k_lo:
            raise SystemExit(f"--sizes {item!r}: need D >= 2 and 1 <= K1 <= K2")
        out.extend((d, k, "full") for k in range(k_lo, k_hi + 1))
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Benchmark sslcheck against the read + products + eigen-solve bound and the naive path.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Sizes: D:K items, K = log2 N. Default: 128:16-20, 512:16-20, 2048:16-18, plus the "
        "memory check 256:17 and 256:19 (bound and score only). --quick: 128:15, 512:14-15, 256:15-16.",
    )
    ap.add_argument("--quick", action="store_true", help="small sizes for a smoke run (targets judged at analogs)")
    ap.add_argument("--sizes", metavar="D:K[-K2],...", help="sizes to run, e.g. 512:16-20,2048:18")
    ap.add_argument("--repeat", type=int, default=1, metavar="K", help="runs of each timed command (min, median)")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="T",
        help="BLAS / torch threads for everything (sets OMP/OPENBLAS/MKL_NUM_THREADS, sslcheck --threads)",
    )
    ap.add_argument("--out", metavar="FILE.json", help="write machine-readable results")
    ap.add_argument("--skip-naive", action="store_true", help="do not run the naive path")
    ap.add_argument("--skip-stages", action="store_true", help="do not run the per-stage breakdown")
    ap.add_argument("--skip-startup", action="store_true", help="do not run the start-up section")
    ap.add_argument("--tmpdir", metavar="DIR", default=None, help="where to write the data (default: $TMPDIR or /tmp)")
    ap.add_argument(
        "--max-pair-gib",
        type=float,
        default=4.0,
        metavar="G",
        help="skip sizes whose two files exceed G GiB (default 4)",
    )
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be >= 1")
    return args


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        import benchlib  # numpy: imported after the thread variables are set

        self.lib = benchlib
        self.args = args
        self.env = dict(os.environ)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        exe = Path(sys.executable).parent / "sslcheck"
        self.tool = [str(exe)] if exe.exists() else [sys.executable, "-m", "sslcheck"]
        self.thread_args = ["--threads", str(args.threads)] if args.threads else []
        self.results: dict[str, Any] = {"sizes": [], "targets": []}
        self.has_report = False

    # -- child runs ---------------------------------------------------------------------------

    def child(self, cmd: list[str], workdir: Path, sample: bool = True) -> Any:
        return self.lib.run_child(cmd, self.env, workdir, sample=sample)

    def repeated(
        self, label: str, make: Callable[[int], list[str]], workdir: Path, after: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        """Run a command --repeat times; min / median of time, max of memory."""
        runs = []
        for i in range(self.args.repeat):
            run = self.child(make(i), workdir)
            if after:
                after()
            runs.append(run)
            if run.rc != 0:
                break
        return summarize(label, runs)

    # -- sections -----------------------------------------------------------------------------

    def detect_report(self, workdir: Path) -> None:
        run = self.child([*self.tool, "report", "--help"], workdir, sample=False)
        self.has_report = run.rc == 0

    def startup(self, tmp: Path) -> dict[str, Any]:
        runs_n = QUICK_STARTUP_RUNS if self.args.quick else STARTUP_RUNS
        say(f"== start-up (min / median of {runs_n} runs) ==")
        out: dict[str, Any] = {}
        for label, extra in (("--help", ["--help"]), ("--version", ["--version"])):
            runs = [self.child([*self.tool, *extra], tmp, sample=False) for _ in range(runs_n)]
            out[label] = summarize(f"sslcheck {label}", runs)
            self.print_startup(f"sslcheck {label}", out[label], 0.5)
        folder = tmp / "startup"
        pa, pb = self.lib.write_pair(folder, 2**12, 128)
        runs = [self.child([*self.tool, "score", str(pa), str(pb), *self.thread_args], tmp) for _ in range(runs_n)]
        out["score N=2^12 D=128"] = summarize("sslcheck score N=2^12 D=128", runs)
        self.print_startup("sslcheck score N=2^12, D=128", out["score N=2^12 D=128"], 3.0)
        shutil.rmtree(folder, ignore_errors=True)
        say()
        return out

    def print_startup(self, label: str, s: dict[str, Any], target: float) -> None:
        if s["rc"] != 0:
            say(f"  {label:32s} FAILED (exit {s['rc']}): {s['stderr_tail'][-300:]}")
            return
        status = "PASS" if s["wall_median"] < target else "FAIL"
        say(
            f"  {label:32s} min {fmt_s(s['wall_min'])}  median {fmt_s(s['wall_median'])}  "
            f"(target < {target} s: {status})"
        )

    def size(self, d: int, k: int, kind: str, tmp: Path) -> None:
        lib, args = self.lib, self.args
        n = 2**k
        pair = lib.pair_bytes(n, d)
        entry: dict[str, Any] = {"n": n, "d": d, "log2n": k, "kind": kind, "pair_bytes": pair}
        self.results["sizes"].append(entry)
        say(
            f"== N = 2^{k} ({n}), D = {d}: 2 x {pair / 2 / GiB:.2f} GiB"
            f"{'  [memory check: bound and score only]' if kind == 'memory' else ''} =="
        )
        if pair > args.max_pair_gib * GiB:
            entry["skipped"] = f"over --max-pair-gib {args.max_pair_gib}"
            say(f"  skipped: the pair is {pair / GiB:.2f} GiB, over --max-pair-gib {args.max_pair_gib}\n")
            return
        free = shutil.disk_usage(tmp).free
        if free < pair + GiB // 2:
            entry["skipped"] = f"not enough disk: {free / GiB:.1f} GiB free in {tmp}"
            say(f"  skipped: needs {pair / GiB:.2f} GiB + 0.5 GiB spare disk, {free / GiB:.1f} GiB free in {tmp}\n")
            return
        folder = tmp / f"{n}x{d}"
        try:
            t = time.perf_counter()
            pa, pb = lib.write_pair(folder, n, d)
            entry["generate_s"] = time.perf_counter() - t
            say(f"  generate   {fmt_s(entry['generate_s'])} (written and fsynced)")
            self.run_size(entry, pa, pb, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        say()

    def run_size(self, entry: dict[str, Any], pa: Path, pb: Path, folder: Path) -> None:
        lib, args = self.lib, self.args
        n, d, kind = entry["n"], entry["d"], entry["kind"]
        bounds = [lib.bound(pa, pb, n, d) for _ in range(args.repeat)]
        b = {key: min(x[key] for x in bounds) for key in bounds[0]}
        b["wall_min"], b["wall_median"] = b["wall"], statistics.median(x["wall"] for x in bounds)
        b["cpu_min"], b["cpu_median"] = b["cpu"], statistics.median(x["cpu"] for x in bounds)
        entry["bound"] = b
        say(
            f"  bound      wall {fmt_s(b['wall_min'])} (median {fmt_s(b['wall_median'])})  "
            f"cpu {fmt_s(b['cpu_min'])}   [read {fmt_s(b['read'])}, 3 products {fmt_s(b['products'])}, "
            f"2 eigvalsh {fmt_s(b['eigvalsh'])}]"
        )

        score = self.repeated("score", lambda i: [*self.tool, "score", str(pa), str(pb), *self.thread_args], folder)
        entry["score"] = score
        self.print_child("score", score, b["wall_min"])

        if kind != "full":
            return
        if not self.has_report:
            entry["report"] = {"skipped": "no `sslcheck report` command"}
            say("  report     skipped (no `sslcheck report` command)")
        else:
            out_dir = folder / "report-out"
            report = self.repeated(
                "report",
                lambda i: [*self.tool, "report", str(pa), str(pb), "-o", str(out_dir), *self.thread_args],
                folder,
                after=lambda: shutil.rmtree(out_dir, ignore_errors=True),
            )
            entry["report"] = report
            self.print_child("report", report, b["wall_min"])

        # the stage breakdown runs before the naive path, whose whole-pair load evicts the files
        # from the page cache (then every later read of a 4 GiB pair goes to the disk)
        self.run_stages(entry, pa, pb, folder)
        self.run_naive(entry, pa, pb, folder, score)

    def run_stages(self, entry: dict[str, Any], pa: Path, pb: Path, folder: Path) -> None:
        if self.args.skip_stages:
            return
        cmd = [sys.executable, str(HERE / "stages.py"), str(pa), str(pb), *self.thread_args]
        run = self.child(cmd, folder, sample=False)
        if run.rc != 0:
            entry["stages"] = {"error": run.stderr[-2000:]}
            say(f"  stages     FAILED (exit {run.rc}): {run.stderr[-500:]}")
            return
        data = json.loads(run.stdout.strip().splitlines()[-1])
        entry["stages"] = data
        self.print_stages(data, entry["bound"])

    def run_naive(self, entry: dict[str, Any], pa: Path, pb: Path, folder: Path, score: dict[str, Any]) -> None:
        lib, args, b = self.lib, self.args, entry["bound"]
        if args.skip_naive:
            entry["naive"] = {"skipped": "--skip-naive"}
            say("  naive      skipped (--skip-naive)")
        else:
            avail = lib.mem_available()
            if entry["pair_bytes"] > avail / 3:
                why = (
                    f"does not fit: pair {entry['pair_bytes'] / GiB:.2f} GiB > "
                    f"MemAvailable / 3 = {avail / 3 / GiB:.2f} GiB"
                )
                entry["naive"] = {"skipped": why}
                say(f"  naive      skipped ({why})")
            else:
                cmd = [sys.executable, str(HERE / "naive.py"), str(pa), str(pb), *self.thread_args]
                naive = self.repeated("naive", lambda i: cmd, folder)
                entry["naive"] = naive
                self.print_child("naive", naive, b["wall_min"], other=score)
                if naive["rc"] == 0 and naive.get("json"):
                    parts = ", ".join(f"{k} {fmt_s(v)}" for k, v in naive["json"]["stages"].items())
                    say(f"             [{naive['json']['source']} losses; {parts}]")

    def print_child(
        self, label: str, s: dict[str, Any], bound_wall: float, other: dict[str, Any] | None = None
    ) -> None:
        if s["rc"] != 0:
            say(f"  {label:10s} FAILED (exit {s['rc']}): {s['stderr_tail'][-600:]}")
            return
        ratio = s["wall_min"] / bound_wall if bound_wall > 0 else None
        line = (
            f"  {label:10s} wall {fmt_s(s['wall_min'])} (median {fmt_s(s['wall_median'])})  "
            f"cpu {fmt_s(s['cpu_min'])}  peak RssAnon {fmt_mb(s['peak_anon'])}  "
            f"VmHWM {fmt_mb(s['hwm'])}  ru_maxrss {fmt_mb(s['maxrss'])}  /bound {fmt_x(ratio)}"
        )
        if other is not None and other.get("rc") == 0:
            line += f"  /score {fmt_x(s['wall_min'] / other['wall_min'])}"
            line += f"  mem/score {fmt_x(s['peak_anon'] / max(other['peak_anon'], 1))}"
        say(line)

    def print_stages(self, data: dict[str, Any], bound: dict[str, Any]) -> None:
        stages = data["stages"]
        total = data["total_wall"]
        say(
            f"  stages     in-process engine run, {data['torch_threads']} torch thread(s), wall {fmt_s(total)}, "
            f"cpu {fmt_s(data['total_cpu'])} (exclusive times; peak RssAnon while the stage ran)"
        )
        names = [s for s in STAGE_ORDER if s in stages] + sorted(set(stages) - set(STAGE_ORDER))
        for name in names:
            st = stages[name]
            peak = st.get("peak_anon")
            say(
                f"     {name:58s} {st['wall']:8.3f} s {100 * st['wall'] / total:5.1f} %  "
                f"cpu {st['cpu']:8.3f} s  {fmt_mb(peak) if peak else '':>7}  x{st['calls']}"
            )
        groups = {}
        for group, members in STAGE_GROUPS.items():
            groups[group] = (
                sum(stages[m]["wall"] for m in members if m in stages),
                sum(stages[m]["cpu"] for m in members if m in stages),
            )
        data["groups"] = {g: {"wall": w, "cpu": c} for g, (w, c) in groups.items()}
        pw, pc = groups["streaming pass"]
        bound_pass = bound["read"] + bound["products"]
        say(
            f"     = streaming pass {fmt_s(pw)} wall, {fmt_s(pc)} cpu ({fmt_x(div(pw, bound_pass))} the bound's "
            f"read + products {fmt_s(bound_pass)}); after the pass {fmt_s(groups['after the pass'][0])} (bound's "
            f"eigvalsh {fmt_s(bound['eigvalsh'])}); fixed: import, glue, render {fmt_s(groups['fixed'][0])}"
        )
        if data.get("not_instrumented"):
            say(f"     not instrumented (the code moved): {', '.join(data['not_instrumented'])}")

    # -- the whole run ------------------------------------------------------------------------

    def run(self) -> int:
        args = self.args
        sizes = parse_sizes(args.sizes) if args.sizes else (QUICK_SIZES if args.quick else FULL_SIZES)
        refs = QUICK_REFS if args.quick and not args.sizes else FULL_REFS
        self.results["meta"] = meta(args, self.tool)
        print_meta(self.results["meta"])
        tmp = Path(tempfile.mkdtemp(prefix="sslcheck-bench-", dir=args.tmpdir))
        t0 = time.perf_counter()
        try:
            self.detect_report(tmp)
            if not args.skip_startup:
                self.results["startup"] = self.startup(tmp)
            for d, k, kind in sizes:
                self.size(d, k, kind, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self.results["elapsed_s"] = time.perf_counter() - t0
        print_summary(self.results["sizes"])
        self.results["targets"] = targets(self.results, refs, quick=refs is QUICK_REFS)
        print_targets(self.results["targets"], quick=refs is QUICK_REFS)
        say(f"\ntotal benchmark time {fmt_s(self.results['elapsed_s'])}; temporary data removed")
        if args.out:
            Path(args.out).write_text(json.dumps(self.results, indent=2, default=str) + "\n")
            say(f"wrote {args.out}")
        return 0


def summarize(label: str, runs: list[Any]) -> dict[str, Any]:
    ok = [r for r in runs if r.rc == 0]
    last = runs[-1]
    out: dict[str, Any] = {
        "label": label,
        "cmd": last.cmd,
        "runs": len(runs),
        "rc": last.rc,
        "stderr_tail": last.stderr[-2000:],
    }
    if not ok:
        return out
    walls, cpus = [r.wall for r in ok], [r.cpu for r in ok]
    out.update(
        wall_min=min(walls),
        wall_median=statistics.median(walls),
        walls=walls,
        cpu_min=min(cpus),
        cpu_median=statistics.median(cpus),
        peak_anon=max(r.peak_anon for r in ok),
        peak_rss=max(r.peak_rss for r in ok),
        hwm=max(r.hwm for r in ok),
        maxrss=max(r.maxrss for r in ok),
    )
    lines = last.stdout.strip().splitlines()
    if label == "naive" and lines:
        with contextlib.suppress(json.JSONDecodeError):
            out["json"] = json.loads(lines[-1])
    return out


def meta(args: argparse.Namespace, tool: list[str]) -> dict[str, Any]:
    import benchlib
    import numpy as np

    from sslcheck.process import meminfo

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "mem_total_bytes": meminfo().get("MemTotal", 0),
        "mem_available_bytes": benchlib.mem_available(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tool": tool,
        "args": vars(args),
        "threads_env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
    }


def print_meta(m: dict[str, Any]) -> None:
    say(
        f"sslcheck benchmark  {m['date']}  {m['cpus']} CPUs, {m['mem_total_bytes'] / GiB:.1f} GiB "
        f"({m['mem_available_bytes'] / GiB:.1f} available), python {m['python']}, numpy {m['numpy']}"
    )
    say(
        f"tool: {' '.join(m['tool'])}; threads: {m['args']['threads'] or 'library defaults'}; "
        f"repeat {m['args']['repeat']}"
    )
    load = m["load_average"][0]
    if m["cpus"] and load > 0.5 * m["cpus"]:
        say(f"WARNING: load average {load:.1f} on {m['cpus']} CPUs: other work is running, timings are noisy")
    say()


def print_summary(sizes: list[dict[str, Any]]) -> None:
    say("== summary (wall: min of runs; memory: peak RssAnon of the process tree) ==")
    header = (
        f"{'D':>5} {'N':>8} {'bound':>9} {'score':>9} {'s/bound':>8} {'report':>9} {'r/bound':>8} "
        f"{'naive':>9} {'naive/s':>8} {'score MB':>9} {'naive MB':>9} {'mem n/s':>8}"
    )
    say(header)
    for e in sizes:
        if "skipped" in e:
            say(f"{e['d']:>5} {'2^' + str(e['log2n']):>8}  skipped: {e['skipped']}")
            continue
        bw = e.get("bound", {}).get("wall_min")
        sw, rw, nw = (wall(e.get(key)) for key in ("score", "report", "naive"))
        sm, nm = anon(e.get("score")), anon(e.get("naive"))
        say(
            f"{e['d']:>5} {'2^' + str(e['log2n']):>8} {fmt_s(bw):>9} {fmt_s(sw):>9} {fmt_x(div(sw, bw)):>8} "
            f"{fmt_s(rw):>9} {fmt_x(div(rw, bw)):>8} {fmt_s(nw):>9} {fmt_x(div(nw, sw)):>8} "
            f"{fmt_mb(sm):>9} {fmt_mb(nm):>9} {fmt_x(div(nm, sm)):>8}"
        )
    say()


def wall(s: dict[str, Any] | None) -> float | None:
    return s.get("wall_min") if s and s.get("rc") == 0 else None


def anon(s: dict[str, Any] | None) -> float | None:
    return s.get("peak_anon") if s and s.get("rc") == 0 else None


def div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def targets(results: dict[str, Any], refs: dict[str, int], quick: bool) -> list[dict[str, Any]]:
    """Every target of the issue as {name, value, limit, status}; n/a where its size did not run."""
    by = {(e["d"], e["log2n"]): e for e in results["sizes"] if "skipped" not in e}
    out: list[dict[str, Any]] = []

    def add(name: str, value: float | None, limit: float, op: str, why: str = "") -> None:
        if value is None:
            out.append({"name": name, "value": None, "limit": limit, "status": "n/a", "why": why or "not run"})
            return
        ok = value <= limit if op == "<=" else value >= limit if op == ">=" else value < limit
        out.append({"name": name, "value": value, "limit": limit, "op": op, "status": "PASS" if ok else "FAIL"})

    def ratio_to_bound(d: int, k: int) -> float | None:
        e = by.get((d, k))
        return div(wall(e.get("score")), e["bound"]["wall_min"]) if e else None

    big, d2048 = refs["big"], refs["d2048_n"]
    add(f"score <= 2.5x bound at N=2^{big}, D=512", ratio_to_bound(512, big), 2.5, "<=")
    add(f"score <= 1.5x bound at N=2^{d2048}, D=2048", ratio_to_bound(2048, d2048), 1.5, "<=")
    for d, limit in ((512, 3.0), (2048, 5.0)):
        ks = sorted(k for (dd, k) in by if dd == d)
        for k in ks:
            e = by[(d, k)]
            add(
                f"naive/score >= {limit:g} at N=2^{k}, D={d}",
                div(wall(e.get("naive")), wall(e.get("score"))),
                limit,
                ">=",
                why=e.get("naive", {}).get("skipped", ""),
            )
        if not ks:
            add(f"naive/score >= {limit:g} at D={d}", None, limit, ">=")
    mem_n = refs["mem_n"]
    mem_ds = sorted(d for (d, k) in by if k == mem_n and by[(d, k)]["kind"] == "full")
    for d in mem_ds:
        e = by[(d, mem_n)]
        add(
            f"naive peak RssAnon >= 10x score's at N=2^{mem_n}, D={d}",
            div(anon(e.get("naive")), anon(e.get("score"))),
            10.0,
            ">=",
            why=e.get("naive", {}).get("skipped", ""),
        )
    if not mem_ds:
        add(f"naive peak RssAnon >= 10x score's at N=2^{mem_n}", None, 10.0, ">=")
    ks512 = sorted(k for (dd, k) in by if dd == 512)
    for k in ks512:
        value = anon(by[(512, k)].get("score"))
        add(f"score peak RssAnon < 400 MB at N=2^{k}, D=512", None if value is None else value / MB, 400.0, "<")
    if not ks512:
        add("score peak RssAnon < 400 MB at D=512", None, 400.0, "<")
    lo = refs["flat_lo"]
    ks_hi = [k for k in ks512 if k > lo and anon(by[(512, k)].get("score")) is not None]
    base = anon(by[(512, lo)].get("score")) if (512, lo) in by else None
    top = max((anon(by[(512, k)].get("score")) or 0 for k in ks_hi), default=None)
    span = f"2^{lo}..2^{max(ks_hi)}" if ks_hi else f"2^{lo} and above"
    add(
        f"score peak RssAnon max over N={span} <= 1.15x N=2^{lo}'s, D=512",
        div(top, base),
        1.15,
        "<=",
        why="" if base else f"N=2^{lo}, D=512 not run",
    )
    hi3, lo3 = refs["i3_hi"], refs["i3_lo"]
    v_hi = anon(by[(256, hi3)].get("score")) if (256, hi3) in by else None
    v_lo = anon(by[(256, lo3)].get("score")) if (256, lo3) in by else None
    add(f"issue 3: score peak RssAnon < 500 MB at N=2^{hi3}, D=256", None if v_hi is None else v_hi / MB, 500.0, "<")
    add(f"issue 3: score peak RssAnon at N=2^{hi3} <= 1.15x N=2^{lo3}'s, D=256", div(v_hi, v_lo), 1.15, "<=")
    st = results.get("startup") or {}
    for key, limit in (("--help", 0.5), ("--version", 0.5), ("score N=2^12 D=128", 3.0)):
        s = st.get(key)
        add(
            f"start-up: sslcheck {key} median < {limit:g} s",
            s.get("wall_median") if s else None,
            limit,
            "<",
            why="" if s else "--skip-startup",
        )
    if quick:
        for t in out:
            t["quick_analog"] = True
    return out


def print_targets(ts: list[dict[str, Any]], quick: bool) -> None:
    say(
        "== targets =="
        + (
            "  (--quick: the rules judged at small analogs; start-up dominates there, "
            "so time ratios are expected to FAIL)"
            if quick
            else ""
        )
    )
    for t in ts:
        if t["status"] == "n/a":
            say(f"  n/a   {t['name']}  ({t['why']})")
        else:
            unit = " MB" if "MB" in t["name"] else " s" if "start-up" in t["name"] else "x"
            say(f"  {t['status']:5s} {t['name']}: {t['value']:.3g}{unit} (limit {t['op']} {t['limit']:g})")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    sys.path.insert(0, str(HERE))
    return Bench(args).run()


if __name__ == "__main__":
    sys.exit(main())

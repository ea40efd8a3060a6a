"""`--device cuda` checked end to end on a GPU machine: the GPU tests, then at benchmark sizes the
same pair scored on the CPU and on the GPU, every number compared, with times and peak memory.

    PYTHONPATH=. python3 benchmarks/cuda_check.py [--sizes 512:18,2048:16] [--out DIR]

Prepared for the device tool's machine (torch with CUDA, typer, rich, pytest installed; no pip
install needed: run from the repository root with PYTHONPATH=.), as one short command:

    PYTHONUNBUFFERED=1 PYTHONPATH=. python3 benchmarks/cuda_check.py --out $OUT

First the test suite (all of it by default: `Settings.device` defaults to auto, so every engine and
CLI test then runs on the GPU against its reference). Then per size, in this process: the read
floor (both files' chunks read, nothing computed: what an overlapped GPU pass cannot beat),
`evaluate_files` on the CPU (torch's threads) and on the GPU twice (the first includes CUDA's
start-up) and once in 16384-row chunks (data for tuning the GPU's chunk size), the largest relative
difference over every number of the result, in float32 (within 1e-4 relative, 1e-6 absolute:
~sqrt(N) eps at worst is 3e-5 at N = 2^18) and in float64 (1e-9), and the GPU's peak allocated
memory; then `sslcheck score --device cuda --format json` as a child process (wall time, exit code,
verdict). Prints a table and writes cuda_check.json under --out.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

from sslcheck.engine import Settings, chunk_size, evaluate_files
from sslcheck.io import open_pair
from sslcheck.render.flat import numeric_leaves

# float32: ~sqrt(N) eps relative at worst for sums in another order (3e-5 at N = 2^18); float64
TOLERANCE = {"float32": (1e-4, 1e-6), "float64": (1e-9, 1e-12)}


def read_floor(pa: Path, pb: Path) -> float:
    """Seconds to read both files' chunks as the engine does, computing nothing."""
    za, zb = open_pair(str(pa), str(pb))
    rows = chunk_size(None, 256, za.d)
    t = time.perf_counter()
    for _ca, _cb in zip(za.chunks(rows), zb.chunks(rows), strict=True):
        pass
    return time.perf_counter() - t


def timed_evaluate(
    pa: Path, pb: Path, device: str, chunk_rows: int | None = None, dtype: str = "float32"
) -> tuple[float, dict[str, Any]]:
    t = time.perf_counter()
    settings = Settings(device=device, chunk_rows=chunk_rows, dtype=dtype)  # type: ignore[arg-type]
    result = evaluate_files(str(pa), str(pb), settings).to_dict()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t, result


def worst_difference(cpu: dict[str, Any], gpu: dict[str, Any], dtype: str) -> tuple[float, str, bool]:
    """The largest relative difference (path) and whether every number is within tolerance."""
    rtol, atol = TOLERANCE[dtype]
    want, got = ({path: v for path, v in numeric_leaves(r).items() if path != "settings.device"} for r in (cpu, gpu))
    if want.keys() != got.keys():
        return math.inf, f"paths differ: {sorted(set(want) ^ set(got))[:5]}", False
    worst, where, ok = 0.0, "", gpu["verdict"] == cpu["verdict"]
    for path, value in want.items():
        rel = abs(got[path] - value) / max(abs(value), atol)
        if rel > worst:
            worst, where = rel, path
        ok = ok and math.isclose(got[path], value, rel_tol=rtol, abs_tol=atol)
    return worst, where, ok


def check_size(folder: Path, d: int, k: int) -> dict[str, Any]:
    n = 2**k
    out: dict[str, Any] = {"d": d, "n": n}
    t = time.perf_counter()
    pa, pb = benchlib.write_pair(folder, n, d)
    out["write_s"] = time.perf_counter() - t
    try:
        out["read_s"] = read_floor(pa, pb)
        out["cpu_s"], cpu = timed_evaluate(pa, pb, "cpu")
        torch.cuda.reset_peak_memory_stats()
        out["cuda_cold_s"], _ = timed_evaluate(pa, pb, "cuda")
        out["cuda_s"], gpu = timed_evaluate(pa, pb, "cuda")
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 1e6
        out["cuda_16k_rows_s"], _ = timed_evaluate(pa, pb, "cuda", 16384)  # for tuning: fewer, larger chunks
        out["worst_rel"], out["worst_path"], out["equal"] = worst_difference(cpu, gpu, "float32")
        cpu64, gpu64 = (timed_evaluate(pa, pb, device, dtype="float64")[1] for device in ("cpu", "cuda"))
        out["worst_rel64"], out["worst_path64"], out["equal64"] = worst_difference(cpu64, gpu64, "float64")
        out["verdict"] = gpu["verdict"]
        cmd = [sys.executable, "-m", "sslcheck", "score", str(pa), str(pb), "--device", "cuda", "--format", "json"]
        t = time.perf_counter()
        child = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
        out["cli_s"], out["cli_rc"] = time.perf_counter() - t, child.returncode
        out["cli_verdict"] = json.loads(child.stdout)["verdict"] if child.returncode in (0, 1) else child.stderr[-500:]
    finally:
        pa.unlink()
        pb.unlink()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="512:18,2048:16", help="D:K pairs, N = 2^K")
    ap.add_argument("--out", type=Path, default=None, help="folder for cuda_check.json")
    ap.add_argument(
        "--tests",
        choices=("all", "device", "none"),
        default="all",
        help="the test suite first: all of it (Settings' device is auto, so the engine's tests run on the GPU), "
        "tests/test_device.py alone, or none",
    )
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 2
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, {os.cpu_count()} CPUs", flush=True)
    report: dict[str, Any] = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(), "sizes": []}
    if args.tests != "none":
        where = "tests" if args.tests == "all" else "tests/test_device.py"
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE", where])
        report["tests_rc"] = tests.returncode
    with tempfile.TemporaryDirectory() as tmp:
        for part in args.sizes.split(","):
            d, k = (int(x) for x in part.split(":"))
            try:
                row = check_size(Path(tmp), d, k)
            except Exception:  # a failing size is reported, and the next one still runs
                row = {"d": d, "n": 2**k, "error": traceback.format_exc()}
            report["sizes"].append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "cuda_check.json").write_text(json.dumps(report, indent=1))
    heads = ("read", "cpu", "cuda", "cold", "16k", "cli")
    print(f"{'D':>5} {'N':>8} " + " ".join(f"{h:>7}" for h in heads) + f" {'peak MB':>8} worst rel  equal")
    for r in report["sizes"]:
        if "error" in r:
            print(f"{r['d']:>5} {r['n']:>8} error: {r['error'].splitlines()[-1]}")
            continue
        print(
            f"{r['d']:>5} {r['n']:>8} {r['read_s']:7.2f} {r['cpu_s']:7.2f} {r['cuda_s']:7.2f} {r['cuda_cold_s']:7.2f}"
            f" {r['cuda_16k_rows_s']:7.2f}"
            f" {r['cli_s']:7.2f} {r['cuda_peak_mb']:8.0f} {r['worst_rel']:.1e}  {r['equal']} ({r['worst_path']})"
            f"; float64 {r['worst_rel64']:.1e} {r['equal64']} ({r['worst_path64']})"
        )
    sizes_ok = all(r.get("equal") and r.get("equal64") and r.get("cli_rc") == 0 for r in report["sizes"])
    ok = report.get("tests_rc", 0) == 0 and sizes_ok
    print("cuda check:", "PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""Helpers of `bench.py`: deterministic data, the numpy bound, and child processes whose memory is
measured. Imports numpy (and torch-free `sslcheck.process`), never torch, so the bound runs with numpy's BLAS alone."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

GEN_CHUNK_ELEMENTS = 2**22  # values per generated chunk and view (16 MiB of float32)
ROTATION_BLOCK = 64
NOISE = 0.5
OFFSET = 0.1
PAGE = 4096


# ---------------------------------------------------------------------------------------------
# data


def pair_bytes(n: int, d: int) -> int:
    """Bytes of both views' data (float32), headers aside."""
    return 2 * n * d * 4


def _rotations(d: int, seed: int) -> np.ndarray:
    """Random orthogonal blocks [D / b, b, b] (b = 64, or D when 64 does not divide D)."""
    b = ROTATION_BLOCK if d % ROTATION_BLOCK == 0 else d
    rng = np.random.default_rng([seed, d, 1])
    q, r = np.linalg.qr(rng.standard_normal((d // b, b, b)))
    q *= np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    return q.astype(np.float32)


def write_pair(folder: Path, n: int, d: int, seed: int = 0) -> tuple[Path, Path]:
    """Write za.npy and zb.npy [n, d] float32 chunk by chunk (never the whole array in memory).

    z = (g * s) R + offset, with g standard normal, s_k = (k + 1)^-1/2 a decaying spectrum and
    R a block-diagonal random rotation; za = z + 0.5 s e_a, zb = z + 0.5 s e_b (e_a, e_b standard
    normal noise). Chunk i is drawn from default_rng([seed, d, 2, i]): the same bytes on every run.
    """
    folder.mkdir(parents=True, exist_ok=True)
    pa, pb = folder / f"za_{n}x{d}.npy", folder / f"zb_{n}x{d}.npy"
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False, "shape": (n, d)}
    scale = ((np.arange(d) + 1.0) ** -0.5).astype(np.float32)
    rot = _rotations(d, seed)
    nb, b = rot.shape[0], rot.shape[1]
    rows = max(256, GEN_CHUNK_ELEMENTS // d // 256 * 256)
    with open(pa, "wb") as fa, open(pb, "wb") as fb:
        np.lib.format.write_array_header_1_0(fa, header)
        np.lib.format.write_array_header_1_0(fb, header)
        for i, start in enumerate(range(0, n, rows)):
            r = min(rows, n - start)
            rng = np.random.default_rng([seed, d, 2, i])
            g = rng.standard_normal((r, d), dtype=np.float32)
            g *= scale
            z = np.matmul(g.reshape(r, nb, b).transpose(1, 0, 2), rot).transpose(1, 0, 2).reshape(r, d)
            z += OFFSET
            for f in (fa, fb):
                view = rng.standard_normal((r, d), dtype=np.float32)
                view *= scale * np.float32(NOISE)
                view += z
                f.write(memoryview(np.ascontiguousarray(view)).cast("B"))
        for f in (fa, fb):
            f.flush()
            os.fsync(f.fileno())  # no write-back left to compete with the timed runs
    return pa, pb


def npy_offset(path: Path) -> int:
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        reader(f)
        return f.tell()


# ---------------------------------------------------------------------------------------------
# the bound


def _read_into(f, buf: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    view = memoryview(buf).cast("B")
    got = 0
    while got < len(view):
        k = f.readinto(view[got:])
        if not k:
            raise EOFError("file ended early")
        got += k


def bound(pa: Path, pb: Path, n: int, d: int, chunk: int = 8192) -> dict[str, float]:
    """The floor any one-pass tool pays: read both files in `chunk`-row blocks into reused buffers,
    the three D x D float32 products of each block, and two float64 eigvalsh of D x D."""
    t_read = t_mul = 0.0
    w0, c0 = time.perf_counter(), time.process_time()
    bufa = np.empty((min(chunk, n), d), np.float32)
    bufb = np.empty_like(bufa)
    last = None
    with open(pa, "rb", buffering=0) as fa, open(pb, "rb", buffering=0) as fb:
        fa.seek(npy_offset(pa))
        fb.seek(npy_offset(pb))
        for start in range(0, n, chunk):
            r = min(chunk, n - start)
            t = time.perf_counter()
            xa, xb = bufa[:r], bufb[:r]
            _read_into(fa, xa)
            _read_into(fb, xb)
            t2 = time.perf_counter()
            saa = xa.T @ xa
            sbb = xb.T @ xb
            sab = xa.T @ xb
            t_read += t2 - t
            t_mul += time.perf_counter() - t2
            last = (saa, sbb, sab)
    t = time.perf_counter()
    assert last is not None
    for m in last[:2]:
        np.linalg.eigvalsh(m.astype(np.float64) / n + np.eye(d))
    t_eig = time.perf_counter() - t
    return {
        "wall": time.perf_counter() - w0,
        "cpu": time.process_time() - c0,
        "read": t_read,
        "products": t_mul,
        "eigvalsh": t_eig,
    }


# ---------------------------------------------------------------------------------------------
# children and their memory


def _status(pid: int) -> dict[str, int]:
    """VmHWM, VmRSS, RssAnon of /proc/<pid>/status in bytes ({} once the process is gone)."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmHWM", "VmRSS", "RssAnon"):
                    out[key] = int(rest.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return out


def _descendants(root: int) -> set[int]:
    """root and every process below it (scans /proc: this kernel has no task/*/children)."""
    parent: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        parent.setdefault(ppid, []).append(int(name))
    tree, todo = {root}, [root]
    while todo:
        for child in parent.get(todo.pop(), []):
            if child not in tree:
                tree.add(child)
                todo.append(child)
    return tree


class MemorySampler(threading.Thread):
    """Samples /proc/<pid>/status of a process tree every `interval` s: the peak of the summed
    RssAnon and VmRSS, and the root's last VmHWM. The tree is re-scanned every 10 samples."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_anon = self.peak_rss = self.hwm = 0
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        tree = {self.pid}
        while not self._stop_event.is_set():
            if self.samples % 10 == 0:
                tree = _descendants(self.pid)
            anon = rss = 0
            for pid in tree:
                st = _status(pid)
                anon += st.get("RssAnon", 0)
                rss += st.get("VmRSS", 0)
                if pid == self.pid and "VmHWM" in st:
                    self.hwm = st["VmHWM"]
            self.peak_anon = max(self.peak_anon, anon)
            self.peak_rss = max(self.peak_rss, rss)
            self.samples += 1
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


@dataclass
class ChildRun:
    cmd: list[str]
    rc: int
    wall: float
    cpu: float
    peak_anon: int  # bytes, sampled peak of the tree's summed RssAnon
    peak_rss: int  # bytes, sampled peak of the tree's summed VmRSS
    hwm: int  # bytes, the root's VmHWM (last sample before it exited)
    maxrss: int  # bytes, ru_maxrss from wait4 (the child and the descendants it waited for)
    stdout: str
    stderr: str
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "cmd": self.cmd,
            "rc": self.rc,
            "wall_s": self.wall,
            "cpu_s": self.cpu,
            "peak_rss_anon_bytes": self.peak_anon,
            "peak_rss_bytes": self.peak_rss,
            "vm_hwm_bytes": self.hwm,
            "ru_maxrss_bytes": self.maxrss,
            "stderr_tail": self.stderr[-2000:],
            **self.extra,
        }


def run_child(cmd: list[str], env: dict[str, str], workdir: Path, sample: bool = True) -> ChildRun:
    """Run `cmd`, sampling its memory; stdout and stderr go to files (no pipe to fill)."""
    out_path, err_path = workdir / "child.out", workdir / "child.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        sampler = MemorySampler(proc.pid)
        if sample:
            sampler.start()
        # wait without reaping, so /proc/<pid> cannot be reused while the sampler still reads it
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        wall = time.perf_counter() - t0
        if sample:
            sampler.stop()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    run = ChildRun(
        cmd=cmd,
        rc=proc.returncode,
        wall=wall,
        cpu=usage.ru_utime + usage.ru_stime,
        peak_anon=sampler.peak_anon,
        peak_rss=sampler.peak_rss,
        hwm=sampler.hwm,
        maxrss=usage.ru_maxrss * 1024,
        stdout=out_path.read_text(errors="replace"),
        stderr=err_path.read_text(errors="replace"),
    )
    out_path.unlink()
    err_path.unlink()
    return run


def mem_available() -> int:
    """MemAvailable of /proc/meminfo in bytes (0 where unknown): RAM only, no swap, no cgroup,
    since the naive path must fit in RAM to be timed (`sslcheck.process.meminfo`, torch-free)."""
    from sslcheck.process import meminfo

    return meminfo().get("MemAvailable", 0)

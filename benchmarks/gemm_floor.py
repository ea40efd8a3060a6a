"""The matrix products of sslcheck's default pass, alone: the same chunks, batches and shapes as
`sslcheck.engine` (two self products, the per-batch cross products, two Grams and NT-Xent's cross
similarities per batch), nothing else. The gap between this and `score`'s streaming pass is the
elementwise work; the gap between this and the bound is the formulation (per-batch terms, no SYRK).

    .venv/bin/python benchmarks/gemm_floor.py ZA.npy ZB.npy [--batch-size 256] [--repeat 2]

Prints one JSON line: wall seconds per repetition and the multiply-adds done.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from sslcheck.blas import symmetric_product
from sslcheck.engine import GROUP_ELEMS, PRODUCT_ELEMS, chunk_size
from sslcheck.io import open_pair
from sslcheck.process import keep_heap_for_reuse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("za")
    ap.add_argument("zb")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    keep_heap_for_reuse()
    a, b = open_pair(args.za, args.zb)
    bsz, d = args.batch_size, a.d
    rows = chunk_size(None, bsz, d)
    k = max(1, min(GROUP_ELEMS // (2 * bsz) ** 2, PRODUCT_ELEMS // d**2))
    walls = []
    with torch.inference_mode():
        for _ in range(args.repeat):
            start = time.perf_counter()
            for ca, cb in zip(a.chunks(rows), b.chunks(rows), strict=True):
                xa, xb = torch.from_numpy(ca), torch.from_numpy(cb)
                symmetric_product(xa)
                symmetric_product(xb)
                full = xa.shape[0] // bsz * bsz
                ga, gb = xa[:full].view(-1, bsz, d), xb[:full].view(-1, bsz, d)
                for i in range(0, ga.shape[0], k):
                    u, v = ga[i : i + k], gb[i : i + k]
                    u.mT @ v  # the per-batch cross product (Barlow, whole-set cross)
                    u @ u.mT  # the two Grams (VICReg, NT-Xent self-similarities)
                    v @ v.mT
                    u @ v.mT  # NT-Xent's cross similarities
            walls.append(time.perf_counter() - start)
    n = a.n // bsz * bsz
    macs = 2 * a.n * d * d * 0.5 + n * d * d + 3 * n * bsz * d  # self products counted at half (SYRK-equivalent)
    out = {"n": a.n, "d": d, "chunk_rows": rows, "batches_per_group": k, "wall": walls, "macs_syrk_equivalent": macs}
    print(json.dumps(out))


if __name__ == "__main__":
    main()

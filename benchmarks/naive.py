"""The naive path to sslcheck's numbers, as a user would write it (run by bench.py as a child).

    naive.py ZA ZB [--batch-size 256] [--threads T] [--sample 4096]

- `np.load` both views whole;
- per batch of B rows (the short last one dropped): VICReg, Barlow Twins and NT-Xent, each loss
  computing its own statistics from the rows, as the reference libraries do: lightly's own
  `VICRegLoss`, `BarlowTwinsLoss` and `NTXentLoss` when `lightly.loss` imports (beside a
  torchvision stand-in of tests/oracles), else re-implementations written the same way;
- whole-set VICReg and Barlow: the same losses called on all N rows at once (whole-set NT-Xent is
  not attempted: lightly's builds a 2N x 2N matrix);
- the diagnostics with whole-matrix numpy: `np.cov` + `eigvalsh` per view (effective rank, alpha),
  `np.linalg.svd` of the raw view for RankMe, per-dimension std, L2-normalised rows, all N positive
  cosines, `np.corrcoef` for the cross-correlation, and the sample metrics (uniformity, random
  cosines, retrieval) on S rows with dense S x S matrices.

Prints one JSON line with the time of each stage and a few values (a sanity check that the work
was done).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _losses() -> tuple[str, Callable, Callable, Callable]:
    """(source, vicreg, barlow, nt_xent): lightly's losses, else reference-style functions."""
    import torch
    import torch.nn.functional as F

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for tests.oracles
    from tests.oracles import lightly_loss, why_not  # its torchvision stand-in lets lightly import

    lightly = lightly_loss()
    if lightly is not None:
        return (
            "lightly",
            lightly.VICRegLoss(),
            lightly.BarlowTwinsLoss(lambda_param=0.0051),
            lightly.NTXentLoss(temperature=0.1),
        )
    print(f"naive: lightly.loss not importable ({why_not('lightly')}); reference-style losses", file=sys.stderr)

    def off_diagonal(x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        return x.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()

    def vicreg(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # facebookresearch/vicreg
        n, d = x.shape
        repr_loss = F.mse_loss(x, y)
        x = x - x.mean(dim=0)
        y = y - y.mean(dim=0)
        std_x = torch.sqrt(x.var(dim=0) + 0.0001)
        std_y = torch.sqrt(y.var(dim=0) + 0.0001)
        std_loss = torch.mean(F.relu(1 - std_x)) / 2 + torch.mean(F.relu(1 - std_y)) / 2
        cov_x = (x.T @ x) / (n - 1)
        cov_y = (y.T @ y) / (n - 1)
        cov_loss = off_diagonal(cov_x).pow_(2).sum().div(d) + off_diagonal(cov_y).pow_(2).sum().div(d)
        return 25 * repr_loss + 25 * std_loss + cov_loss

    def barlow(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # facebookresearch/barlowtwins
        bn = torch.nn.functional.batch_norm
        xn = bn(x, None, None, training=True)
        yn = bn(y, None, None, training=True)
        c = xn.T @ yn / x.shape[0]
        return torch.diagonal(c).add_(-1).pow_(2).sum() + 0.0051 * off_diagonal(c).pow_(2).sum()

    def nt_xent(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # SimCLR, in-batch negatives
        n = x.shape[0]
        w = F.normalize(torch.cat([x, y]), dim=1)
        logits = w @ w.T / 0.1
        logits.fill_diagonal_(float("-inf"))
        labels = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
        return F.cross_entropy(logits, labels)

    return "reference-style", vicreg, barlow, nt_xent


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("za")
    ap.add_argument("zb")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--sample", type=int, default=4096)
    args = ap.parse_args()
    stages: dict[str, float] = {}
    values: dict[str, Any] = {}
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        stages[name] = stages.get(name, 0.0) + now - t
        t = now

    import numpy as np
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    source, vicreg, barlow, nt_xent = _losses()
    lap("import")

    za = np.load(args.za)
    zb = np.load(args.zb)
    ta, tb = torch.from_numpy(za), torch.from_numpy(zb)
    n, d = za.shape
    lap("load (np.load)")

    b = args.batch_size
    per_batch: dict[str, list[float]] = {"vicreg": [], "barlow": [], "nt_xent": []}
    with torch.no_grad():
        for start in range(0, n - b + 1, b):
            xa, xb = ta[start : start + b], tb[start : start + b]
            per_batch["vicreg"].append(float(vicreg(xa, xb)))
            per_batch["barlow"].append(float(barlow(xa, xb)))
            per_batch["nt_xent"].append(float(nt_xent(xa, xb)))
        lap("per-batch losses")
        whole = {"vicreg": float(vicreg(ta, tb)), "barlow": float(barlow(ta, tb))}
        lap("whole-set losses")
    values["per_batch_mean"] = {k: float(np.mean(v)) for k, v in per_batch.items()}
    values["whole_set"] = whole

    for name, z in (("za", za), ("zb", zb)):
        cov = np.cov(z, rowvar=False)
        ev = np.clip(np.linalg.eigvalsh(cov)[::-1], 0, None)
        sigma = np.sqrt(ev)  # singular values of the centred view (up to sqrt(N - 1))
        p = sigma / sigma.sum()
        erank_c = float(np.exp(-(p[p > 0] * np.log(p[p > 0])).sum()))
        k = np.arange(6, min(100, d) + 1)
        alpha = float(-np.polyfit(np.log(k), np.log(np.maximum(ev[k - 1], 1e-30)), 1)[0]) if len(k) > 2 else None
        lap("covariance + eigvalsh (np.cov)")
        sv = np.linalg.svd(z, compute_uv=False)
        q = sv / sv.sum() + 1e-7
        rankme = float(np.exp(-(q * np.log(q)).sum()))
        lap("RankMe (np.linalg.svd)")
        std = z.std(axis=0, ddof=1)
        dead = int((std <= 0.01 * std.max()).sum())
        u = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        l2_std = float(u.std(axis=0, ddof=1).mean())
        lap("std + L2 rows")
        values[name] = {
            "rankme": rankme,
            "effective_rank_centered": erank_c,
            "alpha": alpha,
            "dead_dims": dead,
            "l2_std": l2_std,
        }

    ua = za / np.maximum(np.linalg.norm(za, axis=1, keepdims=True), 1e-12)
    ub = zb / np.maximum(np.linalg.norm(zb, axis=1, keepdims=True), 1e-12)
    pos = (ua * ub).sum(axis=1)
    values["positive_cosine_mean"] = float(pos.mean())
    s = min(args.sample, n)
    idx = np.sort(np.random.default_rng(0).choice(n, s, replace=False))
    sa, sb = ua[idx].astype(np.float64), ub[idx].astype(np.float64)
    del ua, ub, u  # np.corrcoef below makes a float64 copy of both views: 2x the pair
    cc = np.corrcoef(za, zb, rowvar=False)[:d, d:]
    values["cross_corr_diag_mean"] = float(np.diagonal(cc).mean())
    lap("pair: cosines + np.corrcoef")

    sims = sa @ sa.T
    d2 = np.clip(2 - 2 * sims, 0, None)
    iu = np.triu_indices(s, 1)
    values["uniformity"] = float(np.log(np.mean(np.exp(-2 * d2[iu]))))
    cross = sa @ sb.T
    values["retrieval_top1"] = float((cross.argmax(axis=1) == np.arange(s)).mean())
    perm = np.random.default_rng(1).permutation(s)
    values["random_cosine_mean"] = float((sa * sb[perm]).sum(axis=1).mean())
    lap("sample metrics")
    print(json.dumps({"source": source, "stages": stages, "values": values}))


if __name__ == "__main__":
    main()

"""Make the bundled sample pairs (deterministic): `python sample_data/make_sample_data.py`.

Each pair is two views za, zb: [1024, 64] float32 of the same samples:
- healthy_*:     a power-law spectrum (lambda_k ~ k^-0.5) in a random basis, each view with
                 independent noise (std 0.3): broad spectrum, views aligned.
- dimensional_*: rank-4 structure plus 1e-3 noise: the spectrum collapses onto 4 directions.
- complete_*:    every row the same point plus 1e-6 noise: no information left.
- unaligned_*:   the healthy views with zb's rows shuffled: views no longer paired.
- healthy.pt:    the healthy pair as one torch file {"za": tensor, "zb": tensor}.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

N, D = 1024, 64
HERE = Path(__file__).parent


def views(signal: np.ndarray, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    za = signal + noise * rng.standard_normal(signal.shape)
    zb = signal + noise * rng.standard_normal(signal.shape)
    return za.astype(np.float32), zb.astype(np.float32)


def main() -> None:
    rng = np.random.default_rng(2026)
    basis, _ = np.linalg.qr(rng.standard_normal((D, D)))
    scales = np.arange(1, D + 1) ** -0.25  # std_k, so lambda_k ~ k^-0.5
    healthy = (rng.standard_normal((N, D)) * scales) @ basis.T
    pairs = {"healthy": views(healthy, 0.3, rng)}
    low_rank = rng.standard_normal((N, 4)) @ rng.standard_normal((4, D))
    pairs["dimensional"] = views(low_rank, 1e-3, rng)
    point = rng.standard_normal(D)
    pairs["complete"] = views(np.tile(point, (N, 1)), 1e-6, rng)
    za, zb = pairs["healthy"]
    pairs["unaligned"] = (za, zb[rng.permutation(N)])
    for name, (a, b) in pairs.items():
        np.save(HERE / f"{name}_za.npy", a)
        np.save(HERE / f"{name}_zb.npy", b)

    import torch

    torch.save({"za": torch.from_numpy(za), "zb": torch.from_numpy(zb)}, HERE / "healthy.pt")


if __name__ == "__main__":
    main()

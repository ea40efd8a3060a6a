"""Test inputs shared by the test modules: synthetic view pairs and the bundled sample pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"


def views(n: int, d: int, seed: int, scale: float = 1.0, spread: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """Two correlated float64 views with unequal column scales (scale * e^U(-spread, spread)) and a
    non-zero mean."""
    rng = np.random.default_rng(seed)
    col_scale = scale * np.exp(rng.uniform(-spread, spread, d))
    za = rng.standard_normal((n, d)) * col_scale + rng.standard_normal(d)
    zb = za + 0.5 * rng.standard_normal((n, d)) * col_scale
    return za, zb


def save_pair(folder: Path, za: np.ndarray, zb: np.ndarray, name: str = "") -> tuple[str, str]:
    """Write the views as `za{name}.npy` and `zb{name}.npy` in `folder`; return their paths."""
    paths = folder / f"za{name}.npy", folder / f"zb{name}.npy"
    for path, view in zip(paths, (za, zb), strict=True):
        np.save(path, view)
    return str(paths[0]), str(paths[1])


def sample(name: str) -> list[str]:
    """The two files of a bundled sample pair."""
    return [str(SAMPLE / f"{name}_za.npy"), str(SAMPLE / f"{name}_zb.npy")]

"""Shared fixtures: small embedding pairs written to disk, and a CLI runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def pair(tmp_path: Path) -> tuple[str, str]:
    """A healthy float32 pair, N = 600, D = 24 (two full batches of 256 and a short one)."""
    rng = np.random.default_rng(7)
    za = rng.standard_normal((600, 24)).astype(np.float32)
    zb = (za + 0.3 * rng.standard_normal(za.shape)).astype(np.float32)
    pa, pb = tmp_path / "za.npy", tmp_path / "zb.npy"
    np.save(pa, za)
    np.save(pb, zb)
    return str(pa), str(pb)

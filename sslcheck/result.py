"""The typed result of one evaluation; `to_dict()` is the JSON contract of spec/cli.md.

JSON is the source of truth: every table, CSV, plot and report renders `Result.to_dict()` or the
arrays kept beside it (per-batch values, spectra) that the JSON summarises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import sslcheck

SCHEMA_VERSION = 1


def finite_or_none(x: Any) -> float | None:
    """A Python float, or None where the value is NaN or infinite (JSON has no NaN)."""
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


@dataclass
class Summary:
    """Mean, population std (ddof 0), min and max of one term over the scored batches."""

    mean: float | None
    std: float | None
    min: float | None
    max: float | None

    @classmethod
    def of(cls, values: np.ndarray) -> Summary:
        if values.size == 0 or not np.all(np.isfinite(values)):
            return cls(None, None, None, None)
        return cls(float(values.mean()), float(values.std()), float(values.min()), float(values.max()))

    def to_dict(self) -> dict[str, float | None]:
        return {"mean": self.mean, "std": self.std, "min": self.min, "max": self.max}


@dataclass
class LossResult:
    """One loss under one flavor: effective parameters, whole-set terms and per-batch summaries."""

    name: str
    flavor: str
    source: str
    params: dict[str, Any]
    weights: dict[str, float]
    n_batches: int
    whole_set: dict[str, float | None]
    per_batch: dict[str, Summary]
    per_batch_values: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    whole_set_note: str | None = None
    notes: list[str] = field(default_factory=list)
    by_flavor: dict[str, LossResult] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = self._block()
        if self.by_flavor:
            d["by_flavor"] = {f: r._block() for f, r in self.by_flavor.items()}
        return d

    def _block(self) -> dict[str, Any]:
        """This flavor's own fields (`by_flavor` holds the top-level flavor too, so never nest)."""
        d: dict[str, Any] = {
            "flavor": self.flavor,
            "source": self.source,
            "params": dict(self.params),
            "weights": dict(self.weights),
            "n_batches": self.n_batches,
            "whole_set": dict(self.whole_set),
            "per_batch": {k: s.to_dict() for k, s in self.per_batch.items()},
        }
        if self.whole_set_note:
            d["whole_set_note"] = self.whole_set_note
        if self.notes:
            d["notes"] = list(self.notes)
        return d


@dataclass
class InputInfo:
    path: str
    key: str | None
    shape: tuple[int, int]
    dtype: str
    format: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "key": self.key,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "format": self.format,
        }


@dataclass
class Result:
    """Everything `score`, `check` and `report` show for one pair of views."""

    za: InputInfo
    zb: InputInfo
    settings: dict[str, Any]
    losses: dict[str, LossResult]
    diagnostics: dict[str, Any]
    verdict: dict[str, Any]
    warnings: list[str] = field(default_factory=list)
    arrays: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    checks: list[dict[str, Any]] | None = None

    @property
    def n(self) -> int:
        return self.za.shape[0]

    @property
    def d(self) -> int:
        return self.za.shape[1]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "sslcheck_version": sslcheck.__version__,
            "inputs": {"za": self.za.to_dict(), "zb": self.zb.to_dict(), "n": self.n, "d": self.d},
            "settings": dict(self.settings),
            "losses": {k: r.to_dict() for k, r in self.losses.items()},
            "diagnostics": self.diagnostics,
            "verdict": self.verdict,
            "warnings": list(self.warnings),
        }
        if self.checks is not None:
            d["checks"] = self.checks
        return d

"""What an embedding file holds, for `sslcheck inspect`: one streamed pass per array.

Shape, dtype, size, NaN/Inf counts and quick statistics: per-dimension std (min / median /
max, unbiased, merged with Chan's update like the engine), dead dimensions (the rule of
spec/diagnostics.md), the mean row L2 norm, and the value range.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sslcheck.io import ArraySource, Unusable
from sslcheck.result import finite_or_none
from sslcheck.stats import ElementMoments

CHUNK_ROWS = 8192


def describe_unusable(member: Unusable) -> dict[str, Any]:
    """The entry of a container member that is not an embedding: its key and why."""
    return {
        "path": member.path,
        "key": member.key,
        "format": None,
        "shape": None,
        "dtype": None,
        "nbytes": None,
        "nan": None,
        "inf": None,
        "notes": [f"not an embedding: {member.reason}"],
        "stats": None,
    }


def describe_array(src: ArraySource) -> dict[str, Any]:
    """Facts and quick statistics of one array, read in chunks (never whole)."""
    from sslcheck.diagnostics.dimensions import dead_dims

    columns = ElementMoments.empty((src.d,))
    norms = ElementMoments.empty(())
    nan = inf = 0
    low, high = np.inf, -np.inf
    for chunk in src.chunks(CHUNK_ROWS):
        x = torch.from_numpy(chunk).to(torch.float64)
        finite = torch.isfinite(x)
        if not bool(finite.all()):
            nan += int(torch.isnan(x).sum())
            inf += int(torch.isinf(x).sum())
            continue
        columns = columns.merge(ElementMoments.of(x))
        norms = norms.merge(ElementMoments.of(torch.linalg.vector_norm(x, dim=1)))
        low, high = min(low, float(x.min())), max(high, float(x.max()))
    info: dict[str, Any] = {
        "path": src.path,
        "key": src.key,
        "format": src.format,
        "shape": [src.n, src.d],
        "dtype": src.dtype,
        "nbytes": src.nbytes,
        "nan": nan,
        "inf": inf,
        "notes": src.notes(),
    }
    if nan or inf or src.n < 2:
        reason = "the array has NaN/Inf values" if nan or inf else "fewer than 2 rows"
        info["stats"] = None
        info["notes"] = [*info["notes"], f"no statistics: {reason}"]
        return info
    std = columns.var(1).sqrt().numpy()
    info["stats"] = {
        "std_min": finite_or_none(std.min()),
        "std_median": finite_or_none(np.median(std)),
        "std_max": finite_or_none(std.max()),
        "dead_dims": dead_dims(std),
        "mean_abs_column_mean": finite_or_none(columns.mean.abs().mean()),
        "row_norm_mean": finite_or_none(norms.mean),
        "min": low,
        "max": high,
    }
    return info

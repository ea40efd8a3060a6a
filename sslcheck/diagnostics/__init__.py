"""Collapse diagnostics (spec/diagnostics.md): pure functions of the merged statistics and the
seeded pair sample, plus the verdict.

Modules: `spectrum` (eigen-spectra, effective / stable / numerical rank, alpha-ReQ), `dimensions`
(per-dimension std, dead dimensions, l2_std, cross-correlation), `pairs` (positive and random
cosines, uniformity, retrieval, kNN), `verdict` (rules and thresholds).

`diagnose` returns (diagnostics, verdict, arrays):

- diagnostics: {"za": {...}, "zb": {...}, "pair": {...}}, the keys of spec §2 in its order, Python
  floats / ints / lists, None where undefined (never NaN or Inf).
- verdict: {"status", "reasons", "findings"} (`sslcheck.diagnostics.verdict`).
- arrays (numpy, for plots and reports; not in the JSON):

  ========================== ======== ====================================================
  key                        shape    content
  ========================== ======== ====================================================
  ``za.eigenvalues``         [D]      covariance eigenvalues, descending, clamped at 0
  ``za.std``                 [D]      per-dimension std (ddof 1)
  ``za.alpha_req_k``         [K]      the k (1-based) of the alpha-ReQ fit; empty if undefined
  ``za.alpha_req_fit``       [2]      [intercept, alpha]: ln lambda_k ~ intercept - alpha ln k;
                                      [nan, nan] if undefined
  ``zb.*``                            the same for zb
  ``pair.positive_cosines``  [S]      n(za_i).n(zb_i) over the sample
  ``pair.random_cosines``    [S]      n(za_i).n(zb_partner(i)) over the sample
  ``pair.cross_correlation`` [D, D]   M_ab / sqrt(diag M_aa diag M_bb^T), 0 where a std is 0
  ========================== ======== ====================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sslcheck.diagnostics.dimensions import cross_correlation, dimension_std, l2_metrics, std_metrics
from sslcheck.diagnostics.pairs import pair_metrics, uniformity, unit_rows
from sslcheck.diagnostics.spectrum import alpha_req_fit, spectrum_metrics, view_spectrum
from sslcheck.diagnostics.verdict import DEFAULT_THRESHOLDS, judge, resolve_thresholds
from sslcheck.result import finite_or_none
from sslcheck.stats import ElementMoments, PairMoments

__all__ = ["DEFAULT_THRESHOLDS", "PAIR_METRICS", "VIEW_METRICS", "diagnose", "judge", "resolve_thresholds"]

EIGENVALUES_TOP = 10
VIEW_METRICS = (
    "std_mean",
    "std_min",
    "std_median",
    "dead_dims",
    "dead_fraction",
    "effective_rank",
    "effective_rank_centered",
    "rank_ratio",
    "rank_ratio_centered",
    "stable_rank",
    "numerical_rank",
    "alpha_req",
    "l2_std",
    "l2_std_ratio",
    "uniformity",
    "eigenvalues_top",
    "eigenvalues",
)
"""The keys of `diagnostics.za` / `diagnostics.zb`, in spec §2's order."""
PAIR_METRICS = (
    "alignment",
    "positive_cosine_mean",
    "positive_cosine_std",
    "random_cosine_mean",
    "random_cosine_std",
    "cosine_gap",
    "retrieval_top1",
    "retrieval_top1_chance",
    "knn_top1",
)
"""The keys of `diagnostics.pair`, in spec §2's order; `knn_top1` only with labels."""


def _json_ready(value: Any) -> Any:
    """Python scalars / lists, NaN and Inf as None."""
    if isinstance(value, bool | int | np.integer):
        return int(value)
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_ready(x) for x in value]
    return finite_or_none(value)


def _view(
    n: int,
    mean: Tensor,
    m2: Tensor,
    unit: ElementMoments,
    sample: Tensor,
    sample_unit: Tensor,
    eps: float,
    limits: Mapping[str, float],
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    std = dimension_std(m2, n)
    spectrum = view_spectrum(n, mean, m2, eps, rows=sample)
    fit = None if spectrum.zero_covariance else alpha_req_fit(spectrum.covariance, n)
    metrics: dict[str, Any] = {
        **std_metrics(std, limits["dead_rel"], limits["dead_abs"]),
        **spectrum_metrics(spectrum, fit),
        **l2_metrics(unit),
        "uniformity": uniformity(sample_unit),
        "eigenvalues_top": spectrum.covariance[:EIGENVALUES_TOP],
        "eigenvalues": spectrum.covariance,
    }
    arrays = {
        "eigenvalues": spectrum.covariance,
        "std": std,
        "alpha_req_k": np.empty(0) if fit is None else fit.k,
        "alpha_req_fit": np.full(2, np.nan) if fit is None else np.array([fit.intercept, fit.alpha]),
    }
    return {k: _json_ready(metrics[k]) for k in VIEW_METRICS}, arrays


def diagnose(
    *,
    moments: PairMoments,
    l2a: ElementMoments,
    l2b: ElementMoments,
    cosine: ElementMoments,
    sample_a: Tensor,
    sample_b: Tensor,
    labels: np.ndarray | None,
    thresholds: Mapping[str, float],
) -> tuple[dict[str, Any], dict[str, Any], dict[str, np.ndarray]]:
    """Every diagnostic of spec §2, the verdict of §4 and the plot arrays, for one pair of views.

    `moments`: float64 co-moments of za, zb over all N rows; `l2a`, `l2b`: per-dimension moments
    of n(za), n(zb) [D]; `cosine`: moments of the positive cosines; `sample_a`, `sample_b`: the
    sample rows [S, D] in the compute dtype (any device), in index order; `labels`: int [S] or
    None; `thresholds`: overrides of `DEFAULT_THRESHOLDS` (unknown names: UsageError).
    Cost: two D x D eigen-solves per view (N x N where the sample is all N < D rows) and
    O(S^2 D) for the sample, in blocks.
    """
    limits = resolve_thresholds(thresholds)
    eps = float(torch.finfo(sample_a.dtype).eps)
    ua, ub = unit_rows(sample_a), unit_rows(sample_b)
    diagnostics: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    for name, mean, m2, unit, sample, sample_unit in (
        ("za", moments.mean_a, moments.m_aa, l2a, sample_a, ua),
        ("zb", moments.mean_b, moments.m_bb, l2b, sample_b, ub),
    ):
        metrics, view_arrays = _view(moments.n, mean, m2, unit, sample, sample_unit, eps, limits)
        diagnostics[name] = metrics
        arrays.update({f"{name}.{k}": v for k, v in view_arrays.items()})
    pair, pair_arrays = pair_metrics(ua, ub, cosine, labels)
    diagnostics["pair"] = {k: _json_ready(pair[k]) for k in PAIR_METRICS if k in pair}
    arrays.update(pair_arrays)
    arrays["pair.cross_correlation"] = cross_correlation(moments.m_ab, moments.m_aa, moments.m_bb)
    return diagnostics, judge(diagnostics, limits), arrays

"""The verdict: status, reasons and findings from the diagnostics (spec/diagnostics.md §4).

Rules, in order; the first that fires sets the status:

1. ``complete_collapse``: a view has l2_std_ratio < complete_l2_std_ratio (0.1) and
   retrieval_top1 < max(complete_retrieval_min (0.05), complete_retrieval_chance_factor (5) *
   retrieval_top1_chance): rows near one point, and no sample identity across views.
2. ``dimensional_collapse``: a view has rank_ratio_centered < dimensional_rank_ratio_centered (0.1).
3. ``unaligned``: cosine_gap < unaligned_cosine_gap (0.1) and retrieval_top1 under rule 1's bound.
4. ``healthy``.

Warnings (WARN gates in `check`, status unchanged): rank_ratio_centered < warn_rank_ratio_centered
(0.3); dead_dims > warn_dead_dims (0); retrieval under rule 1's bound with cosine_gap >=
unaligned_cosine_gap (near-duplicate samples); an undefined (null) metric. Note (never a gate):
l2_std_ratio < complete_l2_std_ratio with retrieval at or above rule 1's bound (a common offset).
Null values never fire a rule. `dead_rel` and `dead_abs` set the dead-dimension rule itself.

A finding is {"kind": "fail" | "warn" | "note", "rule", "metric" (dotted JSON path), "value",
"threshold", "message"}; `reasons` lists the messages in the same order: the firing rule's, then
warnings, then notes. An undefined-metric finding covers one view and cause: `metric` is the first
null path, an extra `metrics` lists them all, value and threshold are None.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any, Literal

from sslcheck.errors import UsageError

Status = Literal["healthy", "dimensional_collapse", "complete_collapse", "unaligned"]
Kind = Literal["fail", "warn", "note"]

DEFAULT_THRESHOLDS: dict[str, float] = {
    "complete_l2_std_ratio": 0.1,
    "complete_retrieval_min": 0.05,
    "complete_retrieval_chance_factor": 5.0,
    "dimensional_rank_ratio_centered": 0.1,
    "unaligned_cosine_gap": 0.1,
    "warn_rank_ratio_centered": 0.3,
    "warn_dead_dims": 0.0,
    "dead_rel": 0.01,
    "dead_abs": 1e-8,
}
RANGES: dict[str, tuple[float, float]] = {  # what each threshold can mean: outside, a rule never or always fires
    "complete_l2_std_ratio": (0.0, math.inf),
    "complete_retrieval_min": (0.0, 1.0),
    "complete_retrieval_chance_factor": (0.0, math.inf),
    "dimensional_rank_ratio_centered": (0.0, 1.0),
    "unaligned_cosine_gap": (-2.0, 2.0),
    "warn_rank_ratio_centered": (0.0, 1.0),
    "warn_dead_dims": (0.0, math.inf),
    "dead_rel": (0.0, 1.0),
    "dead_abs": (0.0, math.inf),
}
VIEWS = ("za", "zb")
_CENTERED = ("effective_rank_centered", "rank_ratio_centered", "stable_rank", "alpha_req")
_UNCENTERED = ("effective_rank", "rank_ratio")


def resolve_thresholds(overrides: Mapping[str, float]) -> dict[str, float]:
    """DEFAULT_THRESHOLDS updated with `overrides`; an unknown name, a value that is not a
    finite number or one outside its RANGES is a UsageError (naming the closest valid name)."""
    out = dict(DEFAULT_THRESHOLDS)
    for name, value in overrides.items():
        if name not in DEFAULT_THRESHOLDS:
            close = difflib.get_close_matches(name, list(DEFAULT_THRESHOLDS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise UsageError(f"unknown threshold {name!r}{hint} (valid: {', '.join(sorted(DEFAULT_THRESHOLDS))})")
        try:
            if isinstance(value, bool):
                raise TypeError
            number = float(value)
        except (TypeError, ValueError):
            raise UsageError(f"threshold {name!r}: {value!r} is not a number") from None
        if not math.isfinite(number):
            raise UsageError(f"threshold {name!r}: {value!r} is not a finite number")
        lo, hi = RANGES[name]
        if not lo <= number <= hi:
            raise UsageError(f"threshold {name!r}: {value!r} is outside [{lo:g}, {hi:g}]")
        out[name] = number
    return out


def retrieval_bound(chance: float, limits: Mapping[str, float]) -> float:
    """Rule 1's retrieval bound: max(0.05, 5 * retrieval_top1_chance)."""
    return max(limits["complete_retrieval_min"], limits["complete_retrieval_chance_factor"] * chance)


def _g(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _finding(kind: Kind, rule: str, metric: str, value: Any, threshold: float | None, message: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "rule": rule,
        "metric": f"diagnostics.{metric}",
        "value": value,
        "threshold": threshold,
        "message": message,
    }


def judge(diagnostics: Mapping[str, Mapping[str, Any]], thresholds: Mapping[str, float]) -> dict[str, Any]:
    """{"status", "reasons", "findings"} for a diagnostics dict ({"za", "zb", "pair"}).

    `thresholds` is a complete set (`resolve_thresholds`). A pure function of the JSON: the same
    diagnostics and thresholds always give the same verdict.
    """
    t = thresholds
    pair = diagnostics["pair"]
    retrieval = pair["retrieval_top1"]
    bound = retrieval_bound(pair["retrieval_top1_chance"], t)
    gap = pair["cosine_gap"]
    no_identity = retrieval is not None and retrieval < bound
    retrieval_text = f"pair.retrieval_top1 = {_g(retrieval)} < {_g(bound)}"

    complete = []
    for v in VIEWS:
        ratio = diagnostics[v]["l2_std_ratio"]
        if ratio is not None and ratio < t["complete_l2_std_ratio"] and no_identity:
            complete.append(
                _finding(
                    "fail",
                    "complete_collapse",
                    f"{v}.l2_std_ratio",
                    ratio,
                    t["complete_l2_std_ratio"],
                    f"complete collapse: {v}.l2_std_ratio = {_g(ratio)} < {_g(t['complete_l2_std_ratio'])} "
                    f"and {retrieval_text} (max({_g(t['complete_retrieval_min'])}, "
                    f"{_g(t['complete_retrieval_chance_factor'])} x chance)): the rows sit near one point "
                    "and no sample finds its other view",
                )
            )
    dimensional = []
    for v in VIEWS:
        rr = diagnostics[v]["rank_ratio_centered"]
        if rr is not None and rr < t["dimensional_rank_ratio_centered"]:
            dimensional.append(
                _finding(
                    "fail",
                    "dimensional_collapse",
                    f"{v}.rank_ratio_centered",
                    rr,
                    t["dimensional_rank_ratio_centered"],
                    f"dimensional collapse: {v}.rank_ratio_centered = {_g(rr)} < "
                    f"{_g(t['dimensional_rank_ratio_centered'])}: the spread fills "
                    f"{_g(diagnostics[v]['effective_rank_centered'])} effective dimensions",
                )
            )
    unaligned = []
    if gap is not None and gap < t["unaligned_cosine_gap"] and no_identity:
        unaligned.append(
            _finding(
                "fail",
                "unaligned",
                "pair.cosine_gap",
                gap,
                t["unaligned_cosine_gap"],
                f"unaligned views: pair.cosine_gap = {_g(gap)} < {_g(t['unaligned_cosine_gap'])} and "
                f"{retrieval_text}: the two views of a sample are no closer than random pairs "
                "(no invariance learned, or za and zb rows not paired)",
            )
        )

    rules: tuple[tuple[Status, list[dict[str, Any]]], ...] = (
        ("complete_collapse", complete),
        ("dimensional_collapse", dimensional),
        ("unaligned", unaligned),
    )
    status, fails = next(((rule, found) for rule, found in rules if found), ("healthy", []))
    failed_metrics = {f["metric"] for f in fails}

    warns: list[dict[str, Any]] = []
    for v in VIEWS:
        rr = diagnostics[v]["rank_ratio_centered"]
        if (
            rr is not None
            and rr < t["warn_rank_ratio_centered"]
            and f"diagnostics.{v}.rank_ratio_centered" not in failed_metrics
        ):
            warns.append(
                _finding(
                    "warn",
                    "low_rank",
                    f"{v}.rank_ratio_centered",
                    rr,
                    t["warn_rank_ratio_centered"],
                    f"low rank: {v}.rank_ratio_centered = {_g(rr)} < {_g(t['warn_rank_ratio_centered'])}",
                )
            )
    for v in VIEWS:
        dead = diagnostics[v]["dead_dims"]
        if dead is not None and dead > t["warn_dead_dims"]:
            warns.append(
                _finding(
                    "warn",
                    "dead_dims",
                    f"{v}.dead_dims",
                    dead,
                    t["warn_dead_dims"],
                    f"dead dimensions: {v}.dead_dims = {dead} > {_g(t['warn_dead_dims'])} "
                    f"(std <= max({_g(t['dead_rel'])} x median std, {_g(t['dead_abs'])}))",
                )
            )
    if no_identity and gap is not None and gap >= t["unaligned_cosine_gap"]:
        warns.append(
            _finding(
                "warn",
                "low_retrieval",
                "pair.retrieval_top1",
                retrieval,
                bound,
                f"low retrieval: {retrieval_text} while pair.cosine_gap = {_g(gap)} >= "
                f"{_g(t['unaligned_cosine_gap'])} (many near-duplicate samples?)",
            )
        )
    warns += _undefined(diagnostics)

    notes: list[dict[str, Any]] = []
    for v in VIEWS:
        ratio = diagnostics[v]["l2_std_ratio"]
        if ratio is not None and ratio < t["complete_l2_std_ratio"] and not no_identity:
            notes.append(
                _finding(
                    "note",
                    "common_offset",
                    f"{v}.l2_std_ratio",
                    ratio,
                    t["complete_l2_std_ratio"],
                    f"note: {v}.l2_std_ratio = {_g(ratio)} < {_g(t['complete_l2_std_ratio'])} but "
                    f"pair.retrieval_top1 = {_g(retrieval)} >= {_g(bound)}: a common offset, not a "
                    "collapse (centred metrics are offset-free)",
                )
            )

    findings = fails + warns + notes
    return {"status": status, "reasons": [f["message"] for f in findings], "findings": findings}


def _undefined(diagnostics: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One warn finding per view (or pair) and cause of null metrics; `metric` is the first null
    path, `metrics` lists them all."""
    findings: list[dict[str, Any]] = []
    for part in (*VIEWS, "pair"):
        values = diagnostics[part]
        groups: list[tuple[tuple[str, ...], str]] = []
        if part in VIEWS:
            if values["effective_rank"] is None:
                groups.append((_UNCENTERED, "every row is zero"))
            if values["stable_rank"] is None:
                groups.append((_CENTERED, "the covariance is zero (every dimension is constant)"))
            elif values["alpha_req"] is None:
                groups.append(
                    (
                        ("alpha_req",),
                        "fewer than 3 eigenvalues above the numerical-rank "
                        f"tolerance (numerical_rank = {values['numerical_rank']})",
                    )
                )
        grouped = {k for keys, _ in groups for k in keys}
        groups.append((tuple(k for k in values if k not in grouped), "not finite"))
        for keys, cause in groups:
            missing = [k for k in keys if values.get(k, 0) is None]
            if missing:
                finding = _finding(
                    "warn",
                    "undefined",
                    f"{part}.{missing[0]}",
                    None,
                    None,
                    f"{part}: {', '.join(missing)} undefined (n/a): {cause}",
                )
                finding["metrics"] = [f"diagnostics.{part}.{k}" for k in missing]
                findings.append(finding)
    return findings

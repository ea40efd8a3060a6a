"""The verdict rules of spec/diagnostics.md §4 on hand-made diagnostics (no engine needed)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from sslcheck.diagnostics.verdict import DEFAULT_THRESHOLDS, judge, resolve_thresholds
from sslcheck.errors import UsageError

HEALTHY_VIEW: dict[str, Any] = {
    "std_mean": 1.0,
    "std_min": 0.9,
    "std_median": 1.0,
    "dead_dims": 0,
    "dead_fraction": 0.0,
    "effective_rank": 60.0,
    "effective_rank_centered": 60.0,
    "rank_ratio": 0.94,
    "rank_ratio_centered": 0.95,
    "stable_rank": 50.0,
    "numerical_rank": 64,
    "alpha_req": 0.2,
    "l2_std": 0.124,
    "l2_std_ratio": 0.99,
    "uniformity": -3.8,
    "eigenvalues_top": [1.0],
    "eigenvalues": [1.0],
}
HEALTHY_PAIR: dict[str, Any] = {
    "alignment": 0.2,
    "positive_cosine_mean": 0.9,
    "positive_cosine_std": 0.05,
    "random_cosine_mean": 0.0,
    "random_cosine_std": 0.13,
    "cosine_gap": 0.9,
    "retrieval_top1": 0.99,
    "retrieval_top1_chance": 1 / 4096,
}


def diagnostics(za: dict[str, Any] | None = None, zb: dict[str, Any] | None = None, **pair: Any) -> dict[str, Any]:
    return {
        "za": {**copy.deepcopy(HEALTHY_VIEW), **(za or {})},
        "zb": {**copy.deepcopy(HEALTHY_VIEW), **(zb or {})},
        "pair": {**HEALTHY_PAIR, **pair},
    }


def verdict_of(d: dict[str, Any], **overrides: float) -> dict[str, Any]:
    out = judge(d, resolve_thresholds(overrides))
    json.dumps(out, allow_nan=False)
    assert out["reasons"] == [f["message"] for f in out["findings"]]
    return out


def rules(v: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(f["kind"], f["rule"], f["metric"]) for f in v["findings"]]


def test_healthy() -> None:
    assert verdict_of(diagnostics()) == {"status": "healthy", "reasons": [], "findings": []}


def test_complete_collapse_needs_both_conditions() -> None:
    v = verdict_of(diagnostics(za={"l2_std_ratio": 1e-6}, retrieval_top1=2.4e-4, cosine_gap=0.0))
    assert v["status"] == "complete_collapse"
    assert rules(v) == [("fail", "complete_collapse", "diagnostics.za.l2_std_ratio")]
    finding = v["findings"][0]
    assert finding["value"] == 1e-6 and finding["threshold"] == 0.1
    assert "za.l2_std_ratio = 1e-06 < 0.1" in finding["message"]
    assert "pair.retrieval_top1 = 0.00024 < 0.05" in finding["message"]
    # offset: small l2_std_ratio, retrieval fine -> a note, not a gate
    v = verdict_of(diagnostics(za={"l2_std_ratio": 0.0099}, zb={"l2_std_ratio": 0.0099}))
    assert v["status"] == "healthy"
    assert [f["kind"] for f in v["findings"]] == ["note", "note"]
    assert "a common offset" in v["reasons"][0]


def test_rule_order_complete_before_dimensional() -> None:
    d = diagnostics(za={"l2_std_ratio": 0.01, "rank_ratio_centered": 0.05}, retrieval_top1=0.0, cosine_gap=0.0)
    v = verdict_of(d)
    assert v["status"] == "complete_collapse"
    # the rank ratio still warns (it is not the fired rule's metric)
    assert rules(v) == [
        ("fail", "complete_collapse", "diagnostics.za.l2_std_ratio"),
        ("warn", "low_rank", "diagnostics.za.rank_ratio_centered"),
    ]


def test_dimensional_collapse_per_view() -> None:
    v = verdict_of(diagnostics(zb={"rank_ratio_centered": 0.0625, "effective_rank_centered": 4.0}))
    assert v["status"] == "dimensional_collapse"
    assert rules(v) == [("fail", "dimensional_collapse", "diagnostics.zb.rank_ratio_centered")]
    assert "zb.rank_ratio_centered = 0.0625 < 0.1" in v["reasons"][0]


def test_low_rank_warning() -> None:
    v = verdict_of(diagnostics(za={"rank_ratio_centered": 0.25}))
    assert v["status"] == "healthy"
    assert rules(v) == [("warn", "low_rank", "diagnostics.za.rank_ratio_centered")]
    assert "0.25 < 0.3" in v["reasons"][0]


def test_unaligned() -> None:
    v = verdict_of(diagnostics(cosine_gap=-0.004, retrieval_top1=2.4e-4))
    assert v["status"] == "unaligned"
    assert rules(v) == [("fail", "unaligned", "diagnostics.pair.cosine_gap")]
    assert "pair.cosine_gap = -0.004 < 0.1" in v["reasons"][0]
    # a small gap alone is not enough: retrieval still finds the pairs
    assert verdict_of(diagnostics(cosine_gap=0.04, retrieval_top1=0.5))["status"] == "healthy"


def test_low_retrieval_with_a_gap_warns() -> None:
    v = verdict_of(diagnostics(retrieval_top1=0.01, cosine_gap=0.5))
    assert v["status"] == "healthy"
    assert rules(v) == [("warn", "low_retrieval", "diagnostics.pair.retrieval_top1")]
    assert v["findings"][0]["threshold"] == 0.05


def test_retrieval_bound_follows_chance() -> None:
    # S = 50: bound max(0.05, 5 / 50) = 0.1
    d = diagnostics(za={"l2_std_ratio": 0.01}, retrieval_top1=0.08, retrieval_top1_chance=0.02)
    v = verdict_of(d)
    assert v["status"] == "complete_collapse"
    assert "< 0.1" in v["reasons"][0].split("and")[1]
    d["pair"]["retrieval_top1"] = 0.12
    assert verdict_of(d)["status"] == "healthy"


def test_dead_dims_warning() -> None:
    v = verdict_of(diagnostics(za={"dead_dims": 8, "dead_fraction": 0.125}))
    assert rules(v) == [("warn", "dead_dims", "diagnostics.za.dead_dims")]
    assert "za.dead_dims = 8 > 0" in v["reasons"][0]
    assert verdict_of(diagnostics(za={"dead_dims": 8}), warn_dead_dims=8)["findings"] == []


def test_null_values_skip_rules_and_warn() -> None:
    za = {
        "effective_rank_centered": None,
        "rank_ratio_centered": None,
        "stable_rank": None,
        "alpha_req": None,
        "l2_std_ratio": 0.0,
    }
    v = verdict_of(diagnostics(za=za, retrieval_top1=0.0, cosine_gap=0.0))
    assert v["status"] == "complete_collapse"
    undefined = [f for f in v["findings"] if f["rule"] == "undefined"]
    assert len(undefined) == 1
    assert undefined[0]["kind"] == "warn" and undefined[0]["value"] is None
    assert undefined[0]["metrics"] == [
        f"diagnostics.za.{k}" for k in ("effective_rank_centered", "rank_ratio_centered", "stable_rank", "alpha_req")
    ]
    assert "covariance is zero" in undefined[0]["message"]
    # alpha_req alone
    v = verdict_of(diagnostics(zb={"alpha_req": None, "numerical_rank": 2}))
    assert v["status"] == "healthy"
    assert rules(v) == [("warn", "undefined", "diagnostics.zb.alpha_req")]
    assert "numerical_rank = 2" in v["reasons"][0]


def test_reason_order_fail_warn_note() -> None:
    d = diagnostics(za={"rank_ratio_centered": 0.05, "dead_dims": 1}, zb={"l2_std_ratio": 0.05})
    assert [f["kind"] for f in verdict_of(d)["findings"]] == ["fail", "warn", "note"]


def test_threshold_overrides() -> None:
    d = diagnostics(za={"rank_ratio_centered": 0.08})
    assert verdict_of(d)["status"] == "dimensional_collapse"
    assert verdict_of(d, dimensional_rank_ratio_centered=0.05)["status"] == "healthy"
    v = verdict_of(d, dimensional_rank_ratio_centered=0.05, warn_rank_ratio_centered=0.05)
    assert v["findings"] == []
    v = verdict_of(diagnostics(cosine_gap=0.15, retrieval_top1=0.0), unaligned_cosine_gap=0.2)
    assert v["status"] == "unaligned" and v["findings"][0]["threshold"] == 0.2


def test_resolve_thresholds() -> None:
    assert resolve_thresholds({}) == DEFAULT_THRESHOLDS
    assert resolve_thresholds({"dead_rel": "0.02"})["dead_rel"] == 0.02  # type: ignore[dict-item]
    with pytest.raises(UsageError, match="did you mean 'warn_rank_ratio_centered'"):
        resolve_thresholds({"warn_rank_ratio": 0.2})
    with pytest.raises(UsageError, match="unknown threshold 'zzz'"):
        resolve_thresholds({"zzz": 1.0})
    with pytest.raises(UsageError, match="not a number"):
        resolve_thresholds({"dead_rel": "high"})  # type: ignore[dict-item]
    with pytest.raises(UsageError, match="not a finite number"):
        resolve_thresholds({"dead_abs": float("nan")})


@pytest.mark.parametrize(
    ("name", "value"),
    [("complete_l2_std_ratio", -1.0), ("warn_dead_dims", -5.0), ("dead_rel", 1.5), ("unaligned_cosine_gap", 3.0)],
)
def test_a_threshold_outside_what_it_can_mean_is_refused(name: str, value: float) -> None:
    """complete_l2_std_ratio = -1 had quietly turned the complete-collapse rule off, and
    warn_dead_dims = -5 made its warning fire on every input."""
    with pytest.raises(UsageError, match=rf"threshold '{name}': {value!r} is outside \["):
        resolve_thresholds({name: value})


def test_every_default_threshold_lies_in_its_range() -> None:
    from sslcheck.diagnostics.verdict import RANGES

    assert set(RANGES) == set(DEFAULT_THRESHOLDS)
    assert all(RANGES[k][0] <= v <= RANGES[k][1] for k, v in DEFAULT_THRESHOLDS.items())

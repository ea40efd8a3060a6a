"""The result as titled tables of strings: one layout that the terminal table and Markdown share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PER_VIEW_SKIP = ("eigenvalues", "eigenvalues_top")
STATUS_TEXT = {
    "healthy": "healthy",
    "dimensional_collapse": "dimensional collapse",
    "complete_collapse": "complete collapse",
    "unaligned": "unaligned views",
}


@dataclass
class Section:
    title: str
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    notes: list[str] = field(default_factory=list)


def fmt(x: Any) -> str:
    """A number for people: 6 significant digits, integers as such, None as n/a."""
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return str(x).lower()
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


def batch_text(n: int, batch_size: int, drop_last: bool) -> str:
    """'B = 256', with the rows a dropped short last batch leaves out (N mod B) where there are any."""
    dropped = n % batch_size if drop_last else 0
    return f"B = {batch_size}" + (f" (last {dropped} row{'s' if dropped > 1 else ''} dropped)" if dropped else "")


def header_line(data: dict[str, Any]) -> str:
    inp, st = data["inputs"], data["settings"]
    return (
        f"{inp['za']['path']} vs {inp['zb']['path']}: N = {inp['n']}, D = {inp['d']}, "
        f"{batch_text(inp['n'], st['batch_size'], st['drop_last'])}, "
        f"{st['dtype']} on {st['device']}, flavor {st['flavor']}"
    )


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={fmt(v)}" for k, v in params.items())


def loss_section(data: dict[str, Any]) -> Section:
    """Every term of every loss: unweighted per-batch mean ± std, whole set, and weighted."""
    rows: list[list[str]] = []
    notes: list[str] = []
    for name, loss in data["losses"].items():
        weights = loss.get("weights", {})
        for term, whole in loss["whole_set"].items():
            pb = loss["per_batch"].get(term, {})
            mean, std = pb.get("mean"), pb.get("std")
            batch = "n/a" if mean is None else f"{fmt(mean)} ± {fmt(std)}"
            w = weights.get(term)
            weighted = fmt(None if whole is None or w is None else whole * w) if term != "total" else fmt(whole)
            rows.append(
                [name, term, "" if w is None else fmt(w), batch, fmt(whole), weighted if w or term == "total" else ""]
            )
        notes.append(
            f"{name} [{loss['flavor']}: {loss['source']}] {_params_text(loss['params'])}; {loss['n_batches']} batches"
        )
        if loss.get("whole_set_note"):
            notes.append(f"{name} whole set: {loss['whole_set_note']}")
        notes.extend(f"{name}: {n}" for n in loss.get("notes", []))
    return Section(
        "Losses", ["loss", "term", "weight", "per-batch mean ± std", "whole set", "weighted"], rows, notes=notes
    )


def flavor_sections(data: dict[str, Any]) -> list[Section]:
    """With --flavor all: one table per loss, a row per flavor, whole-set terms as columns."""
    out = []
    for name, loss in data["losses"].items():
        by = loss.get("by_flavor")
        if not by:
            continue
        terms = list(loss["whole_set"])
        rows = [
            [fl, *(fmt(r["whole_set"][t]) for t in terms), fmt(r["per_batch"]["total"]["mean"])] for fl, r in by.items()
        ]
        out.append(Section(f"{name} by flavor (whole set)", ["flavor", *terms, "per-batch total"], rows))
    return out


def diagnostics_sections(data: dict[str, Any]) -> list[Section]:
    diag = data.get("diagnostics") or {}
    za, zb, pair = diag.get("za", {}), diag.get("zb", {}), diag.get("pair", {})
    out = []
    if za:
        rows = [[k, fmt(za[k]), fmt(zb.get(k))] for k in za if k not in PER_VIEW_SKIP]
        out.append(Section("Diagnostics per view (whole set)", ["metric", "za", "zb"], rows))
    if pair:
        out.append(Section("Pair diagnostics", ["metric", "value"], [[k, fmt(v)] for k, v in pair.items()]))
    return out


def verdict_text(data: dict[str, Any]) -> str:
    status = data["verdict"]["status"]
    return f"Verdict: {STATUS_TEXT.get(status, status)} ({status})"


def sections(data: dict[str, Any]) -> list[Section]:
    return [loss_section(data), *flavor_sections(data), *diagnostics_sections(data)]

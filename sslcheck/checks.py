"""Gates: thresholds on any number of the result JSON, and the default collapse gates.

A gate reads one value by its dotted JSON path and yields a status:
PASS; WARN (a `--warn` gate, or a verdict warning); FAIL; ERROR (the value is null: undefined for
this input; fails like FAIL); SKIP (absent by design: `knn_top1` without labels, a loss not
selected, a path the baseline lacks). `exit_code`: 1 on any FAIL or ERROR (or WARN under
`strict`), else 0.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sslcheck.config import closest
from sslcheck.errors import UsageError
from sslcheck.render.flat import lookup

Status = Literal["PASS", "WARN", "FAIL", "ERROR", "SKIP"]
OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}
VERDICT_RULES = ("complete_collapse", "dimensional_collapse", "unaligned")
_GATE = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(<=|>=|==|!=|<|>)\s*([^\s<>=!]\S*)\s*$")
_RELATIVE = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*=\s*([0-9]*\.?[0-9]+)\s*%?\s*$")


@dataclass(frozen=True)
class Check:
    """One evaluated gate: the `checks` entries of the JSON contract."""

    name: str
    status: Status
    value: Any
    threshold: Any
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "value": self.value,
            "threshold": self.threshold,
            "message": self.message,
        }


@dataclass(frozen=True)
class Gate:
    """`path op threshold`; `level` is what a false comparison yields (FAIL or WARN)."""

    path: str
    op: str
    threshold: float | str
    level: Literal["FAIL", "WARN"] = "FAIL"
    text: str = ""

    @property
    def name(self) -> str:
        """The gate as the user wrote it (normalised spacing)."""
        return f"{self.path} {self.op} {self.text or self.threshold}"


@dataclass(frozen=True)
class RelativeGate:
    """Fails when the value moved against the baseline by more than `percent` (drop or rise)."""

    path: str
    direction: Literal["drop", "rise"]
    percent: float

    @property
    def name(self) -> str:
        return f"{self.path} max {self.direction} {self.percent:g}%"


# ---- the schema: every dotted path a gate may name ----------------------------------------------


def schema_paths() -> list[str]:
    """All gateable paths (numbers and the verdict status) of schema_version 1."""
    from sslcheck.diagnostics import PAIR_METRICS, VIEW_METRICS
    from sslcheck.losses.flavors import FLAVORS, LOSSES

    paths = ["schema_version", "inputs.n", "inputs.d", "settings.batch_size", "verdict.status"]
    for name, spec in LOSSES.items():
        blocks = [f"losses.{name}"] + [f"losses.{name}.by_flavor.{fl}" for fl in FLAVORS]
        for block in blocks:
            paths.append(f"{block}.n_batches")
            for term in spec.terms:
                paths.append(f"{block}.whole_set.{term}")
                paths += [f"{block}.per_batch.{term}.{s}" for s in ("mean", "std", "min", "max")]
    for view in ("za", "zb"):
        paths += [f"diagnostics.{view}.{m}" for m in VIEW_METRICS if m not in ("eigenvalues", "eigenvalues_top")]
    paths += [f"diagnostics.pair.{m}" for m in PAIR_METRICS]
    return paths


def check_path(path: str, option: str) -> None:
    """A usage error naming the closest valid path when `path` is not in the schema."""
    valid = schema_paths()
    if path in valid or re.fullmatch(r"diagnostics\.z[ab]\.eigenvalues(_top)?\.\d+", path):
        return
    raise UsageError(f"{option}: {path!r} is not a path of the sslcheck JSON{closest(path, valid)}")


def parse_gate(text: str, level: Literal["FAIL", "WARN"] = "FAIL") -> Gate:
    """Parse 'PATH OP VALUE' (OP one of < <= > >= == !=)."""
    option = "--gate" if level == "FAIL" else "--warn"
    match = _GATE.match(text)
    if not match:
        raise UsageError(f"{option} {text!r}: expected 'PATH OP VALUE', e.g. 'diagnostics.za.rank_ratio >= 0.2'")
    path, op, raw = match.groups()
    check_path(path, option)
    threshold: float | str
    if path == "verdict.status":  # a word: a misspelt one would make the gate pass on every input
        threshold = raw.strip("\"'").replace("-", "_")  # as CLI names, - or _
        statuses = ["healthy", *VERDICT_RULES]
        if op not in ("==", "!=") or threshold not in statuses:
            raise UsageError(
                f"{option} {text!r}: verdict.status takes == or != and one of {', '.join(statuses)}"
                f"{closest(threshold, statuses)}"
            )
        return Gate(path, op, threshold, level, raw)
    try:
        threshold = float(raw)
    except ValueError:
        raise UsageError(f"{option} {text!r}: the threshold {raw!r} is not a number") from None
    if isinstance(threshold, float) and not math.isfinite(threshold):
        raise UsageError(f"{option} {text!r}: the threshold {raw!r} is not a finite number")
    return Gate(path, op, threshold, level, raw)


def parse_relative(text: str, direction: Literal["drop", "rise"]) -> RelativeGate:
    """Parse 'PATH=P%' for --max-drop / --max-rise."""
    option = f"--max-{direction}"
    match = _RELATIVE.match(text)
    if not match:
        raise UsageError(f"{option} {text!r}: expected 'PATH=P%', e.g. 'diagnostics.za.effective_rank=20%'")
    path, percent = match.groups()
    check_path(path, option)
    return RelativeGate(path, direction, float(percent))


# ---- evaluation -----------------------------------------------------------------------------------


def _absent(data: Mapping[str, Any], path: str) -> tuple[bool, Any]:
    try:
        return False, lookup(data, path)
    except (KeyError, IndexError, ValueError, TypeError):
        return True, None


def _why_absent(path: str, data: Mapping[str, Any]) -> str:
    parent, _, index = path.rpartition(".")
    if index.isdigit():  # an eigenvalue index past this D (or past the top few)
        absent, values = _absent(data, parent)
        count = 0 if absent or not isinstance(values, list) else len(values)
        return f"absent: {parent} has {count} entries here (indices 0-{count - 1})"
    if path.endswith("knn_top1"):
        return "absent: knn_top1 needs --labels"
    if path.startswith("losses."):
        return f"absent: loss {path.split('.')[1]} not selected (add --loss {path.split('.')[1]})"
    return "absent from this result"


def evaluate_gate(data: Mapping[str, Any], gate: Gate) -> Check:
    absent, value = _absent(data, gate.path)
    if absent:
        return Check(gate.name, "SKIP", None, gate.threshold, _why_absent(gate.path, data))
    if value is None:
        return Check(gate.name, "ERROR", None, gate.threshold, f"{gate.path} is undefined (null) for this input")
    if isinstance(gate.threshold, float) and not isinstance(value, (int, float)):
        raise UsageError(f"gate {gate.name!r}: {gate.path} is not a number ({value!r})")
    ok = OPS[gate.op](value, gate.threshold)
    status: Status = "PASS" if ok else gate.level
    verb = "holds" if ok else "does not hold"
    return Check(
        gate.name, status, value, gate.threshold, f"{gate.path} = {_num(value)}: '{gate.op} {gate.threshold}' {verb}"
    )


def evaluate_relative(data: Mapping[str, Any], baseline: Mapping[str, Any] | None, gate: RelativeGate) -> Check:
    threshold = gate.percent
    absent, value = _absent(data, gate.path)
    if absent:
        return Check(gate.name, "SKIP", None, threshold, _why_absent(gate.path, data))
    if baseline is None:
        raise UsageError(f"--max-{gate.direction} needs --baseline OLD.json")
    base_absent, base = _absent(baseline, gate.path)
    if base_absent or base is None:
        return Check(gate.name, "SKIP", value, threshold, f"the baseline has no value at {gate.path}")
    if value is None:
        return Check(gate.name, "ERROR", None, threshold, f"{gate.path} is undefined (null) for this input")
    if not _is_finite_number(value):
        raise UsageError(f"{gate.name!r}: {gate.path} is not a number ({value!r})")
    if not _is_finite_number(base):
        raise UsageError(f"--baseline: the value at {gate.path} is not a finite number ({base!r})")
    change = relative_change(base, value)
    moved = -change if gate.direction == "drop" else change
    failed = moved * 100 > gate.percent
    message = (
        f"{gate.path}: {_num(value)} vs baseline {_num(base)} ({change * 100:+.2f}%; "
        f"max {gate.direction} {gate.percent:g}%)"
    )
    return Check(gate.name, "FAIL" if failed else "PASS", value, threshold, message)


def relative_change(base: float, value: float) -> float:
    """(value - base) / |base|; +-inf for a move away from a zero baseline."""
    if base == 0:
        return 0.0 if value == 0 else math.copysign(math.inf, value)
    return (value - base) / abs(base)


def default_checks(data: Mapping[str, Any]) -> list[Check]:
    """The built-in gates: FAIL per collapse rule that fired, WARN per verdict warning."""
    verdict = data["verdict"]
    findings = verdict.get("findings", [])
    out = []
    for rule in VERDICT_RULES:
        fired = [f for f in findings if f.get("kind") == "fail" and f.get("rule") == rule]
        if fired:
            out += [  # the metric in the name: a rule may fire for each view (JUnit needs distinct names)
                Check(f"verdict: {rule} ({f.get('metric')})", "FAIL", f.get("value"), f.get("threshold"), f["message"])
                for f in fired
            ]
        else:
            out.append(Check(f"verdict: {rule}", "PASS", verdict["status"], None, f"no {rule.replace('_', ' ')}"))
    for f in findings:
        if f.get("kind") == "warn":
            out.append(Check(f"warning: {f.get('rule')}", "WARN", f.get("value"), f.get("threshold"), f["message"]))
    return out


def run_checks(
    data: Mapping[str, Any],
    gates: Iterable[Gate] = (),
    relative: Iterable[RelativeGate] = (),
    baseline: Mapping[str, Any] | None = None,
) -> list[Check]:
    """Default gates, then the user's absolute gates, then the baseline comparisons."""
    return [
        *default_checks(data),
        *(evaluate_gate(data, g) for g in gates),
        *(evaluate_relative(data, baseline, g) for g in relative),
    ]


def exit_code(checks: Iterable[Check], strict: bool = False) -> int:
    bad = {"FAIL", "ERROR", "WARN"} if strict else {"FAIL", "ERROR"}
    return 1 if any(c.status in bad for c in checks) else 0


def _is_finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _num(x: Any) -> str:
    return f"{x:.6g}" if isinstance(x, float) else str(x)

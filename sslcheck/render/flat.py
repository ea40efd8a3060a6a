"""Flatten the result JSON into (dotted path, value) rows: the paths that gates and scripts use."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def flatten(data: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield (path, leaf) for every scalar leaf; list items get their index as a path part."""
    if isinstance(data, dict):
        for key, value in data.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(data, list) and not all(isinstance(v, str) for v in data):
        for i, value in enumerate(data):
            yield from flatten(value, f"{prefix}.{i}")
    elif isinstance(data, list):
        yield prefix, "; ".join(data)
    else:
        yield prefix, data


def lookup(data: Any, path: str) -> Any:
    """The value at a dotted path (KeyError when absent)."""
    node = data
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def numeric_leaves(data: Any) -> dict[str, float]:
    """Every number among the leaves (booleans aside), by dotted path: what two results are
    compared by."""
    return {path: float(v) for path, v in flatten(data) if isinstance(v, (int, float)) and not isinstance(v, bool)}

"""CSV rendering: one `path,value` row per scalar of the result JSON (pandas writes it)."""

from __future__ import annotations

from typing import Any

from sslcheck.render.flat import flatten


def to_csv(data: dict[str, Any]) -> str:
    """Every leaf of the JSON as a row; `path` is the dotted path gates use."""
    import pandas as pd

    frame = pd.DataFrame(list(flatten(data)), columns=["path", "value"])
    return str(frame.to_csv(index=False, lineterminator="\n"))

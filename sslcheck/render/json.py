"""JSON rendering of a result: the contract of spec/cli.md; never NaN or Infinity."""

from __future__ import annotations

import json
from typing import Any


def to_json(data: dict[str, Any]) -> str:
    """Indented JSON with `allow_nan=False` (a NaN that slipped through is a bug, not output)."""
    return json.dumps(data, indent=2, allow_nan=False) + "\n"

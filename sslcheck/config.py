"""Configuration files: `--config FILE`, else `[tool.sslcheck]` in the nearest pyproject.toml,
else the nearest `sslcheck.toml` (searching from the working folder up). Parsed with `tomllib`.

Precedence: command-line flags > config > built-in defaults. Relative paths in a config file
(baseline, labels) are relative to that file's folder.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sslcheck.errors import UsageError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

# key -> expected Python type(s) of its value
KEYS: dict[str, tuple[type, ...]] = {
    "loss": (list, str),
    "flavor": (str,),
    "set": (list, dict),
    "batch_size": (int, str),
    "keep_last": (bool,),
    "labels": (str,),
    "key": (str,),
    "key_a": (str,),
    "key_b": (str,),
    "device": (str,),
    "dtype": (str,),
    "threads": (int,),
    "gates": (list,),
    "warn": (list,),
    "baseline": (str,),
    "max_drop": (list, dict),
    "max_rise": (list, dict),
    "strict": (bool,),
    "thresholds": (dict,),
}
PATH_KEYS = ("labels", "baseline")
TYPE_NAMES = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


@dataclass
class Config:
    """Validated settings from a config file (`values` uses the keys of `KEYS`)."""

    path: Path | None = None
    values: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


def closest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """' (did you mean X?)' for the nearest valid choice, or ''."""
    match = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


def find_config(start: Path | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The nearest pyproject.toml with a [tool.sslcheck] table, else the nearest sslcheck.toml."""
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        pyproject = candidate / "pyproject.toml"
        if pyproject.is_file():
            table = _read(pyproject).get("tool", {}).get("sslcheck")
            if table is not None:
                return pyproject, table
    for candidate in (folder, *folder.parents):
        own = candidate / "sslcheck.toml"
        if own.is_file():
            data = _read(own)
            return own, data.get("tool", {}).get("sslcheck", data)
    return None


def load_config(path: str | None = None) -> Config:
    """Load and validate the config named by `--config`, or the one found by `find_config`."""
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UsageError(f"--config {path}: no such file")
        data = _read(p)
        table = data.get("tool", {}).get("sslcheck", data) if p.name == "pyproject.toml" or "tool" in data else data
        found: tuple[Path, dict[str, Any]] | None = (p, table)
    else:
        found = find_config()
    if found is None:
        return Config()
    cfg_path, table = found
    values: dict[str, Any] = {}
    value: Any
    for key, value in table.items():
        if key not in KEYS:
            raise UsageError(f"{cfg_path}: unknown config key {key!r}{closest(key, list(KEYS))}")
        if not _is_kind(value, KEYS[key]):
            kinds = " or ".join(TYPE_NAMES.get(t, t.__name__) for t in KEYS[key])
            raise UsageError(f"{cfg_path}: config key {key!r} must be {kinds}, not {type(value).__name__}")
        if isinstance(value, list) and not all(isinstance(item, str) for item in value):
            raise UsageError(f"{cfg_path}: config key {key!r} must be a list of strings")
        if key in PATH_KEYS:
            value = str(cfg_path.parent / str(value)) if not Path(str(value)).is_absolute() else str(value)
        values[key] = value
    return Config(cfg_path, values)


def _is_kind(value: Any, kinds: tuple[type, ...]) -> bool:
    """isinstance, except that a bool is not an int (TOML's true is not a thread count)."""
    return isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool))


def as_items(value: Any) -> list[str]:
    """A config list of 'A=B' strings or a table {A = B} as 'A=B' strings (for set/max_drop/...)."""
    if isinstance(value, dict):
        return [f"{k}={v}" for k, v in value.items()]
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _read(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{path}: not valid TOML ({err})") from None
    except OSError as err:
        raise UsageError(f"{path}: cannot read ({err.strerror})") from None

"""The README is part of the product: its Quick start is what CI runs, and it names every command."""

from __future__ import annotations

import re
from pathlib import Path

from sslcheck.cli import app

ROOT = Path(__file__).resolve().parent.parent


def quick_start() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1]
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", section, re.S)
    assert block, "Quick start needs a fenced block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_quick_start_is_two_one_line_commands():
    first, second = quick_start()
    for cmd in (first, second):
        assert cmd.startswith("python3 -m venv .venv && ")
        assert "pip install torch==2.13.0" in cmd or "pip install -q torch==2.13.0" in cmd
        assert cmd.index("torch==2.13.0") < cmd.index("pip install -q -e") if "-e" in cmd else True
    assert "sslcheck score sample_data/" in first
    assert "pytest" in second


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert quick_start()[1] in ci.splitlines()


def test_readme_names_every_command():
    from typer.main import get_command

    text = (ROOT / "README.md").read_text()
    for name in get_command(app).commands:  # type: ignore[attr-defined]
        assert f"sslcheck {name}" in text, name

"""Gate results for people and CI systems: terminal table, Markdown summary, JUnit XML and
GitHub Actions workflow commands."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sslcheck.checks import Check
from sslcheck.render.sections import fmt, header_line, verdict_text

STYLE = {"PASS": "green", "WARN": "yellow", "FAIL": "bold red", "ERROR": "bold red", "SKIP": "dim"}
MAX_ANNOTATIONS = 10


def counts_line(checks: Sequence[Check]) -> str:
    c = Counter(ch.status for ch in checks)
    return ", ".join(f"{c[s]} {s.lower()}" for s in ("PASS", "WARN", "FAIL", "ERROR", "SKIP") if c[s])


def print_checks(data: dict[str, Any], checks: Sequence[Check], passed: bool, console: Console) -> None:
    console.print(header_line(data), highlight=False, markup=False, soft_wrap=True)
    table = Table(show_edge=False, pad_edge=False)
    for col in ("status", "gate", "value", "threshold", "message"):
        table.add_column(col, justify="right" if col in ("value", "threshold") else "left")
    for ch in checks:
        table.add_row(
            Text(ch.status, style=STYLE[ch.status]),
            *(Text(c) for c in (ch.name, fmt(ch.value), fmt(ch.threshold), ch.message)),
        )
    console.print(table)
    console.print(verdict_text(data), highlight=False, markup=False)
    console.print(
        f"{'PASSED' if passed else 'FAILED'}: {counts_line(checks)}",
        style="bold green" if passed else "bold red",
        highlight=False,
        markup=False,
    )


def summary_markdown(data: dict[str, Any], checks: Sequence[Check], passed: bool) -> str:
    lines = [
        f"## sslcheck: {'passed' if passed else 'FAILED'} ({counts_line(checks)})",
        "",
        f"**{verdict_text(data)}**",
        "",
        header_line(data),
        "",
        "| status | gate | value | threshold | message |",
        "|---|---|---|---|---|",
    ]
    for ch in checks:
        cells = [ch.status, ch.name, fmt(ch.value), fmt(ch.threshold), ch.message]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def junit_xml(checks: Sequence[Check], strict: bool = False) -> bytes:
    """One <testcase> per gate: FAIL -> <failure>, ERROR -> <error>, SKIP -> <skipped>, WARN ->
    <failure> under --strict, else a pass with the warning in <system-out>."""
    c = Counter(ch.status for ch in checks)
    failures = c["FAIL"] + (c["WARN"] if strict else 0)
    attrs = {
        "name": "sslcheck",
        "tests": str(len(checks)),
        "failures": str(failures),
        "errors": str(c["ERROR"]),
        "skipped": str(c["SKIP"]),
    }
    suites = ET.Element("testsuites", attrs)
    suite = ET.SubElement(suites, "testsuite", attrs)
    for ch in checks:
        case = ET.SubElement(suite, "testcase", {"classname": "sslcheck.gates", "name": ch.name, "time": "0"})
        if ch.status == "FAIL" or (ch.status == "WARN" and strict):
            ET.SubElement(case, "failure", {"message": ch.message, "type": ch.status}).text = ch.message
        elif ch.status == "ERROR":
            ET.SubElement(case, "error", {"message": ch.message, "type": "ERROR"}).text = ch.message
        elif ch.status == "SKIP":
            ET.SubElement(case, "skipped", {"message": ch.message})
        elif ch.status == "WARN":
            ET.SubElement(case, "system-out").text = f"WARN: {ch.message}"
    ET.indent(suites)
    return ET.tostring(suites, encoding="utf-8", xml_declaration=True) + b"\n"


def github_annotations(checks: Sequence[Check]) -> list[str]:
    """`::error` for FAIL/ERROR and `::warning` for WARN, at most 10 of each."""
    out: list[str] = []
    for level, statuses in (("error", ("FAIL", "ERROR")), ("warning", ("WARN",))):
        picked = [ch for ch in checks if ch.status in statuses][:MAX_ANNOTATIONS]
        out += [f"::{level} title=sslcheck {_escape(ch.name, True)}::{_escape(ch.message)}" for ch in picked]
    return out


def _escape(text: str, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text

"""Terminal rendering with rich: the result's sections as tables, then the verdict."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sslcheck.render.sections import header_line, sections, verdict_text

STATUS_STYLE = {"healthy": "bold green"}


def print_table(data: dict[str, Any], console: Console) -> None:
    console.print(header_line(data), highlight=False, markup=False, soft_wrap=True)
    for sec in sections(data):
        table = Table(title=sec.title, title_justify="left", show_edge=False, pad_edge=False)
        for i, col in enumerate(sec.columns):
            table.add_column(col, justify="left" if i < 2 else "right")
        for row in sec.rows:
            table.add_row(*(Text(cell) for cell in row))
        console.print(table)
        for note in sec.notes:
            console.print(f"  {note}", style="dim", highlight=False, markup=False)
    status = data["verdict"]["status"]
    console.print(verdict_text(data), style=STATUS_STYLE.get(status, "bold red"), highlight=False, markup=False)
    for reason in data["verdict"].get("reasons", []):
        console.print(f"  - {reason}", highlight=False, markup=False)

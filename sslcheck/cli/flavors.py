"""`sslcheck flavors`: every loss under every flavor, with its effective parameters."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from sslcheck.cli.app import app, stdout_console
from sslcheck.cli.options import choice


def flavor_table() -> dict[str, dict[str, dict[str, Any]]]:
    """{loss: {flavor: {"params": ..., "source": ...}}} for every loss and flavor."""
    from sslcheck.losses.flavors import FLAVORS, LOSSES, params_dict

    return {
        name: {fl: {"params": params_dict(spec.presets[fl]), "source": spec.sources[fl]} for fl in FLAVORS}
        for name, spec in LOSSES.items()
    }


@app.command()
def flavors(
    format: Annotated[str, typer.Option("--format", "-f", metavar="table|json", help="Output format.")] = "table",
) -> None:
    """List every loss and flavor with its effective parameters and where they come from.

    \b
    Example: sslcheck flavors --format json
    """
    fmt = choice("--format", format, ("table", "json"))
    data = flavor_table()
    if fmt == "json":
        from sslcheck.render.json import to_json

        sys.stdout.write(to_json(data))
        return
    from rich.table import Table
    from rich.text import Text

    from sslcheck.render.sections import fmt as num

    console = stdout_console(200)
    for loss, by_flavor in data.items():
        params = list(next(iter(by_flavor.values()))["params"])
        table = Table(title=loss, title_justify="left", show_edge=False, pad_edge=False)
        for col in ("flavor", *params, "source"):
            table.add_column(col)
        for fl, entry in by_flavor.items():
            table.add_row(fl, *(num(entry["params"][p]) for p in params), Text(entry["source"]))
        console.print(table)

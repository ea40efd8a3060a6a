"""`sslcheck score ZA ZB`: every loss term, the diagnostics and the verdict."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from sslcheck.cli.app import app, stdout_console
from sslcheck.cli.common import run_evaluation
from sslcheck.cli.options import RunOptions, choice, run_options

FORMATS = ("table", "json", "csv", "markdown")


@app.command()
@run_options
def score(
    run: RunOptions,
    format: Annotated[
        str, typer.Option("--format", "-f", metavar="table|json|csv|markdown", help="table, json, csv or markdown.")
    ] = "table",
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", metavar="FILE", help="Write to FILE (atomically) instead of stdout.", show_default=False
        ),
    ] = None,
) -> None:
    """Print every loss term, the collapse diagnostics and the verdict for two views.

    \b
    Example: sslcheck score sample_data/healthy_za.npy sample_data/healthy_zb.npy --flavor lightly
    """
    fmt = choice("--format", format, FORMATS)
    if output is not None:
        from sslcheck.render.atomic import output_target

        output_target(output)  # fail before the pass, not after it
    data = run_evaluation(run).to_dict()
    if fmt == "table" and output is None:
        from sslcheck.render.table import print_table

        print_table(data, stdout_console())
        return
    text = render_text(data, fmt)
    if output is None:
        sys.stdout.write(text)
        return
    from sslcheck.render.atomic import write_atomic

    write_atomic(output, text)
    if not run.quiet:
        typer.echo(f"wrote {output}", err=True)


def render_text(data: dict, fmt: str) -> str:
    """The result in a text format: json, csv, markdown, or a plain-text table."""
    if fmt == "json":
        from sslcheck.render.json import to_json

        return to_json(data)
    if fmt == "csv":
        from sslcheck.render.csv import to_csv

        return to_csv(data)
    if fmt == "markdown":
        from sslcheck.render.markdown import to_markdown

        return to_markdown(data)
    import io

    from rich.console import Console

    from sslcheck.render.table import print_table

    buf = io.StringIO()
    print_table(data, Console(file=buf, width=160, no_color=True))
    return buf.getvalue()

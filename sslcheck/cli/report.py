"""`sslcheck report ZA ZB -o DIR`: a report folder to share (HTML, Markdown, JSON, CSV, plots)."""

from __future__ import annotations

from typing import Annotated

import typer

from sslcheck.cli.app import app
from sslcheck.cli.common import run_evaluation
from sslcheck.cli.options import RunOptions, run_options


@app.command()
@run_options
def report(
    run: RunOptions,
    output: Annotated[
        str,
        typer.Option("--output", "-o", metavar="DIR", help="The report folder to create.", show_default=False),
    ] = ...,  # type: ignore[assignment]  # Ellipsis: required; the shared options that follow have defaults
    force: Annotated[bool, typer.Option("--force", help="Replace DIR if it is an earlier report.")] = False,
) -> None:
    """Write a report folder: report.html (one self-contained page), report.md, scores.json, CSV tables
    and PNG/SVG plots. Prints the paths written, one per line.

    \b
    Example: sslcheck report sample_data/healthy_za.npy sample_data/healthy_zb.npy -o sslcheck-report
    """
    from sslcheck.render.report import check_target, write_report

    check_target(output, force)  # fail before the pass, not after it
    result = run_evaluation(run)
    for path in write_report(result, output, force=force):
        typer.echo(str(path))

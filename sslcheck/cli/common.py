"""Glue every scoring command shares: run the evaluation with progress, echo warnings."""

from __future__ import annotations

from typing import Any

import typer

from sslcheck.cli.options import RunOptions
from sslcheck.cli.progress import progress_bar


def run_evaluation(run: RunOptions, **settings: Any) -> Any:
    """Evaluate the pair named by `run` (a `Result`); warnings go to stderr unless --quiet."""
    from sslcheck.engine import evaluate_files

    with progress_bar(not (run.quiet or run.no_progress)) as progress:
        result = evaluate_files(
            run.za,
            run.zb,
            run.settings(**settings),
            key=run.key,
            key_a=run.key_a,
            key_b=run.key_b,
            labels=run.labels,
            progress=progress,
        )
    if not run.quiet:
        for warning in result.warnings:
            typer.echo(f"Warning: {warning}", err=True)
    return result

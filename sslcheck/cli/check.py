"""`sslcheck check ZA ZB`: CI gates; exit 1 when the run collapsed or a gate fails."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from sslcheck.cli.app import app, detach_stdout, stdout_closed, stdout_console
from sslcheck.cli.common import run_evaluation
from sslcheck.cli.options import RunOptions, run_options
from sslcheck.config import as_items
from sslcheck.errors import UsageError


@app.command()
@run_options
def check(
    run: RunOptions,
    gate: Annotated[
        list[str],
        typer.Option(
            "--gate",
            metavar="'PATH OP VALUE'",
            help="FAIL unless true, e.g. 'diagnostics.za.rank_ratio >= 0.2' (repeatable).",
            show_default=False,
        ),
    ] = [],  # noqa: B006
    warn: Annotated[
        list[str],
        typer.Option("--warn", metavar="'PATH OP VALUE'", help="WARN unless true (repeatable).", show_default=False),
    ] = [],  # noqa: B006
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline",
            metavar="OLD.json",
            help="A scores.json to compare with (--max-drop / --max-rise).",
            show_default=False,
        ),
    ] = None,
    max_drop: Annotated[
        list[str],
        typer.Option(
            "--max-drop",
            metavar="PATH=P%",
            help="FAIL when PATH dropped more than P% below the baseline (repeatable).",
            show_default=False,
        ),
    ] = [],  # noqa: B006
    max_rise: Annotated[
        list[str],
        typer.Option(
            "--max-rise",
            metavar="PATH=P%",
            help="FAIL when PATH rose more than P% above the baseline (repeatable).",
            show_default=False,
        ),
    ] = [],  # noqa: B006
    strict: Annotated[bool, typer.Option("--strict", help="WARN fails too.")] = False,
    json_out: Annotated[
        str | None,
        typer.Option(
            "--json", metavar="FILE", help="Write the scores and checks as JSON (also on failure).", show_default=False
        ),
    ] = None,
    junit: Annotated[
        str | None,
        typer.Option(
            "--junit", metavar="FILE", help="Write a JUnit XML report (one testcase per gate).", show_default=False
        ),
    ] = None,
    summary_md: Annotated[
        str | None, typer.Option("--summary-md", metavar="FILE", help="Write a Markdown summary.", show_default=False)
    ] = None,
) -> None:
    """Gate a run in CI: exit 1 on collapse or a failed gate, 0 when healthy, 2 on bad input.

    \b
    Example: sslcheck check za.npy zb.npy --gate "diagnostics.za.rank_ratio >= 0.2" --junit sslcheck.xml
    """
    from sslcheck.checks import exit_code, parse_gate, parse_relative, run_checks

    cfg = run.config_values
    gates = [parse_gate(g) for g in gate or cfg.get("gates", [])]
    gates += [parse_gate(g, "WARN") for g in warn or cfg.get("warn", [])]
    relative = [parse_relative(r, "drop") for r in max_drop or as_items(cfg.get("max_drop", []))]
    relative += [parse_relative(r, "rise") for r in max_rise or as_items(cfg.get("max_rise", []))]
    strict = strict or bool(cfg.get("strict", False))
    base = load_baseline(baseline or cfg.get("baseline"))
    if relative and base is None:
        raise UsageError("--max-drop / --max-rise need --baseline OLD.json")
    from sslcheck.render.atomic import output_target

    for out in (json_out, junit, summary_md):  # fail before the pass, and before any file is written
        if out:
            output_target(out)

    result = run_evaluation(run)
    data = result.to_dict()
    checks = run_checks(data, gates, relative, base)
    code = exit_code(checks, strict)
    data["checks"] = [c.to_dict() for c in checks]
    write_outputs(data, checks, code == 0, strict, json_out, junit, summary_md)

    try:
        print_outcome(data, checks, code == 0)
    except BrokenPipeError:  # `check | head`: the gates' verdict stands, whoever stopped reading
        if stdout_closed():
            detach_stdout()
    raise typer.Exit(code)


def print_outcome(data: dict[str, Any], checks: list[Any], passed: bool) -> None:
    """The gate summary on stdout; under GitHub Actions its annotations and the step summary too."""

    from sslcheck.render.gates import github_annotations, print_checks, summary_markdown

    print_checks(data, checks, passed, stdout_console())
    if os.environ.get("GITHUB_ACTIONS") == "true":
        for line in github_annotations(checks):
            typer.echo(line)
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary:  # best effort: the CI page's summary never changes the gate's exit code
            try:
                with open(step_summary, "a", encoding="utf-8") as f:
                    f.write(summary_markdown(data, checks, passed))
            except OSError as err:
                typer.echo(f"Warning: cannot append to $GITHUB_STEP_SUMMARY {step_summary} ({err.strerror})", err=True)
    sys.stdout.flush()  # a closed pipe shows here, inside the caller's handler, not at exit


def load_baseline(path: str | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--baseline {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UsageError(f"--baseline {path}: not a readable sslcheck JSON ({err})") from None
    if not isinstance(data, dict) or "schema_version" not in data:
        raise UsageError(f"--baseline {path}: not an sslcheck scores JSON (no schema_version)")
    return data


def write_outputs(
    data: dict[str, Any],
    checks: list[Any],
    passed: bool,
    strict: bool,
    json_out: str | None,
    junit: str | None,
    summary_md: str | None,
) -> None:
    from sslcheck.render.atomic import write_atomic
    from sslcheck.render.gates import junit_xml, summary_markdown
    from sslcheck.render.json import to_json

    if json_out:
        write_atomic(json_out, to_json(data))
    if junit:
        write_atomic(junit, junit_xml(checks, strict))
    if summary_md:
        write_atomic(summary_md, summary_markdown(data, checks, passed))

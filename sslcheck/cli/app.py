"""The `sslcheck` Typer app: every user error is one `Error: ...` line on stderr and exit 2.

Commands register themselves from their own modules; nothing here imports torch, so `--help`
and `--version` stay fast.
"""

from __future__ import annotations

import gc
import os
import select
import sys
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperGroup

try:  # typer >= 0.20 vendors click; older releases depend on it
    from typer import _click as click
except ImportError:  # pragma: no cover
    import click  # type: ignore[no-redef]

import sslcheck
from sslcheck.errors import SSLCheckError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a job stopped by Ctrl-C


def stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone: poll reports an error on its write end.
    Where poll cannot tell (no poll, no descriptor), True: the closed pipe was stdout."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return True


def closed_pipe_exit() -> NoReturn:
    """Exit after a write to a closed pipe: 0 where it was stdout (`| head` under pipefail: not
    the 1 of a failed gate, which click and rich would give; `check` keeps its gates' code by
    catching the error itself, once they are evaluated), 1 where stderr's reader went (so check
    never passes unread)."""
    if stdout_closed():
        detach_stdout()
        sys.exit(EXIT_OK)
    sys.exit(EXIT_FAILED)


def detach_stdout() -> None:
    """Point stdout at /dev/null once its reader has gone, so that nothing more (the final flush
    at exit included) fails on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def stdout_console(piped_width: int = 160) -> Any:
    """A rich Console on stdout, `piped_width` columns wide when stdout is not a terminal. Its
    closed pipe raises BrokenPipeError, as a plain write does (`closed_pipe_exit`), where rich
    would point stdout at /dev/null and exit 1."""
    from rich.console import Console

    class StdoutConsole(Console):
        def on_broken_pipe(self) -> None:
            raise BrokenPipeError

    return StdoutConsole(file=sys.stdout, width=None if sys.stdout.isatty() else piped_width)


def error_exit(message: str) -> None:
    typer.echo(f"Error: {message}", err=True)
    sys.exit(EXIT_USAGE)


class OneLineErrors(TyperGroup):
    """Runs commands in non-standalone mode so usage, input and internal errors print as one
    `Error:` line (greppable in CI logs) instead of a boxed panel or a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # typer would exit 130 without a word
            typer.echo("Error: interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:  # type: ignore[override]
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv
        extra.pop("standalone_mode", None)
        try:
            code = super().main(args=argv, prog_name=prog_name or "sslcheck", standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as err:
            typer.echo(err.ctx.get_help() if err.ctx else str(err))
            sys.exit(EXIT_OK)
        except typer.Exit as err:
            sys.exit(err.exit_code)
        except SystemExit as err:  # click's own exit 1 on a closed pipe (--help into `| head`)
            if err.code == EXIT_FAILED:
                closed_pipe_exit()
            raise
        except typer.Abort:
            typer.echo("Error: aborted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except click.ClickException as err:
            error_exit(err.format_message().replace("\n", " "))
        except SSLCheckError as err:
            if debug:
                raise
            error_exit(str(err))
        except BrokenPipeError:  # a command's output into `| head`
            closed_pipe_exit()
        except Exception as err:  # an internal error: short message, traceback with --debug
            if debug:
                raise
            if isinstance(err, OSError) and err.filename is not None:  # the system refused a file
                error_exit(f"{err.filename}: {err.strerror or err}")
            error_exit(f"internal error: {type(err).__name__}: {err} (run with --debug for the traceback)")
        sys.exit(code if isinstance(code, int) else EXIT_OK)


app = typer.Typer(
    cls=OneLineErrors,
    name="sslcheck",
    help="Is my self-supervised representation healthy? SSL loss terms in every library's "
    "convention, collapse diagnostics and CI gates for two views za, zb: [N, D].",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sslcheck {sslcheck.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """sslcheck: SSL loss terms, collapse diagnostics and CI gates."""


def main() -> None:
    """Console-script entry point."""
    try:
        from sslcheck.process import tune_process

        tune_process()  # before anything imports torch
        from sslcheck.cli import commands  # noqa: F401  (registers the commands)
    except KeyboardInterrupt:  # Ctrl-C while the modules load: no traceback
        sys.exit(EXIT_INTERRUPTED)
    try:
        app()
    finally:
        # Python's exit collects garbage while it tears the modules down, scanning every object
        # of torch's, which live until then anyway: frozen, they are skipped (`score` on a
        # small pair: 0.3-0.4 s of its ~3 s)
        gc.freeze()

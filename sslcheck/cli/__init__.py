"""The command-line interface: a thin Typer layer over the library (no math here)."""

from sslcheck.cli import commands  # noqa: F401  (registers the commands on `app`)
from sslcheck.cli.app import app, main

__all__ = ["app", "main"]

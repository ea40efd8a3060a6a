"""Registers every command module on the app (import order = order in --help)."""

from sslcheck.cli import score  # noqa: F401

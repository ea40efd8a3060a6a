"""Registers every command module on the app (import order = order in --help)."""
# ruff: noqa: I001, F401

from sslcheck.cli import score
from sslcheck.cli import check

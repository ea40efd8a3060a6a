"""Registers every command module on the app (import order = order in --help)."""
# ruff: noqa: I001, F401

from sslcheck.cli import score
from sslcheck.cli import check
from sslcheck.cli import inspect_cmd
from sslcheck.cli import flavors
from sslcheck.cli import report

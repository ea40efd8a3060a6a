"""The errors sslcheck raises for the user's mistakes: the CLI prints them as one `Error:` line, exit 2."""

from __future__ import annotations


class SSLCheckError(Exception):
    """A problem with the user's input or options, phrased for the user (no traceback)."""


class InputError(SSLCheckError):
    """An input file that cannot be read as a valid [N, D] float embedding."""


class UsageError(SSLCheckError):
    """An option, setting, gate or config value that is not valid."""

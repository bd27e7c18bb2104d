"""The exit codes of ``mvirt``, one per kind of outcome a script may want to tell apart.

docs/cli.md documents this table; change both together.
"""

from __future__ import annotations

from enum import IntEnum

import click


class ExitCode(IntEnum):
    """What ``mvirt`` exits with."""

    OK = 0
    FAILED = 1
    """The daemon refused or failed the operation (invalid value, wrong state, ...)."""
    USAGE = 2
    """Bad command line, environment or config file (click's own code for usage errors)."""
    NOT_FOUND = 3
    """No such VM, volume, network, ... (by name or id)."""
    ALREADY_EXISTS = 4
    """The name is taken."""
    UNAVAILABLE = 5
    """The daemon is not reachable or did not answer within the deadline."""
    UNTRUSTED = 6
    """The node's TLS certificate is not the pinned or recorded one."""
    INTERNAL = 70
    """A fault in mvirt itself (``MVIRT_DEBUG=1`` shows the traceback)."""
    INTERRUPTED = 130
    """Ctrl-C."""


class CliError(click.ClickException):
    """A one-line error with the exit code of its kind."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.exit_code = int(code)  # type: ignore[misc]  # click declares it on the class


def not_found(message: str) -> CliError:
    """``message`` as a NOT_FOUND error (a name or id that does not resolve)."""
    return CliError(message, ExitCode.NOT_FOUND)

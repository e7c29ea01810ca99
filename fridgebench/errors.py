"""Exit statuses and the domain exceptions the CLI turns into one clear line each.

Library code raises these; only ``fridgebench.cli`` prints them and picks the exit code.
Every message says what is wrong; ``hint`` says what to do next.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1  # runtime error: a server failed, a store is unreachable, disk full ...
    USAGE = 2  # bad flags, bad scenario file, bad input the user can fix
    GATE_FAILED = 3  # a regression gate failed
    TOO_NOISY = 4  # could not judge: too noisy, too few samples, runs not comparable (gate; compare --strict)
    DIFFERENCES = 5  # `migrate verify` found sessions that differ (unreachable stores stay 1)
    INTERRUPTED = 130  # Ctrl-C / SIGTERM


class FridgebenchError(Exception):
    """Base of every expected error. ``str(err)`` is the one line shown to the user."""

    exit_status: ExitStatus = ExitStatus.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # one line: what is wrong, then what to do
        if self.hint:
            return f"{self.message} — {self.hint}"
        return self.message


class UsageError(FridgebenchError):
    exit_status = ExitStatus.USAGE


class ScenarioError(UsageError):
    """A scenario file is malformed; the message names the file, the field and what is allowed."""


class ProvisionError(FridgebenchError):
    """A server could not be started, found, or stopped."""


class StoreUnavailable(FridgebenchError):
    """A store cannot be reached, or refused our credentials."""


class SchemaConflict(UsageError):
    """An external database already holds fridge2fork tables with data."""


class MigrationError(FridgebenchError):
    pass


class MigrationRefused(UsageError):
    """A safety check refused the migration (target not empty, eviction policy, memory)."""


class VerificationFailed(FridgebenchError):
    """`migrate verify` found differences: its own exit status, so a script can tell "the stores
    differ" (5) from "verify could not run" (1)."""

    exit_status = ExitStatus.DIFFERENCES


class Interrupted(FridgebenchError):
    exit_status = ExitStatus.INTERRUPTED

"""What every fault offers the experiment that injects it: inject, heal, and heal-no-matter-what.

A fault is injected once and healed once. ``inject`` and ``heal`` return the ``perf_counter``
instant the fault began / ended (the signal sent, the proxy switched, the command started), so the
experiment can place them on the same clock as the operations. ``recover`` waits, after the heal,
until the server serves again and returns what that took (restart and load times).
``emergency_heal`` runs from a ``finally`` (an error, Ctrl-C, SIGTERM): it must bring the system
back -- continue a paused server, restore a setting, start an external server again -- quickly and
without raising.
"""

from __future__ import annotations

import abc
from typing import Any

from fridgebench.errors import FridgebenchError


class FaultError(FridgebenchError):
    """A fault could not be injected or healed (a command failed, a server did not come back): one
    line, exit status 1."""


class Fault(abc.ABC):
    name: str = ""
    target: str = ""  # "postgres" | "redis"
    uses_down: bool = True  # False: the fault is instantaneous (heal follows at once)

    def __init__(self) -> None:
        self.injected = False
        self.healed = False

    @abc.abstractmethod
    async def inject(self) -> float: ...

    @abc.abstractmethod
    async def heal(self) -> float: ...

    async def recover(self, timeout_s: float) -> dict[str, Any]:
        """After :meth:`heal`: wait until the server serves again; what it took (default: nothing)."""
        return {}

    @abc.abstractmethod
    async def emergency_heal(self) -> list[str]:
        """Undo whatever is still in effect; lines saying what was done (never raises)."""

    def describe(self) -> dict[str, Any]:
        return {"fault": self.name, "target": self.target}

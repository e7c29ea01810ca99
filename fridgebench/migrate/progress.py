"""How migrate's steps report progress, and how they keep to ``--rate-limit``."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

Progress = Callable[[str, dict[str, Any]], None]


def no_progress(event: str, data: dict[str, Any]) -> None:
    return None


def pace(t0: float, count: int, rate: float, stop: threading.Event | None = None) -> None:
    """Sleep until ``count`` items at ``rate`` per second since ``t0`` are due, or ``stop`` is set."""
    due = t0 + count / rate
    while (now := time.perf_counter()) < due and not (stop is not None and stop.is_set()):
        time.sleep(min(due - now, 0.1))



"""Helpers tests import (a normal module: fixtures live in conftest files)."""

from __future__ import annotations

import os
import subprocess
import sys


def cli(*args: str, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point in a subprocess (exit codes, stderr, signals as an operator sees them)."""
    return subprocess.run([sys.executable, "-c", "from fridgebench.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})


def fill(dsn: str, n: int, seed: int = 1) -> None:
    from fridgebench.migrate.rehearsal import fill as _fill

    _fill(dsn, n, seed=seed, existing="reuse")

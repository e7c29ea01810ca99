"""Helpers the load tests import (a normal module: fixtures live in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil

FB = [sys.executable, "-m", "fridgebench.cli"]
RUNNER = "fridgebench.load.runner"


def fb(*args: str, timeout: float = 240, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``fridgebench ARGS`` as an operator runs it: exit status, stdout, stderr."""
    return subprocess.run([*FB, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def locust_processes(marker: str) -> list[psutil.Process]:
    """Locust processes (``fridgebench.load.runner``, or plain ``locust``) whose environment or
    command line names ``marker`` (a test's own folder)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            argv = p.info["cmdline"] or []
            cmd = " ".join(argv)
            is_locust = RUNNER in cmd or "locust.main" in cmd or any(Path(a).name == "locust" for a in argv[:3])
            if is_locust and p.pid != os.getpid() and p.status() != psutil.STATUS_ZOMBIE:
                if marker in cmd or any(marker in v for v in p.environ().values()):
                    found.append(p)
        except psutil.Error:
            pass
    return found

"""Helpers for the load tests: the real CLI in a subprocess, and finding Locust processes left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import psutil
import pytest

from tests.conftest import fresh_run_root

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


@pytest.fixture
def run_root() -> Iterator[Path]:
    root = fresh_run_root()
    yield root
    shutil.rmtree(root, ignore_errors=True)

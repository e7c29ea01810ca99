"""The tests' own guard: a background run a test started does not outlive the test (tests/procs.py)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests import procs


def test_a_background_run_still_going_is_terminated_then_killed() -> None:
    polite = procs.popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stubborn = procs.popen(["bash", "-c", "trap '' TERM; while :; do sleep 0.1; done"], stdout=subprocess.PIPE)
    done = procs.popen([sys.executable, "-c", "print('x' * 200_000)"], stdout=subprocess.PIPE)  # > a pipe's buffer
    t0 = time.monotonic()
    left = procs.stop_background(settle=0.5, grace=1.0)
    assert len(left) == 2 and all("sleep" in c for c in left), left  # `done` ended on its own once drained
    assert polite.returncode == -signal.SIGTERM  # asked first
    assert stubborn.returncode == -signal.SIGKILL  # then made to
    assert done.returncode == 0
    assert time.monotonic() - t0 < 20
    assert procs.stop_background() == []  # each process is stopped once

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


def test_reading_stderr_up_to_a_line_keeps_its_deadline_while_the_process_is_silent() -> None:
    talk = "import sys, time; print('a', file=sys.stderr, flush=True); print('b marker', file=sys.stderr, flush=True); " \
           "print('c', file=sys.stderr, flush=True); time.sleep(60)"
    proc = procs.popen([sys.executable, "-c", talk], stderr=subprocess.PIPE, text=True)
    assert procs.stderr_until(proc, "marker", within=30) == "a\nb marker\n"  # up to the line, no further
    assert proc.stderr is not None and proc.stderr.readline() == "c\n"  # the rest is left to read
    t0 = time.monotonic()
    assert procs.stderr_until(proc, "never", within=0.5) == ""  # silent: the deadline, not a blocked read
    assert time.monotonic() - t0 < 5
    ended = procs.popen([sys.executable, "-c", "import sys; print('x', file=sys.stderr)"], stderr=subprocess.PIPE,
                        text=True)
    assert procs.stderr_until(ended, "never", within=30) == "x\n"  # it ended first: all of it, at once
    assert procs.stop_background(settle=0.5, grace=5) == [f"{sys.executable} -c {talk}"]

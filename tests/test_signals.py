"""A terminal's Ctrl-C through the real CLI, for every command that provisions servers.

A terminal sends SIGINT to its whole foreground process group: fridgebench *and*, before issue 9,
the servers it had started, so PostgreSQL took the same Ctrl-C as "fast shutdown" under the running
command (`ttl` then exited 1: "unexpected ConnectionDoesNotExistError ... terminating connection
due to administrator command"). Each test starts the command in a process group of its own, waits
until it is mid-run on its embedded servers, and signals the whole group with ``os.killpg``, as a
terminal does. Expected: exit 130, "interrupted", no error line, no server left, no results
presented as complete.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fridgebench.measure.results import INCOMPLETE_MARKER, RESULTS_FILE
from tests import procs
from tests.procs import servers_under

FB = [sys.executable, "-m", "fridgebench.cli"]


@pytest.fixture
def run_root(fb_run_root: Path) -> Path:
    """A private run root (conftest: removed afterwards, whatever a failed test left running)."""
    return fb_run_root


class Running:
    """A fridgebench command in its own process group, its stderr collected line by line."""

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FRIDGEBENCH_") or k.startswith("FRIDGEBENCH_TEST")}
        self.proc = procs.popen([*FB, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, env={**env, "COLUMNS": "200"})
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(self.proc.stderr or []), daemon=True)
        self._reader.start()

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def wait_for(self, needle: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not any(needle in line for line in self.lines):
            assert self.proc.poll() is None, f"exited {self.proc.returncode} before {needle!r}: {self.stderr}"
            assert time.monotonic() < deadline, f"no {needle!r} within {timeout} s: {self.stderr}"
            time.sleep(0.02)

    def ctrl_c(self) -> int:
        """SIGINT to the whole process group, as a terminal's Ctrl-C; the exit status."""
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            rc = self.proc.wait(90)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._reader.join(10)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def interrupted_cleanly(rc: int, run: Running, root: Path) -> None:
    assert rc == 130, f"exit {rc}: {run.stderr[-3000:]}"
    assert "interrupted" in run.stderr
    assert not [line for line in run.lines if line.startswith("error:")], run.stderr
    assert "Traceback" not in run.stderr
    assert servers_under(root) == []
    assert not list(root.glob("run-*"))  # the run folders went with their servers


def no_complete_results(out: Path) -> None:
    runs = list(out.iterdir()) if out.exists() else []
    for run in runs:
        assert not (run / RESULTS_FILE).exists(), sorted(p.name for p in run.iterdir())
        assert (run / INCOMPLETE_MARKER).exists()


@pytest.mark.embedded
def test_ctrl_c_during_ttl(run_root: Path, tmp_path: Path) -> None:
    run = Running("ttl", "--stores", "postgres,redis-atomic", "--sessions", "200", "--ttl", "5",
                  "--memory-counts", "1000", "--cleanup-sessions", "1000", "--run-dir", str(run_root),
                  "--out", str(tmp_path))
    try:
        run.wait_for("postgres: watching expiry")  # mid-measurement, on the embedded PostgreSQL
        rc = run.ctrl_c()
    finally:
        run.kill()
    interrupted_cleanly(rc, run, run_root)
    no_complete_results(tmp_path)


@pytest.mark.embedded
def test_ctrl_c_during_compare(run_root: Path, tmp_path: Path) -> None:
    run = Running("compare", "--stores", "postgres,redis-atomic", "--duration", "20", "--warmup", "0.5",
                  "--sessions", "1000", "--rate", "500", "--run-dir", str(run_root), "--out", str(tmp_path))
    try:
        run.wait_for("(run ")  # both servers up, the scenario line printed: the replay is starting
        time.sleep(1.0)
        rc = run.ctrl_c()
    finally:
        run.kill()
    interrupted_cleanly(rc, run, run_root)
    no_complete_results(tmp_path)
    assert list(tmp_path.iterdir()), "compare never created its run folder: the interrupt came too early"


@pytest.mark.embedded
def test_ctrl_c_during_up_leaves_nothing_recorded(run_root: Path) -> None:
    run = Running("up", "--run-dir", str(run_root))
    try:
        run.wait_for("started PostgreSQL")  # PostgreSQL up, Valkey not yet: mid-start
        rc = run.ctrl_c()
    finally:
        run.kill()
    interrupted_cleanly(rc, run, run_root)
    assert not (run_root / "up.json").exists()
    status = subprocess.run([*FB, "status", "--run-dir", str(run_root)], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and "no servers recorded" in status.stderr, status.stderr


@pytest.mark.embedded
def test_a_server_ignores_the_terminal_but_stops_with_fridgebench(run_root: Path) -> None:
    """What makes the above hold: each server runs in a session of its own (not the terminal's
    process group), yet still stops when fridgebench is SIGKILLed (PR_SET_PDEATHSIG)."""
    run = Running("ttl", "--stores", "postgres", "--sessions", "200", "--ttl", "30", "--memory-counts", "1000",
                  "--cleanup-sessions", "1000", "--run-dir", str(run_root), "--out", str(run_root / "out"))
    try:
        run.wait_for("postgres: watching expiry")
        servers = servers_under(run_root)
        assert servers, run.stderr
        me = os.getpgid(run.proc.pid)
        for p in servers:
            assert os.getpgid(p.pid) != me and os.getsid(p.pid) == p.pid, (p, me)
        os.killpg(run.proc.pid, signal.SIGKILL)
        run.proc.wait(30)
        deadline = time.monotonic() + 30
        while servers_under(run_root):
            assert time.monotonic() < deadline, servers_under(run_root)
            time.sleep(0.1)
    finally:
        run.kill()

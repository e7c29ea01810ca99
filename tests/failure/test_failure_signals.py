"""Ctrl-C and SIGTERM in the middle of a fault heal it and leave nothing behind; external stores are
crashed only through the user's own commands, whose failures are one clear line.

The "external" Redis here is a throwaway Valkey this module starts itself (the embedded binary,
daemonized, on a free port): the commands kill and start it like `kubectl` would a pod.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from fridgebench.measure.results import INCOMPLETE_MARKER, RESULTS_FILE
from fridgebench.provision import binaries, local
from tests import procs
from tests.helpers import fresh_run_root
from tests.procs import servers_under

pytestmark = pytest.mark.embedded

FB = [sys.executable, "-m", "fridgebench.cli"]
LONG = ["--warmup", "0.2", "--duration", "40", "--at", "0.5", "--down", "30", "--rate", "200", "--sessions", "200"]


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

    def wait_for(self, needle: str, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in list(self.lines) if needle in line]
            if found:
                return found[0]
            assert self.proc.poll() is None, f"exited {self.proc.returncode} before {needle!r}: {self.stderr}"
            assert time.monotonic() < deadline, f"no {needle!r} within {timeout} s: {self.stderr}"
            time.sleep(0.02)

    def signal(self, sig: signal.Signals, group: bool = True) -> int:
        (os.killpg if group else os.kill)(self.proc.pid, sig)
        try:
            rc = self.proc.wait(90)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._reader.join(10)
        return rc


@pytest.fixture
def run_root() -> Iterator[Path]:
    import shutil

    root = fresh_run_root()
    yield root
    shutil.rmtree(root, ignore_errors=True)


def interrupted_cleanly(rc: int, run: Running, root: Path, out: Path) -> None:
    assert rc == 130, f"exit {rc}: {run.stderr[-3000:]}"
    assert "interrupted" in run.stderr and "Traceback" not in run.stderr
    assert not [line for line in run.lines if line.startswith("error:")], run.stderr
    assert servers_under(root) == []
    for d in out.iterdir() if out.exists() else []:
        assert not (d / RESULTS_FILE).exists() and (d / INCOMPLETE_MARKER).exists()


def test_ctrl_c_during_a_pause_continues_and_stops_the_server(run_root: Path, tmp_path: Path) -> None:
    run = Running("failure", "pause", "--stores", "redis-atomic", *LONG, "--run-dir", str(run_root),
                  "--out", str(tmp_path))
    try:
        line = run.wait_for("injected pause")
        pid = int(re.search(r"pid (\d+)", line).group(1))  # type: ignore[union-attr]
        assert open(f"/proc/{pid}/stat").read().split()[2] == "T"  # stopped, mid-fault
        rc = run.signal(signal.SIGINT)
    finally:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
    interrupted_cleanly(rc, run, run_root, tmp_path)
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


def test_sigterm_during_a_blackhole_closes_the_proxy(run_root: Path, tmp_path: Path) -> None:
    run = Running("failure", "blackhole", "--stores", "postgres", *LONG, "--run-dir", str(run_root),
                  "--out", str(tmp_path))
    try:
        port = int(re.search(r"fault proxy 127\.0\.0\.1:(\d+)", run.wait_for("fault proxy")).group(1))  # type: ignore[union-attr]
        run.wait_for("injected blackhole")
        socket.create_connection(("127.0.0.1", port), timeout=5).close()  # the proxy still accepts mid-fault
        rc = run.signal(signal.SIGTERM, group=False)  # `kill PID`, as a supervisor would
    finally:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
    interrupted_cleanly(rc, run, run_root, tmp_path)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


class External:
    """A daemonized Valkey on a free port, started and killed by shell commands as a user would."""

    def __init__(self, folder: Path) -> None:
        self.port = local.free_port()
        self.pidfile = folder / "valkey.pid"
        self.url = f"redis://127.0.0.1:{self.port}/0"
        binary = binaries.embedded_valkey()
        self.start_cmd = (f"{shlex.quote(str(binary))} --port {self.port} --bind 127.0.0.1 --daemonize yes "
                          f"--pidfile {shlex.quote(str(self.pidfile))} --save '' --appendonly no "
                          f"--dir {shlex.quote(str(folder))} --logfile {shlex.quote(str(folder / 'valkey.log'))}")
        self.kill_cmd = f"kill -9 $(cat {shlex.quote(str(self.pidfile))}) && rm -f {shlex.quote(str(self.pidfile))}"
        self.start()

    def start(self) -> None:
        subprocess.run(self.start_cmd, shell=True, check=True, timeout=30)
        assert self.answers(10)

    def answers(self, within: float) -> bool:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
            except redis.RedisError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.pidfile.exists():
            try:
                os.kill(int(self.pidfile.read_text().strip()), signal.SIGKILL)
            except (ValueError, ProcessLookupError):
                pass


@pytest.fixture
def external(tmp_path: Path) -> Iterator[External]:
    ext = External(tmp_path)
    try:
        yield ext
    finally:
        ext.stop()


def test_crash_of_an_external_store_through_the_users_commands(external: External, run_root: Path,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = subprocess.run([*FB, "failure", "crash", "--stores", "redis-atomic", "--redis-url", external.url,
                          "--kill-cmd", external.kill_cmd, "--start-cmd", external.start_cmd,
                          "--warmup", "0.3", "--duration", "2.5", "--at", "0.6", "--down", "0.7", "--rate", "300",
                          "--sessions", "300", "--json", "--run-dir", str(run_root), "--out", str(out)],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    import json

    case = json.loads(res.stdout)["sections"]["failure"]["cases"][0]
    assert case["durability"] == "external" and case["fault_detail"]["external"] is True
    assert case["fault_detail"]["kill"]["seconds"] >= 0 and case["fault_detail"]["start"]["seconds"] >= 0
    a = case["accounting"]
    assert a["sessions_lost_by_phase"]["before"] == a["sessions_acknowledged_before_fault"] > 0  # no persistence
    assert external.answers(5)
    assert redis.Redis.from_url(external.url).dbsize() == 0  # what fridgebench wrote, deleted afterwards


def test_ctrl_c_after_the_kill_command_runs_the_start_command(external: External, run_root: Path,
                                                               tmp_path: Path) -> None:
    run = Running("failure", "crash", "--stores", "redis-atomic", "--redis-url", external.url,
                  "--kill-cmd", external.kill_cmd, "--start-cmd", external.start_cmd, *LONG,
                  "--run-dir", str(run_root), "--out", str(tmp_path / "out"))
    try:
        run.wait_for("injected crash")
        assert not external.answers(0.3)  # killed by the user's command, mid-fault
        rc = run.signal(signal.SIGINT)
    finally:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
    interrupted_cleanly(rc, run, run_root, tmp_path / "out")
    assert "ran --start-cmd" in run.stderr
    assert external.answers(10)  # healed on the way out


@pytest.mark.parametrize("kill_cmd,timeout,message", [
    ("echo no such pod >&2; exit 4", "60", "--kill-cmd `echo no such pod >&2; exit 4` failed (exit 4): no such pod"),
    ("sleep 30", "1", "--kill-cmd `sleep 30` did not finish within 1 s"),
])
def test_a_kill_command_that_fails_or_hangs_is_one_line_and_exit_1(kill_cmd: str, timeout: str, message: str,
                                                                  external: External, run_root: Path,
                                                                  tmp_path: Path) -> None:
    res = subprocess.run([*FB, "failure", "crash", "--stores", "redis-atomic", "--redis-url", external.url,
                          "--kill-cmd", kill_cmd, "--start-cmd", "true", "--cmd-timeout", timeout,
                          "--warmup", "0.2", "--duration", "3", "--at", "0.5", "--down", "0.5", "--rate", "100",
                          "--sessions", "100", "--run-dir", str(run_root), "--out", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], res.stderr
    assert "Traceback" not in res.stderr and servers_under(run_root) == []
    assert external.answers(5) and redis.Redis.from_url(external.url).dbsize() == 0


def test_sigkill_mid_pause_leaves_stopped_backends_that_the_next_fridgebench_removes(run_root: Path,
                                                                                     tmp_path: Path) -> None:
    """PostgreSQL's backends are stopped with the postmaster; if fridgebench is SIGKILLed then, the
    postmaster dies with it (PDEATHSIG) but a stopped backend never notices. They are on record in
    the run folder, and the next fridgebench (here `down`) kills them by pid and start time."""
    import psutil

    run = Running("failure", "pause", "--stores", "postgres", *LONG, "--run-dir", str(run_root),
                  "--out", str(tmp_path))
    try:
        line = run.wait_for("injected pause")
        postmaster = psutil.Process(int(re.search(r"pid (\d+)", line).group(1)))  # type: ignore[union-attr]
        backends = postmaster.children()
        assert backends and all(b.status() == psutil.STATUS_STOPPED for b in backends)
        os.killpg(run.proc.pid, signal.SIGKILL)
        run.proc.wait(30)
    finally:
        if run.proc.poll() is None:
            os.killpg(run.proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while postmaster.is_running() and postmaster.status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the postmaster outlived fridgebench"
        time.sleep(0.05)
    assert any(b.is_running() and b.status() == psutil.STATUS_STOPPED for b in backends)  # the leftovers
    res = subprocess.run([*FB, "down", "--run-dir", str(run_root)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    deadline = time.monotonic() + 30
    while any(b.is_running() and b.status() != psutil.STATUS_ZOMBIE for b in backends):
        assert time.monotonic() < deadline, [(b.pid, b.status()) for b in backends if b.is_running()]
        time.sleep(0.05)
    assert servers_under(run_root) == []

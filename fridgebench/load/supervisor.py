"""``fridgebench load``'s side: start the Locust processes, follow them, clean up after them.

This module never imports Locust (nor gevent): the Locust processes are children —
``python -m fridgebench.load.runner`` — each in its own session, so a terminal's Ctrl-C reaches
only this process, which then stops them in order (SIGTERM, then SIGKILL after a grace period)
before the stores it provisioned are stopped: the master (or the local process) first, with a
longer grace, while its workers still run — it stops the users, collects the workers' last reports
and deletes what the run wrote — then the workers. Each child also dies with this process
(``PR_SET_PDEATHSIG``) if it is killed outright.

Children report progress and their outcome as ``FBEVENT {json}`` lines on stdout (read by one
thread per child); Locust's own log goes to a file, copied into the run folder at the end.
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from fridgebench.errors import ExitStatus, FridgebenchError, ProvisionError

Role = Literal["local", "master", "worker"]
EventSink = Callable[[str, dict[str, Any]], None]  # (process name, event)
STOP_GRACE_S = 15.0
# the master's own cleanup after SIGTERM (fridgebench.load.conductor.CLEANUP_TIMEOUT_S, 60 s) and then some
MAIN_STOP_GRACE_S = 75.0

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


class LoadFailed(FridgebenchError):
    """A Locust process reported an error (its exit status is the process's)."""

    def __init__(self, message: str, status: int, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_status = ExitStatus(status) if status in ExitStatus._value2member_map_ else ExitStatus.ERROR


def _tie_to_parent(parent: int) -> None:  # in the child, between fork and exec
    if _libc is not None:
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)


@dataclass
class Child:
    name: str
    role: Role
    proc: subprocess.Popen[str]
    log_path: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    reader: threading.Thread | None = None

    @property
    def error(self) -> dict[str, Any] | None:
        return next((e for e in reversed(self.events) if e.get("type") == "error"), None)


class Supervisor:
    """The Locust processes of one ``fridgebench load`` run."""

    def __init__(self, env: dict[str, str], *, on_event: EventSink, log_dir: Path | None = None) -> None:
        self.env = env
        self.on_event = on_event
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="fridgebench-load-logs-"))
        self.children: list[Child] = []
        self._queue: queue.Queue[tuple[Child, dict[str, Any]]] = queue.Queue()

    # -- starting -------------------------------------------------------------------------------
    def start(self, name: str, role: Role, args: list[str]) -> Child:
        log_path = self.log_dir / f"locust-{name}.log"
        cmd = [sys.executable, "-m", "fridgebench.load.runner", "--role", role, *args]
        parent = os.getpid()
        main = threading.current_thread() is threading.main_thread()
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log, text=True,
                                    encoding="utf-8", errors="replace", env={**os.environ, **self.env},
                                    start_new_session=True,
                                    preexec_fn=(lambda: _tie_to_parent(parent)) if main else None)
        child = Child(name, role, proc, log_path)
        child.reader = threading.Thread(target=self._read, args=(child,), daemon=True)
        child.reader.start()
        self.children.append(child)
        return child

    def _read(self, child: Child) -> None:
        assert child.proc.stdout is not None
        for line in child.proc.stdout:
            if line.startswith("FBEVENT "):
                try:
                    event = json.loads(line[8:])
                except ValueError:
                    continue
                self._queue.put((child, event))

    # -- following --------------------------------------------------------------------------------
    def wait(self, main: Child, *, poll_s: float = 0.1) -> int:
        """Relay events until ``main`` exits (then the others, briefly); return ``main``'s status.

        A worker that dies early (e.g. cannot reach the master) ends the run with its error."""
        while True:
            self._drain(poll_s)
            if main.proc.poll() is not None:
                break
            for c in self.children:
                if c is not main and c.proc.poll() not in (None, 0) and c.error is not None:
                    self._drain(0.2)
                    raise LoadFailed(f"{c.name}: {c.error.get('text')}", int(c.error.get("status", 1)))
        if main.reader is not None:
            main.reader.join(timeout=5)
        self._drain(0)
        deadline = time.monotonic() + STOP_GRACE_S
        for c in self.children:
            if c is not main:
                try:
                    c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        self._drain(0)
        return int(main.proc.returncode)

    def _drain(self, block_s: float) -> None:
        try:
            child, event = self._queue.get(timeout=block_s) if block_s else self._queue.get_nowait()
        except queue.Empty:
            return
        while True:
            child.events.append(event)
            self.on_event(child.name, event)
            try:
                child, event = self._queue.get_nowait()
            except queue.Empty:
                return

    # -- stopping ----------------------------------------------------------------------------------
    def stop(self, first: Child | None = None) -> None:
        """SIGTERM every child still running, wait, SIGKILL what is left. Safe to call twice.

        ``first`` (the master, or the local process) is stopped before the others, given
        :data:`MAIN_STOP_GRACE_S` to clean up (its workers still running), its lines relayed."""
        if first is not None and first.proc.poll() is None:
            try:
                first.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + MAIN_STOP_GRACE_S
            while first.proc.poll() is None and time.monotonic() < deadline:
                self._drain(0.1)
            if first.reader is not None:
                first.reader.join(timeout=5)
            self._drain(0)
        alive = [c for c in self.children if c.proc.poll() is None]
        for c in alive:
            try:
                c.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_GRACE_S
        for c in alive:
            try:
                c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(c.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                c.proc.wait(timeout=10)
        for c in self.children:
            if c.proc.stdout is not None:
                c.proc.stdout.close()

    def keep_logs(self, run_dir: Path | None) -> Path:
        """Move the Locust logs into the run folder (when there is one); return where they are."""
        if run_dir is None or not run_dir.is_dir():
            return self.log_dir
        for c in self.children:
            if c.log_path.exists():
                shutil.move(str(c.log_path), run_dir / c.log_path.name)
                c.log_path = run_dir / c.log_path.name
        shutil.rmtree(self.log_dir, ignore_errors=True)
        return run_dir

    def discard_logs(self) -> None:
        shutil.rmtree(self.log_dir, ignore_errors=True)

    def require_free(self, port: int, host: str) -> None:
        import socket

        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host if host not in ("*", "") else "0.0.0.0", port))
            except OSError as err:
                raise ProvisionError(f"port {port} on {host} is taken ({err.strerror}): the Locust master cannot listen there",
                                     hint="pass another --master-port, or stop what uses it") from None

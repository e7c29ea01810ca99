"""The processes a test run starts: tying them to the test process, and finding servers it left
(for "nothing left running" assertions)."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import psutil

from fridgebench.config import mask_text

SERVER_NAMES = ("postgres", "valkey-server", "redis-server")


def servers_under(root: Path) -> list[psutil.Process]:
    """PostgreSQL postmasters and Redis/Valkey servers working in ``root``.

    Matched by process name, then by ``root`` in the command line or working directory: Valkey
    rewrites its command line to ``valkey-server 127.0.0.1:PORT`` but runs in its ``--dir``.
    """
    found = []
    for p in psutil.process_iter(["cmdline", "name"]):
        try:
            if p.info["name"] not in SERVER_NAMES or p.pid == os.getpid():
                continue
            where = f"{' '.join(p.info['cmdline'] or [])} {p.cwd()}"
            if str(root) in where and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except psutil.Error:
            pass
    pids = {p.pid for p in found}
    return [p for p in found if p.ppid() not in pids]  # a postmaster, not also each of its backends


@functools.lru_cache(maxsize=1)
def _libc() -> Any:
    """libc, found once: ``find_library`` runs ``ldconfig -p`` in a subprocess each time it is asked."""
    import ctypes
    import ctypes.util

    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def tied(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A ``preexec_fn`` for a process a test starts (``PR_SET_PDEATHSIG``, Linux): ``sig`` reaches it when
    the test process dies, so a killed pytest leaves no ``migrate --follow`` or server running. SIGTERM
    for fridgebench's CLI (it unwinds: stops its servers, deletes what it wrote), SIGKILL for servers.

    It also gives the child the default SIGINT: a run launched without job control (``nohup``, ``cmd &``
    in a script) starts everything with SIGINT ignored, and the Ctrl-C tests would then test nothing.
    None off Linux or off the main thread (the death signal follows the thread that forked)."""
    import threading

    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    libc = _libc()
    parent = os.getpid()

    def tie() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        libc.prctl(1, sig)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent is already gone
            os._exit(1)
    return tie


# what :func:`popen` started during the current test (tests/conftest.py stops what is still running when it ends)
_BACKGROUND: list["subprocess.Popen[Any]"] = []


def popen(cmd: list[str], **kw: Any) -> "subprocess.Popen[Any]":
    """``subprocess.Popen`` for a fridgebench CLI (or Locust) a test runs in the background: tied to the test
    process, and stopped when the test ends if it is still running (:func:`stop_background`)."""
    proc = subprocess.Popen(cmd, preexec_fn=tied(), **kw)
    _BACKGROUND.append(proc)
    return proc


def stop_background(settle: float = 3.0, grace: float = 60.0) -> list[str]:
    """Stop every process :func:`popen` started in this test that is still running; return their commands.

    A test that fails before its own stop step would otherwise leave a run writing into a store for the
    rest of the session (a shared db of the machine's Redis: every later test of its group then finds keys
    it did not write). A process gets ``settle`` seconds to end on its own (a test may have signalled it
    without waiting), then SIGTERM -- fridgebench's CLI and the locustfile unwind: stop their servers,
    delete what they wrote -- and ``grace`` seconds to do it, then SIGKILL. Pipes are drained meanwhile,
    so a process blocked writing to a full pipe can still exit."""
    left = []
    while _BACKGROUND:
        proc = _BACKGROUND.pop()
        try:
            proc.communicate(timeout=settle)
            continue
        except (subprocess.TimeoutExpired, ValueError, OSError):  # ValueError: a pipe the test already closed
            pass
        if proc.poll() is not None:
            continue
        # its first words, masked (a test's DSN may carry a password: the project's own mask_text)
        left.append(mask_text(" ".join(str(a) for a in proc.args[:4]) if isinstance(proc.args, list) else str(proc.args)))
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=grace)
        except (subprocess.TimeoutExpired, ValueError, OSError):
            proc.kill()
            proc.wait()
    return left


def run(cmd: list[str], **kw: Any) -> "subprocess.CompletedProcess[Any]":
    """``subprocess.run`` for a fridgebench CLI: tied to the test process, like :func:`popen`."""
    return subprocess.run(cmd, preexec_fn=tied(), **kw)


def stderr_until(proc: "subprocess.Popen[str]", marker: str, within: float) -> str:
    """What ``proc`` (started with ``stderr=PIPE, text=True``) wrote to stderr up to the first line holding
    ``marker``: all of it if it ended first, what came within ``within`` seconds if neither happened. The
    deadline holds even while the process writes nothing (a reader thread, not a blocking loop); the rest
    of stderr stays for the test to read."""
    import queue
    import threading

    assert proc.stderr is not None
    lines: "queue.Queue[str | None]" = queue.Queue()

    def read() -> None:
        try:
            for line in iter(proc.stderr.readline, ""):  # type: ignore[union-attr]
                lines.put(line)
                if marker in line:
                    break
        except (ValueError, OSError):  # the pipe closed under it (the process stopped at the test's end)
            pass
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    seen, deadline = "", time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if line is None:
            break
        seen += line
    return seen

"""The processes a test run starts: tying them to the test process, and finding servers it left
(for "nothing left running" assertions)."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import psutil

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


def popen(cmd: list[str], **kw: Any) -> "subprocess.Popen[Any]":
    """``subprocess.Popen`` for a fridgebench CLI a test runs in the background: tied to the test process."""
    return subprocess.Popen(cmd, preexec_fn=tied(), **kw)


def run(cmd: list[str], **kw: Any) -> "subprocess.CompletedProcess[Any]":
    """``subprocess.run`` for a fridgebench CLI: tied to the test process, like :func:`popen`."""
    return subprocess.run(cmd, preexec_fn=tied(), **kw)

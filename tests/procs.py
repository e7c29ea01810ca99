"""Finding server processes a test run started (for "nothing left running" assertions)."""

from __future__ import annotations

import os
from pathlib import Path

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

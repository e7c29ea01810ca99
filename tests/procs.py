"""Finding server processes a test run started (for "nothing left running" assertions)."""

from __future__ import annotations

import os
from pathlib import Path

import psutil


def servers_under(root: Path) -> list[psutil.Process]:
    """Server processes working in ``root``: postgres (``-D`` and cwd) and redis/valkey (``--dir`` is its cwd;
    it rewrites its command line to ``valkey-server 127.0.0.1:PORT``, so the command line alone misses it)."""
    found = []
    for p in psutil.process_iter(["cmdline", "name"]):
        try:
            cmd = " ".join(p.info["cmdline"] or [])
            where = f"{cmd} {p.cwd()}"
            if (str(root) in where and ("postgres" in cmd or "server" in cmd)
                    and p.status() != psutil.STATUS_ZOMBIE and p.pid != os.getpid()):
                found.append(p)
        except psutil.Error:
            pass
    pids = {p.pid for p in found}
    return [p for p in found if p.ppid() not in pids]  # a postmaster, not also each of its backends

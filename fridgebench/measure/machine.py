"""How fast the machine itself was around a store's measurement: a reference measured in the same run.

A shared 2-core runner is often 1.5–3× slower in one run than in the next — the CPU (another
tenant, frequency) or the disk's flush time (PostgreSQL's writes each wait for one). A store whose
operations all got slower between a baseline and a current run cannot be told from such a machine
by the store's figures alone. So each store's measurement is bracketed by two short probes that
touch no store:

* ``cpu_us`` — a fixed piece of pure-Python work (what the driver and a local server's CPU see);
* ``flush_us`` — append 8 KiB to a file and ``fdatasync`` it, in the system temp dir (where
  fridgebench's own servers keep their data; PostgreSQL's WAL flush is the same system call).

Each is the median of its samples before and after the measurement. The gate (``all operations``
and ``--absolute`` rows) claims a whole-store change only when it stands against both.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from typing import Any

CPU_WORK = 20_000  # loop iterations per CPU sample (~0.5-1 ms on a 2020s x86 core)
SAMPLE_S = 0.15  # per probe and resource
MAX_SAMPLES = 100  # per probe and resource: a fast disk flushes 100 in ~10 ms
RESOURCES = ("cpu_us", "flush_us")


def _cpu_sample() -> float:
    t = time.perf_counter()
    x = 0
    for i in range(CPU_WORK):
        x += i % 7
    return (time.perf_counter() - t) * 1e6


def _flush_samples(seconds: float, directory: str | None) -> list[float]:
    out: list[float] = []
    fd, path = tempfile.mkstemp(prefix="fridgebench-probe-", dir=directory)
    try:
        block = b"\0" * 8192
        end = time.perf_counter() + seconds
        while time.perf_counter() < end and len(out) < MAX_SAMPLES:
            t = time.perf_counter()
            os.write(fd, block)
            os.fdatasync(fd)
            out.append((time.perf_counter() - t) * 1e6)
            if len(out) % 16 == 0:
                os.ftruncate(fd, 0)
                os.lseek(fd, 0, os.SEEK_SET)
    finally:
        os.close(fd)
        os.unlink(path)
    return out


def sample(seconds: float = SAMPLE_S, directory: str | None = None) -> dict[str, list[float]]:
    """One probe: CPU samples for ``seconds``, then flush samples for ``seconds``."""
    cpu: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end and len(cpu) < MAX_SAMPLES:
        cpu.append(_cpu_sample())
    try:
        flush = _flush_samples(seconds, directory)
    except OSError:  # a read-only or full temp dir: the CPU half still says something
        flush = []
    return {"cpu_us": cpu, "flush_us": flush}


def summarize(before: dict[str, list[float]], after: dict[str, list[float]]) -> dict[str, Any]:
    """The results' ``machine`` entry of a store: medians of both probes, and each probe's own."""
    out: dict[str, Any] = {"what": "the machine alone, just before and just after this store's measurement: "
                                   "a fixed CPU loop, and an 8 KiB write + fdatasync in the temp dir (µs, medians)"}
    for k in RESOURCES:
        both = before.get(k, []) + after.get(k, [])
        out[k] = round(statistics.median(both), 1) if both else None
        out[f"{k}_before"] = round(statistics.median(before[k]), 1) if before.get(k) else None
        out[f"{k}_after"] = round(statistics.median(after[k]), 1) if after.get(k) else None
        out[f"{k}_samples"] = len(both)
    return out


def label(resource: str) -> str:
    return {"cpu_us": "CPU", "flush_us": "disk flush"}[resource]

"""fridgebench's own measurement inside Locust: microsecond HdrHistograms, counts, acknowledged changes.

Locust rounds every response time under 100 ms to whole milliseconds for its percentiles, so its
statistics cannot tell a 60 µs Redis read from a 900 µs one. Each Locust process (the local
runner, or every worker) therefore keeps a :class:`Recorder`, fed by Locust's ``request`` event
(:meth:`Recorder.on_request`): per (wall-clock second, store, operation), an HdrHistogram of
latencies in µs (3 significant digits) and the ok / not found / error counts, plus every
mutation with its outcome for the lost-update check (whose ``create`` s also tell the master which
sessions the users wrote, to delete them afterwards), every recipe cache key a user's ``SET ... NX``
created (with its wall-clock time, so the master knows when its TTL runs out), and a running tally
of requests.

Workers ship what they recorded since the last report (:meth:`Recorder.take`) inside Locust's
own worker report (``report_to_master``) and once more, as a final flush, when the master asks;
the master merges every report into an :class:`Aggregate`. Histograms travel encoded
(HdrHistogram's compressed V2 "histoblob") and add up exactly: the merged count is the sum of
the workers' counts.

Latency is measured from the actual send to the reply (Locust users are closed loops: each
waits for its reply before its next request), so it is *service* time; coordinated omission
is not corrected here, unlike ``compare``'s open-loop engine.
"""

from __future__ import annotations

import os
import socket
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import psutil
from hdrh.histogram import HdrHistogram

from fridgebench.measure.summary import new_histogram
from fridgebench.stores.correctness import LoggedOp

PAYLOAD_VERSION = 2  # 2: cache_keys
OK, NOT_FOUND, ERROR = 0, 1, 2
MUTATIONS = ("add", "remove", "delete", "create")
SAMPLE_CHARS = 300


def _k(*parts: Any) -> str:
    return "|".join(str(p) for p in parts)


def _split(key: str) -> list[str]:
    return key.split("|")


def _runqueue_wait_s() -> float | None:
    """Seconds this process's threads spent runnable but waiting for a CPU (Linux schedstat), or None."""
    total = 0
    try:
        for task in os.scandir(f"/proc/{os.getpid()}/task"):
            with open(f"{task.path}/schedstat") as f:
                total += int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e9


@dataclass
class CpuWindow:
    """CPU seconds this process used between two marks (the measured window), and the seconds it
    waited for a CPU: a generator can be short of CPU at 40% use when the machine is saturated."""

    start_cpu: float = 0.0
    start_wait: float | None = None
    start_wall: float = 0.0
    cpu_s: float | None = None
    wait_s: float | None = None
    wall_s: float | None = None

    @staticmethod
    def _cpu() -> float:
        t = psutil.Process().cpu_times()
        return float(t.user + t.system)

    def begin(self) -> None:
        self.start_cpu, self.start_wait, self.start_wall = self._cpu(), _runqueue_wait_s(), time.time()
        self.cpu_s = self.wait_s = self.wall_s = None

    def end(self) -> None:
        if self.start_wall:
            self.cpu_s = self._cpu() - self.start_cpu
            wait = _runqueue_wait_s()
            self.wait_s = wait - self.start_wait if wait is not None and self.start_wait is not None else None
            self.wall_s = time.time() - self.start_wall

    def to_dict(self) -> dict[str, Any]:
        def pct(x: float | None) -> float | None:
            return round(100 * x / self.wall_s, 1) if x is not None and self.wall_s else None

        return {"cpu_seconds": None if self.cpu_s is None else round(self.cpu_s, 3),
                "wall_seconds": None if self.wall_s is None else round(self.wall_s, 3),
                "cpu_percent": pct(self.cpu_s), "cpu_wait_percent": pct(self.wait_s)}


@dataclass
class Recorder:
    """One Locust process's measurements (not thread-safe; gevent greenlets only switch on I/O)."""

    hist: dict[str, HdrHistogram] = field(default_factory=dict)  # "sec|store|op" -> µs latencies of replies
    counts: dict[str, list[int]] = field(default_factory=dict)  # "sec|store|op" -> [ok, not_found, errors]
    errors: dict[str, list[Any]] = field(default_factory=dict)  # "store|op|class" -> [count, sample]
    mutations: list[list[Any]] = field(default_factory=list)  # [store, kind, sid, names, start, end, ok]
    connect_errors: dict[str, list[Any]] = field(default_factory=dict)  # store -> [count, sample]
    cache: dict[str, list[int]] = field(default_factory=dict)  # store -> [hits, misses] (recipe cache)
    cache_keys: list[list[Any]] = field(default_factory=list)  # [store, key, wall time]: created by SET NX
    totals: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # "store|op" -> requests (cumulative)
    cpu: dict[str, CpuWindow] = field(default_factory=dict)  # store -> this process's CPU in the window
    cpu_warning: bool = False  # Locust's own "CPU usage above 90%" fired in this process
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)

    # -- recording (the hot path) ---------------------------------------------------------------
    def on_request(self, request_type: str, name: str, response_time: float, context: dict[str, Any] | None = None,
                   exception: BaseException | None = None, **_: Any) -> None:
        """Locust's ``request`` event listener: only fridgebench users' requests carry ``context["fb"]``."""
        fb = (context or {}).get("fb")
        if fb is None:
            return
        start, result, op = fb
        self.record(request_type, name, response_time * 1000.0, start, result, exception, op)

    def record(self, store: str, op_kind: str, latency_us: float, start: float, result: int,
               exception: BaseException | None = None, op: Any = None) -> None:
        key = _k(int(start), store, op_kind)
        c = self.counts.get(key)
        if c is None:
            c = self.counts[key] = [0, 0, 0]
        if exception is None:
            c[result] += 1
            h = self.hist.get(key)
            if h is None:
                h = self.hist[key] = new_histogram()
            h.record_value(max(1, int(round(latency_us))))
        else:
            c[ERROR] += 1
            ek = _k(store, op_kind, type(exception).__name__)
            e = self.errors.get(ek)
            if e is None:
                self.errors[ek] = [1, str(exception)[:SAMPLE_CHARS]]
            else:
                e[0] += 1
        self.totals[_k(store, op_kind)] += 1
        if op is not None and op_kind in MUTATIONS:
            self.log_mutation(store, op, start, start + latency_us / 1e6, exception is None and result == OK)

    def log_mutation(self, store: str, op: Any, start: float, end: float, ok: bool) -> None:
        """An add/remove/delete/create and whether it was acknowledged. Unacknowledged ones are
        logged too: a remove that timed out may still have been applied."""
        self.mutations.append([store, op.kind, op.session_id, list(op.names), start, max(end, start), ok])

    def connect_error(self, store: str, exc: BaseException) -> None:
        e = self.connect_errors.setdefault(store, [0, str(exc)[:SAMPLE_CHARS]])
        e[0] += 1

    def cache_key_created(self, store: str, key: str) -> None:
        """A recipe cache key this process's user created (its ``SET ... NX`` succeeded): the run's to delete."""
        self.cache_keys.append([store, key, time.time()])

    def cache_result(self, store: str, hits: int, misses: int) -> None:
        c = self.cache.setdefault(store, [0, 0])
        c[0] += hits
        c[1] += misses

    # -- marks from the conductor ---------------------------------------------------------------
    def mark(self, store: str, what: str) -> None:
        if what == "measure_start":
            self.cpu.setdefault(store, CpuWindow()).begin()
        elif what == "measure_end" and store in self.cpu:
            self.cpu[store].end()

    # -- shipping ---------------------------------------------------------------------------------
    def take(self) -> dict[str, Any]:
        """Everything recorded since the last call, as plain (msgpack-able) data; then forget it.
        ``totals`` is cumulative: the master keeps each worker's latest tally."""
        payload = {
            "v": PAYLOAD_VERSION,
            "hist": {k: h.encode().decode("ascii") for k, h in self.hist.items()},
            "counts": self.counts,
            "errors": self.errors,
            "mutations": self.mutations,
            "connect_errors": self.connect_errors,
            "cache": self.cache,
            "cache_keys": self.cache_keys,
            "totals": dict(self.totals),
            "cpu": {s: w.to_dict() for s, w in self.cpu.items()},
            "cpu_warning": self.cpu_warning,
            "host": self.host,
            "pid": self.pid,
        }
        self.hist, self.counts, self.errors, self.mutations = {}, {}, {}, []
        self.connect_errors, self.cache, self.cache_keys = {}, {}, []
        return payload


@dataclass
class Aggregate:
    """The master's merge of every process's reports (a local run merges its one recorder)."""

    hist: dict[tuple[int, str, str], HdrHistogram] = field(default_factory=dict)
    counts: dict[tuple[int, str, str], list[int]] = field(default_factory=dict)
    errors: dict[tuple[str, str, str], list[Any]] = field(default_factory=dict)
    mutations: dict[str, list[LoggedOp]] = field(default_factory=lambda: defaultdict(list))
    connect_errors: dict[str, list[Any]] = field(default_factory=dict)
    cache: dict[str, list[int]] = field(default_factory=dict)
    cache_keys: dict[str, list[tuple[str, float]]] = field(default_factory=lambda: defaultdict(list))  # store -> (key, created)
    totals: dict[str, dict[str, int]] = field(default_factory=dict)  # worker -> "store|op" -> requests
    cpu: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # worker -> store -> window
    cpu_warning: dict[str, bool] = field(default_factory=dict)
    hosts: dict[str, str] = field(default_factory=dict)
    reports: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def merge(self, worker: str, payload: dict[str, Any]) -> None:
        if payload.get("v") != PAYLOAD_VERSION:
            raise ValueError(f"worker {worker} sent measurements in format {payload.get('v')!r}, "
                             f"this master reads {PAYLOAD_VERSION} (run the same fridgebench version everywhere)")
        for key, enc in payload["hist"].items():
            sec, store, op = _split(key)
            k = (int(sec), store, op)
            h = self.hist.get(k)
            if h is None:
                h = self.hist[k] = new_histogram()
            h.decode_and_add(enc)
        for key, (ok, nf, err) in payload["counts"].items():
            sec, store, op = _split(key)
            c = self.counts.setdefault((int(sec), store, op), [0, 0, 0])
            c[0] += ok
            c[1] += nf
            c[2] += err
        for key, (n, sample) in payload["errors"].items():
            store, op, cls = _split(key)
            e = self.errors.setdefault((store, op, cls), [0, sample])
            e[0] += n
        for store, kind, sid, names, start, end, ok in payload["mutations"]:
            self.mutations[store].append(LoggedOp(kind, sid, float(start), float(end), tuple(names), bool(ok)))
        for store, (n, sample) in payload["connect_errors"].items():
            e = self.connect_errors.setdefault(store, [0, sample])
            e[0] += n
        for store, (hits, misses) in payload["cache"].items():
            c = self.cache.setdefault(store, [0, 0])
            c[0] += hits
            c[1] += misses
        for store, key, created in payload["cache_keys"]:
            self.cache_keys[store].append((str(key), float(created)))
        self.totals[worker] = dict(payload["totals"])
        for store, window in payload["cpu"].items():
            if window.get("cpu_seconds") is not None:
                self.cpu.setdefault(worker, {})[store] = window
        self.cpu_warning[worker] = self.cpu_warning.get(worker, False) or bool(payload["cpu_warning"])
        self.hosts[worker] = f"{payload['host']} pid {payload['pid']}"
        self.reports[worker] += 1

    # -- views for one store -----------------------------------------------------------------------
    def created_sessions(self, store: str) -> set[str]:
        """Every session id a user tried to create in ``store`` (acknowledged or not: a create that
        failed or timed out may still have been applied)."""
        return {op.session_id for op in self.mutations.get(store, ()) if op.kind == "create"}

    def seconds(self, store: str) -> list[int]:
        return sorted({sec for sec, s, _ in self.counts if s == store})

    def worker_requests(self, store: str) -> dict[str, int]:
        """Each process's own running tally of requests it sent to ``store`` (all operations)."""
        prefix = store + "|"
        return {w: sum(n for k, n in t.items() if k.startswith(prefix)) for w, t in self.totals.items()}

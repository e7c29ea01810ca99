"""The asyncio load driver: open-loop (fixed arrival schedule) and closed-loop (N workers).

Open loop, coordinated-omission corrected (as wrk2 and ``pgbench -R``): every operation has an
*intended* start on a schedule fixed before the run. A dispatcher releases each operation at its
intended instant (timer sleep, then a short cooperative spin: event-loop timers only have
millisecond resolution); one of ``concurrency`` workers (= connections) sends it. We stamp
intended, actual send and completion, so latency is reported both from the intended start
(what a user waiting for that request experiences) and from the actual send (service time).
Operations sent more than ``late_threshold_s`` after their intended start are counted as late;
operations never sent, or not finished when the drain deadline passes, are counted and kept in
the intended-start distribution at their lower bound — never dropped.

The hot path only appends floats to arrays; histograms are built afterwards (fridgebench.measure).
"""

from __future__ import annotations

import asyncio
import random
import time
from array import array
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterator

from fridgebench.workload.generator import Op
from fridgebench.workload.model import OP_KINDS, Load

KIND_CODE = {k: i for i, k in enumerate(OP_KINDS)}
OK, NOT_FOUND = 0, 1  # result codes; >= 2 index into OpLog.error_classes (+2)
UNSENT, UNFINISHED = "not sent: overload backlog", "not finished before drain deadline"

Execute = Callable[[Op], Awaitable[bool]]  # True: found/applied; False: no such live session


@dataclass
class OpLog:
    """One row per operation, column-wise; times are ``time.perf_counter()`` seconds."""

    kind: array = field(default_factory=lambda: array("B"))
    intended: array = field(default_factory=lambda: array("d"))
    sent: array = field(default_factory=lambda: array("d"))
    done: array = field(default_factory=lambda: array("d"))
    result: array = field(default_factory=lambda: array("H"))
    error_classes: list[str] = field(default_factory=list)
    error_samples: dict[str, str] = field(default_factory=dict)
    mutations: list[tuple[int, Op]] = field(default_factory=list)  # row index, op: add/remove/delete/create

    def error_code(self, exc: BaseException) -> int:
        """The result code of a failure: one per error class -- the exception's ``error_class``
        when it names one (the failure experiment's outcome classes), else its type's name."""
        name = getattr(exc, "error_class", None) or type(exc).__name__
        try:
            return self.error_classes.index(name) + 2
        except ValueError:
            self.error_classes.append(name)
            self.error_samples[name] = str(exc.__cause__ if getattr(exc, "error_class", None) and exc.__cause__
                                           else exc)[:300]
            return len(self.error_classes) + 1

    def append(self, op: Op, intended: float, sent: float, done: float, result: int) -> None:
        self.kind.append(KIND_CODE[op.kind])
        self.intended.append(intended)
        self.sent.append(sent)
        self.done.append(done)
        self.result.append(result)
        if op.kind in ("add", "remove", "delete", "create"):
            self.mutations.append((len(self.kind) - 1, op))

    def __len__(self) -> int:
        return len(self.kind)


@dataclass
class Progress:
    """What the live view shows; updated by the driver, read by a ticker task."""

    phase: str = "warm-up"
    scheduled: int = 0
    completed: int = 0
    errors: int = 0
    late: int = 0
    elapsed_s: float = 0.0
    total_s: float = 0.0
    achieved_rate: float = 0.0


@dataclass
class RunWindow:
    model: str
    start: float  # perf_counter of the first intended start
    measure_start: float  # end of warm-up
    measure_end: float
    offered_rate: float | None
    concurrency: int
    late_threshold_s: float
    scheduled: int = 0
    unsent: int = 0
    unfinished: int = 0
    drain_deadline: float = 0.0


async def _execute_one(execute: Execute, op: Op, log: OpLog, intended: float, progress: Progress,
                       late_threshold: float) -> None:
    sent = time.perf_counter()
    try:
        res = OK if await execute(op) else NOT_FOUND
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # an error is a measurement, not a crash
        res = log.error_code(exc)
        progress.errors += 1
    done = time.perf_counter()
    log.append(op, intended, sent, done, res)
    progress.completed += 1
    if sent - intended > late_threshold:
        progress.late += 1


def _arrival_offsets(load: Load, seed: int) -> list[float]:
    assert load.rate is not None
    total = load.warmup_seconds + load.duration_seconds
    n = int(load.rate * total)
    if load.arrival == "constant":
        step = 1.0 / load.rate
        return [i * step for i in range(n)]
    rng = random.Random(f"{seed}/arrivals")
    out, t = [], 0.0
    while True:
        t += rng.expovariate(load.rate)
        if t >= total:
            return out
        out.append(t)


async def run_open_loop(execute: Execute, ops: Iterator[Op], load: Load, *, seed: int,
                        progress: Progress | None = None, late_threshold_s: float = 0.001,
                        spin_s: float = 0.002, drain_timeout_s: float | None = None,
                        start_at: float | None = None) -> tuple[OpLog, RunWindow]:
    """``start_at``: the ``perf_counter`` instant of the first intended start (default: 50 ms from
    now), so a caller can schedule other events (a fault) on the same clock."""
    progress = progress or Progress()
    log = OpLog()
    offsets = _arrival_offsets(load, seed)
    queue: asyncio.Queue[tuple[float, Op] | None] = asyncio.Queue()
    base = start_at if start_at is not None else time.perf_counter() + 0.05
    win = RunWindow("open", base, base + load.warmup_seconds, base + load.warmup_seconds + load.duration_seconds,
                    load.rate, load.concurrency, late_threshold_s, scheduled=len(offsets))
    progress.total_s = load.warmup_seconds + load.duration_seconds
    drain = drain_timeout_s if drain_timeout_s is not None else max(5.0, 0.2 * load.duration_seconds)
    win.drain_deadline = win.measure_end + drain
    current: dict[int, tuple[float, Op]] = {}  # worker -> the operation it is sending

    async def worker(w: int) -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            current[w] = item
            await _execute_one(execute, item[1], log, item[0], progress, late_threshold_s)
            del current[w]

    async def dispatcher() -> None:
        perf = time.perf_counter
        for off in offsets:
            t = base + off
            while True:
                d = t - perf()
                if d <= 0:
                    break
                await asyncio.sleep(d - spin_s if d > spin_s else 0)
            queue.put_nowait((t, next(ops)))
            progress.scheduled += 1
        for _ in range(load.concurrency):
            queue.put_nowait(None)

    workers = [asyncio.create_task(worker(w)) for w in range(load.concurrency)]
    disp = asyncio.create_task(dispatcher())
    try:
        await disp
        remaining = max(0.0, win.drain_deadline - time.perf_counter())
        _, pending = await asyncio.wait(workers, timeout=remaining)
        if pending:
            # Overload: count what never went out and what was still in flight at the deadline.
            backlog = [item for item in _drain_queue(queue) if item is not None]
            for w in pending:
                w.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            in_flight = list(current.values())
            win.unsent, win.unfinished = len(backlog), len(in_flight)
            # kept in the intended-start distribution at their lower bound (the deadline), as errors
            deadline = win.drain_deadline
            for intended, op in backlog:
                log.append(op, intended, deadline, deadline, log.error_code(NotSent(UNSENT)))
            for intended, op in in_flight:
                log.append(op, intended, intended, deadline, log.error_code(NotFinished(UNFINISHED)))
    finally:
        for t in [disp, *workers]:
            if not t.done():
                t.cancel()
        await asyncio.gather(disp, *workers, return_exceptions=True)
    return log, win


class NotSent(Exception):
    pass


class NotFinished(Exception):
    pass


def _drain_queue(q: asyncio.Queue[Any]) -> list[Any]:
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except asyncio.QueueEmpty:
            return out


async def run_closed_loop(execute: Execute, ops: Iterator[Op], load: Load, *, progress: Progress | None = None,
                          ) -> tuple[OpLog, RunWindow]:
    """``concurrency`` workers, each sending its next operation as soon as the previous one returns."""
    progress = progress or Progress()
    log = OpLog()
    base = time.perf_counter()
    end = base + load.warmup_seconds + load.duration_seconds
    win = RunWindow("closed", base, base + load.warmup_seconds, end, None, load.concurrency, float("inf"))
    progress.total_s = load.warmup_seconds + load.duration_seconds

    async def worker() -> None:
        perf = time.perf_counter
        while perf() < end:
            op = next(ops)
            progress.scheduled += 1
            await _execute_one(execute, op, log, perf(), progress, float("inf"))

    await asyncio.gather(*(worker() for _ in range(load.concurrency)))
    win.scheduled = len(log)
    return log, win


async def run(execute: Execute, ops: Iterator[Op], load: Load, *, seed: int,
              progress: Progress | None = None) -> tuple[OpLog, RunWindow]:
    if load.model == "open":
        return await run_open_loop(execute, ops, load, seed=seed, progress=progress)
    return await run_closed_loop(execute, ops, load, progress=progress)


async def tick_progress(progress: Progress, start: float, warmup_s: float,
                        on_tick: Callable[[Progress], None], every_s: float = 0.25) -> None:
    """Refresh ``progress`` derived fields and call ``on_tick`` until cancelled (not on the hot path)."""
    last_n, last_t = 0, time.perf_counter()
    while True:
        await asyncio.sleep(every_s)
        now = time.perf_counter()
        progress.elapsed_s = now - start
        progress.phase = "warm-up" if progress.elapsed_s < warmup_s else "measuring"
        if progress.elapsed_s > progress.total_s:
            progress.phase = "draining"
        progress.achieved_rate = (progress.completed - last_n) / max(now - last_t, 1e-9)
        last_n, last_t = progress.completed, now
        on_tick(progress)


def install_event_loop_policy() -> str:
    """Use uvloop where available; return the loop's name for the results document."""
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        return f"uvloop {uvloop.__version__}"
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux/macOS
        return "asyncio"

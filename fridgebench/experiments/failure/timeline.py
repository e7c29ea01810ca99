"""The run as a per-100 ms timeline, and the recovery figures read from it.

Every operation is placed in the 100 ms bucket of its *intended* start (the open loop's schedule):
a bucket says what the users who arrived in those 100 ms experienced -- how many were served, how
many got which error, and their latency from the intended start (coordinated-omission corrected:
a request that waited 3 s for a hung server shows 3 s, in the bucket it arrived in). Percentiles
are exact (nearest rank over the bucket's latencies).

Recovery figures (all relative to the fault's instants, resolution: the operations themselves,
so well under the 100 ms of a bucket):

* **error window** -- from the first to the last failed operation (by completion);
* **first success after heal** -- from the heal to the first operation *sent* after it that
  succeeded: a real session operation, not a PING (Redis answers PING while it still answers
  ``-LOADING`` to everything else; PostgreSQL refuses connections with 57P03 during crash recovery);
* **p99 back to normal** -- from the heal to the first bucket from which the next 500 ms of
  arrivals had no error and a p99 within 1.5x of the pre-fault p99 (every arrival before the fault):
  a window of a few hundred operations, so one slow request on a busy machine does not decide it;
  stepped by 100 ms;
* **during the fault** -- operations that arrived between injection and heal: error rate, p99,
  the longest wait (the hang's length, when the client has no timeout).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fridgebench.engine.driver import NOT_FOUND, OK, OpLog, RunWindow

BUCKET_S = 0.1
RECOVERED_RATIO = 1.5
RECOVERED_BUCKETS = 5  # the window judged at each 100 ms step: 500 ms of arrivals


def _pct(sorted_xs: list[float], q: float) -> float | None:
    if not sorted_xs:
        return None
    return sorted_xs[min(len(sorted_xs) - 1, max(0, math.ceil(q * len(sorted_xs)) - 1))]


@dataclass
class _Row:
    intended: float
    sent: float
    done: float
    result: int


def _rows(log: OpLog, t0: float, t1: float) -> list[_Row]:
    return [_Row(log.intended[i], log.sent[i], log.done[i], log.result[i])
            for i in range(len(log)) if t0 <= log.intended[i] < t1]


def _latency_us(r: _Row) -> float:
    return max(1.0, (r.done - r.intended) * 1e6)


def _window_stats(rows: list[_Row], log: OpLog) -> dict[str, Any]:
    lat = sorted(_latency_us(r) for r in rows)
    errs = [r for r in rows if r.result >= 2]
    by_class: dict[str, int] = {}
    for r in errs:
        name = log.error_classes[r.result - 2]
        by_class[name] = by_class.get(name, 0) + 1
    service = [(r.done - r.sent) for r in rows]
    return {
        "operations": len(rows),
        "ok": sum(r.result == OK for r in rows),
        "not_found": sum(r.result == NOT_FOUND for r in rows),
        "errors": len(errs),
        "error_rate": round(len(errs) / len(rows), 4) if rows else None,
        "errors_by_class": by_class,
        "p50_us": _round(_pct(lat, 0.50)), "p99_us": _round(_pct(lat, 0.99)), "max_us": _round(lat[-1] if lat else None),
        "longest_wait_s": round(max(service), 3) if service else None,
    }


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


def timeline(log: OpLog, win: RunWindow, inject: float, heal: float) -> dict[str, Any]:
    """The per-100 ms timeline and the recovery figures of one run (times relative to the end of
    warm-up; ``inject`` / ``heal`` are ``perf_counter`` instants)."""
    t0, t1 = win.measure_start, win.measure_end
    n = max(1, int(round((t1 - t0) / BUCKET_S)))
    buckets: list[list[_Row]] = [[] for _ in range(n)]
    rows = _rows(log, t0, t1)
    for r in rows:
        buckets[min(n - 1, int((r.intended - t0) / BUCKET_S))].append(r)
    series = []
    for i, b in enumerate(buckets):
        lat = sorted(_latency_us(r) for r in b)
        errs: dict[str, int] = {}
        for r in b:
            if r.result >= 2:
                name = log.error_classes[r.result - 2]
                errs[name] = errs.get(name, 0) + 1
        series.append({"t_s": round(i * BUCKET_S, 1), "ops": len(b), "ok": sum(r.result == OK for r in b),
                       "not_found": sum(r.result == NOT_FOUND for r in b), "errors": sum(errs.values()),
                       "errors_by_class": errs, "p50_us": _round(_pct(lat, 0.5)), "p99_us": _round(_pct(lat, 0.99)),
                       "max_us": _round(lat[-1] if lat else None)})

    pre = [r for r in rows if r.intended < inject]
    during = [r for r in rows if inject <= r.intended < heal]
    after = [r for r in rows if r.intended >= heal]
    heal_b = int((heal - t0) / BUCKET_S)
    baseline = _pct(sorted(_latency_us(r) for r in pre), 0.99)

    recovered_s = None
    if baseline is not None:
        limit = RECOVERED_RATIO * baseline
        for i in range(max(0, heal_b), n - RECOVERED_BUCKETS + 1):
            window = [r for b in buckets[i:i + RECOVERED_BUCKETS] for r in b]
            p99 = _pct(sorted(_latency_us(r) for r in window), 0.99)
            if window and p99 is not None and p99 <= limit and all(r.result < 2 for r in window):
                recovered_s = round(max(0.0, t0 + i * BUCKET_S - heal), 3)
                break

    failed_done = sorted(log.done[i] for i in range(len(log)) if log.result[i] >= 2 and t0 <= log.intended[i] < t1)
    first_ok_after_heal = min((r.done for r in rows if r.sent >= heal and r.result in (OK, NOT_FOUND)), default=None)
    served_during = sum(1 for i in range(len(log)) if inject <= log.done[i] < heal and log.result[i] in (OK, NOT_FOUND))
    rel = lambda t: round(t - t0, 3)  # noqa: E731
    return {
        "bucket_s": BUCKET_S,
        "inject_s": rel(inject), "heal_s": rel(heal), "fault_seconds": round(heal - inject, 3),
        "series": series,
        "before": _window_stats(pre, log), "during": _window_stats(during, log), "after": _window_stats(after, log),
        "recovery": {
            "error_window": ({"first_s": rel(failed_done[0]), "last_s": rel(failed_done[-1]),
                              "seconds": round(failed_done[-1] - failed_done[0], 3),
                              "last_after_heal_s": round(failed_done[-1] - heal, 3)} if failed_done else None),
            "first_success_after_heal_s": round(first_ok_after_heal - heal, 4) if first_ok_after_heal else None,
            "answered_during_fault": served_during,  # requests completed without error between injection and heal
            "baseline_p99_us": _round(baseline),
            "p99_back_within_1_5x_after_heal_s": recovered_s,
            "p99_definition": (f"from the heal to the first {int(BUCKET_S * 1000)} ms bucket from which the next "
                               f"{int(RECOVERED_BUCKETS * BUCKET_S * 1000)} ms of arrivals had no error and a p99 <= "
                               f"{RECOVERED_RATIO}x the pre-fault p99"),
        },
    }


def interval_histograms(log: OpLog, win: RunWindow) -> list[tuple[float, float, Any]]:
    """Per-100 ms HdrHistograms (µs, latency from the intended start) for the interval log."""
    from fridgebench.measure.summary import new_histogram

    t0, t1 = win.measure_start, win.measure_end
    n = max(1, int(round((t1 - t0) / BUCKET_S)))
    hs = [new_histogram() for _ in range(n)]
    for i in range(len(log)):
        it = log.intended[i]
        if t0 <= it < t1:
            hs[min(n - 1, int((it - t0) / BUCKET_S))].record_value(max(1, int((log.done[i] - it) * 1e6)))
    return [(round(i * BUCKET_S, 1), round((i + 1) * BUCKET_S, 1), h) for i, h in enumerate(hs)]


def hlog_text(intervals: list[tuple[float, float, Any]], start_epoch_s: float, tag: str) -> str:
    """An HdrHistogram interval log (format 1.2, µs) with 100 ms intervals."""
    import io

    from hdrh.log import HistogramLogWriter

    buf = io.StringIO()
    w = HistogramLogWriter(buf)
    w.output_comment(f"[fridgebench failure {tag}: latency from intended start, microseconds, 100 ms intervals]")
    w.output_log_format_version()
    buf.write(f"#[StartTime: {start_epoch_s:.3f} (seconds since epoch)]\n")
    w.output_legend()
    for a, b, h in intervals:
        if h.get_total_count():
            w.output_interval_histogram(h, start_time_stamp_sec=a or 1e-9, end_time_stamp_sec=b,
                                        max_value_unit_ratio=1.0)
    return buf.getvalue()

"""Turn a driver's raw operation log into the figures a results document holds.

Latency is recorded in microseconds into HdrHistograms (3 significant digits: no millisecond
buckets), per operation, twice: from the intended start (coordinated-omission corrected) and
from the actual send (service time). Warm-up operations (intended before the end of warm-up)
are excluded. A per-second interval series is kept for plots and noise checks.
"""

from __future__ import annotations

import io
import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogWriter

from fridgebench.engine.driver import NOT_FOUND, OK, OpLog, RunWindow
from fridgebench.measure.hlog import counts_array
from fridgebench.workload.model import OP_KINDS

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
LOWEST_US, HIGHEST_US, SIG_DIGITS = 1, 600_000_000, 3


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIG_DIGITS)


def mean_value(h: HdrHistogram) -> float:
    """``h.get_mean_value()``, exactly (the same sum, in the same integers), without its walk over every bucket
    below the maximum: hdrh's recorded-value iterator visits ~20,000 empty buckets in Python for a histogram
    of a few milliseconds (0.27 s a call: most of the CPU of summarizing a run). Only the non-empty ones count."""
    if not h.total_count:
        return 0.0
    counts = counts_array(h)
    idx = np.flatnonzero(counts)
    # hdrh's get_value_from_index, for every non-empty index at once: the bucket's lowest value, and the
    # middle of its equivalent range (_hdr_median_equiv_value: a bucket's values share one range width)
    bucket = (idx >> h.sub_bucket_half_count_magnitude) - 1
    sub = (idx & (h.sub_bucket_half_count - 1)) + h.sub_bucket_half_count
    first = bucket < 0
    sub = np.where(first, sub - h.sub_bucket_half_count, sub)
    shift = np.where(first, 0, bucket) + h.unit_magnitude
    median = (sub.astype(np.int64) << shift) + ((np.int64(1) << shift) >> 1)
    n = counts[idx].astype(np.int64)
    if int(median.max()) * int(h.total_count) < 2**62:  # the int64 sum cannot overflow
        total = int(np.dot(n, median))
    else:
        total = sum(int(c) * int(m) for c, m in zip(n.tolist(), median.tolist()))
    return float(total) / h.total_count


def value_at_percentile(h: HdrHistogram, percentile: float) -> int:
    """``h.get_value_at_percentile(percentile)``, exactly, with a cumulative sum instead of hdrh's Python loop
    over the counts (1 ms a call; a run asks it twice per operation per second)."""
    return values_at_percentiles(h, (percentile,))[percentile]


def values_at_percentiles(h: HdrHistogram, percentiles: tuple[float, ...]) -> dict[float, int]:
    """``h.get_percentile_to_value_dict(percentiles)``, exactly, over one cumulative sum."""
    cum = np.cumsum(counts_array(h), dtype=np.uint64)
    out: dict[float, int] = {}
    for percentile in percentiles:
        i = int(np.searchsorted(cum, h.get_target_count_at_percentile(percentile), side="left"))
        if i >= cum.size:
            out[percentile] = 0
            continue
        v = h.get_value_from_index(i)
        out[percentile] = int(h.get_highest_equivalent_value(v) if percentile else h.get_lowest_equivalent_value(v))
    return out


def latency_summary(h: HdrHistogram) -> dict[str, float | int]:
    if h.get_total_count() == 0:
        return {"count": 0}
    pct = values_at_percentiles(h, PERCENTILES)
    return {
        "count": h.get_total_count(),
        "p50_us": pct[50.0], "p90_us": pct[90.0], "p99_us": pct[99.0], "p99_9_us": pct[99.9],
        "max_us": h.get_max_value(), "min_us": h.get_min_value(), "mean_us": round(mean_value(h), 1),
    }


@dataclass
class StoreMeasurement:
    """Everything measured for one store in one run."""

    ops: dict[str, dict[str, Any]]
    overall: dict[str, Any]
    intervals: list[dict[str, Any]]
    errors: dict[str, dict[str, Any]]
    histograms: dict[str, dict[str, HdrHistogram]] = field(repr=False, default_factory=dict)
    interval_histograms: list[tuple[float, float, dict[str, HdrHistogram]]] = field(repr=False, default_factory=list)
    warmup_intervals: list[dict[str, Any]] = field(default_factory=list)  # t_s < 0; excluded from every figure

    def to_dict(self) -> dict[str, Any]:
        return {"ops": self.ops, "overall": self.overall, "intervals": self.intervals, "errors": self.errors,
                "warmup_intervals": self.warmup_intervals}


def summarize(log: OpLog, win: RunWindow) -> StoreMeasurement:
    n = len(log)
    kinds, intended, sent, done, result = log.kind, log.intended, log.sent, log.done, log.result
    t0, t1 = win.measure_start, win.measure_end
    duration = t1 - t0
    hist: dict[str, dict[str, HdrHistogram]] = {}
    counts: dict[str, dict[str, int]] = {}
    err_by_class: dict[str, int] = {}
    n_seconds = max(1, int(round(duration)))
    iv_hist: list[dict[str, HdrHistogram]] = [dict() for _ in range(n_seconds)]
    iv_err = [0] * n_seconds
    warmup_ops = 0
    # the warm-up, per second before the measured window (t_s -1, -2, ...): shown on plots, never in figures
    wu_hist: dict[int, dict[str, HdrHistogram]] = {}
    wu_err: dict[int, int] = {}

    for i in range(n):
        it = intended[i]
        if it < t0 or it >= t1:
            if it < t0:
                warmup_ops += 1
                wsec = int((it - t0) // 1)
                wh = wu_hist.setdefault(wsec, {}).get(OP_KINDS[kinds[i]])
                if wh is None:
                    wh = wu_hist[wsec][OP_KINDS[kinds[i]]] = new_histogram()
                wh.record_value(max(1, int((done[i] - it) * 1e6)))
                if result[i] >= 2:
                    wu_err[wsec] = wu_err.get(wsec, 0) + 1
            continue
        kind = OP_KINDS[kinds[i]]
        hs = hist.get(kind)
        if hs is None:
            hs = hist[kind] = {"intended": new_histogram(), "service": new_histogram(), "dispatch_lag": new_histogram()}
            counts[kind] = {"count": 0, "ok": 0, "not_found": 0, "errors": 0, "late": 0}
        c = counts[kind]
        c["count"] += 1
        r = result[i]
        lat_int = max(1, int((done[i] - it) * 1e6))
        lag = sent[i] - it
        if lag > win.late_threshold_s:
            c["late"] += 1
        if r == OK or r == NOT_FOUND:
            c["ok" if r == OK else "not_found"] += 1
            hs["service"].record_value(max(1, int((done[i] - sent[i]) * 1e6)))
            hs["dispatch_lag"].record_value(max(1, int(lag * 1e6)))
        else:
            c["errors"] += 1
            name = log.error_classes[r - 2]
            err_by_class[name] = err_by_class.get(name, 0) + 1
        hs["intended"].record_value(lat_int)
        sec = min(int(it - t0), n_seconds - 1)
        ih = iv_hist[sec].get(kind)
        if ih is None:
            ih = iv_hist[sec][kind] = new_histogram()
        ih.record_value(lat_int)
        if r >= 2:
            iv_err[sec] += 1

    ops: dict[str, dict[str, Any]] = {}
    total = new_histogram()
    total_service = new_histogram()
    for kind, hs in hist.items():
        c = counts[kind]
        total.add(hs["intended"])
        total_service.add(hs["service"])
        ops[kind] = {
            **c,
            "throughput_per_s": round((c["ok"] + c["not_found"]) / duration, 2),
            "latency_intended": latency_summary(hs["intended"]),
            "latency_service": latency_summary(hs["service"]),
            "dispatch_lag": latency_summary(hs["dispatch_lag"]),
        }
    completed = sum(c["ok"] + c["not_found"] for c in counts.values())
    intervals = [_interval(s, by_kind, iv_err[s]) for s, by_kind in enumerate(iv_hist)]
    warmup_intervals = [_interval(s, wu_hist[s], wu_err.get(s, 0)) for s in sorted(wu_hist)]
    overall = {
        "model": win.model,
        "offered_rate_per_s": win.offered_rate,
        "concurrency": win.concurrency,
        "measured_seconds": round(duration, 3),
        "warmup_ops_excluded": warmup_ops,
        "operations": sum(c["count"] for c in counts.values()),
        "completed": completed,
        "throughput_per_s": round(completed / duration, 2),
        "errors": sum(c["errors"] for c in counts.values()),
        "late_sends": sum(c["late"] for c in counts.values()),
        "late_threshold_us": None if win.late_threshold_s == float("inf") else int(win.late_threshold_s * 1e6),
        "unsent": win.unsent,
        "unfinished": win.unfinished,
        "latency_intended": latency_summary(total),
        "latency_service": latency_summary(total_service),
        "noise": interval_noise(intervals),
    }
    errors = {name: {"count": cnt, "sample": log.error_samples.get(name, "")} for name, cnt in err_by_class.items()}
    ivh = [(float(s), float(s + 1), by_kind) for s, by_kind in enumerate(iv_hist)]
    return StoreMeasurement(ops, overall, intervals, errors, hist, ivh, warmup_intervals)


def _interval(s: int, by_kind: dict[str, HdrHistogram], errors: int) -> dict[str, Any]:
    """One second: operations, errors, latency from the intended start (all ops, and p50/p99 per op)."""
    merged = new_histogram()
    for h in by_kind.values():
        merged.add(h)
    entry: dict[str, Any] = {"t_s": s, "ops": merged.get_total_count(), "errors": errors}
    if merged.get_total_count():
        entry.update(p50_us=value_at_percentile(merged, 50), p99_us=value_at_percentile(merged, 99),
                     max_us=merged.get_max_value())
    entry["by_op_p50_us"] = {k: value_at_percentile(h, 50) for k, h in by_kind.items()}
    entry["by_op_p99_us"] = {k: value_at_percentile(h, 99) for k, h in by_kind.items()}
    entry["by_op_count"] = {k: h.get_total_count() for k, h in by_kind.items()}
    return entry


def interval_noise(intervals: list[dict[str, Any]]) -> dict[str, Any]:
    """Spread of per-second medians: a run whose medians wander is too noisy to judge on."""
    p50s = [iv["p50_us"] for iv in intervals if iv.get("p50_us")]
    if len(p50s) < 3:
        return {"intervals": len(p50s), "cv_of_p50": None}
    mean = statistics.fmean(p50s)
    cv = statistics.pstdev(p50s) / mean if mean else 0.0
    return {"intervals": len(p50s), "cv_of_p50": round(cv, 3)}


def hdr_log_text(m: StoreMeasurement, kind: str, start_epoch_s: float, tag: str,
                 what: str = "latency from intended start") -> str:
    """An HdrHistogram interval log (format 1.2) of one operation's latency (``what`` names which)."""
    buf = io.StringIO()
    w = HistogramLogWriter(buf)
    w.output_comment(f"[fridgebench {tag} op={kind} {what}, microseconds]")
    w.output_log_format_version()
    buf.write(f"#[StartTime: {start_epoch_s:.3f} (seconds since epoch)]\n")
    w.output_legend()
    for a, b, by_kind in m.interval_histograms:
        h = by_kind.get(kind)
        if h is not None and h.get_total_count():
            w.output_interval_histogram(h, start_time_stamp_sec=a or 1e-9, end_time_stamp_sec=b,
                                        max_value_unit_ratio=1.0)
    return buf.getvalue()

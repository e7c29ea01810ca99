"""Synthetic runs with known answers: real results documents and HdrHistogram logs, written the way
`fridgebench compare` writes them, from latency samples the test chooses (a normal module)."""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import numpy as np
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogWriter

from fridgebench.measure.results import Environment, ResultsDocument, RunDirectory, RunGroup
from fridgebench.measure.summary import latency_summary, new_histogram, value_at_percentile

Sampler = Callable[[np.random.Generator, str, str, int], np.ndarray]  # (rng, store, op, n) -> latencies in µs

SCENARIO = {"name": "synthetic", "description": "known answers", "seed": 1, "ttl_seconds": 86400,
            "population": {"sessions": 1000, "ingredients": [0, 5]},
            "load": {"model": "open", "rate": 1000.0, "concurrency": 8, "warmup_seconds": 1.0,
                     "duration_seconds": 10.0}, "source": "/somewhere/synthetic.toml"}
SERVERS = [{"kind": "postgres", "source": "embedded", "version": "18.6",
            "durability": {"fsync": "on", "synchronous_commit": "on"}},
           {"kind": "redis", "source": "embedded", "version": "7.2.4", "durability": {"appendonly": "no"}}]


def lognormal(median_us: dict[tuple[str, str], float], sigma: float = 0.3) -> Sampler:
    def draw(rng: np.random.Generator, store: str, op: str, n: int) -> np.ndarray:
        return median_us[(store, op)] * np.exp(rng.normal(0.0, sigma, n))
    return draw


def record(h: HdrHistogram, values: np.ndarray) -> None:
    """``h.record_value(v)`` for every value, at once: hdrh's own index arithmetic (``_counts_index_for``)
    on the whole array, then one ``bincount`` into its counts (its per-value Python call was most of the
    time of writing a synthetic run, and the gate's and report's tests write hundreds)."""
    v = values.astype(np.int64)
    bits = np.frexp((v | h.sub_bucket_mask).astype(np.float64))[1]  # bit length: exact below 2**53
    bucket = bits - h.unit_magnitude - (h.sub_bucket_half_count_magnitude + 1)
    idx = ((bucket + 1) << h.sub_bucket_half_count_magnitude) + ((v >> (bucket + h.unit_magnitude))
                                                                  - h.sub_bucket_half_count)
    counts = np.ctypeslib.as_array(h.counts)
    counts += np.bincount(idx, minlength=counts.size)[:counts.size].astype(counts.dtype)
    h.total_count += int(v.size)
    h.min_value = min(h.min_value, int(v.min()))
    h.max_value = max(h.max_value, int(v.max()))


def write_run(root: Path, sampler: Sampler, *, seed: int, seconds: int = 10, per_second: dict[str, int] | None = None,
              stores: tuple[str, ...] = ("postgres", "redis-atomic"), scenario: dict | None = None,
              servers: list[dict] | None = None, cpu_model: str = "Synthetic CPU", driver_lag_p99_us: int = 40,
              group: RunGroup | None = None, started: datetime | None = None,
              machine: dict[str, float] | None = None) -> Path:
    """One finished run folder: results.json (format 2) + <store>.<op>.hlog, latencies from ``sampler``;
    ``machine``: each store's machine probe (``cpu_us``, ``flush_us``), as compare records it."""
    per_second = per_second or {"get": 300, "add": 120}
    rng = np.random.default_rng(seed)
    started = started or datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=seed)
    run_id = f"{started:%Y%m%dT%H%M%SZ}-compare-{seed:06x}"
    env = Environment(hostname="synth", platform="Linux", cpu_model=cpu_model, cpu_count=2, memory_bytes=24 * 2**30,
                      python="3.11", fridgebench="test", event_loop="uvloop 0.23", servers=servers or SERVERS)
    sec_stores = {}
    with RunDirectory(root, run_id) as rd:
        for store in stores:
            ops, intervals = {}, []
            per_sec_h: list[dict[str, object]] = [dict() for _ in range(seconds)]
            for op, n in per_second.items():
                total = new_histogram()
                for s in range(seconds):
                    h = new_histogram()
                    record(h, np.maximum(1, sampler(rng, store, op, n).astype(np.int64)))
                    per_sec_h[s][op] = h
                    total.add(h)
                li = latency_summary(total)
                ops[op] = {"count": n * seconds, "ok": n * seconds, "not_found": 0, "errors": 0, "late": 0,
                           "throughput_per_s": float(n), "latency_intended": li, "latency_service": li,
                           "dispatch_lag": {"count": 0}}
                buf = io.StringIO()
                w = HistogramLogWriter(buf)
                w.output_log_format_version()
                w.output_legend()
                for s in range(seconds):
                    w.output_interval_histogram(per_sec_h[s][op], start_time_stamp_sec=s or 1e-9,
                                                end_time_stamp_sec=s + 1, max_value_unit_ratio=1.0)
                rd.write_text_atomic(f"{store}.{op}.hlog", buf.getvalue())
            for s in range(seconds):
                merged = new_histogram()
                for h in per_sec_h[s].values():
                    merged.add(h)  # type: ignore[arg-type]
                intervals.append({"t_s": s, "ops": merged.get_total_count(), "errors": 0,
                                  "p50_us": value_at_percentile(merged, 50),
                                  "p99_us": value_at_percentile(merged, 99), "max_us": merged.get_max_value(),
                                  "by_op_p50_us": {k: value_at_percentile(h, 50) for k, h in per_sec_h[s].items()},  # type: ignore[arg-type]
                                  "by_op_p99_us": {k: value_at_percentile(h, 99) for k, h in per_sec_h[s].items()},  # type: ignore[arg-type]
                                  "by_op_count": {k: h.get_total_count() for k, h in per_sec_h[s].items()}})  # type: ignore[attr-defined]
            overall = {"model": "open", "offered_rate_per_s": 1000.0, "concurrency": 8, "measured_seconds": seconds,
                       "operations": sum(o["count"] for o in ops.values()), "completed": 0, "throughput_per_s": 0.0,
                       "errors": 0, "late_sends": 0, "late_threshold_us": 1000, "unsent": 0, "unfinished": 0,
                       "latency_intended": ops[next(iter(ops))]["latency_intended"],
                       "latency_service": ops[next(iter(ops))]["latency_intended"],
                       "noise": {"intervals": seconds, "cv_of_p50": 0.05}}
            sec_stores[store] = {"store": store, "ops": ops, "overall": overall, "intervals": intervals,
                                 "warmup_intervals": [], "errors": {},
                                 "correctness": {"adds_checked": 0, "lost_updates": 0}}
            if machine is not None:
                sec_stores[store]["machine"] = dict(machine)
        section = {"stores": sec_stores, "comparisons": [],
                   "driver_overhead": {"rate_per_s": 1000.0,
                                       "dispatch_lag": {"count": 1000, "p50_us": min(5, driver_lag_p99_us) if driver_lag_p99_us < 1000 else driver_lag_p99_us,
                                                        "p90_us": driver_lag_p99_us, "p99_us": driver_lag_p99_us}}}
        doc = ResultsDocument(command="compare", run_id=run_id, started_at=started,
                              finished_at=started + timedelta(seconds=seconds + 5), complete=True, environment=env,
                              scenario=scenario or SCENARIO, seed=1, sections={"compare": section}, group=group)
        rd.finish(doc)
    return rd.path


def write_group(root: Path, sampler: Sampler, n: int, *, seed: int, **kw: object) -> Path:
    """``n`` repeats in one folder, like compare --repeat."""
    gid = f"group-{seed}"
    folder = root / gid
    for i in range(n):
        write_run(folder, sampler, seed=seed * 100 + i, group=RunGroup(id=gid, index=i, count=n,
                                                                        order=["postgres", "redis-atomic"]), **kw)  # type: ignore[arg-type]
    return folder

"""The ``load`` section of a results document, built from the master's merged measurements.

Per store: per-operation µs percentiles and throughput over the measured window (whole
seconds after ramp-up and warm-up), errors, the per-second series, every request of the phase
counted three ways (fridgebench's histograms, each process's own tally, Locust's statistics)
beside what the server itself counted, the lost-update check, and each load-generating
process's CPU use with a plain verdict on what limited the throughput.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

from fridgebench.load.recorder import Aggregate
from fridgebench.measure.summary import (StoreMeasurement, interval_noise, latency_summary, new_histogram,
                                         value_at_percentile)
from fridgebench.workload.model import OP_KINDS

MEASUREMENT_NOTE = ("Locust users are closed loops: each sends its next request when the previous reply "
                    "arrived (and its pacing allows). Latency is measured from the actual send to the reply "
                    "(service time); coordinated omission is NOT corrected — a stalled store delays the "
                    "requests that would have been sent meanwhile instead of showing them as slow. "
                    "`fridgebench compare` measures from the intended start (open loop).")
GENERATOR_CPU_LIMIT = 90.0  # % of one core: a Locust process (one Python thread) is saturated above this
ACHIEVED_SHORTFALL = 0.95  # achieved below 95% of the offered rate: something was the limit


@dataclass
class Phase:
    """What the conductor knows about one store's run besides the measurements."""

    store: str
    users: int
    spawn_rate: float
    offered_rate: float | None
    window: tuple[int, int]  # measured wall-clock seconds [t0, t1)
    ramp_up_s: float
    warmup_s: float
    populate_s: float
    counters_before: dict[str, int] = field(default_factory=dict)
    counters_after: dict[str, int] = field(default_factory=dict)
    correctness: dict[str, Any] = field(default_factory=dict)
    locust_requests: dict[str, dict[str, int]] = field(default_factory=dict)
    host_cpu_percent: float | None = None
    master_cpu: dict[str, Any] = field(default_factory=dict)
    locust_cpu_warning: bool = False
    workers: list[str] = field(default_factory=list)
    missing_reports: list[str] = field(default_factory=list)


def _window_histograms(agg: Aggregate, store: str, t0: int, t1: int) -> tuple[dict[str, HdrHistogram],
                                                                              list[tuple[float, float, dict[str, HdrHistogram]]]]:
    per_op: dict[str, HdrHistogram] = {}
    per_sec: dict[int, dict[str, HdrHistogram]] = {s: {} for s in range(t0, t1)}
    for (sec, s, op), h in agg.hist.items():
        if s != store or not t0 <= sec < t1:
            continue
        per_op.setdefault(op, new_histogram()).add(h)
        per_sec[sec][op] = h
    return per_op, [(float(sec - t0), float(sec - t0 + 1), per_sec[sec]) for sec in range(t0, t1)]


def store_measurement(agg: Aggregate, phase: Phase) -> StoreMeasurement:
    """The measured window's figures (the shape ``compare`` uses, so the same writers apply)."""
    store, (t0, t1) = phase.store, phase.window
    seconds = t1 - t0
    per_op, iv_hist = _window_histograms(agg, store, t0, t1)
    counts: dict[str, list[int]] = {}
    errors_by_sec: dict[int, int] = {}
    for (sec, s, op), (ok, nf, err) in agg.counts.items():
        if s == store and t0 <= sec < t1:
            c = counts.setdefault(op, [0, 0, 0])
            c[0] += ok
            c[1] += nf
            c[2] += err
            errors_by_sec[sec] = errors_by_sec.get(sec, 0) + err
    ops: dict[str, dict[str, Any]] = {}
    total = new_histogram()
    for op in OP_KINDS:
        if op not in counts:
            continue
        ok, nf, err = counts[op]
        h = per_op.get(op, new_histogram())
        total.add(h)
        ops[op] = {"count": ok + nf + err, "ok": ok, "not_found": nf, "errors": err,
                   "throughput_per_s": round((ok + nf) / seconds, 2), "latency_service": latency_summary(h)}
    intervals = []
    for sec in range(t0, t1):
        merged = new_histogram()
        by_op: dict[str, int] = {}
        for op, h in iv_hist[sec - t0][2].items():
            merged.add(h)
            by_op[op] = value_at_percentile(h, 50)
        n_err = errors_by_sec.get(sec, 0)
        entry: dict[str, Any] = {"t_s": sec - t0, "ops": merged.get_total_count() + n_err, "errors": n_err}
        if merged.get_total_count():
            entry.update(p50_us=value_at_percentile(merged, 50), p99_us=value_at_percentile(merged, 99),
                         max_us=merged.get_max_value())
        entry["by_op_p50_us"] = by_op
        intervals.append(entry)
    completed = sum(o["ok"] + o["not_found"] for o in ops.values())
    merged_errors: dict[str, dict[str, Any]] = {}
    for (s, _op, cls), (n, sample) in agg.errors.items():
        if s == store:
            e = merged_errors.setdefault(cls, {"count": 0, "sample": sample})
            e["count"] += n
    achieved = round(completed / seconds, 2)
    overall = {
        "model": "closed loop per user (Locust)",
        "users": phase.users,
        "spawn_rate_per_s": phase.spawn_rate,
        "offered_rate_per_s": phase.offered_rate,
        "achieved_rate_per_s": achieved,
        "achieved_vs_offered": round(achieved / phase.offered_rate, 3) if phase.offered_rate else None,
        "measured_seconds": seconds,
        "measured_from_epoch": t0,
        "ramp_up_seconds": round(phase.ramp_up_s, 3),
        "warmup_seconds": phase.warmup_s,
        "operations": sum(o["count"] for o in ops.values()),
        "completed": completed,
        "throughput_per_s": achieved,
        "errors": sum(o["errors"] for o in ops.values()),
        "latency_service": latency_summary(total),
        "noise": interval_noise(intervals),
    }
    return StoreMeasurement(ops, overall, intervals, merged_errors, {op: {"service": h} for op, h in per_op.items()},
                            iv_hist)


def requests_total(agg: Aggregate, store: str) -> dict[str, dict[str, int]]:
    """Every request of the phase (ramp-up and warm-up included) per operation: what the servers saw."""
    out: dict[str, dict[str, int]] = {}
    for (_sec, s, op), (ok, nf, err) in agg.counts.items():
        if s != store:
            continue
        c = out.setdefault(op, {"requests": 0, "ok": 0, "not_found": 0, "errors": 0})
        c["ok"] += ok
        c["not_found"] += nf
        c["errors"] += err
        c["requests"] += ok + nf + err
    histogram_count = {op: 0 for op in out}
    for (_sec, s, op), h in agg.hist.items():
        if s == store:
            histogram_count[op] = histogram_count.get(op, 0) + h.get_total_count()
    for op, c in out.items():
        c["in_histograms"] = histogram_count.get(op, 0)  # replies (errors are counted, not timed)
    return dict(sorted(out.items(), key=lambda kv: OP_KINDS.index(kv[0])))


def generator_verdict(m: StoreMeasurement, phase: Phase, processes: list[dict[str, Any]]) -> dict[str, Any]:
    """Say what limited the achieved rate: the load generator, the machine, the users' closed loops,
    or the store. A Locust process (one Python thread) is short of CPU when it used, or waited to use,
    nearly a whole core."""
    o = m.overall
    busiest = max((p["cpu_percent"] or 0.0 for p in processes), default=0.0)
    wanted = max(((p["cpu_percent"] or 0.0) + (p.get("cpu_wait_percent") or 0.0) for p in processes), default=0.0)
    waited = max((p.get("cpu_wait_percent") or 0.0 for p in processes), default=0.0)
    locust_warned = phase.locust_cpu_warning or any(p.get("locust_cpu_warning") for p in processes)
    host = phase.host_cpu_percent
    mean_us = o["latency_service"].get("mean_us") or 0.0
    users_ceiling = round(phase.users / (mean_us / 1e6), 1) if mean_us else None
    offered = phase.offered_rate
    achieved = o["achieved_rate_per_s"]
    short = offered is not None and achieved < ACHIEVED_SHORTFALL * offered
    if busiest >= GENERATOR_CPU_LIMIT or locust_warned:
        limit = "load generator"
        text = (f"a load-generating process used {busiest:.0f}% of a core (a Locust process uses one core at most): "
                "the generator, not the store, was the limit — latencies include its own queueing; add --processes "
                "or machines")
    elif wanted >= GENERATOR_CPU_LIMIT or (host is not None and host >= GENERATOR_CPU_LIMIT and waited >= 10):
        limit = "machine"
        text = (f"a load-generating process used {busiest:.0f}% of a core and waited {waited:.0f}% of the time for "
                f"one{f' (the machine was {host:.0f}% busy)' if host is not None else ''}: generator and servers "
                "competed for the CPUs — these figures are the machine's limit, not the store's")
    elif short and users_ceiling is not None and users_ceiling < offered * ACHIEVED_SHORTFALL:  # type: ignore[operator]
        limit = "users"
        text = (f"{phase.users} closed-loop users at a mean {mean_us:,.0f} µs per request can send at most "
                f"~{users_ceiling:,.0f}/s, below the {offered:g}/s offered: add --users")
    elif short:
        limit = "store"
        text = (f"achieved {achieved:,.0f}/s of {offered:g}/s offered with the generator below "
                f"{GENERATOR_CPU_LIMIT:.0f}% CPU: the store was the limit")
    elif offered is None:
        limit = "store"
        text = (f"back to back: {achieved:,.0f}/s is what {phase.users} users got from the store, the generator "
                f"below {GENERATOR_CPU_LIMIT:.0f}% CPU")
    else:
        limit = None
        text = f"achieved {achieved:,.0f}/s of {offered:g}/s offered: nothing was the limit"
    if limit not in ("machine",) and host is not None and host >= GENERATOR_CPU_LIMIT:
        text += f"; the master's machine was {host:.0f}% busy (all cores)"
    return {"limit": limit, "verdict": text, "busiest_process_cpu_percent": round(busiest, 1),
            "busiest_process_cpu_wait_percent": round(waited, 1), "users_ceiling_per_s": users_ceiling,
            "host_cpu_percent": host}


def store_section(agg: Aggregate, phase: Phase) -> tuple[dict[str, Any], StoreMeasurement, list[str]]:
    """One store's part of the ``load`` section, its measurement (for .hlog files), its warnings."""
    from fridgebench.load.sync_stores import counter_delta

    m = store_measurement(agg, phase)
    worker_requests = agg.worker_requests(phase.store)
    processes = []
    for w in sorted(set(agg.totals) | set(agg.cpu)):
        cpu = agg.cpu.get(w, {}).get(phase.store, {})
        processes.append({"process": w, "where": agg.hosts.get(w, ""), "requests": worker_requests.get(w, 0),
                          "cpu_percent": cpu.get("cpu_percent"), "cpu_wait_percent": cpu.get("cpu_wait_percent"),
                          "cpu_seconds": cpu.get("cpu_seconds"), "locust_cpu_warning": agg.cpu_warning.get(w, False)})
    verdict = generator_verdict(m, phase, processes)
    req = requests_total(agg, phase.store)
    section: dict[str, Any] = {
        "store": phase.store,
        **m.to_dict(),
        "requests_total": req,
        "process_requests": worker_requests,
        "locust_requests": phase.locust_requests,
        "server_counters": {"before": phase.counters_before, "after": phase.counters_after,
                            "delta": counter_delta(phase.counters_before, phase.counters_after)},
        "correctness": phase.correctness,
        "generator": {**verdict, "processes": processes, "master": phase.master_cpu,
                      "missing_final_reports": phase.missing_reports},
        "populate_seconds": round(phase.populate_s, 3),
    }
    if phase.store in agg.cache and sum(agg.cache[phase.store]):
        hits, misses = agg.cache[phase.store]
        section["recipe_cache"] = {"hits": hits, "misses": misses, "hit_ratio": round(hits / (hits + misses), 4)}
    warnings = []
    name, o = phase.store, m.overall
    if verdict["limit"] in ("load generator", "machine"):
        warnings.append(f"{name}: {verdict['verdict']}")
    elif verdict["limit"] in ("users", "store") and phase.offered_rate:
        warnings.append(f"{name}: {verdict['verdict']}")
    if o["errors"]:
        warnings.append(f"{name}: {o['errors']} requests failed in the measured window ({', '.join(m.errors)})")
    if phase.correctness.get("lost_updates"):
        c = phase.correctness
        warnings.append(f"{name}: {c['lost_updates']} of {c['adds_checked']} acknowledged ingredient adds were lost "
                        "(read-modify-write race)")
    cv = o["noise"].get("cv_of_p50")
    if cv is not None and cv > 0.5:
        warnings.append(f"{name}: per-second medians vary a lot (CV {cv:.2f}); the machine may be busy")
    ours = sum(c["requests"] for c in req.values())
    locusts = sum(c["requests"] for c in phase.locust_requests.values())
    tallies = sum(worker_requests.values())
    if not ours == locusts == tallies:
        warnings.append(f"{name}: requests counted by fridgebench ({ours:,}), by each process ({tallies:,}) and by "
                        f"Locust ({locusts:,}) differ: some measurements did not reach the master")
    if phase.missing_reports:
        warnings.append(f"{name}: no final report from {', '.join(phase.missing_reports)}: its last measurements "
                        "are missing from these figures")
    return section, m, warnings

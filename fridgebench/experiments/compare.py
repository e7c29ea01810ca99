"""compare: replay one scenario against each store, measure, check correctness, judge the seed's claims.

Composition only: workload (scenario -> operations), stores (the contract), engine (driving),
measure (histograms, intervals), report.claims (the seed's table). Stores run one after the
other on the same servers with the same population and the same operation sequence.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from fridgebench.engine.driver import OpLog, Progress, run, tick_progress
from fridgebench.measure.summary import StoreMeasurement, summarize
from fridgebench.provision.base import Endpoints
from fridgebench.report.claims import blank_claims, fill
from fridgebench.measure.results import Claim
from fridgebench.stores import SessionStore, make_store
from fridgebench.stores.correctness import LoggedOp, count_lost_updates
from fridgebench.workload.generator import Op, Workload
from fridgebench.workload.model import Load, Scenario

ProgressSink = Callable[[str, Progress], None]
EventSink = Callable[[str], None]


@dataclass(frozen=True)
class CompareOptions:
    scenario: Scenario
    stores: tuple[str, ...] = ("postgres", "redis-seed", "redis-atomic")
    measure_overhead: bool = True


@dataclass
class StoreRun:
    store: str
    measurement: StoreMeasurement
    correctness: dict[str, Any]
    populate_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"store": self.store, **self.measurement.to_dict(), "correctness": self.correctness,
                "populate_seconds": round(self.populate_s, 3), **self.extra}


@dataclass
class CompareResult:
    runs: dict[str, StoreRun]
    comparisons: list[dict[str, Any]]
    driver_overhead: dict[str, Any]
    claims: list[Claim]
    warnings: list[str]
    measure_start_epoch: float = 0.0

    def section(self) -> dict[str, Any]:
        return {
            "stores": {name: r.to_dict() for name, r in self.runs.items()},
            "comparisons": self.comparisons,
            "driver_overhead": self.driver_overhead,
        }


def executor(store: SessionStore, ttl_s: int) -> Callable[[Op], Any]:
    """Map an operation to the store call; returns True when the session was found / applied."""

    async def execute(op: Op) -> bool:
        k = op.kind
        if k == "get":
            return await store.get(op.session_id) is not None
        if k == "add":
            return await store.add_ingredients(op.session_id, list(op.names), ttl_s)
        if k == "remove":
            return await store.remove_ingredients(op.session_id, list(op.names))
        if k == "extend":
            return await store.extend(op.session_id, ttl_s)
        if k == "create":
            await store.create(op.session_id, ttl_s)
            return True
        if k == "delete":
            return await store.delete(op.session_id)
        if k == "recipe":
            return await store.recipe_ingredients(op.recipe_id) is not None
        raise ValueError(f"unknown operation {k}")

    return execute


async def check_lost_updates(store: SessionStore, log: OpLog) -> dict[str, Any]:
    """Read back every session an add touched and count acknowledged adds that vanished."""
    from fridgebench.engine.driver import OK

    logged = []
    touched: set[str] = set()
    for row, op in log.mutations:
        ok = log.result[row] == OK
        logged.append(LoggedOp(op.kind, op.session_id, log.sent[row], log.done[row], op.names, ok))  # type: ignore[arg-type]
        if op.kind == "add" and ok:
            touched.add(op.session_id)
    ids = sorted(touched)
    final: dict[str, Any] = {}
    for i in range(0, len(ids), 200):
        batch = ids[i:i + 200]
        got = await asyncio.gather(*(store.get(s) for s in batch))
        final.update(zip(batch, got))
    res = count_lost_updates(logged, final)
    return {
        "adds_checked": res.adds_checked, "lost_updates": res.lost_updates,
        "loss_rate": round(res.loss_rate, 6), "sessions_checked": res.sessions_checked,
        "sessions_missing": res.sessions_missing, "examples": [list(e) for e in res.examples],
    }


async def measure_driver_overhead(load: Load, seed: int, seconds: float = 1.0) -> dict[str, Any]:
    """The driver alone: a no-op operation through the same scheduler, workers and recording."""

    async def noop(op: Op) -> bool:
        return True

    probe = load.model_copy(update={"warmup_seconds": 0.2, "duration_seconds": seconds,
                                    "rate": load.rate or 5000.0, "model": "open"})
    ops = itertools.repeat(Op("get", "overhead-probe"))
    log, win = await run(noop, ops, probe, seed=seed)
    m = summarize(log, win)
    g = m.ops.get("get", {})
    return {
        "what": "a no-op operation driven at the run's offered rate through the same scheduler and workers",
        "rate_per_s": probe.rate,
        "dispatch_lag": g.get("dispatch_lag", {}),
        "service": g.get("latency_service", {}),
        "intended": g.get("latency_intended", {}),
    }


async def postgres_io_counters(dsn: str) -> dict[str, int]:
    """Cumulative block and commit counters of the current database (pg_stat_database)."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        if conn.get_server_version().major >= 15:  # stats are flushed lazily since 15
            await conn.execute("SELECT pg_stat_force_next_flush()")
        row = await conn.fetchrow("SELECT blks_read, blks_hit, xact_commit, "
                                  "(SELECT wal_bytes FROM pg_stat_wal) AS wal_bytes "
                                  "FROM pg_stat_database WHERE datname = current_database()")
    finally:
        await conn.close()
    return {k: int(v or 0) for k, v in dict(row).items()}


async def run_store(name: str, endpoints: Endpoints, scenario: Scenario, workload: Workload,
                    population: list[tuple[str, list[str]]], *, on_progress: ProgressSink | None,
                    on_event: EventSink | None) -> StoreRun:
    load = scenario.load
    store = make_store(name, postgres_dsn=endpoints.postgres_dsn, redis_url=endpoints.redis_url,
                       pool_size=load.concurrency)
    async with store:  # leaving it (error, Ctrl-C included) removes what the store wrote
        t = time.perf_counter()
        await store.bulk_load(population, scenario.ttl_seconds)
        populate_s = time.perf_counter() - t
        if on_event:
            on_event(f"{name}: loaded {len(population):,} sessions in {populate_s:.1f} s")
        io_before = await postgres_io_counters(endpoints.postgres_dsn) if name == "postgres" else None
        progress = Progress()
        ticker = None
        if on_progress:
            ticker = asyncio.create_task(tick_progress(progress, time.perf_counter(), load.warmup_seconds,
                                                       lambda p: on_progress(name, p)))
        try:
            log, win = await run(executor(store, scenario.ttl_seconds), workload.ops(population), load,
                                 seed=scenario.seed, progress=progress)
        finally:
            if ticker:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
        measurement = summarize(log, win)
        extra: dict[str, Any] = {}
        if io_before is not None:
            after = await postgres_io_counters(endpoints.postgres_dsn)
            d = {k: after[k] - io_before[k] for k in after}
            total = d["blks_read"] + d["blks_hit"]
            extra["server_io"] = {**d, "buffer_hit_ratio": round(d["blks_hit"] / total, 5) if total else None,
                                  "note": "whole run incl. warm-up; blks_read may still hit the OS page cache"}
        correctness = await check_lost_updates(store, log)
        if hasattr(store, "cache_hits"):
            hits, misses = getattr(store, "cache_hits"), getattr(store, "cache_misses")
            if hits + misses:
                extra["recipe_cache"] = {"hits": hits, "misses": misses, "hit_ratio": round(hits / (hits + misses), 4)}
        removed = await store.discard_written()  # exactly what it wrote: never a pattern delete, never TRUNCATE
        if on_event:
            cache = f" and {removed.cache_keys:,} recipe cache keys" if removed.cache_keys else ""
            on_event(f"{name}: deleted the {removed.sessions:,} sessions{cache} it had written (by id)")
    return StoreRun(name, measurement, correctness, populate_s, extra)


def _bootstrap_ratio_ci(a: list[float], b: list[float], seed: int, n: int = 2000) -> tuple[float, float] | None:
    """95% CI of median(a)/median(b) by resampling per-second medians."""
    if len(a) < 3 or len(b) < 3:
        return None
    rng = random.Random(seed)
    ratios = []
    for _ in range(n):
        ma = statistics.median(rng.choices(a, k=len(a)))
        mb = statistics.median(rng.choices(b, k=len(b)))
        if mb > 0:
            ratios.append(ma / mb)
    ratios.sort()
    return ratios[int(0.025 * len(ratios))], ratios[int(0.975 * len(ratios)) - 1]


def compare_stores(runs: dict[str, StoreRun], seed: int) -> list[dict[str, Any]]:
    """PostgreSQL against each Redis variant, per operation: ratios with a 95% CI or 'not significant'."""
    out = []
    base = runs.get("postgres")
    if base is None:
        return out
    for name, other in runs.items():
        if name == "postgres":
            continue
        for op, a in base.measurement.ops.items():
            b = other.measurement.ops.get(op)
            if not b or not a["latency_intended"].get("count") or not b["latency_intended"].get("count"):
                continue
            la, lb = a["latency_intended"], b["latency_intended"]
            pa = [iv["by_op_p50_us"][op] for iv in base.measurement.intervals if op in iv["by_op_p50_us"]]
            pb = [iv["by_op_p50_us"][op] for iv in other.measurement.intervals if op in iv["by_op_p50_us"]]
            ci = _bootstrap_ratio_ci(pa, pb, seed)
            significant = ci is not None and (ci[0] > 1.0 or ci[1] < 1.0)
            out.append({
                "op": op, "baseline": "postgres", "other": name,
                "p50_ratio": round(la["p50_us"] / max(lb["p50_us"], 1), 2),
                "p99_ratio": round(la["p99_us"] / max(lb["p99_us"], 1), 2),
                "throughput_ratio": round(b["throughput_per_s"] / a["throughput_per_s"], 3) if a["throughput_per_s"] else None,
                "p50_ratio_ci95": [round(ci[0], 2), round(ci[1], 2)] if ci else None,
                "significant": significant,
            })
    return out


NOISY_CV = 0.5  # coefficient of variation of per-second medians above which a run can't be judged


def _too_noisy(run: StoreRun) -> bool:
    """Medians that wander second to second mean something else was competing for the machine.
    (A store that queues — late sends, unsent operations — is a result, not noise.)"""
    cv = run.measurement.overall["noise"].get("cv_of_p50")
    return cv is not None and cv > NOISY_CV


def judge_claims(runs: dict[str, StoreRun], comparisons: list[dict[str, Any]], endpoints: Endpoints,
                 scenario: Scenario) -> list[Claim]:
    claims = blank_claims()
    reads = [c for c in comparisons if c["op"] == "get" and c["other"] == "redis-atomic"] or \
            [c for c in comparisons if c["op"] == "get"]
    if reads:
        c = reads[0]
        pg = runs["postgres"].measurement.ops["get"]["latency_intended"]
        rd = runs[c["other"]].measurement.ops["get"]["latency_intended"]
        r = c["p50_ratio"]
        noisy = [n for n in ("postgres", c["other"]) if _too_noisy(runs[n])]
        all_ops = [x for x in comparisons if x["other"] == c["other"]]
        if noisy:
            verdict, word = "inconclusive", f"{r:g}x, but the run was too noisy to judge ({', '.join(noisy)})"
        elif not any(x["significant"] for x in all_ops):
            verdict, word = "inconclusive", (f"{r:g}x, but no ratio between the stores is significant (every 95% "
                                             "interval includes 1, or too few seconds were measured): run longer")
        elif not c["significant"]:
            verdict, word = "contradicted", "no significant difference"
        elif r >= 10:
            verdict, word = "supported", f"{r:g}x faster"
        elif r > 1:
            verdict, word = "partly supported", f"{r:g}x faster, not 10x"
        else:
            verdict, word = "contradicted", f"{1 / r:.2g}x slower"
        io = runs["postgres"].extra.get("server_io") or {}
        spread = ", ".join(f"{x['op']} {x['p50_ratio']:g}x" for x in all_ops)
        load = (f"{scenario.load.rate:g} ops/s offered" if scenario.load.model == "open"
                else f"{scenario.load.concurrency} closed-loop workers")
        text = (f"session read p50 {pg['p50_us']} µs (PostgreSQL) vs {rd['p50_us']} µs ({c['other']}) at {load}: "
                f"{word}; p50 ratio per op: {spread}")
        if io.get("buffer_hit_ratio") is not None:
            text += (f". Disk I/O: PostgreSQL served {io['buffer_hit_ratio']:.2%} of block reads from its buffers "
                     f"({io['blks_read']:,} from the OS) and wrote {io['wal_bytes'] / 2**20:,.1f} MiB WAL "
                     f"for {io['xact_commit']:,} commits (fsync={endpoints.postgres.durability.get('fsync', '?')})")
        fill(claims, "performance", command="compare", verdict=verdict, measured=text, figures={
            "get_p50_us": {"postgres": pg["p50_us"], c["other"]: rd["p50_us"]},
            "get_p99_us": {"postgres": pg["p99_us"], c["other"]: rd["p99_us"]},
            "p50_ratio_by_op": {x["op"]: x["p50_ratio"] for x in all_ops},
            "postgres_io": io,
        })
    times = {k: getattr(endpoints, k).started_in_s for k in ("postgres", "redis")}
    if all(v is not None for v in times.values()):
        fill(claims, "install", command="compare", verdict="partly supported", figures={
            "provision_seconds": times, "sources": {k: getattr(endpoints, k).source for k in times}},
            measured=(f"provisioned here from {endpoints.postgres.source} binaries: PostgreSQL in "
                      f"{times['postgres']:.1f} s (initdb + start + schema), Redis in {times['redis']:.1f} s; "
                      "both are one step for fridgebench, Redis is one more server to run; Helm not measured here"))
    return list(claims.values())


async def run_compare(endpoints: Endpoints, opts: CompareOptions, *, on_progress: ProgressSink | None = None,
                      on_event: EventSink | None = None) -> CompareResult:
    sc = opts.scenario
    workload = Workload.from_catalogue(sc)
    population = workload.population()
    warnings: list[str] = []
    overhead: dict[str, Any] = {}
    if opts.measure_overhead:
        overhead = await measure_driver_overhead(sc.load, sc.seed)
        lag = overhead.get("dispatch_lag", {}).get("p99_us") or 0
        if lag > 1000:
            warnings.append(f"the driver alone (a no-op at the same rate) started operations up to {lag / 1000:.1f} ms "
                            "late (p99): the machine is busy; latencies below include that delay")
    runs: dict[str, StoreRun] = {}
    start_epoch = time.time()
    for name in opts.stores:
        runs[name] = await run_store(name, endpoints, sc, workload, population,
                                     on_progress=on_progress, on_event=on_event)
        ov = runs[name].measurement.overall
        if ov["unsent"] or ov["unfinished"]:
            warnings.append(f"{name}: could not keep up with the offered load — {ov['unsent']} operations never "
                            f"sent, {ov['unfinished']} unfinished at the deadline (counted as errors)")
        late = ov["late_sends"] / max(ov["operations"], 1)
        if late > 0.01 and ov["late_threshold_us"] is not None:
            warnings.append(f"{name}: {late:.1%} of operations were sent more than {ov['late_threshold_us']} µs "
                            "late (all connections busy, or the driver short of CPU); latency from the intended "
                            "start includes that wait")
        cv = ov["noise"].get("cv_of_p50")
        if cv is not None and cv > NOISY_CV:
            warnings.append(f"{name}: per-second medians vary a lot (CV {cv:.2f}); the machine may be busy — "
                            "treat ratios with care or run longer")
        if runs[name].correctness["lost_updates"]:
            c = runs[name].correctness
            warnings.append(f"{name}: {c['lost_updates']} of {c['adds_checked']} acknowledged ingredient adds "
                            "were lost (read-modify-write race)")
    comparisons = compare_stores(runs, sc.seed)
    claims = judge_claims(runs, comparisons, endpoints, sc)
    return CompareResult(runs, comparisons, overhead, claims, warnings, start_epoch)

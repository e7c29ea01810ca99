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
from fridgebench.measure import machine
from fridgebench.measure.summary import StoreMeasurement, summarize
from fridgebench.profile.run import ProfileOptions
from fridgebench.provision.base import Endpoints
from fridgebench.report.claims import blank_claims, fill
from fridgebench.measure.results import Claim
from fridgebench.stores import PATH_STORES, PATHS, STORE_KINDS, SessionStore, make_store, store_path, stores_for_paths
from fridgebench.stores.correctness import LoggedOp, count_lost_updates
from fridgebench.workload.generator import Op, Workload
from fridgebench.workload.model import Load, Scenario

ProgressSink = Callable[[str, Progress], None]
EventSink = Callable[[str], None]

# The app path's open-loop rate unless --app-rate says otherwise: one Python process runs
# fridge2fork's ORM code *and* the driver, and the ORM costs milliseconds of CPU per request
# (the profile shows how many); at the server path's 1500 ops/s that process would be measuring
# its own queue. Both stores of the app path get the same rate.
DEFAULT_APP_RATE = 100.0


@dataclass(frozen=True)
class CompareOptions:
    scenario: Scenario
    stores: tuple[str, ...] = stores_for_paths(PATHS)
    measure_overhead: bool = True
    app_rate: float | None = None  # open loop: the app path's rate (None: min(scenario rate, DEFAULT_APP_RATE))
    profile: ProfileOptions | None = ProfileOptions()  # None: no "where the time goes" profile

    def load_for(self, name: str) -> Load:
        """The load a store runs under: the scenario's, at the app path's rate for app-path stores."""
        load = self.scenario.load
        if store_path(name) == "app" and load.model == "open":
            assert load.rate is not None
            rate = self.app_rate if self.app_rate is not None else min(load.rate, DEFAULT_APP_RATE)
            if rate != load.rate:
                return load.model_copy(update={"rate": rate})
        return load


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

    paths: dict[str, Any] = field(default_factory=dict)
    fix: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None

    def section(self) -> dict[str, Any]:
        out = {
            "stores": {name: r.to_dict() for name, r in self.runs.items()},
            "comparisons": self.comparisons,
            "driver_overhead": self.driver_overhead,
            "paths": self.paths,
        }
        if self.fix is not None:
            out["fix"] = self.fix
        if self.profile is not None:
            out["profile"] = self.profile
        return out


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


READBACK_BATCH = 50


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
    # 50 reads at a time: within the app path's client pools (redis-py's default pool refuses a
    # connection beyond 100; SQLAlchemy's queues beyond 15)
    for i in range(0, len(ids), READBACK_BATCH):
        batch = ids[i:i + READBACK_BATCH]
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
                    on_event: EventSink | None, load: Load | None = None) -> StoreRun:
    load = load or scenario.load
    store = make_store(name, postgres_dsn=endpoints.postgres_dsn, redis_url=endpoints.redis_url,
                       pool_size=load.concurrency)
    async with store:  # leaving it (error, Ctrl-C included) removes what the store wrote
        t = time.perf_counter()
        await store.bulk_load(population, scenario.ttl_seconds)
        populate_s = time.perf_counter() - t
        if on_event:
            on_event(f"{name}: loaded {len(population):,} sessions in {populate_s:.1f} s")
        io_before = await postgres_io_counters(endpoints.postgres_dsn) if STORE_KINDS[name] == "postgres" else None
        machine_before = await asyncio.to_thread(machine.sample)  # the gate's reference for a whole-store change
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
        extra: dict[str, Any] = {"path": store_path(name),
                                 "machine": machine.summarize(machine_before, await asyncio.to_thread(machine.sample))}
        describe_pool = getattr(store, "pool_description", None)
        if callable(describe_pool):  # the app path's client pool, as the app configures it
            extra["client_pool"] = describe_pool()
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
    """Each PostgreSQL store against each Redis store of its path (server: lean clients; app:
    fridge2fork's code), per operation: ratios with a 95% CI or 'not significant'."""
    out = []
    for base_name, base in runs.items():
        if STORE_KINDS.get(base_name) != "postgres":
            continue
        path = store_path(base_name)
        for name, other in runs.items():
            if STORE_KINDS.get(name) != "redis" or store_path(name) != path:
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
                    "op": op, "baseline": base_name, "other": name, "path": path,
                    "p50_ratio": round(la["p50_us"] / max(lb["p50_us"], 1), 2),
                    "p99_ratio": round(la["p99_us"] / max(lb["p99_us"], 1), 2),
                    "throughput_ratio": round(b["throughput_per_s"] / a["throughput_per_s"], 3) if a["throughput_per_s"] else None,
                    "p50_ratio_ci95": [round(ci[0], 2), round(ci[1], 2)] if ci else None,
                    "significant": significant,
                })
    return out


def unpaired_warnings(names: tuple[str, ...] | list[str]) -> list[str]:
    """A store whose path has no store of the other kind in this run gets no ratio: say so."""
    kinds = {STORE_KINDS[n] for n in names}
    if kinds != {"postgres", "redis"}:
        return []  # a one-kind run compares nothing, by choice
    out = []
    for n in names:
        other = "redis" if STORE_KINDS[n] == "postgres" else "postgres"
        path = store_path(n)
        if not any(STORE_KINDS[m] == other and store_path(m) == path for m in names):
            partner = next((m for m in PATH_STORES.get(path, ()) if STORE_KINDS[m] == other), None)
            out.append(f"{n} is on the {path} path and no {'Redis' if other == 'redis' else 'PostgreSQL'} store of "
                       f"that path ran: no ratio for it" + (f" (add {partner} to --stores)" if partner else ""))
    return out


def path_summary(opts: CompareOptions, runs: dict[str, StoreRun]) -> dict[str, Any]:
    """What each path ran: its stores, the offered load, and what the path means."""
    meaning = {"server": "lean clients: one statement / command per operation, raw asyncpg and a lean Redis client "
                         "(what the servers can serve)",
               "app": "fridge2fork's own code: SQLAlchemy's async ORM on asyncpg with the app's default pool and "
                      "an AsyncSession per request; the seed's redis.asyncio code (as the app uses the servers)"}
    out: dict[str, Any] = {}
    for name, r in runs.items():
        p = store_path(name)
        entry = out.setdefault(p, {"stores": [], "meaning": meaning.get(p, "")})
        entry["stores"].append(name)
        o = r.measurement.overall
        entry["model"] = o["model"]
        entry["offered_rate_per_s"] = o.get("offered_rate_per_s")
        entry["concurrency"] = o.get("concurrency")
        if p == "app" and o["model"] == "open":
            entry["rate_note"] = ("the app path runs at its own rate (--app-rate): one Python process runs the "
                                  "app's code and the driver; both stores of the path get the same rate")
    return out


# the operations the two cheapest fixes change (session_manager_fixed): the read and the add
FIX_CHANGES = ("get", "add")


def fix_summary(runs: dict[str, StoreRun]) -> dict[str, Any] | None:
    """How much of the app path's PostgreSQL -> Redis gap the two cheapest fixes close, per operation (p50)."""
    names = ("postgres-app", "postgres-app-fixed", "redis-app")
    if not all(n in runs for n in names):
        return None
    app, fixed, rd = (runs[n].measurement.ops for n in names)
    by_op: dict[str, Any] = {}
    for op in app:
        try:
            a, f, r = (x[op]["latency_intended"]["p50_us"] for x in (app, fixed, rd))
        except KeyError:
            continue
        gap = a - r
        row: dict[str, Any] = {"app_p50_us": a, "fixed_p50_us": f, "redis_p50_us": r, "changed_by_fix": op in FIX_CHANGES}
        if gap > 0:
            row["closed_by_fix"] = round((a - f) / gap, 3)
            row["left_for_redis"] = round((f - r) / gap, 3)
        by_op[op] = row
    return {"baseline": names[0], "fixed": names[1], "redis": names[2],
            "what": "p50 latency from the intended start; closed_by_fix = (app - fixed) / (app - redis); the fixes "
                    "change the read and the add only (changed_by_fix): elsewhere both run the same code and the "
                    "difference is noise",
            "by_op": by_op}


NOISY_CV = 0.5  # coefficient of variation of per-second medians above which a run can't be judged
CLAIMED_FACTOR = 10.0  # the seed's "10x+ faster"


def _too_noisy(run: StoreRun) -> bool:
    """Medians that wander second to second mean something else was competing for the machine.
    (A store that queues — late sends, unsent operations — is a result, not noise.)"""
    cv = run.measurement.overall["noise"].get("cv_of_p50")
    return cv is not None and cv > NOISY_CV


def _num(x: float) -> str:
    """2.53, 0.83, 12.1, 1,250: two decimals below 10, one above; no trailing zeros."""
    text = f"{x:,.2f}" if abs(x) < 10 else f"{x:,.1f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def times(x: float) -> str:
    """A ratio as a reader sees it: 12x, 2.53x, 17.8x, 0.5x."""
    return _num(x) + "x"


def _interval(c: dict[str, Any]) -> str:
    ci = c.get("p50_ratio_ci95")
    return f"95% interval {_num(ci[0])}–{times(ci[1])}" if ci else "no 95% interval"


def _slower(r: float) -> str:
    return f"{times(1 / r)} slower" if r > 0 else "more than 100x slower"


def _verdict(runs: dict[str, StoreRun], rows: list[dict[str, Any]], c: dict[str, Any]) -> tuple[str, str]:
    """The verdict on "10x+ faster" for one pair, and the words a reader sees (``c``: its
    session-read row; ``rows``: all its operations). In this order:

    - either store's per-second medians wander (CV above NOISY_CV): **inconclusive**, too noisy;
    - the read has no 95% interval (fewer than 3 measured seconds): **inconclusive**;
    - the read's interval includes 1 (not significant): **inconclusive** when no operation of the
      pair is significant either (the run cannot tell the stores apart) or when the interval also
      reaches 10x (it cannot tell "no difference" from "10x+"); otherwise **contradicted** — the
      read is measurably no faster, and 10x lies outside the interval;
    - significant and Redis slower: **contradicted**;
    - significant and the p50 ratio at least 10: **supported**; below 10: **partly supported** ("not 10x" only
      when the interval stays below 10; one that reaches 10 says so, and that a longer run would tell).
    """
    r = c["p50_ratio"]
    ci = c.get("p50_ratio_ci95")
    noisy = [(n, runs[n].measurement.overall["noise"]["cv_of_p50"]) for n in (c["baseline"], c["other"])
             if _too_noisy(runs[n])]
    if noisy:
        who = ", ".join(f"{n} CV {cv:.2f}" for n, cv in noisy)
        return "inconclusive", (f"{times(r)}, but too noisy to judge: per-second medians wandered ({who}; above "
                                f"{NOISY_CV:g} is too noisy) — run again on a quieter machine, or longer")
    if ci is None:
        return "inconclusive", (f"{times(r)}, not significant: too few measured seconds for a 95% interval "
                                "(3 at least) — run longer")
    if not c["significant"]:
        if not any(x["significant"] for x in rows):
            return "inconclusive", (f"{times(r)}, not significant ({_interval(c)} includes 1), nor is any other "
                                    "operation's ratio: the run was too short or too noisy to tell the stores apart "
                                    "— run longer")
        if ci[1] >= CLAIMED_FACTOR:
            return "inconclusive", (f"{times(r)}, not significant ({_interval(c)} includes both 1 and "
                                    f"{times(CLAIMED_FACTOR)}) — run longer")
        return "contradicted", (f"{times(r)}, not significant ({_interval(c)} includes 1 and stays below "
                                f"{times(CLAIMED_FACTOR)}): the session read is not measurably faster")
    if ci[1] < 1:
        return "contradicted", f"{_slower(r)} ({_interval(c)})"
    ten = times(CLAIMED_FACTOR)
    if r >= CLAIMED_FACTOR:
        below = f": the interval reaches below {ten}" if ci[0] < CLAIMED_FACTOR else ""
        return "supported", f"{times(r)} faster ({_interval(c)}){below}"
    if ci[1] >= CLAIMED_FACTOR:  # "not 10x" would overstate it: 10x is inside the interval
        return "partly supported", (f"{times(r)} faster ({_interval(c)}): below {ten} at the median, but the "
                                    f"interval reaches {ten} — run longer to tell")
    return "partly supported", f"{times(r)} faster ({_interval(c)}), not {ten}"


def combine_verdicts(verdicts: list[str]) -> str:
    """One word for the row from each path's verdict: the same word when they agree; when the
    conclusive ones differ (10x as the app uses the servers, not as the servers serve), 'partly supported'."""
    conclusive = [v for v in verdicts if v != "inconclusive"]
    if not conclusive:
        return "inconclusive"
    if len(set(conclusive)) == 1:
        return conclusive[0]
    return "partly supported"


def _read_pair(comparisons: list[dict[str, Any]], path: str) -> dict[str, Any] | None:
    """The session-read row a path's verdict is about: its first PostgreSQL store (not a fixed
    variant) against redis-atomic where it ran (the correct Redis of the server path), else the first."""
    rows = [c for c in comparisons if c["op"] == "get" and c.get("path", "server") == path]
    if not rows:
        return None
    preferred_pg = next((n for n in PATH_STORES.get(path, ()) if STORE_KINDS.get(n) == "postgres"), None)
    rows = [c for c in rows if c["baseline"] == preferred_pg] or rows
    return next((c for c in rows if c["other"] == "redis-atomic"), rows[0])


def _ms_or_us(us: float) -> str:
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:g} µs"


PATH_LEADS = {"app": "as fridge2fork's code uses them", "server": "as the servers can serve them"}
PATH_HOW = {"app": "fridge2fork's own code", "server": "lean clients"}


def _fix_text(g: dict[str, Any], *, noisy: bool = False) -> str:
    """What the two cheapest fixes do to the app path's read, in words that stay true at the edges
    (a fixed variant no faster than the unfixed one, or as fast as Redis). ``noisy``: the app path's
    own verdict was inconclusive, so the share closed is not claimed either."""
    what = ("The two cheapest fixes (no last_accessed write on every read, one query instead of N+1 for adds; "
            f"postgres-app-fixed) read in {_ms_or_us(g['fixed_p50_us'])} (unfixed {_ms_or_us(g['app_p50_us'])}, "
            f"Redis {_ms_or_us(g['redis_p50_us'])})")
    if noisy:
        return f"{what}: how much of the gap they close is not judged — the app path's run was too noisy (above)"
    closed = g["closed_by_fix"]
    if closed <= 0:
        return f"{what}: they close none of the app path's read gap"
    if closed >= 1:
        return f"{what}: they close all of the app path's read gap"
    return f"{what}: they close {closed:.0%} of the app path's read gap; {g['left_for_redis']:.0%} remains for Redis to close"


def judge_claims(runs: dict[str, StoreRun], comparisons: list[dict[str, Any]], endpoints: Endpoints,
                 scenario: Scenario, *, fix: dict[str, Any] | None = None) -> list[Claim]:
    """The claims ``compare`` fills: performance (each path's verdict on "10x+" for the session
    read, combined) and install (the provisioning times). Reads the measurements only."""
    claims = blank_claims()
    per_path: dict[str, dict[str, Any]] = {}
    for path in ("app", "server"):
        c = _read_pair(comparisons, path)
        if c is None:
            continue
        rows = [x for x in comparisons if x["baseline"] == c["baseline"] and x["other"] == c["other"]]
        verdict, word = _verdict(runs, rows, c)
        pg = runs[c["baseline"]].measurement.ops["get"]["latency_intended"]
        rd = runs[c["other"]].measurement.ops["get"]["latency_intended"]
        o = runs[c["baseline"]].measurement.overall
        load = (f"{o['offered_rate_per_s']:g} ops/s offered" if o["model"] == "open"
                else f"{o['concurrency']} closed-loop workers")
        per_path[path] = {"baseline": c["baseline"], "other": c["other"], "verdict": verdict, "word": word,
                          "load": load, "get_p50_us": {c["baseline"]: pg["p50_us"], c["other"]: rd["p50_us"]},
                          "get_p99_us": {c["baseline"]: pg["p99_us"], c["other"]: rd["p99_us"]},
                          "get_p50_ratio": c["p50_ratio"], "get_p50_ratio_ci95": c.get("p50_ratio_ci95"),
                          "significant": c["significant"],
                          "p50_ratio_by_op": {x["op"]: x["p50_ratio"] for x in rows},
                          "significant_by_op": {x["op"]: x["significant"] for x in rows}}
    if per_path:
        primary = "server" if "server" in per_path else "app"
        first = per_path[primary]
        io = runs[first["baseline"]].extra.get("server_io") or {}
        parts = []
        for path in ("app", "server"):
            if path not in per_path:
                continue
            v = per_path[path]
            pg_us, rd_us = v["get_p50_us"][v["baseline"]], v["get_p50_us"][v["other"]]
            lead = ("" if parts else "session read p50 ") + PATH_LEADS[path]
            parts.append(f"{lead}: PostgreSQL {_ms_or_us(pg_us)} vs Redis {_ms_or_us(rd_us)} ({v['baseline']} vs "
                         f"{v['other']}, {v['load']}): {v['verdict']} — {v['word']}")
        text = " — ".join(parts)
        if len(per_path) == 1:
            missing = "server" if primary == "app" else "app"
            text += (f" (the {missing} path, {PATH_HOW[missing]}, was not run: "
                     "--paths app,server measures both)")
        g = (fix or {}).get("by_op", {}).get("get")
        if g and "closed_by_fix" in g:
            noisy = per_path.get("app", {}).get("verdict") == "inconclusive"
            text += ". " + _fix_text(g, noisy=noisy)
            if "server" in per_path and 0 < g["closed_by_fix"] < 1 and not noisy:
                v = per_path["server"]
                text += (f" (or a lean query: PostgreSQL's own read, as the servers serve it, takes "
                         f"{_ms_or_us(v['get_p50_us'][v['baseline']])})")
        for path in ("app", "server"):
            if path in per_path:
                sig = per_path[path]["significant_by_op"]
                spread = ", ".join(f"{op} {times(r)}" + ("" if sig[op] else " (not significant)")
                                   for op, r in per_path[path]["p50_ratio_by_op"].items())
                text += f"; p50 ratio per op ({path} path): {spread}"
        if io.get("buffer_hit_ratio") is not None:
            text += (f". Disk I/O ({first['baseline']}): PostgreSQL served {io['buffer_hit_ratio']:.2%} of block reads "
                     f"from its buffers ({io['blks_read']:,} from the OS) and wrote {io['wal_bytes'] / 2**20:,.1f} MiB "
                     f"WAL for {io['xact_commit']:,} commits (fsync={endpoints.postgres.durability.get('fsync', '?')})")
        verdict = combine_verdicts([p["verdict"] for p in per_path.values()])
        figures: dict[str, Any] = {
            "primary_path": primary,
            "get_p50_us": first["get_p50_us"], "get_p99_us": first["get_p99_us"],
            "p50_ratio_by_op": first["p50_ratio_by_op"], "postgres_io": io,
            "paths": {p: {k: v for k, v in d.items() if k != "word"} for p, d in per_path.items()},
        }
        if fix is not None:
            figures["fix"] = fix
        fill(claims, "performance", command="compare", verdict=verdict, measured=text, figures=figures)
    elif comparisons:  # PostgreSQL and Redis both ran, but the scenario has no session reads to judge
        spread = ", ".join(f"{c['op']} {times(c['p50_ratio'])} ({c['baseline']} vs {c['other']})" for c in comparisons)
        fill(claims, "performance", command="compare", verdict="not measured", figures={},
             measured=("not judged: the scenario has no session reads (get), and the seed's \"10x faster\" is about "
                       f"session lookups — add get to its [mix]; p50 ratio per op: {spread}"))
    took = {k: getattr(endpoints, k).started_in_s for k in ("postgres", "redis")}
    src = {k: getattr(endpoints, k).source for k in took}
    if all(v is not None for v in took.values()):
        fill(claims, "install", command="compare", verdict="partly supported", figures={
            "provision_seconds": took, "sources": src},
            measured=(f"provisioned here: PostgreSQL in {took['postgres']:.1f} s from {src['postgres']} binaries "
                      f"(initdb + start + schema), Redis in {took['redis']:.1f} s from {src['redis']} binaries; "
                      "both are one step for fridgebench, Redis is one more server to run; Helm not measured here"))
    else:  # say why, rather than "measured by: fridgebench compare" to someone who ran it
        why = []
        for kind, name, flag in (("postgres", "PostgreSQL", "--postgres-dsn"), ("redis", "Redis", "--redis-url")):
            info = getattr(endpoints, kind)
            if took[kind] is None:
                why.append(f"{name} was not needed by the stores chosen" if not info.url
                           else f"{name} was given ({flag}), not provisioned by this run")
        fill(claims, "install", command="compare", verdict="not measured", figures={"sources": src},
             measured=("not timed: " + " and ".join(why) + " — compare times provisioning when it starts both "
                       "servers itself"))
    return list(claims.values())


async def run_compare(endpoints: Endpoints, opts: CompareOptions, *, on_progress: ProgressSink | None = None,
                      on_event: EventSink | None = None) -> CompareResult:
    from fridgebench.profile.run import profile_store

    sc = opts.scenario
    workload = Workload.from_catalogue(sc)
    population = workload.population()
    warnings: list[str] = unpaired_warnings(opts.stores)
    overhead: dict[str, Any] = {}
    if opts.measure_overhead:
        overhead = await measure_driver_overhead(sc.load, sc.seed)
        lag = overhead.get("dispatch_lag", {}).get("p99_us") or 0
        if lag > 1000:
            warnings.append(f"the driver alone (a no-op at the same rate) started operations up to {lag / 1000:.1f} ms "
                            "late (p99): the machine is busy; latencies below include that delay")
    runs: dict[str, StoreRun] = {}
    profiles: dict[str, Any] = {}
    start_epoch = time.time()
    for name in opts.stores:
        runs[name] = await run_store(name, endpoints, sc, workload, population, load=opts.load_for(name),
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
        if opts.profile is not None:
            profiles[name] = await profile_store(name, endpoints, sc, opts.profile, on_event=on_event)
    comparisons = compare_stores(runs, sc.seed)
    fix = fix_summary(runs)
    claims = judge_claims(runs, comparisons, endpoints, sc, fix=fix)
    profile = None
    if opts.profile is not None:
        from fridgebench.profile.section import profile_section

        profile = profile_section(profiles, opts.profile)
        warnings.extend(profile.get("warnings", []))
    return CompareResult(runs, comparisons, overhead, claims, warnings, start_epoch,
                         paths=path_summary(opts, runs), fix=fix, profile=profile)

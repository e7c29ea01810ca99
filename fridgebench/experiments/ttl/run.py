"""``fridgebench ttl``: how precisely sessions expire, what PostgreSQL's cleanup costs, bytes per session.

Composes three measurements on every requested store (run one after another, the Redis
variants sharing one server; each store deletes exactly the sessions it wrote before the next).
PostgreSQL is measured in a scratch schema created for the run (:mod:`fridgebench.stores.scratch`),
so the application's cleanup job and the emptied tables only ever see fridgebench's own rows:

* :mod:`.expiry` — expiry lag (readable / physically gone) and sliding-expiry violations;
* :mod:`.cleanup` — the application's periodic DELETE vs batched deletes, WAL, dead tuples,
  sizes, VACUUM, foreground read latency (PostgreSQL only);
* :mod:`.memory` — bytes per session at several session counts.

The results go into ``ResultsDocument.sections["ttl"]`` and fill the seed's "auto-expiry" and
"memory use" claims.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from fridgebench.errors import UsageError
from fridgebench.experiments.ttl.common import human_bytes, human_duration
from fridgebench.measure.results import Claim
from fridgebench.provision.base import Endpoints
from fridgebench.report.claims import blank_claims, fill
from fridgebench.stores import SERVER_EQUIVALENT, STORE_KINDS, STORE_NAMES, TWO_SERVER_STORES, make_store, schema
from fridgebench.stores.scratch import scratch_schema

# the stores ttl measures: the server path (an app-path store writes the same rows / keys)
TTL_STORE_NAMES = tuple(n for n in STORE_NAMES if n not in SERVER_EQUIVALENT and n not in TWO_SERVER_STORES)

COMMAND = "fridgebench ttl"

# Rough per-session figures (bytes) used only to refuse runs the machine cannot hold.
_REDIS_BASE, _REDIS_PER_ING = 300, 36  # measured ~423 B at 8 ingredients (Redis 7.0, jemalloc)
_CLIENT_BASE, _CLIENT_PER_ING = 1500, 80  # per session tracked by the expiry experiment (Python objects)
_PG_BASE, _PG_PER_ING = 250, 200  # on disk, ~1.8 KB at 8 ingredients; cached in RAM when hot
_LEDGER = 200  # per session written: its id, recorded so that exactly it is deleted afterwards


@dataclass(frozen=True)
class TtlOptions:
    sessions: int = 2000  # sessions followed through expiry, per store
    ttl_s: float = 5.0  # scaled-down TTL (the application uses 86 400 s)
    ingredients: int = 8  # per session
    stores: tuple[str, ...] = ("postgres", "redis-seed", "redis-atomic")
    memory_counts: tuple[int, ...] = (10_000, 100_000)  # bytes-per-session points
    seed: int = 42
    cleanup_sessions: int = 50_000  # PostgreSQL cleanup-cost dataset (half of it expired)
    cleanup_batch: int = 1000  # batched-delete batch size
    cleanup_every_s: float | None = None  # the simulated application job's period; None: ttl / 24
    readers: int = 4  # foreground point-read workers during the cleanup
    spread_s: float | None = None  # creations spread over this window; None: min(2 s, ttl / 2)
    allow_config_set: bool = False  # an external Redis: may keyspace notifications be switched on for the run?

    @property
    def job_interval_s(self) -> float:
        return self.cleanup_every_s if self.cleanup_every_s is not None else self.ttl_s / 24.0

    @property
    def create_spread_s(self) -> float:
        return self.spread_s if self.spread_s is not None else min(2.0, self.ttl_s / 2)


@dataclass(frozen=True)
class TtlResult:
    section: dict[str, Any]
    claims: list[Claim] = field(default_factory=list)


def estimate_memory_bytes(opts: TtlOptions) -> int:
    """RAM this run needs at its peak (server + client), a deliberately generous estimate."""
    k = opts.ingredients
    biggest = max([opts.sessions, *opts.memory_counts])
    redis = biggest * (_REDIS_BASE + _REDIS_PER_ING * k) if any(s != "postgres" for s in opts.stores) else 0
    client = opts.sessions * (_CLIENT_BASE + _CLIENT_PER_ING * k) + biggest * _LEDGER
    pg_cache = 0
    if "postgres" in opts.stores:  # the hot dataset, as page cache
        pg_cache = max([opts.sessions, *opts.memory_counts, opts.cleanup_sessions]) * (_PG_BASE + _PG_PER_ING * k)
    return int(redis + client + pg_cache)


# The longest --ttl accepted. The run waits for every session to expire (a sliding one after up to
# 1.8 TTLs), store after store: at 1 h that is already ~5.5 h for the three stores. Expiry lags are
# absolute and do not grow with the TTL, so a longer one measures nothing new.
MAX_TTL_S = 3600


def expected_wait_s(opts: TtlOptions) -> float:
    """Seconds the run spends waiting for sessions to expire (a lower bound of its duration):
    per store, the creation spread, then up to 1.8 TTLs (a session touched late in its life
    expires a full TTL after the touch)."""
    return len(opts.stores) * (opts.create_spread_s + 1.8 * opts.ttl_s)


def validate(opts: TtlOptions, *, available_bytes: int | None = None) -> None:
    """Raise :class:`UsageError` for options the run cannot honour. Call before provisioning."""
    if not (opts.ttl_s > 0) or math.isinf(opts.ttl_s):
        raise UsageError(f"--ttl must be a positive number of seconds, got {opts.ttl_s:g}",
                         hint="e.g. --ttl 5 (the application's 24 h, scaled down)")
    if opts.ttl_s < 1 or opts.ttl_s != int(opts.ttl_s):
        raise UsageError(f"--ttl must be a whole number of seconds >= 1, got {opts.ttl_s:g}",
                         hint="Redis SETEX and the stores take whole seconds; e.g. --ttl 5")
    if opts.ttl_s > MAX_TTL_S:
        raise UsageError(
            f"--ttl {opts.ttl_s:,.0f} is above the maximum of {MAX_TTL_S} s: the run would wait about "
            f"{human_duration(expected_wait_s(opts))} for sessions to expire",
            hint="expiry lags do not grow with the TTL; use a scaled-down TTL, e.g. --ttl 5 (the default) or --ttl 60")
    if opts.sessions < 10:
        raise UsageError(f"--sessions must be at least 10, got {opts.sessions}")
    n_cat = len(schema.ingredients())
    if not 0 <= opts.ingredients < n_cat:
        raise UsageError(f"--ingredients must be between 0 and {n_cat - 1} (the catalogue size), got {opts.ingredients}")
    if not opts.stores:
        raise UsageError("no store selected", hint=f"--stores takes a comma list of: {', '.join(TTL_STORE_NAMES)}")
    for s in opts.stores:
        if s not in STORE_NAMES:
            raise UsageError(f"unknown store {s!r}", hint=f"choose from: {', '.join(TTL_STORE_NAMES)}")
        if s in SERVER_EQUIVALENT:  # same rows / keys as a server-path store: the client path changes nothing here
            raise UsageError(f"ttl measures the servers (expiry, cleanup, memory), not the client path: {s} "
                             f"stores exactly what {SERVER_EQUIVALENT[s]} stores",
                             hint=f"use --stores {SERVER_EQUIVALENT[s]}")
        if s in TWO_SERVER_STORES:  # ttl watches one server's expiry
            raise UsageError(f"ttl measures a store on one server; {s!r} uses both PostgreSQL and Redis",
                             hint=f"choose from: {', '.join(TTL_STORE_NAMES)}")
    if not opts.memory_counts or any(n < 1 for n in opts.memory_counts):
        raise UsageError("--memory-counts must be a comma list of positive session counts, e.g. 10000,100000")
    if opts.cleanup_sessions < 2:
        raise UsageError(f"--cleanup-sessions must be at least 2 (half of them expire), got {opts.cleanup_sessions}")
    if opts.cleanup_batch < 1 or opts.readers < 1:
        raise UsageError(f"cleanup batch and readers must be at least 1, got {opts.cleanup_batch} and {opts.readers}")
    if opts.cleanup_every_s is not None and not (0 < opts.cleanup_every_s < math.inf):
        raise UsageError(f"--cleanup-every must be a positive number of seconds, got {opts.cleanup_every_s:g}",
                         hint="e.g. --cleanup-every 0.2, or leave it out for TTL/24")
    if opts.spread_s is not None and not (0 <= opts.spread_s < math.inf):
        raise UsageError(f"the creation spread must be >= 0 seconds, got {opts.spread_s:g}")
    if available_bytes is None:
        import psutil

        available_bytes = psutil.virtual_memory().available
    need = estimate_memory_bytes(opts)
    if need > 0.8 * available_bytes:
        biggest = max([opts.sessions, *opts.memory_counts])
        raise UsageError(
            f"{biggest:,} sessions need about {human_bytes(need)} of memory, this machine has "
            f"{human_bytes(available_bytes)} available",
            hint="lower --sessions / --memory-counts (or --ingredients)")


# --------------------------------------------------------------------------------------------


async def run_ttl(endpoints: Endpoints, opts: TtlOptions, *,
                  progress: Callable[[str], None] | None = None) -> TtlResult:
    from fridgebench.experiments.ttl.cleanup import measure_cleanup
    from fridgebench.experiments.ttl.expiry import ExpiryParams, measure_expiry
    from fridgebench.experiments.ttl.memory import measure_memory

    validate(opts)
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    dsn, url = endpoints.postgres_dsn, endpoints.redis_url
    salt = secrets.randbits(128)  # this run's session ids never collide with sessions already there
    params = ExpiryParams(sessions=opts.sessions, ttl_s=int(opts.ttl_s), ingredients=opts.ingredients,
                          seed=opts.seed, cleanup_every_s=opts.job_interval_s, spread_s=opts.create_spread_s,
                          id_salt=salt, configure_redis=endpoints.redis.source != "external" or opts.allow_config_set)
    expiry: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    cleanup: dict[str, Any] | None = None
    warnings: list[str] = []
    async with contextlib.AsyncExitStack() as stack:
        # PostgreSQL is measured in a schema of its own: the application's cleanup job, emptied
        # tables and size readings never touch (or count) anyone else's sessions
        scratch = ""
        if any(STORE_KINDS[n] == "postgres" for n in opts.stores):
            scratch = await stack.enter_async_context(scratch_schema(dsn, on_event=say))
        for name in opts.stores:
            pg_dsn = scratch if STORE_KINDS[name] == "postgres" else ""  # ttl's Redis runs need no PostgreSQL
            store = make_store(name, postgres_dsn=pg_dsn, redis_url=url)
            async with store:  # leaving it removes exactly what the store wrote
                expiry[name] = await measure_expiry(store, postgres_dsn=pg_dsn, redis_url=url, params=params,
                                                    progress=say)
                await store.discard_written()
                memory[name] = await measure_memory(store, postgres_dsn=pg_dsn, redis_url=url,
                                                    counts=tuple(opts.memory_counts), ingredients=opts.ingredients,
                                                    seed=opts.seed, id_salt=salt, progress=say)
                if name == "postgres":
                    cleanup = await measure_cleanup(store, postgres_dsn=pg_dsn, sessions=opts.cleanup_sessions,
                                                    ingredients=opts.ingredients, batch=opts.cleanup_batch,
                                                    readers=opts.readers, seed=opts.seed, progress=say)
                    warnings.extend(cleanup.get("warnings", []))
            warnings.extend(f"{name}: {w}" for w in expiry[name].get("warnings", []))

    section: dict[str, Any] = {
        "options": {**asdict(opts), "stores": list(opts.stores), "memory_counts": list(opts.memory_counts),
                    "cleanup_every_s": opts.job_interval_s, "spread_s": opts.create_spread_s},
        "servers": {"postgres": endpoints.postgres.version, "redis": endpoints.redis.version},
        "assumptions": [
            f"TTL scaled from 86 400 s to {int(opts.ttl_s)} s; lags are absolute (not scaled back)",
            f"PostgreSQL's application cleanup job runs every {opts.job_interval_s:.3g} s "
            "(an hourly job at a 24 h TTL, scaled the same way)",
            "lags are measured on this host's clock; intended expiry is read from each server "
            "(PEXPIRETIME / expires_at) and corrected by the measured clock offset",
        ],
        "expiry": expiry,
        "cleanup": cleanup,
        "memory": memory,
        "warnings": warnings,
        "duration_s": round(time.perf_counter() - t0, 3),
    }
    return TtlResult(section=section, claims=build_claims(section))


# --------------------------------------------------------------------------------------------


def _ms(d: dict[str, Any], key: str) -> str:
    v = d.get(key)
    return "—" if v is None else f"{v:,.1f}" if v >= 10 else f"{v:.2f}"


def _factor(x: float) -> str:
    """1.04× stays 1.04× (not "1.0×"), 4.73× reads 4.7×."""
    return f"{x:.2f}×" if x < 1.95 else f"{x:.1f}×"


def build_claims(section: dict[str, Any]) -> list[Claim]:
    claims = blank_claims()
    expiry, memory, cleanup = section["expiry"], section["memory"], section.get("cleanup")
    redis = {k: v for k, v in expiry.items() if v["kind"] == "redis"}
    pg = expiry.get("postgres")

    parts: list[str] = []
    figures: dict[str, Any] = {}
    for name, e in expiry.items():
        figures[name] = {"readable_lag_ms": e["readable_lag_ms"], "removed_lag_ms": e["removed_lag_ms"],
                         "sliding_violations": e["sliding"]["total_violations"]}
    timed = {k: e for k, e in redis.items() if e.get("notifications")}
    if redis:
        worst = max(redis.values(), key=lambda e: e["readable_lag_ms"].get("p99", 0) or 0)
        text = (f"Redis: unreadable {_ms(worst['readable_lag_ms'], 'p99')} ms after expiry (p99, read-probe "
                f"resolution {_ms(worst['readable_resolution_ms'], 'p50')} ms); ")
        if timed:
            slow = max(timed.values(), key=lambda e: e["removed_lag_ms"].get("p99", 0) or 0)
            text += (f"removed by active expiry with no job, lag p50 {_ms(slow['removed_lag_ms'], 'p50')} / "
                     f"p99 {_ms(slow['removed_lag_ms'], 'p99')} / max {_ms(slow['removed_lag_ms'], 'max')} ms")
        else:
            text += "physical removal not timed (keyspace notifications unavailable on this server)"
        parts.append(text)
    # PostgreSQL hides an expired session itself (the expires_at filter) when none stayed readable
    # and the last became unreadable within a second
    pg_hidden = pg is not None and pg["readable_never_gone"] == 0 and (pg["readable_lag_ms"].get("p99") or 0) < 1000
    if pg:
        waiting = (f"rows stay until a cleanup job deletes them (up to {pg.get('max_expired_rows_waiting_for_cleanup', 0)} "
                   f"expired rows waiting with a {pg.get('cleanup_every_s', 0):.3g} s job)")
        if pg_hidden:
            parts.append(f"PostgreSQL: unreadable {_ms(pg['readable_lag_ms'], 'p99')} ms after expiry (p99) through the "
                         f"expires_at filter but {waiting}")
        else:
            parts.append(f"PostgreSQL: its expires_at filter did not hide expired sessions in time "
                         f"({pg['readable_never_gone']} still readable, p99 {_ms(pg['readable_lag_ms'], 'p99')} ms after "
                         f"expiry); {waiting}")
    if cleanup:
        single = next((v for v in cleanup["variants"] if v["variant"] == "single"), None)
        if single:
            fg = single["foreground"]
            before, vacuumed = single["size_before"]["total"], single["size_after_vacuum"]["total"]
            shrink = ("files did not shrink after VACUUM" if vacuumed >= before else
                      f"files shrank by {100 * (before - vacuumed) / before:.0f}% after VACUUM")
            dead = sum(x or 0 for x in single["dead_tuples_after"].values())
            parts.append(
                f"the job's DELETE of {single['deleted_sessions']:,} expired sessions "
                f"(+{single['expired_ingredient_rows']:,} ingredient rows) took {single['duration_s']:.2f} s, "
                f"wrote {human_bytes(single['wal_bytes'])} WAL, left {dead:,} dead tuples; read p99 "
                f"{fg['baseline'].get('p99_ms', 0):.2f} → {fg['during_cleanup'].get('p99_ms', 0):.2f} ms during it; "
                f"{shrink} ({human_bytes(before)} → {human_bytes(vacuumed)})")
            figures["cleanup_single"] = {k: single[k] for k in ("deleted_sessions", "duration_s", "wal_bytes",
                                                               "rows_per_s", "size_before", "size_after_vacuum")}
    viol = {k: v["sliding"]["total_violations"] for k, v in expiry.items()}
    if viol:
        parts.append("sliding-expiry violations: " + ", ".join(f"{k} {v}" for k, v in viol.items()))
    # what contradicts "Redis expires sessions itself": a key still readable after its expiry, a key
    # never removed (when removal could be timed), a sliding session lost or kept against its TTL.
    # Removal that could not be timed (no keyspace notifications) is no evidence either way.
    redis_faults = []
    for name, e in redis.items():
        if e["readable_never_gone"]:
            redis_faults.append(f"{name}: {e['readable_never_gone']} sessions still readable after their expiry")
        if e["removed_not_observed"] and e.get("notifications"):
            redis_faults.append(f"{name}: {e['removed_not_observed']} expired keys never removed")
        if e["sliding"]["total_violations"]:
            redis_faults.append(f"{name}: {e['sliding']['total_violations']} sessions expired against the sliding "
                                "TTL (lost though touched, or kept though idle)")
    if redis and pg:
        pg_needs_job = (pg.get("max_expired_rows_waiting_for_cleanup") or 0) > 0 or cleanup is not None
        if redis_faults:
            verdict = "contradicted"
            parts.append("so: Redis's TTL did not do it alone — " + "; ".join(redis_faults))
        elif not timed:
            verdict = "inconclusive"
            parts.append("Redis's own removal of expired keys could not be observed here")
        elif pg_needs_job and pg_hidden:
            verdict = "partly supported"
            parts.append("so: Redis removes expired sessions itself; PostgreSQL hides them itself too and needs "
                         "the job only to reclaim rows")
        else:
            verdict = "supported"
            parts.append("so: Redis removes expired sessions itself; PostgreSQL needs the cleanup job")
    else:
        verdict = "not measured"
        if parts:
            parts.append("no verdict: it needs PostgreSQL and a Redis store in the same run")
    if parts:
        fill(claims, "auto_expiry", measured="; ".join(parts), verdict=verdict, figures=figures, command=COMMAND)

    pg_mem = memory.get("postgres")
    redis_mem = {k: v for k, v in memory.items() if v["kind"] == "redis"}
    if pg_mem or redis_mem:
        figs = {k: {"bytes_per_session": v["bytes_per_session"],
                    "at_sessions": v["points"][-1]["sessions"] if v["points"] else None}
                for k, v in memory.items()}
        k_ing = next(iter(memory.values()))["ingredients"]
        bits = [f"{k} {v['bytes_per_session']:,.0f} B/session" for k, v in memory.items()]
        n = next(iter(memory.values()))["points"][-1]["sessions"]
        text = f"at {n:,} sessions × {k_ing} ingredients: " + ", ".join(bits)
        if pg_mem and redis_mem:
            r = max(v["bytes_per_session"] for v in redis_mem.values())
            p = pg_mem["bytes_per_session"]
            if r >= p:
                verdict = "supported"
                text += f"; Redis needs {_factor(r / p)} PostgreSQL's bytes, and all of it in RAM"
            else:
                verdict = "partly supported"
                text += (f"; Redis holds every session in RAM (used_memory), but {_factor(p / r)} fewer bytes than "
                         "PostgreSQL's tables + indexes, which live on disk and use RAM only as a cache")
        else:
            verdict = "not measured"
            text += "; no verdict: it needs PostgreSQL and a Redis store in the same run"
        fill(claims, "memory_use", measured=text, verdict=verdict, figures=figs, command=COMMAND)
    return list(claims.values())


# --------------------------------------------------------------------------------------------


def render_ttl(result: TtlResult, console: Any) -> None:
    """Terminal tables: expiry, sliding expiry, PostgreSQL cleanup, bytes per session, claims."""
    from rich.table import Table

    sec = result.section
    o = sec["options"]
    console.print(f"[bold]fridgebench ttl[/] — {o['sessions']:,} sessions per store, TTL {o['ttl_s']:g} s, "
                  f"{o['ingredients']} ingredients; PostgreSQL {sec['servers'].get('postgres', '?')}, "
                  f"Redis {sec['servers'].get('redis', '?')}")

    t = Table(title="Expiry lag after the intended expiry instant (ms)", title_justify="left")
    for col in ("store", "unreadable p50", "p99", "max", "probe res. p50", "removed p50", "p99", "max",
                "not removed", "removed by"):
        t.add_column(col, justify="left" if col in ("store", "removed by") else "right")
    for name, e in sec["expiry"].items():
        rl, rm = e["readable_lag_ms"], e["removed_lag_ms"]
        t.add_row(name, _ms(rl, "p50"), _ms(rl, "p99"), _ms(rl, "max"), _ms(e["readable_resolution_ms"], "p50"),
                  _ms(rm, "p50"), _ms(rm, "p99"), _ms(rm, "max"), str(e["removed_not_observed"]), e["removed_how"])
    console.print(t)

    t = Table(title="Sliding expiry (touched sessions must survive, untouched must expire)", title_justify="left")
    for col in ("store", "touched", "untouched", "touch rejected", "touched lost", "ingredient lost",
                "untouched survived", "never expired", "violations"):
        t.add_column(col, justify="left" if col == "store" else "right")
    for name, e in sec["expiry"].items():
        s, v = e["sliding"], e["sliding"]["violations"]
        t.add_row(name, str(s["touched"]), str(s["untouched"]), str(v["touch_rejected"]), str(v["touched_lost"]),
                  str(v["touched_missing_ingredient"]), str(v["untouched_survived"]),
                  str(v["touched_never_expired"]),
                  f"[{'red' if s['total_violations'] else 'green'}]{s['total_violations']}[/]")
    console.print(t)

    c = sec.get("cleanup")
    if c:
        t = Table(title=f"PostgreSQL cleanup of {c['variants'][0]['expired_sessions']:,} expired of "
                        f"{c['sessions']:,} sessions ({c['ingredients']} ingredient rows each)", title_justify="left")
        for col in ("variant", "duration", "rows/s", "WAL", "dead tuples", "size before", "after",
                    "after VACUUM", "VACUUM", "read p99 before → during", "reads/s before → during"):
            t.add_column(col, justify="left" if col == "variant" else "right")
        for v in c["variants"]:
            fg = v["foreground"]
            name = v["variant"] + (f" ({v['batch_size']}/batch, {v['batches']} batches)" if "batches" in v else "")
            t.add_row(name, f"{v['duration_s']:.2f} s", f"{v['rows_per_s'] or 0:,.0f}", human_bytes(v["wal_bytes"]),
                      f"{sum(x or 0 for x in v['dead_tuples_after'].values()):,}",
                      human_bytes(v["size_before"]["total"]), human_bytes(v["size_after"]["total"]),
                      human_bytes(v["size_after_vacuum"]["total"]), f"{v['vacuum_s']:.2f} s",
                      f"{fg['baseline'].get('p99_ms', 0):.2f} → {fg['during_cleanup'].get('p99_ms', 0):.2f} ms",
                      f"{fg['baseline'].get('ops_per_s', 0):,.0f} → {fg['during_cleanup'].get('ops_per_s', 0):,.0f}")
        console.print(t)

    t = Table(title="Bytes per session", title_justify="left")
    for col in ("store", "sessions", "bytes/session", "total", "detail", "load"):
        t.add_column(col, justify="left" if col in ("store", "detail") else "right")
    for name, m in sec["memory"].items():
        for pt in m["points"]:
            if m["kind"] == "redis":
                mu = pt["memory_usage_per_key"]
                detail = (f"MEMORY USAGE/key p50 {mu.get('p50', 0):.0f} B, value p50 {pt['value_bytes'].get('p50', 0):.0f} B,"
                          f" key {pt['key_bytes']} B (RAM)")
            else:
                b = pt["bytes_per_session_by_part"]
                detail = f"heap {b['heap']:.0f} + indexes {b['indexes']:.0f} + TOAST {b['toast']:.0f} B (disk)"
            t.add_row(name, f"{pt['sessions']:,}", f"{pt['bytes_per_session']:,.0f}", human_bytes(pt["bytes_total"]),
                      detail, f"{pt['load_s']:.1f} s")
    console.print(t)

    console.print("[bold]Seed claims measured by ttl[/]")
    for cl in result.claims:
        if cl.command == COMMAND:
            colour = {"supported": "green", "contradicted": "red"}.get(cl.verdict, "yellow")
            console.print(f"  [bold]{cl.topic}[/] (seed: PostgreSQL \"{cl.seed_postgres}\", Redis \"{cl.seed_redis}\"): "
                          f"[{colour}]{cl.verdict}[/]\n    {cl.measured}", soft_wrap=False)
    for w in sec.get("warnings", []):
        console.print(f"[yellow]warning:[/] {w}")

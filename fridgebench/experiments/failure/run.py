"""One fault case under load, start to finish; and the whole planned run.

A case: open the store (through the fault proxy for network faults), load a fresh population
(ids salted per case: cases never see each other's sessions), drive the scenario's open loop; at
``--at`` seconds into the measured window inject the fault, heal it ``--down`` seconds later, and
keep the load going to watch the recovery. Then wait until the faulted server serves real
commands again, read every session back through the store (the application's view), account for
every operation (:mod:`.accounting`), build the timeline (:mod:`.timeline`), and delete exactly
what the case wrote.

Whatever happens -- an error, Ctrl-C, SIGTERM -- the fault is healed on the way out: a paused
server is continued, the proxy closed, ``maxmemory`` restored, an external server's start command
run. A crashed server left down is stopped with its run folder by the fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

from fridgebench.engine.driver import Progress, run_open_loop
from fridgebench.errors import StoreUnavailable
from fridgebench.experiments.compare import executor
from fridgebench.experiments.failure import accounting as acct
from fridgebench.experiments.failure.history import History, recording
from fridgebench.experiments.failure.plan import SERVER_NAME, Case, FailureOptions, Plan
from fridgebench.experiments.failure.timeline import interval_histograms, timeline
from fridgebench.faults.base import Fault, FaultError
from fridgebench.faults.durability import MODES
from fridgebench.faults.memory import MemoryFull
from fridgebench.faults.process import ExternalCrash, ProcessFault
from fridgebench.faults.proxy import FaultProxy, ProxyFault, measure_added_latency
from fridgebench.measure.summary import summarize
from fridgebench.provision.fleet import Controlled
from fridgebench.stores import TWO_SERVER_STORES, SessionStore, make_store
from fridgebench.stores.base import Session
from fridgebench.workload.generator import Workload

EventSink = Callable[[str], None]
READ_BATCH = 200


@dataclass
class CaseResult:
    case: Case
    fault: dict[str, Any]
    server: dict[str, Any]
    timeline: dict[str, Any]
    accounting: dict[str, Any]
    history: dict[str, Any]
    overall: dict[str, Any]
    store_stats: dict[str, Any] = field(default_factory=dict)
    where: dict[str, Any] | None = None
    proxy_overhead: dict[str, Any] | None = None
    heal_notes: list[str] = field(default_factory=list)
    interval_histograms: list[Any] = field(default_factory=list, repr=False)
    measure_start_epoch: float = 0.0
    error_samples: dict[str, str] = field(default_factory=dict)  # one message per error class

    def to_dict(self) -> dict[str, Any]:
        c = self.case
        return {
            "id": c.id, "store": c.store, "fault": c.fault, "policy": c.policy, "target": c.target,
            "durability": c.mode, "client": c.client.to_dict(), "label": c.label(),
            "fault_detail": self.fault, "server": self.server, "history": self.history,
            "accounting": self.accounting, "recovery": self.timeline["recovery"],
            "before": self.timeline["before"], "during": self.timeline["during"], "after": self.timeline["after"],
            "inject_s": self.timeline["inject_s"], "heal_s": self.timeline["heal_s"],
            "fault_seconds": self.timeline["fault_seconds"], "overall": self.overall,
            "store_stats": self.store_stats, "where_sessions_are": self.where, "proxy_overhead": self.proxy_overhead,
            "heal_notes": self.heal_notes, "error_samples": self.error_samples, "timeline": self.timeline["series"],
        }


@dataclass
class FailureResult:
    plan: Plan
    cases: list[CaseResult]
    servers: list[dict[str, Any]]
    proxy_overhead: dict[str, dict[str, Any]]
    warnings: list[str]


def _server_facts(srv: Controlled) -> dict[str, Any]:
    mode = MODES.get(srv.mode)
    return {"kind": srv.kind, "mode": srv.mode, "source": srv.info.source, "version": srv.info.version,
            "settings": dict(srv.settings), "durability_read": dict(srv.info.durability),
            "promise": mode.to_dict() if mode else None}


async def _serves(srv: Controlled, url: str, timeout_s: float) -> float | None:
    """Seconds until the server answers a real command (Redis GET, not PING: it answers PING while
    loading; PostgreSQL a query on the sessions table), or None at the deadline."""
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    while time.monotonic() < deadline:
        try:
            if srv.kind == "redis":
                import redis.asyncio as aioredis

                r = aioredis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
                try:
                    await r.get("fridgebench:failure:probe")
                finally:
                    await r.aclose()
            else:
                import asyncpg

                conn = await asyncpg.connect(url, timeout=1.0)
                try:
                    await conn.fetchval("SELECT count(*) FROM (SELECT 1 FROM user_fridge_sessions LIMIT 1) s")
                finally:
                    await conn.close()
            return time.monotonic() - t0
        except Exception:
            await asyncio.sleep(0.02)
    return None


async def _read_back(store: SessionStore, ids: list[str]) -> dict[str, Session | None | Any]:
    """Every session through the store's own ``get``; a read that keeps failing is UNREADABLE."""
    out: dict[str, Session | None | Any] = {}

    async def one(sid: str) -> None:
        for attempt in range(4):
            try:
                out[sid] = await store.get(sid)
                return
            except Exception:
                await asyncio.sleep(0.05 * 2 ** attempt)
        out[sid] = acct.UNREADABLE

    for start in range(0, len(ids), READ_BATCH):
        await asyncio.gather(*(one(s) for s in ids[start:start + READ_BATCH]))
    return out


def _where(store: SessionStore, located: dict[str, tuple[Session | None, Session | None]]) -> dict[str, Any]:
    """Where the two-server stores' sessions are: Redis (or the cache) vs PostgreSQL."""
    first = "redis" if store.name == "redis-fallback" else "cache"
    only_first = only_pg = both_same = both_differ = neither = 0
    for a, b in located.values():
        if a is None and b is None:
            neither += 1
        elif b is None:
            only_first += 1
        elif a is None:
            only_pg += 1
        elif list(a.ingredients) == list(b.ingredients):
            both_same += 1
        else:
            both_differ += 1
    out = {f"only_in_{first}": only_first, "only_in_postgres": only_pg, "in_both_same": both_same,
           "in_both_differing": both_differ, "in_neither": neither, "sessions": len(located)}
    if first == "redis":
        out["meaning"] = ("only_in_postgres: written to PostgreSQL while Redis failed, invisible once Redis answers; "
                          "in_both_differing: updates that landed in one store and not the other")
    else:
        out["meaning"] = ("in_both_differing: a cached copy older than PostgreSQL's (a cache update skipped while "
                          "Redis was unreachable); only_in_cache: a cached copy of a session PostgreSQL no longer has")
    return out


def _stats(store: SessionStore) -> dict[str, Any]:
    out: dict[str, Any] = {}
    stats = getattr(store, "stats", None)
    if callable(stats):
        out.update(stats())
    for attr in ("retried", "recovered"):
        if hasattr(store, attr) and type(store).__name__ == "RetryingStore":
            out[f"retries_{attr}"] = getattr(store, attr)
    return out


async def run_case(case: Case, opts: FailureOptions, servers: dict[tuple[str, str], Controlled],
                   modes: dict[str, tuple[str, ...]], *, on_event: EventSink,
                   proxy_costs: dict[str, dict[str, Any]]) -> CaseResult:
    sc = opts.scenario
    target = servers[(case.target, case.mode)]
    other: Controlled | None = None
    if case.store in TWO_SERVER_STORES:
        other_kind = "postgres" if case.target == "redis" else "redis"
        other = servers[(other_kind, modes[other_kind][0])]
    await _ensure_up(target, opts, on_event)
    urls = {target.kind: target.url}
    if other is not None:
        urls[other.kind] = other.url
    proxy: FaultProxy | None = None
    fault: Fault
    overhead = None
    if case.fault in ("latency", "reset", "blackhole", "refuse"):
        if not target.info.port:
            raise FaultError(f"network faults need a TCP address for {SERVER_NAME[target.kind]} "
                             "(a unix socket cannot go through the fault proxy)")
        proxy = await FaultProxy(target.info.host or "127.0.0.1", target.info.port, seed=sc.seed).start()
        on_event(f"fault proxy 127.0.0.1:{proxy.port} -> {target.info.host}:{target.info.port} "
                 f"({SERVER_NAME[target.kind]})")
        urls[target.kind] = proxy.url_for(target.url)
        fault = ProxyFault(case.fault, proxy, target.kind, latency_ms=opts.latency_ms, jitter_ms=opts.jitter_ms)
    elif case.fault == "memory-full":
        fault = MemoryFull(target, case.policy or "noeviction", fraction=opts.memory_fraction,
                           allow_external=opts.allow_config_set)
    elif target.external:
        assert opts.kill_cmd and opts.start_cmd
        url = target.url
        fault = ExternalCrash(target, opts.kill_cmd, opts.start_cmd, timeout_s=opts.cmd_timeout_s,
                              ready=lambda t: _serves(target, url, t))
    else:
        fault = ProcessFault(case.fault, target)
    try:
        if proxy is not None and opts.measure_proxy:
            overhead = proxy_costs.get(target.kind)
            if overhead is None:
                overhead = proxy_costs[target.kind] = await measure_added_latency(target.kind, target.url, proxy)
        return await _drive(case, opts, fault, target, urls, on_event, overhead)
    finally:
        notes = [] if fault.healed or not fault.injected else await fault.emergency_heal()
        for line in notes:
            on_event(f"healed on the way out: {line}")
        if proxy is not None:
            proxy.close()


async def _ensure_up(srv: Controlled, opts: FailureOptions, on_event: EventSink) -> None:
    """A server an earlier case left down or paused (its heal failed) is brought back first."""
    if srv.paused:
        srv.resume()
    if srv.down:
        on_event(f"starting the {SERVER_NAME[srv.kind]} server again (an earlier case left it down)")
        srv.respawn()
        await asyncio.to_thread(srv.wait_ready, opts.ready_timeout_s)


OPEN_ATTEMPTS = 3


@contextlib.asynccontextmanager
async def _opened(store: SessionStore, name: str, on_event: EventSink) -> AsyncIterator[SessionStore]:
    """``async with store``, except that connecting is tried up to :data:`OPEN_ATTEMPTS` times, 1 s apart:
    the case has not started, and the client's short connect timeout (the one under test) can expire once
    on a server still busy after an earlier case (a restarted PostgreSQL's end-of-recovery checkpoint)."""
    for attempt in range(1, OPEN_ATTEMPTS + 1):
        try:
            await store.open()
            break
        except StoreUnavailable as exc:
            if attempt == OPEN_ATTEMPTS:
                raise
            on_event(f"  {name}: {exc.message} -- connecting again in 1 s (attempt {attempt + 1} of "
                     f"{OPEN_ATTEMPTS}; the case has not started)")
            await asyncio.sleep(1.0)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_exit(store)  # opened: from here on, leaving is the store's own __aexit__
        yield store


async def _drive(case: Case, opts: FailureOptions, fault: Fault, target: Controlled, urls: dict[str, str],
                 on_event: EventSink, overhead: dict[str, Any] | None) -> CaseResult:
    store = make_store(case.store, postgres_dsn=urls.get("postgres", ""), redis_url=urls.get("redis", ""),
                       pool_size=opts.scenario.load.concurrency, client=case.client)
    history = History()
    async with _opened(store, case.store, on_event):  # leaving it deletes exactly what the store wrote -- after the heal, below
        try:
            return await _measure(case, opts, fault, target, store, history, on_event, overhead)
        except BaseException:
            if fault.injected and not fault.healed:  # heal first: a paused server would hold up the cleanup
                for line in await fault.emergency_heal():
                    on_event(f"healed on the way out: {line}")
            raise


async def _measure(case: Case, opts: FailureOptions, fault: Fault, target: Controlled, store: SessionStore,
                   history: History, on_event: EventSink, overhead: dict[str, Any] | None) -> CaseResult:
    sc = opts.scenario
    load = sc.load
    workload = Workload.from_catalogue(sc)  # a fresh salt: this case's ids are its own
    population = workload.population()
    server_facts: dict[str, Any] = {}
    t_load = time.perf_counter()
    await store.bulk_load(population, sc.ttl_seconds)
    loaded = (t_load, time.perf_counter())
    start_at = time.perf_counter() + 0.1
    inject_at = start_at + load.warmup_seconds + opts.at_s
    instants: dict[str, float] = {}
    epoch = time.time() + (start_at + load.warmup_seconds - time.perf_counter())

    async def injector() -> None:
        await _sleep_until(inject_at)
        instants["inject"] = await fault.inject()
        on_event(f"  injected {case.fault} into {SERVER_NAME[target.kind]}"
                 f"{' (pid ' + str(target.info.pid) + ')' if target.info.pid else ''} "
                 f"at {instants['inject'] - start_at - load.warmup_seconds:.2f} s")
        if fault.uses_down:
            await _sleep_until(instants["inject"] + opts.down_s)
        instants["heal"] = await fault.heal()
        on_event(f"  healed {case.fault} after {instants['heal'] - instants['inject']:.2f} s")
        server_facts.update(await fault.recover(opts.ready_timeout_s))

    task = asyncio.create_task(injector())
    driving = asyncio.create_task(run_open_loop(
        recording(executor(store, sc.ttl_seconds), history), workload.ops(population), load, seed=sc.seed,
        progress=Progress(), start_at=start_at))
    try:
        # a fault that cannot be injected or healed (a failing --kill-cmd) ends the case at once
        await asyncio.wait({task, driving}, return_when=asyncio.FIRST_EXCEPTION)
        if task.done() and task.exception() is not None:
            task.result()
        log, win = await driving
        await asyncio.wait_for(asyncio.shield(task), opts.ready_timeout_s + opts.cmd_timeout_s)
        task.result()
    finally:
        for t in (task, driving):
            if not t.done():
                t.cancel()
        await asyncio.gather(task, driving, return_exceptions=True)
    served = await _serves(target, target.url, opts.ready_timeout_s)
    if served is None:
        raise FaultError(f"the {SERVER_NAME[target.kind]} server did not serve again within "
                         f"{opts.ready_timeout_s:g} s of the heal")
    ids = list(dict.fromkeys([sid for sid, _ in population] + history.created_ids()))
    read_at = time.perf_counter()
    final = await _read_back(store, ids)
    where = None
    locate = getattr(store, "locate", None)
    if callable(locate):
        where = _where(store, await locate(ids))
    window = acct.Window(instants["inject"], instants["heal"])
    accounting = acct.check(history.events, {sid: names for sid, names in population}, loaded, final,
                            read_at, sc.ttl_seconds, window)
    tl = timeline(log, win, instants["inject"], instants["heal"])
    intervals = interval_histograms(log, win)
    measurement = summarize(log, win)
    stats = _stats(store)
    r = tl["recovery"]
    on_event(f"  {accounting.sessions_lost:,} of {accounting.sessions_judged:,} acknowledged sessions lost, "
             f"{accounting.adds_lost:,} adds lost, {accounting.false_not_found:,} false 'no such session'; "
             f"errors {tl['during']['errors']:,} during the fault; first success after heal "
             f"{_secs(r['first_success_after_heal_s'])}")
    return CaseResult(case, fault.describe(), server_facts, tl, accounting.to_dict(), history.counts(),
                      measurement.overall, stats, where, overhead, [], intervals, epoch, dict(log.error_samples))


def _secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f} s"


async def _sleep_until(t: float) -> None:
    while True:
        d = t - time.perf_counter()
        if d <= 0:
            return
        await asyncio.sleep(min(d, 0.05) if d > 0.002 else 0)


async def run_failure(plan: Plan, opts: FailureOptions, servers: dict[tuple[str, str], Controlled], *,
                      on_event: EventSink) -> FailureResult:
    """Every planned case in turn (each heals its fault before the next starts)."""
    results: list[CaseResult] = []
    proxy_costs: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    for i, case in enumerate(plan.cases, 1):
        on_event(f"[{i}/{len(plan.cases)}] {case.label()}")
        res = await run_case(case, opts, servers, plan.modes, on_event=on_event, proxy_costs=proxy_costs)
        results.append(res)
        ov = res.overall
        if ov.get("unsent") or ov.get("unfinished"):
            warnings.append(f"{case.id}: {ov['unsent']} operations never sent and {ov['unfinished']} unfinished at "
                            "the drain deadline (counted as errors)")
        if res.accounting["unreadable"]:
            warnings.append(f"{case.id}: {res.accounting['unreadable']} sessions could not be read back (not judged)")
    facts = [{**_server_facts(s), "url": s.info.url, "pid": s.info.pid} for s in servers.values()]
    return FailureResult(plan, results, facts, proxy_costs, warnings)

"""Profile one store: per operation kind, round trips, statements, server work, client CPU.

Two passes over the same plan, each on a store object of its own and sessions of its own:

1. **counting** — the store connects through :class:`~.wire.WireTap` relays (one per server it
   uses): round trips and statements per operation, its own connections only;
2. **timing** — the store connects directly: the client's CPU time (``time.process_time``: user +
   system of this process) and the wall time per operation, and the servers' counters
   (:mod:`.counters`) around each kind's window.

Each kind runs ``warmup`` operations first (connections made, statements prepared, caches filled),
then ``reps`` measured ones, one at a time: per-operation costs without queueing. The operations:
``get`` reads a session holding the scenario's typical number of ingredients; ``add`` adds the
scenario's typical number of names the session does not hold; ``remove`` removes names it holds;
``extend``, ``delete`` and ``create`` act on one session each; ``recipe`` looks up recipes already
cached (the Redis stores' cache hits).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from redis.exceptions import RedisError

from fridgebench import urls
from fridgebench.engine.driver import Execute
from fridgebench.profile.counters import PgCounters, RedisCounters, background
from fridgebench.profile.wire import WireCounts, WireTap
from fridgebench.provision.base import Endpoints
from fridgebench.stores import STORE_KINDS, make_store, schema
from fridgebench.workload.generator import Op
from fridgebench.workload.model import OP_KINDS, Scenario

DEFAULT_REPS = 30
DEFAULT_WARMUP = 5


@dataclass(frozen=True)
class ProfileOptions:
    reps: int = DEFAULT_REPS
    warmup: int = DEFAULT_WARMUP


@dataclass(frozen=True)
class Plan:
    """The sessions to load and the operations to run, per kind (warm-up first)."""

    population: list[tuple[str, list[str]]]
    ops: dict[str, list[Op]]


def make_plan(scenario: Scenario, kinds: list[str], opts: ProfileOptions, tag: str) -> Plan:
    names = [i.name for i in schema.ingredients()]
    lo, hi = scenario.population.ingredients
    held = max(1, (lo + hi) // 2)
    n_add = max(1, sum(scenario.ingredients.per_add) // 2)
    n_remove = min(held, max(1, sum(scenario.ingredients.per_remove) // 2))
    per_kind = opts.warmup + opts.reps
    population: list[tuple[str, list[str]]] = []
    ops: dict[str, list[Op]] = {}
    recipes = schema.recipes()
    for kind in kinds:
        if kind == "create":
            ops[kind] = [Op("create", f"{tag}-cre-{i:04d}") for i in range(per_kind)]
            continue
        if kind == "recipe":  # the measured lookups repeat the warm-up's recipes: cache hits
            ops[kind] = [Op("recipe", recipe_id=recipes[i % max(1, opts.warmup)].id) for i in range(per_kind)]
            continue
        rows = []
        for i in range(per_kind):
            sid = f"{tag}-{kind[:3]}-{i:04d}"
            base = [names[(i * 7 + j) % 100] for j in range(held)]
            population.append((sid, base))
            if kind == "add":
                rows.append(Op("add", sid, tuple(names[100 + (i * 3 + j) % 100] for j in range(n_add))))
            elif kind == "remove":
                rows.append(Op("remove", sid, tuple(base[:n_remove])))
            else:
                rows.append(Op(kind, sid))
        ops[kind] = rows
    return Plan(population, ops)


def _via(url: str, port: int) -> str:
    """``url`` with its host and port replaced by 127.0.0.1:``port`` (userinfo, path, query kept)."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo + '@' if userinfo else ''}127.0.0.1:{port}"))


def _tap_target(kind: str, url: str) -> tuple[str, int] | None:
    """Where a relay for this URL connects, or None when it cannot be relayed (unix sockets;
    TLS that checks the host name)."""
    if kind == "postgres":
        t = urls.postgres(url)
        if t.host.startswith("/") or "host" in t.options or "port" in t.options \
                or t.options.get("sslmode") in ("verify-ca", "verify-full"):
            return None
        return t.host, t.port
    r = urls.redis(url)
    if r.scheme != "redis":
        return None
    return r.host, r.port


@contextlib.asynccontextmanager
async def _taps(urls_by_kind: dict[str, str]) -> AsyncIterator[tuple[dict[str, WireTap], dict[str, str]]]:
    taps: dict[str, WireTap] = {}
    routed = dict(urls_by_kind)
    async with contextlib.AsyncExitStack() as stack:
        for kind, url in urls_by_kind.items():
            target = _tap_target(kind, url)
            if target is None:
                continue
            tap = await stack.enter_async_context(WireTap(target[0], target[1], kind))  # type: ignore[arg-type]
            taps[kind] = tap
            routed[kind] = _via(url, tap.port)
        yield taps, routed


def _executor(store: Any, ttl_s: int) -> Execute:
    from fridgebench.experiments.compare import executor

    return executor(store, ttl_s)


def _per_op(kind: str, d: WireCounts, n: int) -> dict[str, Any]:
    """A window's wire counts per operation: statements (PostgreSQL) or commands (Redis) sent."""
    what = "statements" if kind == "postgres" else "commands"
    out: dict[str, Any] = {"round_trips": round(d.round_trips / n, 2)}
    if d.readable:
        out[what] = round(d.statements / n, 2)
        out[f"by_{what[:-1]}"] = {k: round(v / n, 2) for k, v in sorted(d.by_verb.items(), key=lambda kv: -kv[1])}
    out["bytes_sent"] = round(d.bytes_sent / n)
    out["bytes_received"] = round(d.bytes_received / n)
    return out


async def _counting_pass(name: str, endpoints: Endpoints, scenario: Scenario, plan: Plan,
                         opts: ProfileOptions, servers: list[str]) -> dict[str, dict[str, Any]]:
    wanted = {k: (endpoints.postgres_dsn if k == "postgres" else endpoints.redis_url) for k in servers}
    out: dict[str, dict[str, Any]] = {k: {} for k in plan.ops}
    async with _taps(wanted) as (taps, routed):
        store = make_store(name, postgres_dsn=routed.get("postgres", ""), redis_url=routed.get("redis", ""),
                           pool_size=2)
        async with store:
            await store.bulk_load(plan.population, scenario.ttl_seconds)
            execute = _executor(store, scenario.ttl_seconds)
            for kind, ops in plan.ops.items():
                for op in ops[:opts.warmup]:
                    await execute(op)
                before = {k: t.counts() for k, t in taps.items()}
                for op in ops[opts.warmup:]:
                    await execute(op)
                for k, tap in taps.items():
                    out[kind][k] = _per_op(k, tap.counts() - before[k], opts.reps)
        for k in servers:
            if k not in taps:
                for kind in out:
                    out[kind][k] = {"round_trips": None, "note": "not relayed (unix socket or verified TLS)"}
    return out


async def _timing_pass(name: str, endpoints: Endpoints, scenario: Scenario, plan: Plan, opts: ProfileOptions,
                       servers: list[str], counters: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    store = make_store(name, postgres_dsn=endpoints.postgres_dsn if "postgres" in servers else "",
                       redis_url=endpoints.redis_url, pool_size=2)
    async with store:
        await store.bulk_load(plan.population, scenario.ttl_seconds)
        execute = _executor(store, scenario.ttl_seconds)
        for kind, ops in plan.ops.items():
            for op in ops[:opts.warmup]:
                await execute(op)
            before = {k: await c.snapshot() for k, c in counters.items()}
            cpu0, t0 = time.process_time(), time.perf_counter()
            for op in ops[opts.warmup:]:
                await execute(op)
            t1, cpu1 = time.perf_counter(), time.process_time()
            after = {k: await c.snapshot() for k, c in counters.items()}
            n = opts.reps
            row: dict[str, Any] = {"client_cpu_us": round((cpu1 - cpu0) / n * 1e6, 1),
                                   "wall_us": round((t1 - t0) / n * 1e6, 1)}
            for k in counters:
                d = after[k].minus(before[k])
                row[k] = _server_per_op(k, d, n)
            out[kind] = row
        pool = getattr(store, "pool_description", None)
        if callable(pool):
            out["_pool"] = pool()
    return out


def _server_per_op(kind: str, d: dict[str, Any], n: int) -> dict[str, Any]:
    if kind == "postgres":
        row: dict[str, Any] = {"write_transactions": round(d["write_transactions"] / n, 2),
                               "wal_bytes": round(d["wal_bytes"] / n)}
        if "statements" in d:
            row["statements"] = round(d["statements"] / n, 2)
            row["exec_us"] = round(d["exec_ms"] * 1000 / n, 1)
        return row
    return {"commands": round(d["commands"] / n, 2),
            "by_command": {c: round(v / n, 2) for c, v in sorted(d["by_command"].items(), key=lambda kv: -kv[1])},
            "exec_us": round(d["server_us"] / n, 1)}


def servers_of(name: str, kinds: list[str]) -> list[str]:
    """The servers a store's profiled operations reach (a Redis store's recipe lookups read PostgreSQL)."""
    own = STORE_KINDS[name]
    return [own] + (["postgres"] if own == "redis" and "recipe" in kinds else [])


async def open_counters(endpoints: Endpoints, servers: list[str]) -> tuple[dict[str, Any], list[str]]:
    """A counter reader per server; a server whose counters cannot be read (a standby, a Redis with
    INFO renamed away, no permission) is profiled without them, and said so."""
    out: dict[str, Any] = {}
    missing: list[str] = []
    try:
        for kind in servers:
            try:
                if kind == "postgres":
                    out[kind] = await PgCounters.connect(endpoints.postgres_dsn)
                else:
                    out[kind] = await RedisCounters.connect(endpoints.redis_url)
                    await out[kind].snapshot()
            except (asyncpg.PostgresError, RedisError) as exc:
                if kind in out:
                    await out.pop(kind).close()
                missing.append(f"{kind}: {type(exc).__name__}")
    except BaseException:
        await asyncio.gather(*(c.close() for c in out.values()), return_exceptions=True)
        raise
    return out, missing


async def profile_store(name: str, endpoints: Endpoints, scenario: Scenario, opts: ProfileOptions = ProfileOptions(),
                        *, on_event: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Profile ``name`` on the endpoints' servers; a section for the results document."""
    kinds = [k for k in OP_KINDS if scenario.mix.weights()[k] > 0]
    servers = servers_of(name, kinds)
    tag = f"prof-{secrets.token_hex(4)}"  # ids of their own: never anyone else's sessions
    counters, missing = await open_counters(endpoints, servers)
    try:
        quiet = {k: await background(c.snapshot) for k, c in counters.items()}
        wire = await _counting_pass(name, endpoints, scenario, make_plan(scenario, kinds, opts, tag + "w"), opts,
                                    servers)
        timing = await _timing_pass(name, endpoints, scenario, make_plan(scenario, kinds, opts, tag + "t"), opts,
                                    servers, counters)
        server_info = {}
        for k, c in counters.items():
            info: dict[str, Any] = {"background_per_s": quiet[k]}
            if k == "postgres":
                info.update(pg_stat_statements=c.has_statements, synchronous_commit=c.synchronous_commit)
            server_info[k] = info
    finally:
        await asyncio.gather(*(c.close() for c in counters.values()), return_exceptions=True)
    ops: dict[str, Any] = {}
    for kind in kinds:
        row = dict(timing[kind])
        for k in servers:
            row[k] = {**wire[kind].get(k, {}), "server": row.pop(k, {})}
        ops[kind] = row
    for m in missing:
        kind, _, why = m.partition(": ")
        server_info[kind] = {"counters": f"unavailable ({why})"}
    out: dict[str, Any] = {"ops": ops, "servers": server_info, "reps": opts.reps, "warmup": opts.warmup}
    if "_pool" in timing:
        out["pool"] = timing["_pool"]
    if on_event:
        on_event(f"{name}: profiled {', '.join(kinds)} ({opts.reps} operations each, one at a time)")
    return out

"""Bytes per session in each store, at several session counts.

Sessions are loaded through the store's own ``bulk_load`` (so the bytes are what the store
writes: Redis JSON values with the seed's ``\\uXXXX``-escaped names; PostgreSQL rows in the
application's schema), all live, with ``ingredients`` catalogue names each.

* Redis: ``INFO memory`` ``used_memory`` minus the clients' memory (``CLIENT LIST`` ``tot-mem``:
  the loading connection's query buffer is shrunk only later by the server's cron), after −
  before (allocator-reported bytes, includes the keyspace dict and expires dict entries);
  ``MEMORY USAGE key SAMPLES 0`` on a sample of keys (the key's own allocation, no dict overhead); ``used_memory_rss`` delta reported but
  noisy (allocator keeps freed pages).
* PostgreSQL: ``pg_total_relation_size`` of ``user_fridge_sessions`` + ``user_fridge_ingredients``
  (heap, free-space and visibility maps, indexes, TOAST) after ``VACUUM ANALYZE``, minus the
  size of the empty tables. That is disk (and page cache when hot), not process memory.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any, Callable

import asyncpg
import redis.asyncio as aioredis

from fridgebench.experiments.ttl.common import dist, session_ids
from fridgebench.stores import schema
from fridgebench.stores.base import SessionStore
from fridgebench.stores.scratch import empty_sessions

LOAD_TTL_S = 3600
CHUNK = 20_000

SIZES_SQL = """
SELECT c.relname AS table,
       pg_relation_size(c.oid) AS heap,
       pg_relation_size(c.oid, 'fsm') + pg_relation_size(c.oid, 'vm') AS maps,
       pg_indexes_size(c.oid) AS indexes,
       coalesce(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS toast,
       pg_total_relation_size(c.oid) AS total
  FROM pg_class c
 WHERE c.oid IN ('user_fridge_sessions'::regclass, 'user_fridge_ingredients'::regclass)
 ORDER BY c.relname DESC"""


async def pg_sizes(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, dict[str, int]]:
    return {r["table"]: {k: int(r[k]) for k in ("heap", "maps", "indexes", "toast", "total")}
            for r in await conn.fetch(SIZES_SQL)}


def _sessions(n: int, k: int, rng: random.Random, catalogue: list[str], salt: int) -> list[tuple[str, list[str]]]:
    return [(sid, rng.sample(catalogue, k)) for sid in session_ids(n, rng, salt)]


async def _empty(store: SessionStore, pool: asyncpg.Pool | None) -> None:
    """Start a point from nothing: PostgreSQL truncates its scratch tables (the files restart
    empty); Redis deletes exactly the keys the store wrote."""
    if pool is not None:
        await empty_sessions(store, pool)
    else:
        await store.discard_written()


async def _load(store: SessionStore, n: int, k: int, rng: random.Random, catalogue: list[str],
                salt: int) -> tuple[float, list[str]]:
    t0 = time.perf_counter()
    sample: list[str] = []
    done = 0
    while done < n:
        batch = _sessions(min(CHUNK, n - done), k, rng, catalogue, salt)
        if len(sample) < 200:
            sample.extend(s for s, _ in batch[: 200 - len(sample)])
        await store.bulk_load(batch, LOAD_TTL_S)
        done += len(batch)
    return time.perf_counter() - t0, sample


async def _redis_used(r: aioredis.Redis) -> dict[str, int]:
    """``used_memory`` and, read right after it, the clients' own memory (``CLIENT LIST`` ``tot-mem``:
    buffers, argv, the client struct). The loading connection's query buffer (a pipeline of
    thousands of SETEX) is shrunk only later by the server's cron -- it is not session data, yet
    ``used_memory`` counts it; ``mem_clients_normal`` in ``INFO`` is refreshed by that same cron,
    so it cannot be subtracted. ``data`` is ``used_memory`` minus the clients' memory."""
    # freed memory of UNLINKed values may be released by a background thread: wait for it
    for _ in range(50):
        info = await r.info("memory")
        if not int(info.get("lazyfree_pending_objects", 0) or 0):
            break
        await asyncio.sleep(0.02)
    async with r.pipeline(transaction=False) as pipe:
        pipe.info("memory")
        pipe.client_list()
        info, clients = await pipe.execute()
    client_mem = sum(int(c.get("tot-mem", 0)) for c in clients)
    used = int(info["used_memory"])
    return {"used_memory": used, "used_memory_rss": int(info.get("used_memory_rss", 0)),
            "clients": client_mem, "data": used - client_mem,
            "allocator": str(info.get("mem_allocator", ""))}  # type: ignore[dict-item]


async def measure_memory(store: SessionStore, *, postgres_dsn: str, redis_url: str, counts: tuple[int, ...],
                         ingredients: int, seed: int, id_salt: int = 0,
                         progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Bytes per session at each of ``counts``. PostgreSQL must be a scratch schema
    (:mod:`fridgebench.stores.scratch`): its session tables are truncated between points."""
    say = progress or (lambda _m: None)
    catalogue = [i.name for i in schema.ingredients()]
    points: list[dict[str, Any]] = []
    r = aioredis.from_url(redis_url) if store.kind == "redis" else None
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=2) if store.kind == "postgres" else None
    try:
        for n in counts:
            rng = random.Random(f"{seed}-memory-{n}")
            await _empty(store, pool)
            say(f"{store.name}: loading {n:,} sessions for bytes/session")
            if pool is not None:
                async with pool.acquire() as conn:
                    await conn.execute("VACUUM ANALYZE user_fridge_sessions, user_fridge_ingredients")
                    before = await pg_sizes(conn)
                    secs, _ = await _load(store, n, ingredients, rng, catalogue, id_salt)
                    await conn.execute("VACUUM ANALYZE user_fridge_sessions, user_fridge_ingredients")
                    after = await pg_sizes(conn)
                tables = {t: {k: after[t][k] - before[t][k] for k in after[t]} for t in after}
                total = sum(v["total"] for v in tables.values())
                points.append({
                    "sessions": n, "load_s": round(secs, 3), "bytes_total": total,
                    "bytes_per_session": round(total / n, 1),
                    "tables": tables,
                    "bytes_per_session_by_part": {
                        part: round(sum(v[part] for v in tables.values()) / n, 1)
                        for part in ("heap", "indexes", "toast", "maps")},
                })
            else:
                assert r is not None
                before_r = await _redis_used(r)
                secs, sample = await _load(store, n, ingredients, rng, catalogue, id_salt)
                after_r = await _redis_used(r)
                key = getattr(store, "key", lambda s: f"session:{s}")
                usage: list[int] = []
                strlen: list[int] = []
                async with r.pipeline(transaction=False) as pipe:
                    for s in sample:
                        pipe.memory_usage(key(s), samples=0)
                        pipe.strlen(key(s))
                    vals = await pipe.execute()
                usage = [int(v) for v in vals[0::2] if v is not None]
                strlen = [int(v) for v in vals[1::2] if v is not None]
                delta = after_r["data"] - before_r["data"]
                points.append({
                    "sessions": n, "load_s": round(secs, 3), "bytes_total": delta,
                    "bytes_per_session": round(delta / n, 1),
                    "used_memory_before": before_r["used_memory"], "used_memory_after": after_r["used_memory"],
                    "client_buffers_before": before_r["clients"], "client_buffers_after": after_r["clients"],
                    "rss_delta_per_session": round((after_r["used_memory_rss"] - before_r["used_memory_rss"]) / n, 1),
                    "memory_usage_per_key": dist(usage, 1),
                    "value_bytes": dist(strlen, 1),
                    "key_bytes": len(key(sample[0]).encode()) if sample else None,
                    "allocator": after_r["allocator"],
                })
            await _empty(store, pool)
    finally:
        if r is not None:
            await r.aclose()
        if pool is not None:
            await pool.close()
    return {"store": store.name, "kind": store.kind, "ingredients": ingredients, "points": points,
            "bytes_per_session": points[-1]["bytes_per_session"] if points else None,
            "measured_as": ("used_memory delta (RAM)" if store.kind == "redis"
                            else "pg_total_relation_size delta after VACUUM ANALYZE (disk; page cache when hot)")}

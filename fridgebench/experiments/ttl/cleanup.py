"""What PostgreSQL's "manual cleanup" costs: the application's periodic DELETE, batched deletes, VACUUM.

Runs in a scratch schema (:mod:`fridgebench.stores.scratch`; refused anywhere else): the
application's DELETE removes every expired row of its table, whoever wrote it.

For each variant the session tables are emptied and loaded server-side (``generate_series``)
with ``sessions`` sessions of ``ingredients`` rows each, every ``expired_every``-th one already
expired (interleaved, as sessions of different ages are), then ``VACUUM ANALYZE`` and a
``CHECKPOINT`` so every variant starts from the same state (the first change to a page after a
checkpoint writes a full-page image to the WAL). Autovacuum is switched off on the two tables
for the duration (restored afterwards) so the dead-tuple counts are ours alone.

Measured: duration, rows/s (sessions and cascaded ingredient rows), WAL bytes
(``pg_current_wal_lsn`` difference), dead tuples, sizes before / after / after VACUUM, and the
latency of a concurrent point-read load (the store's own ``get``, ``readers`` closed-loop
workers) while the cleanup runs vs. the same load just before it.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any, Callable

import asyncpg
from hdrh.histogram import HdrHistogram

from fridgebench.experiments.ttl.common import dist
from fridgebench.experiments.ttl.memory import pg_sizes
from fridgebench.stores.base import SessionStore
from fridgebench.stores.scratch import empty_sessions, require_scratch

TABLES = ("user_fridge_sessions", "user_fridge_ingredients")

LOAD_SQL = """
WITH ids AS (SELECT array_agg(id ORDER BY id) AS a FROM ingredients),
s AS (
    INSERT INTO user_fridge_sessions (session_id, created_at, expires_at, last_accessed)
    SELECT gen_random_uuid()::text, now() - interval '1 day',
           CASE WHEN g % $3 = 0 THEN now() - interval '1 minute' ELSE now() + interval '1 day' END,
           now() - interval '1 hour'
      FROM generate_series(1, $1) AS g
    RETURNING session_id)
INSERT INTO user_fridge_ingredients (session_id, ingredient_id, added_at)
SELECT s.session_id, ids.a[1 + (b.base + j) % cardinality(ids.a)], now() - interval '1 hour'
  FROM s CROSS JOIN ids
 CROSS JOIN LATERAL (SELECT floor(random() * 100000)::int + 0 * length(s.session_id) AS base) AS b
 CROSS JOIN generate_series(0, $2 - 1) AS j
"""

SINGLE_SQL = "DELETE FROM user_fridge_sessions WHERE expires_at < now()"
BATCH_SQL = """DELETE FROM user_fridge_sessions WHERE session_id IN (
    SELECT session_id FROM user_fridge_sessions WHERE expires_at < now() LIMIT $1)"""

STATS_SQL = """SELECT relname, n_live_tup, n_dead_tup FROM pg_stat_user_tables
 WHERE relid IN ('user_fridge_sessions'::regclass, 'user_fridge_ingredients'::regclass)"""


async def _stats(conn: asyncpg.Connection) -> dict[str, dict[str, int]]:
    try:
        await conn.execute("SELECT pg_stat_force_next_flush()")  # PG 15+: our backend's counters now
    except asyncpg.PostgresError:
        await asyncio.sleep(0.6)  # older servers flush at most every 500 ms
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return {r["relname"]: {"live": int(r["n_live_tup"]), "dead": int(r["n_dead_tup"])}
            for r in await conn.fetch(STATS_SQL)}


async def _lsn(conn: asyncpg.Connection) -> str:
    return str(await conn.fetchval("SELECT pg_current_wal_lsn()::text"))


async def _wal_since(conn: asyncpg.Connection, lsn: str) -> int:
    return int(await conn.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)", lsn))


def _hist_summary(h: HdrHistogram, seconds: float) -> dict[str, Any]:
    n = h.get_total_count()
    if not n:
        return {"n": 0}
    return {"n": n, "ops_per_s": round(n / seconds, 1) if seconds > 0 else None,
            "p50_ms": h.get_value_at_percentile(50) / 1000, "p99_ms": h.get_value_at_percentile(99) / 1000,
            "max_ms": h.get_max_value() / 1000}


class _Readers:
    """Closed-loop point reads through the store's ``get``; latency recorded only inside a window."""

    def __init__(self, store: SessionStore, ids: list[str], workers: int, seed: int) -> None:
        self.store, self.ids, self.workers = store, ids, workers
        self.rng = random.Random(seed)
        self.hist: HdrHistogram | None = None
        self.misses = 0
        self._stop = False

    async def _worker(self) -> None:
        while not self._stop:
            sid = self.ids[self.rng.randrange(len(self.ids))]
            t0 = time.perf_counter()
            sess = await self.store.get(sid)
            dt = time.perf_counter() - t0
            h = self.hist
            if h is not None:
                h.record_value(max(1, int(dt * 1e6)))
                if sess is None:
                    self.misses += 1

    async def __aenter__(self) -> "_Readers":
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self.workers)]
        await asyncio.sleep(0.2)  # warm up (connections, prepared statements)
        return self

    def window(self) -> HdrHistogram:
        self.hist = HdrHistogram(1, 60_000_000, 3)
        return self.hist

    def close_window(self) -> HdrHistogram:
        h, self.hist = self.hist, None
        assert h is not None
        return h

    async def __aexit__(self, *exc: object) -> None:
        self._stop = True
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _run_variant(pool: asyncpg.Pool, store: SessionStore, variant: str, *, sessions: int, ingredients: int,
                       expired_every: int, batch: int, readers: int, baseline_s: float, seed: int,
                       say: Callable[[str], None], warnings: list[str]) -> dict[str, Any]:
    async with pool.acquire() as conn:
        await empty_sessions(store, conn)
        t0 = time.perf_counter()
        await conn.execute(LOAD_SQL, sessions, ingredients, expired_every)
        load_s = time.perf_counter() - t0
        await conn.execute("VACUUM ANALYZE user_fridge_sessions, user_fridge_ingredients")
        try:
            await conn.execute("CHECKPOINT")
        except asyncpg.PostgresError as err:
            msg = f"CHECKPOINT not allowed ({err.__class__.__name__}); WAL bytes include fewer full-page images"
            if msg not in warnings:
                warnings.append(msg)
        expired = int(await conn.fetchval("SELECT count(*) FROM user_fridge_sessions WHERE expires_at < now()"))
        expired_rows = int(await conn.fetchval(
            "SELECT count(*) FROM user_fridge_ingredients f JOIN user_fridge_sessions s USING (session_id) "
            "WHERE s.expires_at < now()"))
        live_ids = [r[0] for r in await conn.fetch(
            "SELECT session_id FROM user_fridge_sessions WHERE expires_at > now() ORDER BY random() LIMIT 5000")]
        sizes_before = await pg_sizes(conn)
        stats_before = await _stats(conn)

        say(f"postgres cleanup ({variant}): {expired:,} expired of {sessions:,} sessions")
        async with _Readers(store, live_ids, readers, seed) as rd:
            rd.window()
            await asyncio.sleep(baseline_s)
            base_hist = rd.close_window()
            lsn = await _lsn(conn)
            rd.window()
            batches: list[float] = []
            t0 = time.perf_counter()
            if variant == "single":
                status = await conn.execute(SINGLE_SQL)
                deleted = int(status.split()[-1])
            else:
                deleted = 0
                while True:
                    b0 = time.perf_counter()
                    status = await conn.execute(BATCH_SQL, batch)
                    batches.append(time.perf_counter() - b0)
                    n = int(status.split()[-1])
                    deleted += n
                    if n == 0:
                        break
            delete_s = time.perf_counter() - t0
            during_hist = rd.close_window()
        wal_delete = await _wal_since(conn, lsn)
        sizes_after = await pg_sizes(conn)
        stats_after = await _stats(conn)

        lsn = await _lsn(conn)
        t0 = time.perf_counter()
        await conn.execute("VACUUM user_fridge_sessions, user_fridge_ingredients")
        vacuum_s = time.perf_counter() - t0
        wal_vacuum = await _wal_since(conn, lsn)
        sizes_vacuum = await pg_sizes(conn)
        stats_vacuum = await _stats(conn)
        await empty_sessions(store, conn)

    def tot(sz: dict[str, dict[str, int]]) -> dict[str, int]:
        return {k: sum(v[k] for v in sz.values()) for k in ("heap", "indexes", "toast", "total")}

    out: dict[str, Any] = {
        "variant": variant,
        "statement": SINGLE_SQL if variant == "single" else " ".join(BATCH_SQL.split()).replace("$1", str(batch)),
        "load_s": round(load_s, 3),
        "sessions": sessions, "expired_sessions": expired, "expired_ingredient_rows": expired_rows,
        "deleted_sessions": deleted,
        "duration_s": round(delete_s, 4),
        "sessions_per_s": round(deleted / delete_s, 1) if delete_s > 0 else None,
        "rows_per_s": round((deleted + expired_rows) / delete_s, 1) if delete_s > 0 else None,
        "wal_bytes": wal_delete,
        "wal_bytes_per_session": round(wal_delete / deleted, 1) if deleted else None,
        "dead_tuples_after": {t: stats_after.get(t, {}).get("dead") for t in TABLES},
        "dead_tuples_after_vacuum": {t: stats_vacuum.get(t, {}).get("dead") for t in TABLES},
        "live_tuples_before": {t: stats_before.get(t, {}).get("live") for t in TABLES},
        "size_before": tot(sizes_before), "size_after": tot(sizes_after), "size_after_vacuum": tot(sizes_vacuum),
        "size_tables": {"before": sizes_before, "after": sizes_after, "after_vacuum": sizes_vacuum},
        "vacuum_s": round(vacuum_s, 3), "vacuum_wal_bytes": wal_vacuum,
        "foreground": {"readers": readers, "baseline": _hist_summary(base_hist, baseline_s),
                       "during_cleanup": _hist_summary(during_hist, delete_s), "misses": rd.misses},
    }
    if batches:
        out["batch_size"] = batch
        out["batches"] = len(batches)
        out["batch_ms"] = dist(b * 1000 for b in batches)
    return out


async def measure_cleanup(store: SessionStore, *, postgres_dsn: str, sessions: int, ingredients: int,
                          expired_every: int = 2, batch: int = 1000, readers: int = 4, baseline_s: float = 1.0,
                          seed: int = 42, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    say = progress or (lambda _m: None)
    warnings: list[str] = []
    pool = await asyncpg.create_pool(postgres_dsn, min_size=1, max_size=2)
    variants: list[dict[str, Any]] = []
    try:
        async with pool.acquire() as conn:
            await require_scratch(conn)
            fpw = await conn.fetchval("SHOW full_page_writes")
            # an external database may have its own setting: put back exactly what was there
            previous = {r["relname"]: r["v"] for r in await conn.fetch(
                "SELECT c.relname, (SELECT o FROM unnest(c.reloptions) AS o WHERE o LIKE 'autovacuum_enabled=%') AS v "
                "FROM pg_class c WHERE c.oid = ANY($1::regclass[])", list(TABLES))}
            for t in TABLES:
                await conn.execute(f"ALTER TABLE {t} SET (autovacuum_enabled = false)")
        try:
            for variant in ("single", "batched"):
                variants.append(await _run_variant(
                    pool, store, variant, sessions=sessions, ingredients=ingredients, expired_every=expired_every,
                    batch=batch, readers=readers, baseline_s=baseline_s, seed=seed, say=say, warnings=warnings))
        finally:
            async with pool.acquire() as conn:
                for t in TABLES:
                    was = previous.get(t)
                    await conn.execute(f"ALTER TABLE {t} SET ({was})" if was else
                                       f"ALTER TABLE {t} RESET (autovacuum_enabled)")
    finally:
        await pool.close()
    return {"sessions": sessions, "ingredients": ingredients, "expired_fraction": round(1 / expired_every, 3),
            "full_page_writes": fpw, "autovacuum_during_test": "off on the two session tables",
            "variants": variants,
            "partition_drop": "not measured: the application's schema is not partitioned (the FK from "
                              "user_fridge_ingredients makes range partitions on expires_at a schema change)",
            "warnings": warnings}

"""The three ttl measurements, each on real servers, with assertions that can fail."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import pytest
import redis

from fridgebench.errors import FridgebenchError
from fridgebench.experiments.ttl import expiry as expiry_mod
from fridgebench.experiments.ttl.cleanup import LOAD_SQL, measure_cleanup
from fridgebench.experiments.ttl.expiry import ExpiryParams, measure_expiry
from fridgebench.experiments.ttl.memory import measure_memory
from fridgebench.stores import make_store

STORES = ("postgres", "redis-seed", "redis-atomic")


@pytest.mark.parametrize("name", STORES)
async def test_expiry_lag_and_sliding(name: str, ttl_scratch: str, ttl_redis_url: str) -> None:
    before = redis.Redis.from_url(ttl_redis_url).config_get("notify-keyspace-events")
    # expiries spread over 1 s: the median below takes a stall of half that to move
    params = ExpiryParams(sessions=300, ttl_s=1, ingredients=4, seed=7, cleanup_every_s=0.1, spread_s=1.0)
    pg = ttl_scratch if name == "postgres" else ""
    async with make_store(name, postgres_dsn=pg, redis_url=ttl_redis_url) as store:
        r = await measure_expiry(store, postgres_dsn=pg, redis_url=ttl_redis_url, params=params)
        assert await store.count_live() == 0  # every session, touched or not, has expired by now
    assert r["expired_before_observed"] == 0
    # unreadable right after expiry: within the probe's resolution, never before it (beyond clock noise)
    assert r["readable_never_gone"] == 0
    assert r["readable_lag_ms"]["n"] == r["groups"]["probe"]
    assert -50 < r["readable_lag_ms"]["p50"] < 100, r["readable_lag_ms"]
    assert r["readable_lag_ms"]["min"] > -50
    # physically removed: by active expiry (Redis) or by the 0.1 s cleanup job (PostgreSQL)
    assert r["removed_not_observed"] == 0
    assert r["removed_lag_ms"]["n"] == r["groups"]["control"]
    assert 0 <= r["removed_lag_ms"]["p50"] < 2000
    if name == "postgres":
        # removed by the first cleanup run after expiry: at most one gap between runs (period 100 ms,
        # longer when the machine delays the job) plus one run
        assert r["cleanup_gap_ms"]["n"] > 5 and r["cleanup_gap_ms"]["min"] >= 100
        assert r["removed_lag_ms"]["max"] <= r["cleanup_gap_ms"]["max"] + r["cleanup_run_ms"]["max"] + 20, r
        assert r["rows_deleted_by_cleanup"] == 300
    else:
        assert r["notifications"] is True
    s = r["sliding"]
    assert s["touched"] == s["untouched"] > 0
    if name in ("postgres", "redis-atomic"):
        assert s["total_violations"] == 0, s["violations"]
    assert s["violations"]["untouched_survived"] == 0
    # a touch or check a stall delayed past its deciding instant is not a violation; some were judged
    assert s["touched"] - s["too_late_to_judge"]["touch"] - s["too_late_to_judge"]["check"] > 0, s
    assert redis.Redis.from_url(ttl_redis_url).config_get("notify-keyspace-events") == before  # restored


class _Delayed:
    """A real store whose ``op`` is held back ``delay_s`` before it is sent: what a busy machine
    does to the experiment's own scheduling (the store itself is not changed)."""

    def __init__(self, store: Any, op: str, delay_s: float) -> None:
        self._store, self._op, self._delay = store, op, delay_s

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if name != self._op:
            return attr

        async def delayed(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(self._delay)
            return await attr(*args, **kwargs)
        return delayed


@pytest.mark.parametrize("op", ["add_ingredients", "get"])
async def test_sliding_touches_and_checks_run_late_are_not_violations(op: str, ttl_redis_url: str) -> None:
    """Touches sent only after the session expired (rightly refused), and checks of touched
    sessions that finish only after the refreshed expiry (rightly gone), are counted as too late
    to judge -- a busy machine must not make a correct store look like it loses sessions."""
    params = ExpiryParams(sessions=40, ttl_s=1, ingredients=0, seed=3, cleanup_every_s=0.1, spread_s=0.2)
    async with make_store("redis-atomic", postgres_dsn="", redis_url=ttl_redis_url) as store:
        r = await measure_expiry(_Delayed(store, op, 1.3), postgres_dsn="",  # type: ignore[arg-type]
                                 redis_url=ttl_redis_url, params=params)
    s = r["sliding"]
    assert s["total_violations"] == 0, s
    late = s["too_late_to_judge"]
    if op == "add_ingredients":  # every touch lands after the session's expiry
        assert late == {"touch": s["touched"], "check": 0}, s
    else:  # every check of a touched session ends after its refreshed expiry
        assert late["touch"] == 0 and late["check"] == s["touched"], s
    assert any("too late to judge" in w for w in r["warnings"])


async def test_a_stalled_measurement_ends_with_an_error_and_restores_the_server(
        ttl_redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that stops answering mid-run (here: creates that never return) ends the measurement
    with one error naming the store, within its budget -- not a run that waits forever -- and the
    keyspace-notification setting it changed is restored on the way out."""
    before = redis.Redis.from_url(ttl_redis_url).config_get("notify-keyspace-events")
    monkeypatch.setattr(expiry_mod, "stall_budget_s", lambda p: 2.0)
    params = ExpiryParams(sessions=40, ttl_s=1, ingredients=0, seed=5, cleanup_every_s=0.1, spread_s=0.2)
    t0 = time.monotonic()
    async with make_store("redis-atomic", postgres_dsn="", redis_url=ttl_redis_url) as store:
        with pytest.raises(FridgebenchError, match="redis-atomic: the expiry measurement did not finish within 2 s") as err:
            await measure_expiry(_Delayed(store, "create", 3600), postgres_dsn="",  # type: ignore[arg-type]
                                 redis_url=ttl_redis_url, params=params)
    assert time.monotonic() - t0 < 2.0 + 15  # the budget, then a bounded stop
    assert isinstance(err.value.__cause__, TimeoutError)
    assert redis.Redis.from_url(ttl_redis_url).config_get("notify-keyspace-events") == before


@pytest.mark.parametrize("name", STORES)
async def test_bytes_per_session(name: str, ttl_scratch: str, ttl_redis_url: str) -> None:
    pg = ttl_scratch if name == "postgres" else ""
    async with make_store(name, postgres_dsn=pg, redis_url=ttl_redis_url) as store:
        m0 = await measure_memory(store, postgres_dsn=pg, redis_url=ttl_redis_url, counts=(2000,),
                                  ingredients=0, seed=1)
        m8 = await measure_memory(store, postgres_dsn=pg, redis_url=ttl_redis_url, counts=(2000, 5000),
                                  ingredients=8, seed=1)
        assert await store.count_live() == 0  # cleaned up after itself
    b0, b8 = m0["bytes_per_session"], m8["bytes_per_session"]
    assert b8 > b0 > 0  # ingredients cost bytes
    if name == "postgres":
        assert 100 < b0 < 1000 and 800 < b8 < 6000, (b0, b8)
        pt = m8["points"][-1]
        assert pt["tables"]["user_fridge_ingredients"]["total"] > pt["tables"]["user_fridge_sessions"]["total"]
    else:
        assert 80 < b0 < 600 and 200 < b8 < 1500, (b0, b8)
        pt = m8["points"][-1]
        # MEMORY USAGE of one key is below the used_memory delta per key (dict + expires entries)
        assert 0 < pt["memory_usage_per_key"]["p50"] <= pt["bytes_per_session"] * 1.2
        assert pt["value_bytes"]["p50"] > 8 * 6  # eight \uXXXX-escaped names at least
    # roughly linear: bytes/session stable between 2k and 5k sessions
    a, b = (p["bytes_per_session"] for p in m8["points"])
    assert abs(a - b) / b < 0.3


async def test_cleanup_deletes_exactly_the_expired_rows(ttl_scratch: str, ttl_redis_url: str) -> None:
    async with make_store("postgres", postgres_dsn=ttl_scratch, redis_url=ttl_redis_url) as store:
        conn = await asyncpg.connect(ttl_scratch)
        try:
            await conn.execute(LOAD_SQL, 900, 5, 3)  # every 3rd of 900 expired, 5 ingredients each
            live = {r[0] for r in await conn.fetch("SELECT session_id FROM user_fridge_sessions WHERE expires_at > now()")}
            assert len(live) == 600
            assert await store.cleanup_expired() == 300
            left = {r[0] for r in await conn.fetch("SELECT session_id FROM user_fridge_sessions")}
            assert left == live
            assert await conn.fetchval("SELECT count(*) FROM user_fridge_ingredients") == 600 * 5
            assert await store.cleanup_expired() == 0
        finally:
            await conn.close()


async def _reloptions(conn: asyncpg.Connection) -> dict[str, list[str] | None]:
    return {r[0]: r[1] for r in await conn.fetch(
        "SELECT relname, reloptions FROM pg_class WHERE relname IN ('user_fridge_sessions', 'user_fridge_ingredients') "
        "AND relnamespace = current_schema()::regnamespace")}


async def test_cleanup_cost(ttl_scratch: str, ttl_redis_url: str) -> None:
    conn = await asyncpg.connect(ttl_scratch)
    try:
        # a database with its own setting on one table gets exactly that back; the other is reset
        await conn.execute("ALTER TABLE user_fridge_sessions SET (autovacuum_enabled = true)")
        async with make_store("postgres", postgres_dsn=ttl_scratch, redis_url=ttl_redis_url) as store:
            c = await measure_cleanup(store, postgres_dsn=ttl_scratch, sessions=4000, ingredients=4, batch=500,
                                      readers=2, baseline_s=0.3)
            assert await store.count_live() == 0
        assert await _reloptions(conn) == {"user_fridge_sessions": ["autovacuum_enabled=true"],
                                           "user_fridge_ingredients": None}
    finally:
        await conn.execute("ALTER TABLE user_fridge_sessions RESET (autovacuum_enabled)")
        await conn.close()
    assert [v["variant"] for v in c["variants"]] == ["single", "batched"]
    for v in c["variants"]:
        assert v["expired_sessions"] == v["deleted_sessions"] == 2000
        assert v["expired_ingredient_rows"] == 2000 * 4
        assert v["dead_tuples_after"] == {"user_fridge_sessions": 2000, "user_fridge_ingredients": 8000}
        assert v["dead_tuples_after_vacuum"] == {"user_fridge_sessions": 0, "user_fridge_ingredients": 0}
        assert v["wal_bytes"] > 2000 * 50  # at least a record per deleted row
        assert v["duration_s"] > 0 and v["rows_per_s"] > 0
        assert v["size_after"]["total"] >= v["size_before"]["total"]  # DELETE never shrinks the files
        assert v["foreground"]["baseline"]["n"] > 0 and v["foreground"]["misses"] == 0
    batched = c["variants"][1]
    assert batched["batches"] == 2000 // 500 + 1  # the last one finds nothing


async def test_pg_measurements_refuse_to_run_outside_a_scratch_schema(ttl_pg_dsn: str, ttl_redis_url: str) -> None:
    """The application's cleanup job and the emptied tables would take someone else's rows with them."""
    conn = await asyncpg.connect(ttl_pg_dsn)
    await conn.execute("INSERT INTO user_fridge_sessions (session_id, expires_at) "
                       "VALUES ('someone-elses', now() - interval '1 hour')")
    try:
        async with make_store("postgres", postgres_dsn=ttl_pg_dsn, redis_url=ttl_redis_url) as store:
            with pytest.raises(RuntimeError, match="scratch schema"):
                await measure_cleanup(store, postgres_dsn=ttl_pg_dsn, sessions=100, ingredients=1)
            with pytest.raises(RuntimeError, match="scratch schema"):
                await measure_memory(store, postgres_dsn=ttl_pg_dsn, redis_url=ttl_redis_url, counts=(10,),
                                     ingredients=1, seed=1)
            params = ExpiryParams(sessions=20, ttl_s=1, ingredients=1, seed=7, cleanup_every_s=0.1, spread_s=0.1)
            with pytest.raises(RuntimeError, match="scratch schema"):
                await measure_expiry(store, postgres_dsn=ttl_pg_dsn, redis_url=ttl_redis_url, params=params)
        assert await conn.fetchval("SELECT count(*) FROM user_fridge_sessions") == 1  # the expired row stays
    finally:
        await conn.execute("DELETE FROM user_fridge_sessions WHERE session_id = 'someone-elses'")
        await conn.close()

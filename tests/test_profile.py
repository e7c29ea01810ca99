"""Where the time goes: the counting relay against real clients and servers, then profiles of the
stores on fridgebench's own embedded servers (pg_stat_statements loaded, nobody else's traffic)."""

from __future__ import annotations

import asyncpg
import pytest
import redis.asyncio as aioredis

from fridgebench.profile.run import ProfileOptions, profile_store
from fridgebench.profile.section import is_quiet, profile_section
from fridgebench.profile.wire import WireTap, sql_verb
from fridgebench.provision import Endpoints
from fridgebench.workload.model import load_scenario
from tests import servers


@pytest.mark.parametrize("sql, verb", [
    ("SELECT 1", "SELECT"), ("  select x from t", "SELECT"), ("BEGIN ISOLATION LEVEL READ COMMITTED;", "BEGIN"),
    ("-- comment\nUPDATE t SET a = 1", "UPDATE"), ("/* hint */ (SELECT 1)", "SELECT"),
    ("WITH s AS (UPDATE t SET a = 1 RETURNING *) SELECT count(*) FROM s", "WITH"), ("", "?"),
])
def test_sql_verb(sql: str, verb: str) -> None:
    assert sql_verb(sql) == verb


async def test_wire_tap_counts_postgres_round_trips_and_statements(external_pg_dsn: str) -> None:
    async with WireTap(servers.PG_HOST, servers.PG_PORT, "postgres") as tap:
        dsn = external_pg_dsn.replace(f"{servers.PG_HOST}:{servers.PG_PORT}", f"127.0.0.1:{tap.port}")
        assert str(tap.port) in dsn
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT 41 + $1::int", 1) == 42  # prepares: two round trips
            a = tap.counts()
            assert await conn.fetchval("SELECT 41 + $1::int", 1) == 42  # cached: Bind/Execute/Sync, one
            b = tap.counts()
            async with conn.transaction():
                await conn.fetchval("SELECT 41 + $1::int", 2)
            c = tap.counts()
            await conn.execute("SELECT 1; SELECT 2")  # simple query: one message, one round trip
            d = tap.counts()
        finally:
            await conn.close()
    one = b - a
    assert (one.round_trips, one.statements, one.by_verb) == (1, 1, {"SELECT": 1})
    txn = c - b
    assert txn.round_trips == 3 and txn.by_verb == {"BEGIN": 1, "SELECT": 1, "COMMIT": 1}
    simple = d - c
    assert (simple.round_trips, simple.statements) == (1, 1)
    assert a.connections == 1 and a.readable


async def test_wire_tap_counts_redis_commands_and_pipelines() -> None:
    async with WireTap(servers.REDIS_HOST, servers.REDIS_PORT, "redis") as tap:
        client = aioredis.from_url(f"redis://127.0.0.1:{tap.port}/{servers.REDIS_DB_SHARED}")
        try:
            await client.ping()
            a = tap.counts()
            await client.get("fb-tap-missing")
            await client.exists("fb-tap-missing")
            b = tap.counts()
            async with client.pipeline(transaction=False) as pipe:
                pipe.get("fb-tap-missing").pttl("fb-tap-missing").exists("fb-tap-missing")
                await pipe.execute()
            c = tap.counts()
        finally:
            await client.aclose()
    two = b - a
    assert (two.round_trips, two.by_verb) == (2, {"GET": 1, "EXISTS": 1})
    piped = c - b
    assert (piped.round_trips, piped.statements) == (1, 3)


def test_quiet_means_no_statements_commands_or_writes_from_others() -> None:
    assert is_quiet({"write_transactions": 0.0, "wal_bytes": 900.0, "statements": 0.0})
    assert not is_quiet({"write_transactions": 3.3, "wal_bytes": 0.0})
    assert not is_quiet({"commands": 12.0})
    section = profile_section({"postgres-app": {"servers": {"postgres": {"background_per_s": {"write_transactions": 2.0}}},
                                                "ops": {}}}, ProfileOptions(reps=3, warmup=1))
    assert section["stores"]["postgres-app"]["servers"]["postgres"]["quiet"] is False
    assert len(section["warnings"]) == 1 and "not quiet" in section["warnings"][0]


REPS = ProfileOptions(reps=6, warmup=2)


@pytest.mark.embedded
async def test_profiles_show_the_app_paths_statements_commits_and_round_trips(embedded_endpoints: Endpoints) -> None:
    sc = load_scenario("session-lifecycle")
    conn = await asyncpg.connect(embedded_endpoints.postgres_dsn)
    try:
        before = await conn.fetchval("SELECT count(*) FROM user_fridge_sessions")
        prof = {name: await profile_store(name, embedded_endpoints, sc, REPS)
                for name in ("postgres", "postgres-app", "postgres-app-fixed", "redis-app", "redis-atomic")}
        after = await conn.fetchval("SELECT count(*) FROM user_fridge_sessions")
    finally:
        await conn.close()
    assert after == before  # every session the profiles wrote is gone

    pg = prof["postgres-app"]["servers"]["postgres"]
    assert pg["pg_stat_statements"] is True and pg["synchronous_commit"] == "on"  # fridgebench's own server loads it
    get = prof["postgres-app"]["ops"]["get"]["postgres"]
    # BEGIN, SELECT session, UPDATE last_accessed, COMMIT, BEGIN, SELECT rows, SELECT ingredients, COMMIT
    assert (get["round_trips"], get["statements"]) == (8, 8)
    assert get["by_statement"] == {"SELECT": 3, "BEGIN": 2, "COMMIT": 2, "UPDATE": 1}
    assert get["server"]["write_transactions"] == 1  # the read's commit waits for a WAL flush
    assert get["server"]["statements"] == 8 and get["server"]["wal_bytes"] > 0
    add = prof["postgres-app"]["ops"]["add"]["postgres"]
    assert add["by_statement"]["SELECT"] == 2 + 2  # session, names, one check per new name (2 per add)
    assert add["by_statement"]["INSERT"] == 2

    fixed = prof["postgres-app-fixed"]["ops"]
    assert (fixed["get"]["postgres"]["round_trips"], fixed["get"]["postgres"]["server"]["write_transactions"]) == (5, 0)
    assert fixed["add"]["postgres"]["by_statement"]["SELECT"] == 3 and fixed["add"]["postgres"]["by_statement"]["INSERT"] == 1

    lean = prof["postgres"]["ops"]
    assert all(lean[op]["postgres"]["round_trips"] == 1 for op in lean)
    assert lean["get"]["postgres"]["server"]["write_transactions"] == 0

    radd = prof["redis-app"]["ops"]["add"]["redis"]
    assert radd["round_trips"] == 2 and radd["by_command"] == {"GET": 1, "SETEX": 1}
    assert radd["server"]["by_command"] == {"GET": 1, "SETEX": 1}
    rget = prof["redis-atomic"]["ops"]["get"]["redis"]
    assert (rget["round_trips"], rget["commands"]) == (1, 2)  # GET and PTTL in one write
    for p in prof.values():
        for row in p["ops"].values():
            assert row["client_cpu_us"] > 0 and row["wall_us"] > 0
    assert prof["postgres-app"]["ops"]["get"]["client_cpu_us"] > 5 * prof["postgres"]["ops"]["get"]["client_cpu_us"]
    assert prof["postgres-app"]["pool"]["size"] == 5

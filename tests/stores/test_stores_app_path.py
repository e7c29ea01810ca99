"""The app path really does what fridge2fork's code does, on real servers.

Statements are counted with SQLAlchemy's own engine events (what the ORM sent to the driver,
with the transaction boundaries), independently of fridgebench's wire counter; the rows are read
back with plain SQL. The contract itself is covered by test_stores_contract.py, which runs over
every store name, the app path's included.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event

from fridgebench.stores import make_store, schema
from fridgebench.stores.app import session_manager_fixed
from fridgebench.stores.app.postgres import PostgresAppStore
from fridgebench.stores.app.redis import RedisAppStore
from fridgebench.stores.base import SessionStore
from tests.stores.helpers import open_store

NAMES = [i.name for i in schema.ingredients()]


class Statements:
    """What an app store's engine sends: each statement's first word, and the transactions."""

    def __init__(self, store: PostgresAppStore) -> None:
        self.verbs: list[str] = []
        self.sql: list[str] = []
        self.commits = 0
        self.begins = 0
        engine = store.engine.sync_engine

        def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            self.sql.append(statement)
            self.verbs.append(statement.split(None, 1)[0].upper())

        def on_commit(conn: Any) -> None:
            self.commits += 1

        def on_begin(conn: Any) -> None:
            self.begins += 1

        event.listen(engine, "before_cursor_execute", on_execute)
        event.listen(engine, "commit", on_commit)
        event.listen(engine, "begin", on_begin)

    def reset(self) -> None:
        self.verbs.clear()
        self.sql.clear()
        self.commits = self.begins = 0

    def count(self, verb: str, table: str | None = None) -> int:
        return sum(1 for v, s in zip(self.verbs, self.sql) if v == verb and (table is None or f"FROM {table}" in s
                                                                                   or f"INTO {table}" in s
                                                                                   or f"UPDATE {table}" in s))


@pytest.fixture(params=["postgres-app", "postgres-app-fixed"])
async def app_store(request: pytest.FixtureRequest, pg_dsn: str,
                    store_redis_url: str) -> AsyncIterator[PostgresAppStore]:
    s = await open_store(request.param, pg_dsn, store_redis_url)
    assert isinstance(s, PostgresAppStore)
    try:
        yield s
    finally:
        await s.discard_written()
        await s.close()


async def _row(pg_dsn: str, sid: str) -> asyncpg.Record:
    conn = await asyncpg.connect(pg_dsn)
    try:
        return await conn.fetchrow("SELECT * FROM user_fridge_sessions WHERE session_id = $1", sid)
    finally:
        await conn.close()


async def _age_last_accessed(pg_dsn: str, sid: str, seconds: float) -> datetime:
    conn = await asyncpg.connect(pg_dsn)
    try:
        return await conn.fetchval("UPDATE user_fridge_sessions SET last_accessed = now() - $2 * interval '1 second' "
                                   "WHERE session_id = $1 RETURNING last_accessed", sid, seconds)
    finally:
        await conn.close()


async def test_app_read_commits_a_last_accessed_write_fixed_read_does_not(app_store: PostgresAppStore,
                                                                          pg_dsn: str) -> None:
    sid = f"app-read-{uuid.uuid4()}"
    await app_store.create(sid, ttl_s=600)
    await app_store.add_ingredients(sid, NAMES[:3], ttl_s=600)
    old = await _age_last_accessed(pg_dsn, sid, 30)  # inside the fixed variant's 60 s throttle
    seen = Statements(app_store)
    got = await app_store.get(sid)
    assert got is not None and list(got.ingredients) == NAMES[:3]
    after = (await _row(pg_dsn, sid))["last_accessed"]
    if app_store.name == "postgres-app":
        # get_or_create_session: SELECT, UPDATE last_accessed, COMMIT; then selectinload: two SELECTs; COMMIT
        assert after > old + timedelta(seconds=29)
        assert seen.verbs == ["SELECT", "UPDATE", "SELECT", "SELECT"], seen.sql
        assert seen.count("UPDATE", "user_fridge_sessions") == 1
        assert seen.commits == 2 and seen.begins == 2
    else:
        assert after == old  # no write on a read inside the throttle
        assert seen.verbs == ["SELECT", "SELECT", "SELECT"], seen.sql
        assert seen.commits == 1 and seen.begins == 1  # one read-only transaction, the request's
        # beyond the throttle, the read touches it once
        old = await _age_last_accessed(pg_dsn, sid, session_manager_fixed.LAST_ACCESSED_THROTTLE_S + 5)
        seen.reset()
        assert await app_store.get(sid) is not None
        assert (await _row(pg_dsn, sid))["last_accessed"] > old + timedelta(seconds=60)
        assert seen.count("UPDATE", "user_fridge_sessions") == 1


@pytest.mark.parametrize("k", [1, 3, 5])
async def test_an_add_of_k_new_names_checks_each_one_the_fix_checks_once(app_store: PostgresAppStore, k: int) -> None:
    sid = f"app-add-{uuid.uuid4()}"
    await app_store.create(sid, ttl_s=600)
    await app_store.add_ingredients(sid, [NAMES[0]], ttl_s=600)
    seen = Statements(app_store)
    new = NAMES[10:10 + k]
    assert await app_store.add_ingredients(sid, [NAMES[0], *new], ttl_s=600)  # one already there
    checks = seen.count("SELECT", "user_fridge_ingredients")
    inserts = seen.count("INSERT", "user_fridge_ingredients")
    assert seen.count("SELECT", "ingredients") == 1  # the names, looked up once
    assert seen.count("UPDATE", "user_fridge_sessions") == 1  # get_or_create_session's touch (and expiry)
    assert seen.commits == 2  # get_or_create_session's and add_ingredients' (the request's finds nothing to commit)
    if app_store.name == "postgres-app":
        assert checks == k + 1  # one "is it there already?" SELECT per named ingredient
        assert inserts == k  # autoflush: each new row sent before the next check
    else:
        assert checks == 1 and inserts == 1  # one SELECT for all, one multi-row INSERT
    got = await app_store.get(sid)
    assert got is not None and list(got.ingredients) == [NAMES[0], *new]


async def test_app_store_keeps_the_apps_default_pool(pg_dsn: str) -> None:
    store = make_store("postgres-app", postgres_dsn=pg_dsn, redis_url="redis://unused:1/0", pool_size=64)
    async with store:
        assert isinstance(store, PostgresAppStore)
        pool = store.pool_description()
        assert (pool["size"], pool["max_overflow"], pool["timeout_s"], pool["pre_ping"]) == (5, 10, 30.0, False)
        assert pool["connections_opened"] == 1  # the first connection, made by open()


async def test_add_refreshes_expiry_in_the_same_update_as_last_accessed(pg_dsn: str, store_redis_url: str) -> None:
    """The contract's expiry refresh on an add costs the app path no extra statement."""
    store = await open_store("postgres-app", pg_dsn, store_redis_url)
    try:
        assert isinstance(store, PostgresAppStore)
        sid = f"app-ttl-{uuid.uuid4()}"
        await store.create(sid, ttl_s=5)
        seen = Statements(store)
        assert await store.add_ingredients(sid, [NAMES[3]], ttl_s=900)
        updates = [s for v, s in zip(seen.verbs, seen.sql) if v == "UPDATE"]
        assert len(updates) == 1 and "expires_at" in updates[0] and "last_accessed" in updates[0]
        assert (await _row(pg_dsn, sid))["expires_at"] > datetime.now(timezone.utc) + timedelta(seconds=800)
    finally:
        await store.discard_written()
        await store.close()


async def test_redis_app_runs_on_the_apps_client(pg_dsn: str, store_redis_url: str) -> None:
    store = await open_store("redis-app", pg_dsn, store_redis_url)
    try:
        assert isinstance(store, RedisAppStore)
        assert store._lean is None  # no lean client: every operation goes through the app's
        kwargs = store.app.connection_pool.connection_kwargs
        assert kwargs["decode_responses"] is True
        sid = f"app-redis-{uuid.uuid4()}"
        await store.create(sid, ttl_s=600)
        before = store.pool_description()["connections_made"]
        assert before >= 1
        assert await store.add_ingredients(sid, ["김치", "김치"])  # the seed keeps duplicates
        got = await store.get(sid)
        assert got is not None and got.ingredients == ("김치", "김치")
    finally:
        await store.discard_written()
        await store.close()


@pytest.mark.parametrize("writer, reader", [("postgres-app", "postgres"), ("postgres", "postgres-app"),
                                            ("redis-app", "redis-atomic"), ("redis-atomic", "redis-app")])
async def test_app_and_server_paths_read_each_others_sessions(pg_dsn: str, writer: str, reader: str,
                                                               store_redis_url: str) -> None:
    """Same data formats: what one path writes, the other reads (so correctness checks and
    `migrate verify` need nothing new)."""
    w: SessionStore = await open_store(writer, pg_dsn, store_redis_url)
    r: SessionStore = await open_store(reader, pg_dsn, store_redis_url)
    try:
        sid = f"app-fmt-{uuid.uuid4()}"
        await w.create(sid, ttl_s=700)
        await w.add_ingredients(sid, ["대파", "두부", "돼지고기"], ttl_s=700)
        await w.remove_ingredients(sid, ["두부"])
        a, b = await w.get(sid), await r.get(sid)
        assert a is not None and b is not None
        assert a.ingredients == b.ingredients == ("대파", "돼지고기")
        assert abs((a.expires_at - b.expires_at).total_seconds()) < 2
        assert abs((a.created_at - b.created_at).total_seconds()) < 1
    finally:
        await w.discard_written()
        await w.close()
        await r.close()

"""Real servers for the store tests: the machine's PostgreSQL, the machine's Redis and a private one.

PostgreSQL: a fresh database ``fb_test_stores_<random>`` (schema + catalogue), dropped at the end.
Redis: the ``store`` / ``redis_store`` fixtures run on the test session's private Redis
(``private_redis``, db 10): every store shares the recipe cache keys ``recipe:{id}``, so two runs
sharing a db would find each other's cache entries (a hit where a test expects a miss). Tests
that exercise the machine's Redis as such (``redis_url``: :mod:`tests.servers`, db 10) use a
per-run key prefix so parallel runs sharing the db don't see each other's sessions. Each store
deletes exactly what it wrote when the test ends (its ledger: never a pattern delete).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from fridgebench.stores import STORE_NAMES
from fridgebench.stores import schema
from fridgebench.stores._redis_base import RedisStoreBase
from fridgebench.stores.base import SessionStore
from tests import servers
from tests.servers import ThrowawayRedis
from tests.stores.helpers import RUN_TAG, open_store

REDIS_URL = servers.redis_url(servers.REDIS_DB_STORES)


@pytest.fixture(scope="session")
async def pg_dsn() -> AsyncIterator[str]:
    db = f"fb_test_stores_{RUN_TAG}"
    try:
        admin = await asyncpg.connect(servers.PG_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"the store tests need PostgreSQL at {servers.PG_HOST}:{servers.PG_PORT} "
                    f"(set FRIDGEBENCH_TEST_PG_ADMIN_DSN): {exc}")
    try:
        await admin.execute(f'CREATE DATABASE "{db}"')
    finally:
        await admin.close()
    dsn = servers.pg_dsn(db)
    conn = await asyncpg.connect(dsn)
    try:
        await schema.setup_schema(conn)
    finally:
        await conn.close()
    yield dsn
    admin = await asyncpg.connect(servers.PG_ADMIN_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture(scope="session")
def store_redis_url(private_redis: ThrowawayRedis) -> str:
    return private_redis.url(servers.REDIS_DB_STORES)


@pytest.fixture(params=STORE_NAMES)
async def store(request: pytest.FixtureRequest, pg_dsn: str, store_redis_url: str) -> AsyncIterator[SessionStore]:
    s = await open_store(request.param, pg_dsn, store_redis_url)
    try:
        yield s
    finally:
        await s.discard_written()
        await s.close()


@pytest.fixture(params=["redis-seed", "redis-atomic"])
async def redis_store(request: pytest.FixtureRequest, pg_dsn: str,
                      store_redis_url: str) -> AsyncIterator[RedisStoreBase]:
    s = await open_store(request.param, pg_dsn, store_redis_url)
    assert isinstance(s, RedisStoreBase)
    try:
        yield s
    finally:
        await s.discard_written()
        await s.close()

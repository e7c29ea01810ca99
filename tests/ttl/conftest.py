"""ttl tests run on a unique database ``fb_test_ttl_<random>`` on the machine's PostgreSQL (dropped
afterwards) and on the test session's own throwaway Redis (``private_redis``, db 13, flushed).

Not the machine's shared Redis: the ttl experiment changes the server-wide
``notify-keyspace-events`` setting while it watches expiry and measures bytes per session as a
server-wide ``used_memory`` delta, which anyone else using that server would skew (and see).
Its own database, not the shared ``external_pg_dsn``: it changes table options and measures
sizes that other tests' leftovers would skew."""

from __future__ import annotations

from typing import Iterator

import asyncpg
import pytest

from fridgebench.provision.probe import run_sync
from fridgebench.stores.schema import setup_schema
from tests.servers import REDIS_DB_TTL as TTL_REDIS_DB
from tests.servers import ThrowawayRedis, machine_database


async def _schema(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await setup_schema(conn, existing="reset")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def ttl_pg_dsn() -> Iterator[str]:
    with machine_database("fb_test_ttl") as dsn:
        run_sync(lambda: _schema(dsn))
        yield dsn


@pytest.fixture(scope="session")
def ttl_redis_url(private_redis: ThrowawayRedis) -> Iterator[str]:
    client = private_redis.client(TTL_REDIS_DB)
    client.flushdb()
    try:
        yield private_redis.url(TTL_REDIS_DB)
    finally:
        client.flushdb()
        client.close()

"""ttl tests run on a unique database ``fb_test_ttl_<random>`` on the machine's PostgreSQL (dropped
afterwards) and on the test session's own throwaway Redis (``private_redis``, db 13, flushed).
PostgreSQL measurements run, as in ``run_ttl``, in a scratch schema of that database (``ttl_scratch``).

Not the machine's shared Redis: the ttl experiment changes the server-wide
``notify-keyspace-events`` setting while it watches expiry and measures bytes per session as a
server-wide ``used_memory`` delta, which anyone else using that server would skew (and see).
Its own database, not the shared ``external_pg_dsn``: it changes table options and measures
sizes that other tests' leftovers would skew."""

from __future__ import annotations

from typing import AsyncIterator, Iterator

import asyncpg
import pytest

from fridgebench.provision.probe import run_sync
from fridgebench.stores.schema import setup_schema
from fridgebench.stores.scratch import scratch_schema
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


@pytest.fixture
async def ttl_scratch(ttl_pg_dsn: str) -> AsyncIterator[str]:
    """A DSN into a fresh scratch schema of the ttl database (dropped after the test)."""
    async with scratch_schema(ttl_pg_dsn) as dsn:
        yield dsn

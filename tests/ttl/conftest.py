"""ttl tests run on the machine's own servers: a unique database ``fb_test_ttl_<random>`` on
PostgreSQL (dropped afterwards) and Redis db 13 (only that index is flushed). PostgreSQL
measurements run, as in ``run_ttl``, in a scratch schema of that database (``ttl_scratch``).

Their own database and db index, not the shared ``external_pg_dsn`` / ``external_redis_url``:
the ttl experiment changes table options and keyspace-notification flags, and measures sizes
and ``used_memory`` that other tests' leftovers would skew."""

from __future__ import annotations

from typing import AsyncIterator, Iterator

import asyncpg
import pytest

from fridgebench.provision.probe import run_sync
from fridgebench.stores.schema import setup_schema
from fridgebench.stores.scratch import scratch_schema
from tests.servers import REDIS_DB_TTL as TTL_REDIS_DB
from tests.servers import machine_database, machine_redis_db


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
def ttl_redis_url() -> Iterator[str]:
    with machine_redis_db(TTL_REDIS_DB) as url:
        yield url


@pytest.fixture
async def ttl_scratch(ttl_pg_dsn: str) -> AsyncIterator[str]:
    """A DSN into a fresh scratch schema of the ttl database (dropped after the test)."""
    async with scratch_schema(ttl_pg_dsn) as dsn:
        yield dsn

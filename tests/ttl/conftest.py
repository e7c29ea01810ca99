"""ttl tests run on the machine's own servers: a unique database ``fb_test_ttl_<random>`` on
PostgreSQL (dropped afterwards) and Redis db 13 (only that index is flushed).

Their own database and db index, not the shared ``external_pg_dsn`` / ``external_redis_url``:
the ttl experiment changes table options and keyspace-notification flags, and measures sizes
and ``used_memory`` that other tests' leftovers would skew."""

from __future__ import annotations

import uuid
from typing import Iterator

import asyncpg
import pytest
import redis

from fridgebench.provision.probe import run_sync
from fridgebench.stores.schema import setup_schema
from tests.conftest import MACHINE_PG, MACHINE_REDIS, _admin

TTL_REDIS_DB = 13


async def _schema(dsn: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await setup_schema(conn, existing="reset")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def ttl_pg_dsn() -> Iterator[str]:
    name = f"fb_test_ttl_{uuid.uuid4().hex[:10]}"
    try:
        run_sync(lambda: _admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as err:
        pytest.fail(f"machine PostgreSQL at {MACHINE_PG} not usable: {err}")
    dsn = f"{MACHINE_PG.rsplit('/', 1)[0]}/{name}"
    try:
        run_sync(lambda: _schema(dsn))
        yield dsn
    finally:
        run_sync(lambda: _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def ttl_redis_url() -> Iterator[str]:
    url = f"{MACHINE_REDIS}/{TTL_REDIS_DB}"
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.flushdb()
    except redis.RedisError as err:
        pytest.fail(f"machine Redis at {url} not usable: {err}")
    try:
        yield url
    finally:
        client.flushdb()
        client.close()

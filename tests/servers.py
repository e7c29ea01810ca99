"""The one place the test suites learn where the machine's own servers are.

Every suite that talks to "external" stores (the machine's PostgreSQL and Redis) goes through
this module, so the README's two overrides work everywhere:

- ``FRIDGEBENCH_TEST_PG_ADMIN_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``):
  a role that may CREATE/DROP DATABASE. Tests only ever create and drop databases named
  ``fb_test_*``; they never touch another database there.
- ``FRIDGEBENCH_TEST_REDIS_HOST_URL`` (default ``redis://127.0.0.1:6379``): a Redis server whose
  db indexes :data:`REDIS_DBS` the tests may flush. Nothing else there is touched: no FLUSHALL,
  no CONFIG SET (tests that change server settings start a throwaway server of their own).

A normal module (``from tests.servers import ...``), not a conftest: fixtures live in conftest.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from typing import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

PG_ADMIN_DSN = os.environ.get("FRIDGEBENCH_TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST_URL = os.environ.get("FRIDGEBENCH_TEST_REDIS_HOST_URL", "redis://127.0.0.1:6379").rstrip("/")

# The db indexes each suite owns on the machine's Redis (flushed by that suite only).
REDIS_DB_SHARED = 9  # tests/conftest.py: external_redis_url
REDIS_DB_STORES = 10  # tests/stores
REDIS_DB_MIGRATE = 11  # tests/migrate
REDIS_DB_SAFETY = 12  # foreign-key safety tests (they write foreign keys and count them afterwards)
REDIS_DB_TTL = 13  # tests/ttl
REDIS_DBS = (REDIS_DB_SHARED, REDIS_DB_STORES, REDIS_DB_MIGRATE, REDIS_DB_SAFETY, REDIS_DB_TTL)


def _split(url: str) -> tuple[str, int]:
    s = urlsplit(url)
    return s.hostname or "127.0.0.1", s.port or 0


PG_HOST, PG_PORT = _split(PG_ADMIN_DSN)
PG_PORT = PG_PORT or 5432
REDIS_HOST, REDIS_PORT = _split(REDIS_HOST_URL)
REDIS_PORT = REDIS_PORT or 6379


def pg_dsn(database: str) -> str:
    """The admin DSN pointed at another database on the same server."""
    return PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + database


def redis_url(db: int) -> str:
    """The machine's Redis at db index ``db``."""
    return f"{REDIS_HOST_URL}/{db}"


def pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=5) as c:
        c.execute(sql)  # type: ignore[arg-type]


def new_db_name(prefix: str = "fb_test") -> str:
    assert prefix.startswith("fb_test"), "tests only create databases named fb_test_*"
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@contextlib.contextmanager
def machine_database(prefix: str = "fb_test", template: str | None = None) -> Iterator[str]:
    """DSN of a unique, empty database (or a copy of ``template``) on the machine's PostgreSQL;
    dropped afterwards."""
    name = new_db_name(prefix)
    tmpl = f' TEMPLATE "{template}"' if template else ""
    try:
        pg_admin(f'CREATE DATABASE "{name}"{tmpl}')
    except psycopg.Error as err:
        pytest.fail(f"machine PostgreSQL at {PG_HOST}:{PG_PORT} not usable "
                    f"(set FRIDGEBENCH_TEST_PG_ADMIN_DSN): {err}")
    try:
        yield pg_dsn(name)
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def machine_redis_db(db: int) -> Iterator[str]:
    """The machine's Redis at db index ``db`` (one of :data:`REDIS_DBS`), flushed before and after."""
    assert db in REDIS_DBS, f"db {db} is not one the tests own"
    url = redis_url(db)
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        client.flushdb()
    except redis.RedisError as err:
        pytest.fail(f"machine Redis at {url} not usable (set FRIDGEBENCH_TEST_REDIS_HOST_URL): {err}")
    try:
        yield url
    finally:
        client.flushdb()
        client.close()

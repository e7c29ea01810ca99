"""Real servers only: the machine's PostgreSQL and Redis db 11 (where they are: :mod:`tests.servers`).

A template database holding the fridge2fork schema and catalogue is created once per test session;
each test gets a fresh copy (CREATE DATABASE ... TEMPLATE, fast) and a flushed Redis db 11.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
import redis

from tests import servers

PG_ADMIN = servers.PG_ADMIN_DSN
REDIS_URL = servers.redis_url(servers.REDIS_DB_MIGRATE)
PREFIX = f"fb_test_migrate_{uuid.uuid4().hex[:8]}"


def _dsn(db: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + db


def _admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(sql)


@pytest.fixture(scope="session")
def template_db() -> Iterator[str]:
    name = f"{PREFIX}_tmpl"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        from fridgebench.migrate.rehearsal import _setup

        asyncio.run(_setup(_dsn(name), "refuse"))
        yield name
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_dsn(template_db: str) -> Iterator[str]:
    name = f"{PREFIX}_{uuid.uuid4().hex[:6]}"
    _admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    try:
        yield _dsn(name)
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def redis_url() -> Iterator[str]:
    r = redis.Redis.from_url(REDIS_URL)
    r.flushdb()
    try:
        yield REDIS_URL
    finally:
        r.flushdb()
        r.close()


@pytest.fixture
def rds(redis_url: str) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


@pytest.fixture
def reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FRIDGEBENCH_REPORTS", str(tmp_path / "reports"))
    return tmp_path / "reports"

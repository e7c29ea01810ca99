"""Shared fixtures: real servers, never mocks.

- ``embedded_endpoints``: fridgebench's own embedded PostgreSQL + Valkey for the whole session.
- ``external_pg_dsn``: a fresh database ``fb_test_<random>`` on the machine's PostgreSQL (5432).
- ``external_redis_url``: the machine's Redis (6379), db ``$FRIDGEBENCH_TEST_REDIS_DB`` (default 9), flushed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Iterator

import asyncpg
import pytest
import redis

from fridgebench.provision import Endpoints, ProvisionOptions, down, provisioned
from fridgebench.provision.probe import run_sync

MACHINE_PG = os.environ.get("FRIDGEBENCH_TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
MACHINE_REDIS = os.environ.get("FRIDGEBENCH_TEST_REDIS_HOST_URL", "redis://127.0.0.1:6379")
REDIS_DB = int(os.environ.get("FRIDGEBENCH_TEST_REDIS_DB", "9"))


def fresh_run_root() -> Path:
    """A private run root under the system temp dir (pytest's tmp dirs are 0700 below /tmp/pytest-of-root,
    which an unprivileged PostgreSQL user cannot traverse)."""
    path = Path(tempfile.mkdtemp(prefix="fridgebench-test-"))
    os.chmod(path, 0o711)  # ours: traversable (not listable) by the unprivileged PostgreSQL user under root
    return path


@pytest.fixture
def fb_run_root() -> Iterator[Path]:
    """A private run root for one test (removed afterwards)."""
    path = fresh_run_root()
    try:
        yield path
    finally:
        down(run_dir=str(path))  # whatever a failed test left recorded by `up`
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded_endpoints() -> Iterator[Endpoints]:
    """Embedded PostgreSQL + Valkey with the schema loaded; stopped at the end of the session."""
    root = fresh_run_root()
    try:
        with provisioned(ProvisionOptions(run_dir=str(root))) as ep:
            yield ep
    finally:
        shutil.rmtree(root, ignore_errors=True)


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(MACHINE_PG, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def machine_database(prefix: str = "fb_test") -> Iterator[str]:
    """DSN of a unique, empty database on the machine's PostgreSQL; dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        run_sync(lambda: _admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as err:
        pytest.fail(f"machine PostgreSQL at {MACHINE_PG} not usable: {err}")
    base = MACHINE_PG.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        run_sync(lambda: _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def machine_redis_db(db: int) -> Iterator[str]:
    """The machine's Redis at db index ``db``, flushed before and after (only that index)."""
    url = f"{MACHINE_REDIS}/{db}"
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


@pytest.fixture(scope="session")
def external_pg_dsn() -> Iterator[str]:
    """DSN of a unique, empty database on the machine's PostgreSQL; dropped afterwards."""
    with machine_database() as dsn:
        yield dsn


@pytest.fixture(scope="session")
def external_redis_url() -> Iterator[str]:
    """The machine's Redis, test db index flushed before and after."""
    with machine_redis_db(REDIS_DB) as url:
        yield url


@pytest.fixture
def external_fridge_dsn(external_pg_dsn: str) -> str:
    """``external_pg_dsn`` with the fridge2fork schema and catalogue, sessions emptied."""
    from fridgebench.stores.schema import setup_schema

    async def setup() -> None:
        conn = await asyncpg.connect(external_pg_dsn)
        try:
            await setup_schema(conn, existing="reset")
        finally:
            await conn.close()

    run_sync(setup)
    return external_pg_dsn

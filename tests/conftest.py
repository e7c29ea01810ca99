"""Shared fixtures: real servers, never mocks.

- ``embedded_endpoints``: fridgebench's own embedded PostgreSQL + Valkey for the whole session.
- ``external_pg_dsn``: a fresh database ``fb_test_<random>`` on the machine's PostgreSQL (5432).
- ``external_redis_url``: the machine's Redis (6379), db 9, flushed.
- ``private_redis``: a throwaway Redis of this test session's own (:class:`tests.servers.ThrowawayRedis`),
  for tests that change server settings, read server-wide figures or use keys every store shares;
  a test that changes a setting there restores it (or starts its own with ``throwaway_redis``).

Where those servers are: :mod:`tests.servers` (the one place; README's overrides).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import asyncpg
import pytest

from fridgebench.provision import Endpoints, ProvisionOptions, down, provisioned
from fridgebench.provision.probe import run_sync
from tests.servers import REDIS_DB_SHARED, ThrowawayRedis, machine_database, machine_redis_db, throwaway_redis


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


@pytest.fixture(scope="session")
def external_pg_dsn() -> Iterator[str]:
    """DSN of a unique, empty database on the machine's PostgreSQL; dropped afterwards."""
    with machine_database() as dsn:
        yield dsn


@pytest.fixture(scope="session")
def external_redis_url() -> Iterator[str]:
    """The machine's Redis, test db index flushed before and after."""
    with machine_redis_db(REDIS_DB_SHARED) as url:
        yield url


@pytest.fixture(scope="session")
def private_redis() -> Iterator[ThrowawayRedis]:
    """A Redis/Valkey started for this test session only (no persistence); stopped at the end."""
    with throwaway_redis() as server:
        yield server


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

"""Shared fixtures: real servers, never mocks.

- ``embedded_endpoints``: fridgebench's own embedded PostgreSQL + Valkey for the whole session.
- ``external_pg_dsn``: a fresh database ``fb_test_<random>`` on the machine's PostgreSQL (5432).
- ``external_redis_url``: the machine's Redis (6379), db 9, flushed.
- ``private_redis``: a throwaway Redis of this test session's own (:class:`tests.servers.ThrowawayRedis`),
  for tests that change server settings, read server-wide figures or use keys every store shares;
  a test that changes a setting there restores it (or starts its own with ``throwaway_redis``).

Where those servers are: :mod:`tests.servers` (the one place; README's overrides).

The suite runs in parallel (pytest-xdist, ``-n auto --dist loadgroup`` in pyproject.toml; how many
workers: :func:`pytest_xdist_auto_num_workers`). Each
worker has its own embedded servers, private Redis and ``fb_test_*`` databases; what workers
would share is a db index of the machine's Redis, which its owner flushes — so every test that
uses one runs in the group of that db (:func:`pytest_collection_modifyitems`), on one worker.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterator

import asyncpg
import pytest

from fridgebench.provision import Endpoints, ProvisionOptions, down, provisioned
from fridgebench.provision.probe import run_sync
from tests import procs, servers
from tests.helpers import fresh_run_root
from tests.servers import REDIS_DB_SHARED, ThrowawayRedis, machine_database, machine_redis_db, throwaway_redis

# Which of the machine's Redis db indexes a test uses, by fixture, by folder, or by file (the tests that
# name a db directly). A new test module that uses one must be listed here, or use one of the fixtures.
_DB_BY_FIXTURE = {"external_redis_url": servers.REDIS_DB_SHARED, "foreign_redis": servers.REDIS_DB_SAFETY}
_DB_BY_FOLDER = {"stores": servers.REDIS_DB_STORES, "migrate": servers.REDIS_DB_MIGRATE}
_DB_BY_FILE = {
    "failure/test_failure_cli.py": servers.REDIS_DB_SHARED, "faults/test_faults_proxy.py": servers.REDIS_DB_SHARED,
    "load/test_load_errors.py": servers.REDIS_DB_SHARED, "report/test_report.py": servers.REDIS_DB_SHARED,
    "test_compare.py": servers.REDIS_DB_SHARED, "test_profile.py": servers.REDIS_DB_SHARED,
    "test_external_safety.py": servers.REDIS_DB_SAFETY, "test_exit_codes.py": servers.REDIS_DB_SAFETY,
}
_TESTS = Path(__file__).resolve().parent

# a hung test prints what each asyncio task was waiting for before pytest-timeout ends it
pytest_plugins = ["tests.hangs"]

# The runs tests start write no report.html unless a test asks for one (FRIDGEBENCH_NO_REPORT=0 in its
# environment): drawing a report costs seconds of CPU per run, and most tests read the results, not the
# page. The report's own tests, the masking scans and one test per command that writes one by default
# turn it back on. A value set before pytest starts is kept.
os.environ.setdefault("FRIDGEBENCH_NO_REPORT", "1")  # tests.helpers.WITH_REPORT turns it back on
# Likewise compare's profile of each store (seconds per store): the tests of it pass --profile.
os.environ.setdefault("FRIDGEBENCH_PROFILE", "0")


def _machine_redis_dbs(item: pytest.Item) -> set[int]:
    rel = Path(str(item.path)).resolve().relative_to(_TESTS).as_posix()
    dbs = {db for name, db in _DB_BY_FIXTURE.items() if name in getattr(item, "fixturenames", ())}
    dbs |= {db for folder, db in _DB_BY_FOLDER.items() if rel.startswith(folder + "/")}
    if rel in _DB_BY_FILE:
        dbs.add(_DB_BY_FILE[rel])
    return dbs


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: two workers more than the machine has cores. The suite waits on servers and subprocesses
    (a server starting, a run's fixed duration, a signal's effect) about a quarter of its time, and the tests
    sharing a db of the machine's Redis run on one worker at a time. On a 2-core VM (slow disk) two workers
    left the cores 78% busy (678 s), three 94% (562 s); on another 2-core VM three took 338-341 s (5 runs),
    four 287-315 s (median 303 s of 8), five 308 s."""
    return (os.cpu_count() or 1) + 2


def pytest_configure(config: pytest.Config) -> None:
    """Compile fridgebench's modules to bytecode once, before the workers start. The suite runs the CLI as a
    subprocess several hundred times; where PYTHONDONTWRITEBYTECODE is set (it is on these machines) each of
    those would otherwise compile every module it imports from source again (0.15–0.3 s of CPU each: about a
    minute of the suite's two cores). compileall writes the caches whatever that variable says, and Python
    reads them (checked against each source's mtime, so an edited module is compiled afresh)."""
    if hasattr(config, "workerinput"):  # an xdist worker: the controller has done it
        return
    import compileall

    import fridgebench

    compileall.compile_dir(str(Path(fridgebench.__file__).parent), quiet=1)


@pytest.hookimpl(tryfirst=True)  # before xdist's worker hook, which reads the marks into the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests sharing a db index of the machine's Redis go to one xdist group (one worker at a time
    flushes and fills it); a test using two dbs joins their groups. Without xdist the marks do nothing."""
    used = {id(it): _machine_redis_dbs(it) for it in items}
    parent: dict[int, int] = {}

    def root(db: int) -> int:
        while parent.setdefault(db, db) != db:
            db = parent[db]
        return db

    for dbs in used.values():
        first, *rest = sorted(dbs) or [None]
        for db in rest:
            parent[root(db)] = root(first)  # type: ignore[arg-type]
    for it in items:
        if used[id(it)]:
            it.add_marker(pytest.mark.xdist_group(f"machine-redis-db{root(min(used[id(it)]))}"))



@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """On an xdist worker with loadgroup, xdist has written each group into the node id; if it has not
    (a pytest/xdist pair that disagree on node ids), the groups would silently do nothing and two workers
    would flush each other's db: stop instead."""
    if not getattr(session.config.option, "loadgroup", False):  # set on xdist workers only
        return
    lost = [it.nodeid for it in session.items if any(it.iter_markers("xdist_group")) and "@" not in it.nodeid]
    if lost:
        raise pytest.UsageError(f"pytest-xdist's loadgroup did not apply to {len(lost)} tests (e.g. {lost[0]}): "
                                "this pytest and pytest-xdist disagree on node ids; install the versions "
                                "pyproject.toml's test extra names, or run with -n 0")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """When a test's body ends, every background run it started (:func:`tests.procs.popen`) has ended too:
    what is still running is stopped (:func:`tests.procs.stop_background`) before the test's fixtures are
    torn down (a database dropped under a live run, a shared db flushed while it still writes). A test that
    passed and left one running fails: it did not check what it started."""
    outcome = yield
    left = procs.stop_background()
    if left and outcome.excinfo is None:
        outcome.force_exception(AssertionError(f"the test left {len(left)} background run(s) running, "
                                               f"stopped now: {'; '.join(left)}"))


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

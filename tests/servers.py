"""The one place the test suites learn where the machine's own servers are.

Every suite that talks to "external" stores (the machine's PostgreSQL and Redis) goes through
this module, so the README's two overrides work everywhere:

- ``FRIDGEBENCH_TEST_PG_ADMIN_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``):
  a role that may CREATE/DROP DATABASE. Tests only ever create and drop databases named
  ``fb_test_*``; they never touch another database there.
- ``FRIDGEBENCH_TEST_REDIS_HOST_URL`` (default ``redis://127.0.0.1:6379``): a Redis server whose
  db indexes :data:`REDIS_DBS` the tests may flush. Nothing else there is touched: no FLUSHALL,
  no CONFIG SET, no server-wide figure (``used_memory``) read as if it were ours, no key outside
  a test's own prefix or db.

Anything that changes a server's settings (``maxmemory``, eviction policy, keyspace
notifications, a password), measures server-wide figures, or relies on keys every store shares
(the recipe cache ``recipe:*``) runs against a :class:`ThrowawayRedis` instead: a
``redis-server`` / ``valkey-server`` started here on a free port, no persistence, stopped
afterwards (binary: ``FRIDGEBENCH_TEST_REDIS_BIN``, else ``redis-server`` on ``PATH``, else
fridgebench's embedded Valkey).

A normal module (``from tests.servers import ...``), not a conftest: fixtures live in conftest.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import signal
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

from tests.procs import tied

PG_ADMIN_DSN = os.environ.get("FRIDGEBENCH_TEST_PG_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_HOST_URL = os.environ.get("FRIDGEBENCH_TEST_REDIS_HOST_URL", "redis://127.0.0.1:6379").rstrip("/")

# The db indexes each suite owns on the machine's Redis (flushed by that suite only).
REDIS_DB_SHARED = 9  # tests/conftest.py: external_redis_url
REDIS_DB_STORES = 10  # tests/stores
REDIS_DB_MIGRATE = 11  # tests/migrate
REDIS_DB_SAFETY = 12  # foreign-key safety tests (they write foreign keys and count them afterwards)
REDIS_DB_TTL = 13  # tests/ttl (on the session's private Redis: it changes server settings)
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


# --- throwaway Redis servers ---------------------------------------------------------------------

def redis_server_binary() -> Path:
    """The server binary throwaway servers run: ``FRIDGEBENCH_TEST_REDIS_BIN``, else ``redis-server``
    on ``PATH`` (the family of server the machine's Redis is), else fridgebench's embedded Valkey
    (asked of the provisioning code, never a hard-coded platform path)."""
    env = os.environ.get("FRIDGEBENCH_TEST_REDIS_BIN")
    if env:
        return Path(env)
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    from fridgebench.provision.binaries import embedded_valkey

    return embedded_valkey()


class ThrowawayRedis:
    """A Redis/Valkey server for one test (or one test session): 127.0.0.1, a free port, no
    persistence, 16 dbs, in its own temp folder. ``extra`` are server arguments
    (``"--maxmemory-policy", "allkeys-lru"``); ``password`` sets ``--requirepass``.
    ``stop()`` then ``start()`` restarts it on the same port (its data is gone)."""

    def __init__(self, *extra: str, password: str | None = None, binary: Path | None = None) -> None:
        from fridgebench.provision.local import free_port

        self.extra = extra
        self.password = password
        self.binary = binary or redis_server_binary()
        self.dir = Path(tempfile.mkdtemp(prefix="fb-test-redis-"))
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_once = False

    def start(self, timeout: float = 20.0) -> "ThrowawayRedis":
        """Start the server and wait until it answers as itself (its pid, not another server that
        took the port first). A port lost to a race is replaced by a new one on the first start."""
        from fridgebench.provision.local import free_port

        for attempt in range(3):
            if self._spawn(timeout):
                return self
            if self.started_once:
                break
            self.port = free_port()
        tail = (self.dir / "server.log").read_text(errors="replace")[-2000:]
        pytest.fail(f"throwaway {self.binary.name} on port {self.port} did not start: {tail}")

    def _spawn(self, timeout: float) -> bool:
        auth = ["--requirepass", self.password] if self.password is not None else []
        with open(self.dir / "server.log", "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.dir), "--databases", "16", *auth, *self.extra],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=tied(signal.SIGKILL))
        deadline = time.monotonic() + timeout
        client = self.client(socket_timeout=2)
        try:
            while self.proc.poll() is None and time.monotonic() < deadline:
                try:
                    if int(client.info("server")["process_id"]) == self.proc.pid:
                        self.started_once = True
                        return True
                except (redis.ConnectionError, redis.TimeoutError, redis.AuthenticationError, redis.ResponseError):
                    pass
                time.sleep(0.02)
        finally:
            client.close()
        self.stop()
        return False

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not running"
        return self.proc.pid

    def url(self, db: int = 0, *, password: str | None = "", user: str = "", query: str = "") -> str:
        """``redis://[user:password@]127.0.0.1:PORT/db``; the server's own password unless told."""
        pw = self.password if password == "" else password
        auth = f"{user}:{pw}@" if pw is not None else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}{query}"

    def client(self, db: int = 0, **kwargs: object) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, db=db, password=self.password, **kwargs)  # type: ignore[arg-type]


@contextlib.contextmanager
def throwaway_redis(*extra: str, password: str | None = None, binary: Path | None = None) -> Iterator[ThrowawayRedis]:
    """A :class:`ThrowawayRedis`, started, and stopped (its folder removed) afterwards."""
    server = ThrowawayRedis(*extra, password=password, binary=binary)
    try:
        yield server.start()
    finally:
        server.close()

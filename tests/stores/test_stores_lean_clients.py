"""The stores' lean hot-path clients on real servers: AUTH, db selection, broken connections
replaced, NOSCRIPT reload, read timeout, cancellation, pool exhaustion; PostgreSQL connections
replaced after the server drops them.

Tests that kill connections, flush scripts or pause clients run against a Valkey started here
(never the machine's shared Redis); it is stopped at the end of the module.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
import redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from fridgebench.errors import StoreUnavailable
from fridgebench.provision.binaries import embedded_valkey
from fridgebench.stores import make_store
from fridgebench.stores._lean_redis import LeanPool, pack
from fridgebench.stores.client import ClientOptions
from fridgebench.stores.postgres import PostgresStore
from fridgebench.stores.redis_atomic import RedisAtomicStore
from fridgebench.stores.redis_seed import RedisSeedStore
from tests.servers import ThrowawayRedis

PASSWORD = "lean-t3st-pw"
ADMIN = "fb-test-admin"  # the client name of the tests' own connections


class Valkey(ThrowawayRedis):
    """A throwaway server with --requirepass on a free port (the embedded Valkey: these tests kill
    connections, flush scripts and pause clients, so never on the machine's shared Redis)."""

    def __init__(self) -> None:
        super().__init__(password=PASSWORD, binary=embedded_valkey())

    def admin(self) -> redis.Redis:
        """A client of the test's own, named ``ADMIN``: its connections (this test's and any an earlier
        test's client has not closed yet) are not counted as the store's."""
        return self.client(client_name=ADMIN)


@pytest.fixture(scope="module")
def valkey() -> Iterator[Valkey]:
    v = Valkey()
    v.start()
    try:
        yield v
    finally:
        v.close()


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
        admin = valkey.admin()
        killed = admin.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        assert killed >= 3
        # the loop sees each EOF when it next runs the connection's protocol: wait for that (a
        # deadline, not a fixed sleep a busy runner can outlast), then every read must work
        deadline = time.monotonic() + 10
        while not all(c.broken for c in store.lean.free):
            assert time.monotonic() < deadline, "the pool never noticed the killed connections"
            await asyncio.sleep(0.01)
        got = await asyncio.gather(*(store.get(s) for _ in range(6)))
        assert all(g is not None for g in got)
        assert store.lean.dropped >= 3


async def test_server_restart_gives_errors_then_recovery() -> None:
    v = Valkey()
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
        v.close()


async def test_read_timeout_drops_the_connection_and_the_next_read_is_right(valkey: Valkey) -> None:
    async with RedisSeedStore(valkey.url(query="?socket_timeout=0.2"), pool_size=1) as store:
        s = sid()
        await store.create(s, ttl_s=60)
        admin = valkey.admin()
        # a 600 ms pause outlasts the 200 ms read timeout -- unless a stalled runner sends the read
        # only after the pause is over (then it is simply answered): pause again, a few times
        for _attempt in range(10):
            admin.execute_command("CLIENT", "PAUSE", "600", "ALL")
            try:
                await store.get(s)
            except RedisTimeoutError:
                break
        else:
            pytest.fail("no read ever timed out during a 600 ms pause")
        await asyncio.sleep(0.5)  # the pause (600 ms from before the read) is over: >= 200 + 500 ms later
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


def _client_ids(admin: redis.Redis) -> set[int]:
    """The server's clients other than the tests' own admin connections: the store's."""
    return {int(c["id"]) for c in admin.client_list() if c.get("name") != ADMIN}


async def test_more_callers_than_connections_wait_their_turn(valkey: Valkey) -> None:
    """40 concurrent adds through a pool of 2: all applied, and never more than the pool's
    connections open. The server is paused for writes (CLIENT PAUSE WRITE) while the 40 are
    issued, so every caller is parked -- on a connection or waiting for one -- when the server's
    client list is read; then it is unpaused explicitly (no timing window)."""
    admin = valkey.admin()
    async with RedisAtomicStore(valkey.url(), pool_size=2) as store:
        s = sid()
        await store.create(s, ttl_s=60)
        opened = _client_ids(admin)  # the lean pool's 2 + redis-py's housekeeping connection
        assert len(opened) == 3, admin.client_list()
        names = [f"재료{i}" for i in range(40)]
        admin.execute_command("CLIENT", "PAUSE", 60_000, "WRITE")
        try:
            calls = asyncio.gather(*(store.add_ingredients(s, [n]) for n in names))
            await asyncio.sleep(0.3)  # every caller has run up to its first await
            during = _client_ids(admin)
            busy = [c for c in admin.client_list() if c["cmd"] == "evalsha"]
        finally:
            admin.execute_command("CLIENT", "UNPAUSE")
        assert all(await calls)
        assert during == opened, "the pool opened connections beyond its size"
        assert len(busy) <= 2
        got = await store.get(s)
        assert got is not None and sorted(got.ingredients) == sorted(names)
        assert _client_ids(admin) == opened


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


async def test_postgres_housekeeping_is_not_bound_by_the_clients_request_timeout(pg_dsn: str) -> None:
    """The client's request timeout (--client-timeout: the connection's command_timeout) bounds the
    measured operations, not loading the population or deleting what the run wrote: a COMMIT held up
    longer than it (here by a lock another session holds; after a crash, by the recovery checkpoint's
    fsyncs) still completes, while an operation is cut off at it."""
    client = ClientOptions(timeout_s=0.3, connect_timeout_s=5.0, retries=0)
    s1, s2 = f"hk-{sid()}", f"hk-{sid()}"
    async with PostgresStore(pg_dsn, pool_size=1, client=client) as store:
        admin = await asyncpg.connect(pg_dsn)
        try:
            async with admin.transaction():  # holds the row lock of the second session's id until released
                await admin.execute("INSERT INTO user_fridge_sessions (session_id, expires_at) "
                                    "VALUES ($1, now() + interval '1 minute')", s2)
                with pytest.raises(asyncio.TimeoutError):  # a statement on the measured path: cut off at 0.3 s
                    await store.pool.fetchval("SELECT pg_sleep(1) IS NULL")
                load = asyncio.create_task(store.bulk_load([(s1, ["김치"]), (s2, [])], ttl_s=60))
                await asyncio.sleep(1.0)  # > 0.3 s: the load waits on the lock, it is not cut off
                assert not load.done()
                await admin.execute("DELETE FROM user_fridge_sessions WHERE session_id = $1", s2)
            await load
            assert (await store.get(s1)).ingredients == ("김치",)  # type: ignore[union-attr]
            async with admin.transaction():  # a row lock holds up the discard's DELETE the same way
                await admin.execute("SELECT 1 FROM user_fridge_sessions WHERE session_id = $1 FOR UPDATE", s1)
                discard = asyncio.create_task(store.discard_written())
                await asyncio.sleep(1.0)
                assert not discard.done()
            removed = await discard
        finally:
            await admin.close()
        assert removed.sessions == 2 and await store.get(s1) is None


async def test_postgres_a_failed_bulk_load_leaves_nothing_and_the_connection_usable(pg_dsn: str) -> None:
    s1, s2 = f"bl-{sid()}", f"bl-{sid()}"
    async with PostgresStore(pg_dsn, pool_size=1) as store:
        await store.create(s2, ttl_s=60)
        with pytest.raises(asyncpg.UniqueViolationError):
            await store.bulk_load([(s1, ["김치"]), (s2, [])], ttl_s=60)  # s2 exists: the COPY fails
        assert await store.get(s1) is None  # all or nothing: the first row rolled back too
        assert await store.pool.fetchval("SELECT count(*) FROM user_fridge_ingredients WHERE session_id = $1", s1) == 0
        assert store.pool.dropped == 0 and await store.pool.fetchval("SELECT $1::int", 7) == 7


async def test_postgres_pool_waits_when_all_connections_are_busy(pg_dsn: str) -> None:
    """20 concurrent queries through a pool of 2: all answered, and never more than 2 backends. An
    advisory lock held here parks every query the pool sends, so pg_stat_activity shows exactly
    the connections the pool opened while all 20 callers wait."""
    store = make_store("postgres", postgres_dsn=pg_dsn, redis_url="", pool_size=2)
    admin = await asyncpg.connect(pg_dsn)
    key = 0x66627074  # 'fbpt'
    backends_sql = ("SELECT pid, wait_event_type = 'Lock' FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
    try:
        others = {r[0] for r in await admin.fetch(backends_sql)}  # connections of other fixtures, if any

        async def count() -> tuple[int, int]:
            rows = [r for r in await admin.fetch(backends_sql) if r[0] not in others]
            return sum(1 for r in rows if r[1]), len(rows)

        async with store:
            await admin.execute("SELECT pg_advisory_lock($1)", key)
            try:
                calls = asyncio.gather(*(store.pool.fetchval(  # type: ignore[attr-defined]
                    "SELECT $1::int FROM (SELECT pg_advisory_xact_lock_shared($2::bigint)) l", i, key)
                    for i in range(20)))
                deadline = time.monotonic() + 30
                while (await count())[0] < 2:
                    assert time.monotonic() < deadline, "the pool's queries never reached the server"
                    await asyncio.sleep(0.02)
                await asyncio.sleep(0.3)  # time for a pool that over-opens to show it
                waiting, backends = await count()
            finally:
                await admin.execute("SELECT pg_advisory_unlock($1)", key)
            vals = await calls
        assert vals == list(range(20))
        assert (waiting, backends) == (2, 2), "the pool opened more connections than its size"
    finally:
        await admin.close()

"""Sessions in PostgreSQL, in the fridge2fork application's schema (DESIGN.md).

Every operation is one statement, hence one round trip (data-modifying CTEs where the
application would otherwise need two). asyncpg prepares each statement once per connection
and caches it (``statement_cache_size`` left at its default).

Connections: :class:`PgConnections`, ``pool_size`` raw asyncpg connections in a LIFO free-list,
not ``asyncpg.Pool``: the pool's release runs a reset query (``SELECT pg_advisory_unlock_all();
CLOSE ALL; UNLISTEN *; RESET ALL;``, a second round trip per operation) and its acquire/release
machinery costs ~45 µs more (benchmarks/README.md). The store never changes session state, so
nothing needs resetting. A connection that fails with anything but a server-reported SQL error
(lost, cancelled, timed out) is terminated and replaced on a later acquire.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, ClassVar, Iterable, TypeVar

import asyncpg

from fridgebench.stores import schema
from fridgebench.stores._errors import unavailable
from fridgebench.stores._lifo import LifoPool
from fridgebench.stores.base import DEFAULT_TTL_S, Removed, Session, SessionStore
from fridgebench.stores.client import ClientOptions
from fridgebench.stores.outcomes import mark_connecting

T = TypeVar("T")

_TTL = "($%d::int * interval '1 second')"

# The exact SELECT ``get`` runs ($1 = session_id). The benchmark also feeds it to pgbench.
POINT_READ_SQL = """SELECT s.created_at, s.expires_at,
       coalesce(array_agg(i.name ORDER BY f.added_at, f.id) FILTER (WHERE f.id IS NOT NULL), '{}') AS ingredients
  FROM user_fridge_sessions s
  LEFT JOIN user_fridge_ingredients f ON f.session_id = s.session_id
  LEFT JOIN ingredients i ON i.id = f.ingredient_id
 WHERE s.session_id = $1 AND s.expires_at > now()
 GROUP BY s.session_id"""

# Creating over an existing id replaces it with an empty session (as SETEX does in Redis).
CREATE_SQL = f"""WITH wipe AS (DELETE FROM user_fridge_ingredients WHERE session_id = $1)
INSERT INTO user_fridge_sessions (session_id, created_at, expires_at, last_accessed)
VALUES ($1, now(), now() + {_TTL % 2}, now())
ON CONFLICT (session_id) DO UPDATE
   SET created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at,
       last_accessed = EXCLUDED.last_accessed"""

ADD_SQL = f"""WITH s AS (
    UPDATE user_fridge_sessions SET expires_at = now() + {_TTL % 3}, last_accessed = now()
     WHERE session_id = $1 AND expires_at > now()
 RETURNING session_id
), ins AS (
    INSERT INTO user_fridge_ingredients (session_id, ingredient_id)
    SELECT s.session_id, x.id FROM s, unnest($2::int[]) WITH ORDINALITY AS x(id, ord)
     ORDER BY x.ord
    ON CONFLICT (session_id, ingredient_id) DO NOTHING
)
SELECT count(*) FROM s"""

REMOVE_SQL = """WITH s AS (
    UPDATE user_fridge_sessions SET last_accessed = now()
     WHERE session_id = $1 AND expires_at > now()
 RETURNING session_id
), del AS (
    DELETE FROM user_fridge_ingredients f USING s
     WHERE f.session_id = s.session_id AND f.ingredient_id = ANY($2::int[])
)
SELECT count(*) FROM s"""

EXTEND_SQL = f"""UPDATE user_fridge_sessions SET expires_at = now() + {_TTL % 2}, last_accessed = now()
 WHERE session_id = $1 AND expires_at > now()
RETURNING true"""

# Deletes the row whether live or not; reports whether there was a live session.
DELETE_SQL = """WITH d AS (DELETE FROM user_fridge_sessions WHERE session_id = $1 RETURNING expires_at)
SELECT count(*) FROM d WHERE expires_at > now()"""

RECIPE_SQL = """SELECT array_agg(i.name ORDER BY i.id)
  FROM recipe_ingredients ri JOIN ingredients i ON i.id = ri.ingredient_id
 WHERE ri.recipe_id = $1"""

COUNT_LIVE_SQL = "SELECT count(*) FROM user_fridge_sessions WHERE expires_at > now()"

# The application's periodic cleanup, as it runs it.
CLEANUP_SQL = "DELETE FROM user_fridge_sessions WHERE expires_at < now()"

# What discard_written runs: these ids exactly (their ingredient rows go by ON DELETE CASCADE).
DISCARD_SQL = "DELETE FROM user_fridge_sessions WHERE session_id = ANY($1::varchar[])"
DISCARD_CHUNK = 5000
#: the statement timeout of housekeeping (bulk load, deleting what a run wrote): setup and cleanup, not
#: the measured requests, whose timeout (``--client-timeout``) is the connection's ``command_timeout``
HOUSEKEEPING_TIMEOUT_S = 120.0


def resolve_ids(names: Iterable[str]) -> list[int]:
    """Ingredient names -> catalogue ids, duplicates dropped, order kept. Unknown -> ValueError."""
    ids = schema.ingredient_ids()
    out: list[int] = []
    seen: set[int] = set()
    unknown: list[str] = []
    for n in names:
        i = ids.get(n)
        if i is None:
            unknown.append(n)
        elif i not in seen:
            seen.add(i)
            out.append(i)
    if unknown:
        raise ValueError(f"unknown ingredient name(s), not in the catalogue: {', '.join(map(repr, unknown))}")
    return out


def _closed_error() -> BaseException:
    return asyncpg.InterfaceError("the PostgreSQL connection pool is closed")


class PgConnections:
    """``size`` asyncpg connections handed out LIFO, with ``fetchrow``/``fetchval``/``execute``
    (one checkout per call) and ``acquire()`` (an async context manager, for transactions)."""

    def __init__(self, dsn: str, size: int, *, connect_timeout_s: float = 10.0,
                 command_timeout_s: float | None = None) -> None:
        self.dsn = dsn
        self.connect_timeout_s = connect_timeout_s
        self.command_timeout_s = command_timeout_s  # every statement's limit (asyncpg's command_timeout)
        self._pool: LifoPool[asyncpg.Connection] = LifoPool(
            size, self._connect, asyncpg.Connection.is_closed, _terminate, _closed_error)
        self.free = self._pool.free

    async def _connect(self) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(self.dsn, timeout=self.connect_timeout_s,
                                         command_timeout=self.command_timeout_s)
        except Exception as exc:  # nothing was sent on this connection: stores/outcomes.py reads it so
            mark_connecting(exc)
            raise

    async def open(self, eager: int | None = None) -> None:
        """Connect ``eager`` connections now (default: all); the rest on demand."""
        await self._pool.open(eager)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Close idle connections gracefully (bounded); connections still checked out by
        cancelled operations are terminated when they come back."""
        idle = self._pool.close()
        if idle:
            try:
                await asyncio.wait_for(asyncio.gather(*(c.close() for c in idle), return_exceptions=True), timeout_s)
            except BaseException:
                for c in idle:
                    c.terminate()
                raise

    @property
    def dropped(self) -> int:
        return self._pool.dropped

    async def _checkout(self) -> asyncpg.Connection:
        free = self.free
        if free and not free[-1].is_closed():
            return free.pop()
        return await self._pool.acquire()

    def _checkin(self, conn: asyncpg.Connection, exc: BaseException | None) -> None:
        # a server-reported SQL error leaves the connection usable; anything else (lost,
        # cancelled mid-query, timeout, protocol trouble) leaves it in an unknown state, and so
        # does a FATAL one: the server ended the session (57P01 shutdown, 57P02 crash of another
        # backend, 57P03, class 08) -- such a connection must not be handed out again
        if exc is None or (isinstance(exc, asyncpg.PostgresError) and not _fatal(exc)
                           and not conn.is_in_transaction()):
            self._pool.release(conn)
        else:
            self._pool.discard(conn)

    async def _run(self, method: Callable[..., Awaitable[T]], sql: str, *args: Any, **kw: Any) -> T:
        """``method(conn, sql, *args, **kw)`` on a checked-out connection, checked back in either way."""
        conn = await self._checkout()
        try:
            out = await method(conn, sql, *args, **kw)
        except BaseException as exc:
            self._checkin(conn, exc)
            raise
        self._pool.release(conn)
        return out

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        return await self._run(asyncpg.Connection.fetchrow, sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._run(asyncpg.Connection.fetchval, sql, *args)

    async def execute(self, sql: str, *args: Any, timeout: float | None = None) -> str:
        """``timeout`` (s) overrides the connection's ``command_timeout`` for this statement (None: that one)."""
        return await self._run(asyncpg.Connection.execute, sql, *args, timeout=timeout)

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await self._checkout()
        try:
            yield conn
        except BaseException as exc:
            self._checkin(conn, exc)
            raise
        self._checkin(conn, None if not conn.is_in_transaction() else RuntimeError("left in a transaction"))


def _fatal(exc: BaseException) -> bool:
    """A server error that ends the session (operator intervention, class 57P; connection, class 08)."""
    state = str(getattr(exc, "sqlstate", "") or "")
    return state.startswith(("57P", "08"))


def _terminate(conn: asyncpg.Connection) -> None:
    if not conn.is_closed():
        conn.terminate()


class PostgresStore(SessionStore):
    name: ClassVar[str] = "postgres"
    kind: ClassVar[str] = "postgres"
    point_read_sql: ClassVar[str] = POINT_READ_SQL

    def __init__(self, dsn: str, pool_size: int = 16, *, connect_timeout_s: float = 10.0,
                 client: ClientOptions | None = None) -> None:
        """``client`` (timeouts) wins over ``connect_timeout_s`` when given."""
        self.dsn = dsn
        self.pool_size = pool_size
        self.connect_timeout_s = client.pg_connect_timeout_s if client is not None else connect_timeout_s
        self.command_timeout_s = client.timeout_s if client is not None else None
        self._pool: PgConnections | None = None

    async def open(self) -> None:
        if self._pool is not None:
            return
        pool = PgConnections(self.dsn, self.pool_size, connect_timeout_s=self.connect_timeout_s,
                             command_timeout_s=self.command_timeout_s)
        try:
            await pool.open()
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise unavailable(self.name, "PostgreSQL", self.dsn, exc) from exc
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @property
    def pool(self) -> PgConnections:
        if self._pool is None:
            raise RuntimeError("PostgresStore is not open: call open() or use 'async with'")
        return self._pool

    # -- the application's operations ---------------------------------------------------
    async def _create(self, session_id: str, ttl_s: int) -> None:
        await self.pool.execute(CREATE_SQL, session_id, ttl_s)

    async def get(self, session_id: str) -> Session | None:
        pool = self.pool
        free = pool.free
        conn = free.pop() if free and not free[-1].is_closed() else await pool._checkout()
        try:
            row = await conn.fetchrow(POINT_READ_SQL, session_id)
        except BaseException as exc:
            pool._checkin(conn, exc)
            raise
        pool._pool.release(conn)
        if row is None:
            return None
        return Session(session_id, row["created_at"], row["expires_at"], tuple(row["ingredients"]))

    async def add_ingredients(self, session_id: str, names: list[str], ttl_s: int = DEFAULT_TTL_S) -> bool:
        ids = resolve_ids(names)
        return bool(await self.pool.fetchval(ADD_SQL, session_id, ids, ttl_s))

    async def remove_ingredients(self, session_id: str, names: list[str]) -> bool:
        ids = resolve_ids(names)
        return bool(await self.pool.fetchval(REMOVE_SQL, session_id, ids))

    async def extend(self, session_id: str, ttl_s: int = DEFAULT_TTL_S) -> bool:
        return bool(await self.pool.fetchval(EXTEND_SQL, session_id, ttl_s))

    async def delete(self, session_id: str) -> bool:
        return bool(await self.pool.fetchval(DELETE_SQL, session_id))

    async def recipe_ingredients(self, recipe_id: int) -> list[str] | None:
        names = await self.pool.fetchval(RECIPE_SQL, recipe_id)
        return list(names) if names is not None else None

    # -- housekeeping -------------------------------------------------------------------
    async def count_live(self) -> int:
        return int(await self.pool.fetchval(COUNT_LIVE_SQL))

    async def cleanup_expired(self) -> int:
        status = await self.pool.execute(CLEANUP_SQL)  # "DELETE <n>"
        return int(status.rsplit(" ", 1)[-1])

    async def _discard(self, session_ids: list[str], cache_keys: list[str]) -> Removed:
        n = 0
        for start in range(0, len(session_ids), DISCARD_CHUNK):
            status = await self.pool.execute(DISCARD_SQL, session_ids[start:start + DISCARD_CHUNK],
                                             timeout=HOUSEKEEPING_TIMEOUT_S)  # not the client's request timeout
            n += int(status.rsplit(" ", 1)[-1])
        return Removed(sessions=n)

    async def _purge(self) -> Removed:
        async with self.pool.acquire() as conn:
            return Removed(sessions=await schema.purge_sessions(conn))

    async def _bulk_load(self, sessions: list[tuple[str, list[str]]], ttl_s: int) -> None:
        async with self.pool.acquire() as conn:
            await copy_sessions(conn, sessions, ttl_s)


async def copy_sessions(conn: asyncpg.Connection, sessions: list[tuple[str, list[str]]], ttl_s: int, *,
                        timeout_s: float = HOUSEKEEPING_TIMEOUT_S) -> None:
    """COPY sessions and their ingredients in one transaction (ids must not exist yet; names must
    be known): every PostgreSQL store's bulk load.

    Every statement, the COMMIT included, runs with ``timeout_s``, not the connection's own
    ``command_timeout``: that is the measured client's request timeout (``--client-timeout 0.3``),
    and loading a population is setup -- right after a crash, a COMMIT waiting on the end-of-recovery
    checkpoint's fsyncs took longer than 0.3 s and ended a whole ``failure`` run."""
    resolved = [(sid, resolve_ids(names)) for sid, names in sessions]
    await conn.execute("BEGIN", timeout=timeout_s)
    try:
        now = await conn.fetchval("SELECT now()", timeout=timeout_s)  # server clock, like the other statements
        expires = now + timedelta(seconds=ttl_s)
        await conn.copy_records_to_table(
            "user_fridge_sessions",
            records=[(sid, now, expires, now) for sid, _ in resolved],
            columns=["session_id", "created_at", "expires_at", "last_accessed"], timeout=timeout_s,
        )
        await conn.copy_records_to_table(
            "user_fridge_ingredients",
            records=[(sid, iid, now) for sid, ids in resolved for iid in ids],
            columns=["session_id", "ingredient_id", "added_at"], timeout=timeout_s,
        )
        await conn.execute("COMMIT", timeout=timeout_s)
    except asyncpg.PostgresError:  # the connection still answers: leave it out of the failed transaction
        if not conn.is_closed() and conn.is_in_transaction():
            with contextlib.suppress(Exception):
                await conn.execute("ROLLBACK", timeout=timeout_s)
        raise

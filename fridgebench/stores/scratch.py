"""A private PostgreSQL schema for measurements that need session tables of their own.

``ttl``'s PostgreSQL measurements need tables holding only their own rows: the application's
cleanup job (``DELETE ... WHERE expires_at < now()``) deletes every expired session in its
table, the bytes-per-session and cleanup-cost measurements read table sizes and dead tuples and
start from empty tables. On a database that holds someone else's sessions none of that may
touch their tables, and their rows would skew the figures. So these measurements run in a
schema created for the run, ``fridgebench_scratch_<random>``, holding the fridge2fork tables and
catalogue, reached through a DSN whose connections set ``search_path`` to it (asyncpg passes
unknown DSN query parameters as server settings), and dropped when the run ends.

Only inside such a schema may an experiment empty the session tables (:func:`empty_sessions`)
or run the application's cleanup: :func:`require_scratch` checks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from typing import AsyncIterator, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from fridgebench.config import mask_url
from fridgebench.errors import StoreUnavailable
from fridgebench.stores import schema
from fridgebench.stores._errors import unavailable
from fridgebench.stores.base import SessionStore

PREFIX = "fridgebench_scratch_"
DROP_TIMEOUT_S = 30.0


def with_search_path(dsn: str, schema_name: str) -> str:
    """``dsn`` whose connections (asyncpg) use ``schema_name`` as their only search_path entry."""
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "search_path"]
    query.append(("search_path", schema_name))
    return urlunsplit(parts._replace(query=urlencode(query)))


@contextlib.asynccontextmanager
async def scratch_schema(dsn: str, *, on_event: Callable[[str], None] | None = None) -> AsyncIterator[str]:
    """Create ``fridgebench_scratch_<random>`` with the fridge2fork tables and catalogue; yield a
    DSN pointing into it; drop it (CASCADE: everything in it is this run's) on the way out."""
    name = PREFIX + secrets.token_hex(4)
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise unavailable("postgres", "PostgreSQL", dsn, exc) from exc
    try:
        try:
            await conn.execute(f'CREATE SCHEMA "{name}"')  # no IF NOT EXISTS: it is ours or an error
        except asyncpg.InsufficientPrivilegeError as err:
            raise StoreUnavailable(
                f"ttl measures PostgreSQL in a scratch schema of its own and cannot create one in "
                f"{mask_url(dsn)}: {err}",
                hint="grant the user CREATE on that database, or point --postgres-dsn at another one") from None
        try:
            await conn.execute(f'SET search_path TO "{name}"')
            await conn.execute(schema.SCHEMA_SQL)
            await schema.load_catalogue(conn)
        except BaseException:
            await _drop(conn, name)
            raise
    finally:
        await conn.close()
    if on_event:
        on_event(f"PostgreSQL measurements run in a scratch schema {name} (dropped afterwards): "
                 "no other table is read or changed")
    try:
        yield with_search_path(dsn, name)
    except BaseException:
        with contextlib.suppress(Exception):  # the original error says why; drop what we can
            await _drop_via(dsn, name)
        raise
    await _drop_via(dsn, name)


async def _drop_via(dsn: str, name: str) -> None:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await _drop(conn, name)
    finally:
        await conn.close()


async def _drop(conn: asyncpg.Connection, name: str) -> None:
    await asyncio.wait_for(conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'), DROP_TIMEOUT_S)


async def require_scratch(conn: asyncpg.Connection | asyncpg.Pool) -> str:
    """The connection's schema, which must be a scratch schema: raises RuntimeError otherwise."""
    current = str(await conn.fetchval("SELECT current_schema()") or "")
    if not current.startswith(PREFIX):
        raise RuntimeError(f"this measurement empties the session tables and runs the application's cleanup: "
                           f"it must run in a scratch schema (stores.scratch.scratch_schema), not in {current!r}")
    return current


async def empty_sessions(store: SessionStore, conn: asyncpg.Connection | asyncpg.Pool) -> None:
    """Empty a scratch schema's session tables through ``store`` (TRUNCATE: the files restart empty,
    which the size measurements need). Refuses anywhere but a scratch schema."""
    await require_scratch(conn)
    await store.purge()

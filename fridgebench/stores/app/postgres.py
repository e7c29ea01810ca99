"""``postgres-app`` and ``postgres-app-fixed``: sessions in PostgreSQL the way fridge2fork's server
reaches them (``server/app/core/database.py``).

* One engine per store, ``create_async_engine`` on asyncpg with the **default pool**: a
  ``QueuePool`` of 5 connections plus up to 10 overflow connections (opened when more than 5
  requests hold one, closed again when they come back to a full pool), a 30 s wait for a
  connection, no pre-ping. The store ignores fridgebench's ``pool_size``: the pool is part of
  what the app does. More requests in flight than 15 wait in the pool's queue — compare's
  ``--concurrency`` is then "requests in flight", as in a web server, not connections.
* One ``AsyncSession`` per operation (a request), ``expire_on_commit=False``; the request ends with
  a COMMIT, a ROLLBACK on an error (the app's ``get_db``).
* Each operation calls the application's session functions (:mod:`.session_manager`; the fixed
  variant :mod:`.session_manager_fixed`), so the statements, their order and the commits are the
  application's.

Connections are made by asyncpg from the DSN exactly as the other PostgreSQL stores make them
(``async_creator``): the same URL handling, TLS options and ``search_path`` for scratch schemas.
Bulk loads, the removal of what the store wrote and ``--reset`` are housekeeping, not the app's
path: they use the pool's raw asyncpg connection (COPY, delete by id).
"""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any, Awaitable, Callable, ClassVar, TypeVar

import asyncpg
from sqlalchemy import event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from fridgebench.stores import schema
from fridgebench.stores._errors import unavailable
from fridgebench.stores.app import session_manager, session_manager_fixed
from fridgebench.stores.base import DEFAULT_TTL_S, Removed, Session, SessionStore
from fridgebench.stores.postgres import DISCARD_CHUNK, DISCARD_SQL, copy_sessions

T = TypeVar("T")


class PostgresAppStore(SessionStore):
    name: ClassVar[str] = "postgres-app"
    kind: ClassVar[str] = "postgres"
    #: the application's session functions this store runs
    manager: ClassVar[ModuleType] = session_manager

    def __init__(self, dsn: str, pool_size: int | None = None, *, connect_timeout_s: float = 10.0) -> None:
        self.dsn = dsn
        self.requested_pool_size = pool_size  # not used: the app's default pool is what is measured
        self.connect_timeout_s = connect_timeout_s
        self.connections_opened = 0  # new server connections (the overflow opens and closes them)
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None

    # -- lifecycle ----------------------------------------------------------------------
    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn, timeout=self.connect_timeout_s)

    async def open(self) -> None:
        if self._engine is not None:
            return
        engine = create_async_engine("postgresql+asyncpg://", async_creator=self._connect)

        def opened(*_args: Any) -> None:
            self.connections_opened += 1

        event.listen(engine.sync_engine, "connect", opened)
        try:
            async with engine.connect():  # the first connection: a bad URL or a down server shows here
                pass
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, SQLAlchemyError) as exc:
            await engine.dispose()
            cause = getattr(exc, "orig", None) or exc
            raise unavailable(self.name, "PostgreSQL", self.dsn, cause) from exc
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        self._sessions = None
        if engine is not None:
            await engine.dispose()

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError(f"{type(self).__name__} is not open: call open() or use 'async with'")
        return self._engine

    def pool_description(self) -> dict[str, Any]:
        """The pool as the app configures it (by default), for results documents."""
        pool = self.engine.pool
        return {"class": type(pool).__name__, "size": pool.size(),  # type: ignore[attr-defined]
                "max_overflow": getattr(pool, "_max_overflow", None), "timeout_s": getattr(pool, "_timeout", None),
                "pre_ping": bool(getattr(pool, "_pre_ping", False)),
                "connections_opened": self.connections_opened}

    async def _request(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """One request: an AsyncSession, ``work``, then COMMIT (ROLLBACK on an error), as ``get_db``."""
        if self._sessions is None:
            raise RuntimeError(f"{type(self).__name__} is not open: call open() or use 'async with'")
        async with self._sessions() as db:
            try:
                out = await work(db)
                await db.commit()
            except Exception:
                await db.rollback()
                raise
        return out

    # -- the application's operations ---------------------------------------------------
    async def _create(self, session_id: str, ttl_s: int) -> None:
        m = self.manager

        async def work(db: AsyncSession) -> None:
            await m.create_session(db, session_id, ttl_s)

        await self._request(work)

    async def get(self, session_id: str) -> Session | None:
        m = self.manager

        async def work(db: AsyncSession) -> Session | None:
            s = await m.get_or_create_session(db, session_id)
            if s is None:
                return None
            items = await m.get_session_ingredients(db, session_id)
            return Session(session_id, s.created_at, s.expires_at, tuple(i["name"] for i in items))

        return await self._request(work)

    async def add_ingredients(self, session_id: str, names: list[str], ttl_s: int = DEFAULT_TTL_S) -> bool:
        m = self.manager

        async def work(db: AsyncSession) -> bool:
            if await m.get_or_create_session(db, session_id, extend_ttl_s=ttl_s) is None:
                return False
            await m.add_ingredients(db, session_id, names)
            return True

        return await self._request(work)

    async def remove_ingredients(self, session_id: str, names: list[str]) -> bool:
        m = self.manager

        async def work(db: AsyncSession) -> bool:
            if not await m.live_session_exists(db, session_id):
                return False
            await m.remove_ingredients(db, session_id, names)
            return True

        return await self._request(work)

    async def extend(self, session_id: str, ttl_s: int = DEFAULT_TTL_S) -> bool:
        m = self.manager
        return await self._request(lambda db: m.extend_session(db, session_id, ttl_s))

    async def delete(self, session_id: str) -> bool:
        m = self.manager
        return await self._request(lambda db: m.delete_session(db, session_id))

    async def recipe_ingredients(self, recipe_id: int) -> list[str] | None:
        m = self.manager
        return await self._request(lambda db: m.recipe_ingredient_names(db, recipe_id))

    # -- housekeeping -------------------------------------------------------------------
    async def count_live(self) -> int:
        m = self.manager
        return await self._request(m.count_live_sessions)

    async def cleanup_expired(self) -> int:
        m = self.manager
        return await self._request(m.cleanup_expired_sessions)

    async def _raw(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """``work`` on a pooled connection's asyncpg connection (housekeeping, not the app's path)."""
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            return await work(raw.driver_connection)  # type: ignore[arg-type]

    async def _bulk_load(self, sessions: list[tuple[str, list[str]]], ttl_s: int) -> None:
        await self._raw(lambda c: copy_sessions(c, sessions, ttl_s))

    async def _discard(self, session_ids: list[str], cache_keys: list[str]) -> Removed:
        async def work(conn: asyncpg.Connection) -> Removed:
            n = 0
            for start in range(0, len(session_ids), DISCARD_CHUNK):
                status = await conn.execute(DISCARD_SQL, session_ids[start:start + DISCARD_CHUNK])
                n += int(status.rsplit(" ", 1)[-1])
            return Removed(sessions=n)

        return await self._raw(work)

    async def _purge(self) -> Removed:
        return Removed(sessions=await self._raw(schema.purge_sessions))


class PostgresAppFixedStore(PostgresAppStore):
    """The app's code with the two cheapest fixes (:mod:`.session_manager_fixed`): no
    ``last_accessed`` write on every read (a throttled touch), one query instead of N+1 for adds."""

    name: ClassVar[str] = "postgres-app-fixed"
    manager: ClassVar[ModuleType] = session_manager_fixed

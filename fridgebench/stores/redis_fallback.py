"""``redis-fallback``: the seed's Phase 2 as written -- Redis first, PostgreSQL when Redis errs.

The seed's Phase 2 (``if use_redis and redis_client: setex ... else: # PostgreSQL fallback``),
read as a running application would have to run it: every operation goes to Redis; when the
Redis call raises (any ``RedisError``: refused, connection lost, timed out, ``-LOADING``,
``-OOM``), the same operation goes to PostgreSQL instead. A Redis *miss* is an answer, not an
error: a session that is not in Redis is "no such session", wherever else it may be.

What this costs under a Redis fault is what ``fridgebench failure`` measures:

* sessions created in PostgreSQL during the outage are not found once Redis answers again
  (reads go to Redis, which never had them);
* updates made during the outage land in PostgreSQL, where sessions created in Redis do not
  exist (the add is answered "no such session"), or in PostgreSQL only, and Redis serves the old
  version afterwards (a stale read);
* with no client timeout (the seed's redis-py defaults) a hung Redis raises nothing: the request
  waits, and the fallback never runs.

Its Redis side is :class:`~fridgebench.stores.redis_atomic.RedisAtomicStore` (the seed's format and
TTL; adds and removes as one server-side step), so the lost updates of the seed's GET -> SETEX race
(measured by ``compare``) do not mix into what the fallback itself loses. Its PostgreSQL side is
:class:`~fridgebench.stores.postgres.PostgresStore` on the fridge2fork schema. Sessions loaded
before a run (``bulk_load``) go to Redis, as the seed's Phase 3 intends ("Redis as the main
session store").
"""

from __future__ import annotations

from typing import Any, ClassVar

from redis.exceptions import RedisError

from fridgebench.stores.base import DEFAULT_TTL_S, Removed, Session, SessionStore
from fridgebench.stores.client import ClientOptions
from fridgebench.stores.postgres import PostgresStore
from fridgebench.stores.redis_atomic import RedisAtomicStore


class RedisFallbackStore(SessionStore):
    name: ClassVar[str] = "redis-fallback"
    kind: ClassVar[str] = "redis"  # its sessions live in Redis while Redis answers

    def __init__(self, redis_url: str, *, postgres_dsn: str, pool_size: int = 16,
                 client: ClientOptions | None = None) -> None:
        self.redis_side = RedisAtomicStore(redis_url, postgres_dsn=postgres_dsn, pool_size=pool_size, client=client)
        self.pg_side = PostgresStore(postgres_dsn, pool_size=pool_size, client=client)
        for side in (self.redis_side, self.pg_side):
            side.name = self.name  # type: ignore[misc]  # errors name this store
        self.redis_side.written = self.written  # recipe keys it caches are this store's to delete
        self.fallbacks = 0  # operations PostgreSQL served because Redis raised
        self.fallback_errors: dict[str, int] = {}  # Redis exception class -> count

    # the Redis side's knobs, as the Redis stores have them
    @property
    def key_prefix(self) -> str:
        return self.redis_side.key_prefix

    @key_prefix.setter
    def key_prefix(self, value: str) -> None:
        self.redis_side.key_prefix = value

    @property
    def cache_hits(self) -> int:
        return self.redis_side.cache_hits

    @property
    def cache_misses(self) -> int:
        return self.redis_side.cache_misses

    def _fell_back(self, exc: RedisError) -> None:
        self.fallbacks += 1
        name = type(exc).__name__
        self.fallback_errors[name] = self.fallback_errors.get(name, 0) + 1

    # -- lifecycle ------------------------------------------------------------------------------
    async def open(self) -> None:
        await self.redis_side.open()
        try:
            await self.pg_side.open()
        except BaseException:
            await self.redis_side.close()
            raise

    async def close(self) -> None:
        try:
            await self.redis_side.close()
        finally:
            await self.pg_side.close()

    # -- the application's operations: Redis, else PostgreSQL ------------------------------------
    async def _create(self, session_id: str, ttl_s: int) -> None:
        try:
            await self.redis_side._create(session_id, ttl_s)
        except RedisError as exc:
            self._fell_back(exc)
            await self.pg_side._create(session_id, ttl_s)

    async def get(self, session_id: str) -> Session | None:
        try:
            return await self.redis_side.get(session_id)
        except RedisError as exc:
            self._fell_back(exc)
            return await self.pg_side.get(session_id)

    async def add_ingredients(self, session_id: str, names: list[str], ttl_s: int = DEFAULT_TTL_S) -> bool:
        try:
            return await self.redis_side.add_ingredients(session_id, names, ttl_s)
        except RedisError as exc:
            self._fell_back(exc)
            return await self.pg_side.add_ingredients(session_id, names, ttl_s)

    async def remove_ingredients(self, session_id: str, names: list[str]) -> bool:
        try:
            return await self.redis_side.remove_ingredients(session_id, names)
        except RedisError as exc:
            self._fell_back(exc)
            return await self.pg_side.remove_ingredients(session_id, names)

    async def extend(self, session_id: str, ttl_s: int = DEFAULT_TTL_S) -> bool:
        try:
            return await self.redis_side.extend(session_id, ttl_s)
        except RedisError as exc:
            self._fell_back(exc)
            return await self.pg_side.extend(session_id, ttl_s)

    async def delete(self, session_id: str) -> bool:
        try:
            return await self.redis_side.delete(session_id)
        except RedisError as exc:
            self._fell_back(exc)
            return await self.pg_side.delete(session_id)

    async def recipe_ingredients(self, recipe_id: int) -> list[str] | None:
        try:
            return await self.redis_side.recipe_ingredients(recipe_id)
        except RedisError as exc:
            self._fell_back(exc)
            return await self.pg_side.recipe_ingredients(recipe_id)

    # -- where the sessions actually are (the failure experiment's diagnosis) -------------------
    async def locate(self, session_ids: list[str]) -> dict[str, tuple[Session | None, Session | None]]:
        """Each session as Redis and as PostgreSQL hold it, read from each directly."""
        import asyncio

        out: dict[str, tuple[Session | None, Session | None]] = {}
        for start in range(0, len(session_ids), 200):
            batch = session_ids[start:start + 200]
            in_redis = await asyncio.gather(*(self.redis_side.get(s) for s in batch))
            in_pg = await asyncio.gather(*(self.pg_side.get(s) for s in batch))
            out.update(zip(batch, zip(in_redis, in_pg)))
        return out

    # -- housekeeping -------------------------------------------------------------------------------
    async def count_live(self) -> int:
        return await self.redis_side.count_live()

    async def cleanup_expired(self) -> int:
        return 0  # Redis's TTL expires the sessions; the seed runs no cleanup for its fallback rows

    async def _bulk_load(self, sessions: list[tuple[str, list[str]]], ttl_s: int) -> None:
        await self.redis_side._bulk_load(sessions, ttl_s)

    async def _discard(self, session_ids: list[str], cache_keys: list[str]) -> Removed:
        """These ids from both sides (a session may be in either or both: counted per side), and the
        recipe cache keys the Redis side created."""
        removed = await self.redis_side._discard(session_ids, cache_keys)
        return removed + await self.pg_side._discard(session_ids, [])

    async def _purge(self) -> Removed:
        return (await self.redis_side.purge()) + (await self.pg_side.purge())

    def stats(self) -> dict[str, Any]:
        return {"fallbacks": self.fallbacks, "fallback_errors": dict(self.fallback_errors)}

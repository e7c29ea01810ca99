"""``pg-redis-cache``: PostgreSQL holds the sessions; Redis is a cache in front whose errors are ignored.

The published fix for "when Redis fails, PostgreSQL keeps working": PostgreSQL is the source of
truth, so a Redis outage can slow requests down but cannot lose a session.

* **writes** go to PostgreSQL first; then the cache is updated: a create writes the new empty
  session to Redis (write-through); adds, removes, extends and deletes delete the cached copy
  (its next read fills it again from PostgreSQL), since the new ingredient list is PostgreSQL's to
  say. Every cache update also bumps the session's generation key (``session-gen:{id}``, 60 s);
* **reads** try Redis (GET + PTTL + the generation, one round trip); a miss reads PostgreSQL and
  fills the cache with ``SET ... PXAT <expires_at>`` -- only if the generation is still the one
  read before PostgreSQL was (one Lua step): a write that committed meanwhile must not be
  overwritten by the older copy this read holds (cache-aside's race, closed the way memcache
  leases close it). The cached copy expires exactly when the session does, so the cache holds the
  seed's format and TTL semantics;
* **any Redis error is ignored** (counted): the read goes to PostgreSQL, the write's cache update
  is skipped.

What it still costs under a Redis fault, and what ``fridgebench failure`` shows: each request
pays the Redis client's timeout while Redis hangs; and a cache update skipped while Redis was
unreachable but *alive* (a pause, a network fault) leaves the old copy in Redis, served as a stale
session after Redis answers again, until the next write to that session or its expiry.
"""

from __future__ import annotations

from typing import Any, ClassVar

from redis.exceptions import RedisError

import hashlib
import json
import time
from datetime import datetime, timezone

from redis.exceptions import NoScriptError

from fridgebench.stores._lean_redis import pack, raise_reply_error
from fridgebench.stores._redis_base import encode_session, now_iso, parse_created_at
from fridgebench.stores.base import DEFAULT_TTL_S, Removed, Session, SessionStore
from fridgebench.stores.client import ClientOptions
from fridgebench.stores.postgres import PostgresStore
from fridgebench.stores.redis_atomic import RedisAtomicStore


GEN_PREFIX = "session-gen:"
GEN_TTL_MS = 60_000  # far longer than any read between its generation check and its fill
# KEYS: session key, generation key; ARGV: value, expiry (unix ms), the generation the read saw ('' = none)
FILL_LUA = """local g = redis.call('GET', KEYS[2])
if (g or '') == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
  return 1
end
return 0
"""
FILL_SHA = hashlib.sha1(FILL_LUA.encode()).hexdigest()


def _session(session_id: str, raw: bytes, pttl: int) -> Session:
    data = json.loads(raw)
    expires_at = (datetime.max.replace(tzinfo=timezone.utc) if pttl < 0
                  else datetime.fromtimestamp(time.time() + pttl / 1000, timezone.utc))
    return Session(session_id, parse_created_at(data.get("created_at")), expires_at,
                   tuple(data.get("ingredients") or ()))


class PgRedisCacheStore(SessionStore):
    name: ClassVar[str] = "pg-redis-cache"
    kind: ClassVar[str] = "postgres"  # the sessions' home

    def __init__(self, redis_url: str, *, postgres_dsn: str, pool_size: int = 16,
                 client: ClientOptions | None = None) -> None:
        self.pg = PostgresStore(postgres_dsn, pool_size=pool_size, client=client)
        # the Redis client (lean per-operation connections, the recipe cache, housekeeping)
        self.cache = RedisAtomicStore(redis_url, postgres_dsn=postgres_dsn, pool_size=pool_size, client=client)
        for side in (self.pg, self.cache):
            side.name = self.name  # type: ignore[misc]  # errors name this store
        self.cache.written = self.written  # recipe keys it caches are this store's to delete
        self.cache_errors = 0  # Redis calls that failed and were ignored
        self.cache_error_classes: dict[str, int] = {}
        self.session_hits = 0
        self.session_misses = 0

    @property
    def key_prefix(self) -> str:
        return self.cache.key_prefix

    @key_prefix.setter
    def key_prefix(self, value: str) -> None:
        self.cache.key_prefix = value

    @property
    def cache_hits(self) -> int:  # the recipe cache's, as the Redis stores count them
        return self.cache.cache_hits

    @property
    def cache_misses(self) -> int:
        return self.cache.cache_misses

    def _ignored(self, exc: RedisError) -> None:
        self.cache_errors += 1
        name = type(exc).__name__
        self.cache_error_classes[name] = self.cache_error_classes.get(name, 0) + 1

    def gen_key(self, session_id: str) -> str:
        return f"{GEN_PREFIX}{session_id}"

    def _bump(self, session_id: str) -> bytes:
        g = self.gen_key(session_id)
        return pack("INCR", g) + pack("PEXPIRE", g, GEN_TTL_MS)

    async def _update_cache(self, session_id: str, first: bytes) -> None:
        """``first`` (DEL, or the write-through SET) and a generation bump, in one round trip;
        a Redis error is counted and ignored."""
        try:
            for reply in await self.cache.lean.request(first + self._bump(session_id), 3):
                raise_reply_error(reply)
        except RedisError as exc:
            self._ignored(exc)

    async def _forget(self, session_id: str) -> None:
        """Drop the cached copy after a write (the next read fills it from PostgreSQL)."""
        await self._update_cache(session_id, pack("DEL", self.cache.key(session_id)))

    # -- lifecycle ------------------------------------------------------------------------------
    async def open(self) -> None:
        await self.pg.open()
        try:
            await self.cache.open()
        except BaseException:
            await self.pg.close()
            raise

    async def close(self) -> None:
        try:
            await self.cache.close()
        finally:
            await self.pg.close()

    # -- the application's operations --------------------------------------------------------------
    async def _create(self, session_id: str, ttl_s: int) -> None:
        await self.pg._create(session_id, ttl_s)
        # write-through: the new session is empty, nothing to read back
        await self._update_cache(session_id, pack("SETEX", self.cache.key(session_id), ttl_s,
                                                  encode_session(now_iso(), [])))

    async def get(self, session_id: str) -> Session | None:
        k, g = self.cache.key(session_id), self.gen_key(session_id)
        gen: bytes | None = None
        reachable = True
        try:
            raw, pttl, gen = await self.cache.lean.request(pack("GET", k) + pack("PTTL", k) + pack("GET", g), 3)
            for reply in (raw, pttl, gen):
                raise_reply_error(reply)
        except RedisError as exc:
            self._ignored(exc)
            raw, reachable = None, False
        if raw is not None and pttl != -2:
            self.session_hits += 1
            return _session(session_id, raw, pttl)
        self.session_misses += 1
        session = await self.pg.get(session_id)
        if session is not None and reachable:
            value = encode_session(session.created_at.isoformat(), list(session.ingredients))
            args = [2, k, g, value, int(session.expires_at.timestamp() * 1000), gen or b""]
            try:  # filled only if no write bumped the generation since it was read
                reply = await self.cache.lean.request(pack("EVALSHA", FILL_SHA, *args))
                try:
                    raise_reply_error(reply)
                except NoScriptError:
                    await self.cache.lean.execute("EVAL", FILL_LUA, *args)
            except RedisError as exc:
                self._ignored(exc)
        return session

    async def add_ingredients(self, session_id: str, names: list[str], ttl_s: int = DEFAULT_TTL_S) -> bool:
        applied = await self.pg.add_ingredients(session_id, names, ttl_s)
        await self._forget(session_id)
        return applied

    async def remove_ingredients(self, session_id: str, names: list[str]) -> bool:
        applied = await self.pg.remove_ingredients(session_id, names)
        await self._forget(session_id)
        return applied

    async def extend(self, session_id: str, ttl_s: int = DEFAULT_TTL_S) -> bool:
        applied = await self.pg.extend(session_id, ttl_s)
        await self._forget(session_id)
        return applied

    async def delete(self, session_id: str) -> bool:
        deleted = await self.pg.delete(session_id)
        await self._forget(session_id)
        return deleted

    async def recipe_ingredients(self, recipe_id: int) -> list[str] | None:
        try:
            return await self.cache.recipe_ingredients(recipe_id)
        except RedisError as exc:
            self._ignored(exc)
            return await self.pg.recipe_ingredients(recipe_id)

    async def locate(self, session_ids: list[str]) -> dict[str, tuple[Session | None, Session | None]]:
        """Each session as the cache and as PostgreSQL hold it, read from each directly."""
        import asyncio

        out: dict[str, tuple[Session | None, Session | None]] = {}
        for start in range(0, len(session_ids), 200):
            batch = session_ids[start:start + 200]
            cached = await asyncio.gather(*(self.cache.get(s) for s in batch))
            in_pg = await asyncio.gather(*(self.pg.get(s) for s in batch))
            out.update(zip(batch, zip(cached, in_pg)))
        return out

    # -- housekeeping -------------------------------------------------------------------------------
    async def count_live(self) -> int:
        return await self.pg.count_live()

    async def cleanup_expired(self) -> int:
        return await self.pg.cleanup_expired()  # cached copies expire with their sessions

    async def _bulk_load(self, sessions: list[tuple[str, list[str]]], ttl_s: int) -> None:
        await self.pg._bulk_load(sessions, ttl_s)  # the cache fills on reads

    async def _discard(self, session_ids: list[str], cache_keys: list[str]) -> Removed:
        """The sessions from PostgreSQL; their cached copies and the recipe keys it cached, as cache keys."""
        from fridgebench.stores._redis_base import unlink_keys

        removed = await self.pg._discard(session_ids, [])
        copies = await unlink_keys(self.cache.redis, [self.cache.key(s) for s in session_ids] + cache_keys)
        await unlink_keys(self.cache.redis, [self.gen_key(s) for s in session_ids])  # expire in 60 s anyway
        return removed + Removed(cache_keys=copies)

    async def _purge(self) -> Removed:
        return (await self.pg.purge()) + (await self.cache.purge())

    def stats(self) -> dict[str, Any]:
        return {"cache_errors_ignored": self.cache_errors, "cache_error_classes": dict(self.cache_error_classes),
                "session_cache_hits": self.session_hits, "session_cache_misses": self.session_misses}

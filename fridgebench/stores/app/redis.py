"""``redis-app``: sessions in Redis the way the seed's code writes them, through the client the app
configures (``server/app/core/database.py``: ``redis.asyncio.from_url(REDIS_URL, decode_responses=True)``).

Every operation goes through that one client and its **default connection pool** (redis-py's
``ConnectionPool``: a connection per command in flight, made on first use, up to the library's
default maximum; no pipelining across requests). The operations are the seed's code as written:

* create: ``SETEX session:{id} ttl json.dumps({"created_at": ..., "ingredients": []})``;
* add: ``GET`` -> ``json.loads`` -> ``data["ingredients"].extend(names)`` -> ``SETEX`` — a
  read-modify-write with nothing to stop a concurrent add in between: it loses updates under
  concurrency, like ``redis-seed`` (duplicates kept, names not checked, as in the seed);
* read: ``GET`` and ``PTTL`` in one non-transactional pipeline (one round trip; the seed shows no
  read, the contract's session carries its expiry), then ``json.loads``;
* remove (not in the seed): ``GET`` -> filter -> ``SET ... KEEPTTL XX``, racy like the add;
* extend ``EXPIRE``, delete ``DEL``; recipe lookups cache-aside (``GET``; on a miss PostgreSQL, then
  ``SET ... EX 3600 NX``).

The seed writes ``created_at`` as ``datetime.now().isoformat()`` (naive local time); like the other
Redis stores this one writes the ISO-8601 string with its UTC offset, and reads both.
The value format, key names and TTLs are the other Redis stores', so the correctness check and
``migrate verify`` read them unchanged. Housekeeping (bulk loads, deleting what the store wrote,
``--reset``) uses the shared housekeeping client of :class:`~.._redis_base.RedisStoreBase`.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any, ClassVar

import redis.asyncio as aioredis

from fridgebench.errors import UsageError
from fridgebench.stores._redis_base import (
    _FAR_FUTURE,
    RECIPE_PREFIX,
    RECIPE_TTL_S,
    RedisStoreBase,
    encode_session,
    now_iso,
    parse_created_at,
)
from fridgebench.stores.base import DEFAULT_TTL_S, Session
from fridgebench.stores.postgres import RECIPE_SQL


class RedisAppStore(RedisStoreBase):
    name: ClassVar[str] = "redis-app"
    uses_lean_client: ClassVar[bool] = False

    _app: aioredis.Redis | None = None

    async def _on_open(self, client: aioredis.Redis) -> None:
        # as the app makes it: connections on first use (the housekeeping client's PING already
        # proved the server answers at this URL)
        self._app = aioredis.from_url(self.redis_url, decode_responses=True)

    async def close(self) -> None:
        app, self._app = self._app, None
        try:
            if app is not None:
                await app.aclose()
        finally:
            await super().close()

    @property
    def app(self) -> aioredis.Redis:
        if self._app is None:
            raise RuntimeError("RedisAppStore is not open: call open() or use 'async with'")
        return self._app

    def pool_description(self) -> dict[str, Any]:
        """The app client's pool as redis-py configures it by default, for results documents."""
        pool = self.app.connection_pool
        return {"class": type(pool).__name__, "max_connections": getattr(pool, "max_connections", None),
                "connections_made": len(getattr(pool, "_available_connections", []))
                + len(getattr(pool, "_in_use_connections", []))}

    # -- the application's operations ---------------------------------------------------
    async def _create(self, session_id: str, ttl_s: int) -> None:
        await self.app.setex(self.key(session_id), ttl_s, encode_session(now_iso(), []))

    async def get(self, session_id: str) -> Session | None:
        key = self.key(session_id)
        async with self.app.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.pttl(key)
            session_data, pttl = await pipe.execute()
        if session_data is None or pttl == -2:
            return None
        data = json.loads(session_data)
        expires_at = _FAR_FUTURE if pttl < 0 else datetime.fromtimestamp(time.time() + pttl / 1000, timezone.utc)
        return Session(session_id, parse_created_at(data.get("created_at")), expires_at,
                       tuple(data.get("ingredients") or ()))

    async def add_ingredients(self, session_id: str, names: list[str], ttl_s: int = DEFAULT_TTL_S) -> bool:
        key = self.key(session_id)
        session_data = await self.app.get(key)
        if not session_data:
            return False
        data = json.loads(session_data)
        data["ingredients"].extend(names)
        # TTL 연장 (24시간 갱신) -- the seed's comment: the SETEX refreshes to a full TTL
        await self.app.setex(key, ttl_s, json.dumps(data))
        return True

    async def remove_ingredients(self, session_id: str, names: list[str]) -> bool:
        key = self.key(session_id)
        session_data = await self.app.get(key)
        if not session_data:
            return False
        data = json.loads(session_data)
        drop = set(names)
        data["ingredients"] = [n for n in data["ingredients"] if n not in drop]
        # XX: a session that expired since the GET is not brought back without a TTL
        return bool(await self.app.set(key, json.dumps(data), keepttl=True, xx=True))

    async def extend(self, session_id: str, ttl_s: int = DEFAULT_TTL_S) -> bool:
        return bool(await self.app.expire(self.key(session_id), ttl_s))

    async def delete(self, session_id: str) -> bool:
        return bool(await self.app.delete(self.key(session_id)))

    async def recipe_ingredients(self, recipe_id: int) -> list[str] | None:
        key = f"{RECIPE_PREFIX}{recipe_id}"
        cached = await self.app.get(key)
        if cached is not None:
            self.cache_hits += 1
            return json.loads(cached)
        self.cache_misses += 1
        if self._pg is None:
            raise UsageError(
                f"store {self.name!r} has no PostgreSQL to read recipe {recipe_id} from on a cache miss",
                hint="pass postgres_dsn (--postgres-dsn / FRIDGEBENCH_POSTGRES_DSN)",
            )
        names = await self._pg.fetchval(RECIPE_SQL, recipe_id)
        if names is None:
            return None
        result = list(names)
        if await self.app.set(key, json.dumps(result), ex=RECIPE_TTL_S, nx=True):
            self.written.cache_key(key, RECIPE_TTL_S)  # ours: created by this SET
        return result

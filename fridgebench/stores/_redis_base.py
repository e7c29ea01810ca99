"""What the two Redis stores share: the seed's value format, TTL semantics, the recipe cache.

The format (DESIGN.md, the seed): key ``session:{id}``, value
``{"created_at": ISO-8601, "ingredients": [name, ...]}`` written with SETEX ttl.
The seed writes ``datetime.now().isoformat()`` (naive local time); we write an ISO-8601 string
with an offset and read both forms, a naive one being taken as UTC.

Subclasses implement only ``add_ingredients`` and ``remove_ingredients``.

Two clients: every per-operation command (the measured hot path: create, get, add, remove,
extend, delete, the recipe cache) goes through :class:`~._lean_redis.LeanPool` (asyncio
Protocol + hiredis, ``pool_size`` connections, LIFO); housekeeping (UNLINK of what the store
wrote, the ``--reset`` purge, bulk pipelines, script loading, the tests' raw reads) through
redis-py (``self.redis``).

What the store writes is recorded (:class:`~.base.Ledger`): sessions by the base class, recipe
cache keys here, only when the ``SET ... NX`` created them (a key someone else cached is read,
never overwritten, never deleted).
``get`` sends GET and PTTL in one write on one connection and reads the two replies: one round
trip, and nothing else runs on that connection in between.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime, timezone
from typing import Any, ClassVar

import asyncpg
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from fridgebench.errors import UsageError
from fridgebench.stores._errors import unavailable
from fridgebench.stores._lean_redis import LeanPool, raise_reply_error
from fridgebench.stores.base import DEFAULT_TTL_S, Removed, Session, SessionStore
from fridgebench.stores.client import ClientOptions
from fridgebench.stores.postgres import RECIPE_SQL, PgConnections

RECIPE_PREFIX = "recipe:"
RECIPE_TTL_S = 3600
SCAN_COUNT = 1000
BATCH = 1000
_FAR_FUTURE = datetime.max.replace(tzinfo=timezone.utc)


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def encode_session(created_at: str, ingredients: list[str]) -> str:
    """The seed's encoding: ``json.dumps`` of the dict (non-ASCII escaped as \\uXXXX)."""
    return json.dumps({"created_at": created_at, "ingredients": ingredients})


def parse_created_at(value: Any) -> datetime:
    """ISO-8601 with or without offset; naive (the seed's ``datetime.now()``) is taken as UTC."""
    try:
        dt = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.fromtimestamp(0, timezone.utc)
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=timezone.utc)


class RedisStoreBase(SessionStore):
    kind: ClassVar[str] = "redis"
    #: False for a store whose every operation goes through a client of its own (``redis-app``)
    uses_lean_client: ClassVar[bool] = True

    def __init__(
        self,
        redis_url: str,
        *,
        postgres_dsn: str | None = None,
        pool_size: int = 16,
        key_prefix: str = "session:",
        pool_timeout_s: float = 20.0,
        client: ClientOptions | None = None,
    ) -> None:
        """``client``: timeouts of the per-operation connections (default: the URL's, else a 10 s
        connect timeout and no read timeout); housekeeping keeps redis-py's own settings."""
        self.redis_url = redis_url
        self.client = client
        self.postgres_dsn = postgres_dsn
        self.pool_size = pool_size
        self.key_prefix = key_prefix
        self.pool_timeout_s = pool_timeout_s
        self.cache_hits = 0
        self.cache_misses = 0
        self._redis: aioredis.Redis | None = None
        self._lean: LeanPool | None = None
        self._pg: PgConnections | None = None

    # -- lifecycle ----------------------------------------------------------------------
    async def open(self) -> None:
        if self._redis is not None:
            return
        c = self.client
        lean = None
        if self.uses_lean_client:
            lean = (LeanPool(self.redis_url, self.pool_size) if c is None else
                    LeanPool(self.redis_url, self.pool_size, connect_timeout_s=c.connect_timeout_s,
                             read_timeout_s=c.timeout_s))
        # redis-py, for housekeeping only; connections are made on first use. Everything sent through
        # it is idempotent (SCAN, UNLINK, SETEX pipelines, SCRIPT LOAD), so a connection the server
        # dropped meanwhile (idle timeout, CLIENT KILL, a reset) is retried on a fresh one -- under
        # uvloop, writing to a connection the peer closed raises RuntimeError, not ConnectionError
        pool = aioredis.BlockingConnectionPool.from_url(
            self.redis_url, max_connections=self.pool_size, timeout=self.pool_timeout_s,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
            retry_on_error=[RedisConnectionError, RedisTimeoutError, RuntimeError],
        )
        client = aioredis.Redis(connection_pool=pool)

        async def undo() -> None:
            if lean is not None:
                await lean.close()
            await client.aclose()
            await pool.disconnect()

        try:
            if lean is not None:
                await lean.open()  # connect, AUTH, SELECT: wrong password / db surface here
            await client.ping()
        except (RedisError, OSError, asyncio.TimeoutError) as exc:
            await undo()
            raise unavailable(self.name, "Redis", self.redis_url, exc) from exc
        if self.postgres_dsn:
            pg = PgConnections(self.postgres_dsn, 4, connect_timeout_s=10 if c is None else c.pg_connect_timeout_s,
                               command_timeout_s=None if c is None else c.timeout_s)
            try:
                await pg.open(eager=1)
            except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                await undo()
                raise unavailable(self.name, "PostgreSQL (recipe cache backend)", self.postgres_dsn, exc) from exc
            self._pg = pg
        self._redis = client
        self._lean = lean
        await self._on_open(client)

    async def _on_open(self, client: aioredis.Redis) -> None:
        """Hook for subclasses (script registration)."""

    async def close(self) -> None:
        client, self._redis = self._redis, None
        lean, self._lean = self._lean, None
        pg, self._pg = self._pg, None
        if lean is not None:
            await lean.close()
        if client is not None:
            await client.aclose()
            await client.connection_pool.disconnect()
        if pg is not None:
            await pg.close()

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError(f"{type(self).__name__} is not open: call open() or use 'async with'")
        return self._redis

    @property
    def lean(self) -> LeanPool:
        if self._lean is None:
            raise RuntimeError(f"{type(self).__name__} is not open: call open() or use 'async with'")
        return self._lean

    def key(self, session_id: str) -> str:
        return f"{self.key_prefix}{session_id}"

    # -- the application's operations ---------------------------------------------------
    async def _create(self, session_id: str, ttl_s: int) -> None:
        await self.lean.execute("SETEX", self.key(session_id), ttl_s, encode_session(now_iso(), []))

    async def get(self, session_id: str) -> Session | None:
        k = (self.key_prefix + session_id).encode()
        n = len(k)
        lean = self._lean
        if lean is None:
            raise RuntimeError(f"{type(self).__name__} is not open: call open() or use 'async with'")
        free = lean.free
        conn = free.pop() if free and not free[-1].broken else await lean.acquire()
        try:
            # GET and PTTL in one write, two replies read back: one round trip on one connection
            raw, pttl = await conn.request(
                b"*2\r\n$3\r\nGET\r\n$%d\r\n%b\r\n*2\r\n$4\r\nPTTL\r\n$%d\r\n%b\r\n" % (n, k, n, k), 2)
        finally:
            lean.release(conn)
        if raw is None or pttl == -2:
            return None
        if type(raw) is not bytes:
            raise_reply_error(raw)  # e.g. WRONGTYPE
        if type(pttl) is not int:
            raise_reply_error(pttl)
        data = json.loads(raw)
        expires_at = _FAR_FUTURE if pttl < 0 else datetime.fromtimestamp(time.time() + pttl / 1000, timezone.utc)
        created = data.get("created_at")
        try:  # the common case inline: our own offset-aware ISO string
            created_at = datetime.fromisoformat(created)
            if created_at.tzinfo is None:
                created_at = created_at.replace(tzinfo=timezone.utc)
        except (TypeError, ValueError):
            created_at = parse_created_at(created)
        return Session(session_id, created_at, expires_at, tuple(data.get("ingredients") or ()))

    async def extend(self, session_id: str, ttl_s: int = DEFAULT_TTL_S) -> bool:
        return bool(await self.lean.execute("EXPIRE", self.key(session_id), ttl_s))

    async def delete(self, session_id: str) -> bool:
        return bool(await self.lean.execute("DEL", self.key(session_id)))

    async def recipe_ingredients(self, recipe_id: int) -> list[str] | None:
        """Cache-aside: GET recipe:{id}; on a miss read PostgreSQL and cache it for an hour
        (``SET ... EX 3600 NX``: a value another client cached meanwhile is left as it is)."""
        key = f"{RECIPE_PREFIX}{recipe_id}"
        raw = await self.lean.execute("GET", key)
        if raw is not None:
            self.cache_hits += 1
            return json.loads(raw)
        self.cache_misses += 1
        if self._pg is None:
            raise UsageError(
                f"store {self.name!r} has no PostgreSQL to read recipe {recipe_id} from on a cache miss",
                hint="pass postgres_dsn (--postgres-dsn / FRIDGEBENCH_POSTGRES_DSN)",
            )
        names = await self._pg.fetchval(RECIPE_SQL, recipe_id)
        if names is None:
            return None  # not cached: unknown ids are rare and cheap to re-ask
        result = list(names)
        if await self.lean.execute("SET", key, json.dumps(result), "EX", RECIPE_TTL_S, "NX") is not None:
            self.written.cache_key(key, RECIPE_TTL_S)  # ours: created by this SET
        return result

    # -- housekeeping -------------------------------------------------------------------
    async def _scan(self, pattern: str) -> set[bytes]:
        return {k async for k in self.redis.scan_iter(match=pattern, count=SCAN_COUNT)}

    async def count_live(self) -> int:
        return len(await self._scan(f"{self.key_prefix}*"))

    async def cleanup_expired(self) -> int:
        return 0  # TTL does it

    async def _discard(self, session_ids: list[str], cache_keys: list[str]) -> Removed:
        """UNLINK these keys exactly, in batches; counts what still existed."""
        sessions = await unlink_keys(self.redis, [self.key(s) for s in session_ids])
        return Removed(sessions=sessions, cache_keys=await unlink_keys(self.redis, cache_keys))

    async def _purge(self) -> Removed:
        """UNLINK every session and recipe-cache key in the db (SCAN in batches; never FLUSHDB)."""
        removed = Removed(await scan_unlink(self.redis, f"{self.key_prefix}*"),
                          await scan_unlink(self.redis, f"{RECIPE_PREFIX}*"))
        self.cache_hits = self.cache_misses = 0
        return removed

    async def _bulk_load(self, sessions: list[tuple[str, list[str]]], ttl_s: int) -> None:
        created = now_iso()
        for start in range(0, len(sessions), BATCH):
            async with self.redis.pipeline(transaction=False) as pipe:
                for sid, names in sessions[start : start + BATCH]:
                    pipe.execute_command("SETEX", self.key(sid), ttl_s, encode_session(created, list(names)))
                await pipe.execute()


async def unlink_keys(client: aioredis.Redis, keys: list[str]) -> int:
    """UNLINK exactly these keys, ``BATCH`` per command, pipelined; how many existed."""
    n = 0
    for start in range(0, len(keys), BATCH * 20):
        async with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(start + BATCH * 20, len(keys)), BATCH):
                pipe.unlink(*keys[i:i + BATCH])
            n += sum(int(x) for x in await pipe.execute())
    return n


async def scan_unlink(client: aioredis.Redis, pattern: str) -> int:
    """UNLINK every key matching ``pattern`` (SCAN in batches): the ``--reset`` purge only."""
    n = 0
    batch: list[bytes] = []
    async for k in client.scan_iter(match=pattern, count=SCAN_COUNT):
        batch.append(k)
        if len(batch) >= BATCH:
            n += int(await client.unlink(*batch))
            batch = []
    if batch:
        n += int(await client.unlink(*batch))
    return n

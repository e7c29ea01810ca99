"""Data a store already holds that this run did not write, and the ``--reuse`` / ``--reset`` policy.

Called from provisioning (:mod:`fridgebench.provision`) for every command that provisions stores,
before anything is measured, in two steps:

1. :func:`check` (read-only, before any server is started or anything is written): counts the
   sessions in each store that is not freshly started — Redis ``session:*`` and ``recipe:*``
   keys (SCAN, never KEYS), PostgreSQL rows of ``user_fridge_sessions`` — and, without
   ``--reuse`` or ``--reset``, refuses with one line saying how many and naming an example;
2. :func:`prepare_redis` (after every store is up): with ``--reset``, deletes those keys and says
   how many; with ``--reuse``, says they stay. PostgreSQL's side of step 2 is
   :func:`fridgebench.stores.schema.setup_schema`, which also creates the tables.

Everything present at that point was written by someone else (or by an earlier, killed run):
from here on a store deletes only what it records writing (:class:`~fridgebench.stores.base.Ledger`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

import redis.asyncio as aioredis
from redis.exceptions import RedisError

import asyncpg

from fridgebench.config import mask_url
from fridgebench.errors import SchemaConflict
from fridgebench.stores import schema
from fridgebench.stores._errors import unavailable
from fridgebench.stores._redis_base import RECIPE_PREFIX, SCAN_COUNT, scan_unlink
from fridgebench.stores.schema import REUSE_HINT

Existing = Literal["refuse", "reuse", "reset"]
SESSION_PATTERN = "session:*"
RECIPE_PATTERN = f"{RECIPE_PREFIX}*"


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class RedisCensus:
    """Session and recipe-cache keys in one Redis db."""

    where: str  # masked URL
    sessions: int = 0
    cache_keys: int = 0
    example: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.sessions or self.cache_keys)

    def describe(self) -> str:
        parts = [_plural(self.sessions, "session:* key")]
        if self.cache_keys:
            parts.append(_plural(self.cache_keys, "recipe:* key"))
        eg = f" (e.g. {self.example})" if self.example else ""
        return " and ".join(parts) + eg


async def _count(client: aioredis.Redis, pattern: str) -> tuple[int, str | None]:
    n, example = 0, None
    async for k in client.scan_iter(match=pattern, count=SCAN_COUNT):
        n += 1
        if example is None:
            example = k.decode("utf-8", "backslashreplace") if isinstance(k, bytes) else str(k)
    return n, example


async def redis_census(url: str) -> RedisCensus:
    """Count ``session:*`` and ``recipe:*`` keys (SCAN in batches; nothing is changed)."""
    client = aioredis.from_url(url)
    try:
        if not await client.dbsize():
            return RedisCensus(mask_url(url))
        sessions, ex1 = await _count(client, SESSION_PATTERN)
        cache, ex2 = await _count(client, RECIPE_PATTERN)
    except (RedisError, OSError) as exc:
        raise unavailable("redis", "Redis", url, exc) from exc
    finally:
        await client.aclose()
    return RedisCensus(mask_url(url), sessions, cache, ex1 or ex2)


def refuse_redis(found: RedisCensus) -> SchemaConflict:
    return SchemaConflict(f"the Redis at {found.where} already holds {found.describe()} that fridgebench "
                          "did not write", hint=REUSE_HINT)


async def check(*, postgres_dsn: str | None, redis_url: str | None, existing: Existing) -> None:
    """Step 1, read-only: refuse (``existing="refuse"``) a store that holds sessions or cache keys."""
    if existing != "refuse":
        return
    if redis_url:
        found = await redis_census(redis_url)
        if not found.empty:
            raise refuse_redis(found)
    if postgres_dsn:
        try:
            conn = await asyncpg.connect(postgres_dsn, timeout=10)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise unavailable("postgres", "PostgreSQL", postgres_dsn, exc) from exc
        try:
            pg = await schema.census(conn)
        finally:
            await conn.close()
        if pg.sessions:
            raise schema.refuse_postgres(mask_url(postgres_dsn) + " ", pg)


async def prepare_redis(url: str, existing: Existing) -> list[str]:
    """Step 2 for Redis: refuse, delete (``--reset``) or leave (``--reuse``) what is there.
    Returns the lines to tell the user."""
    found = await redis_census(url)
    if found.empty:
        return []
    if existing == "refuse":
        raise refuse_redis(found)
    if existing == "reuse":
        return [f"--reuse: {found.describe()} already in {found.where} stay untouched; "
                "fridgebench deletes only the keys it writes"]
    client = aioredis.from_url(url)
    try:
        sessions = await scan_unlink(client, SESSION_PATTERN)
        cache = await scan_unlink(client, RECIPE_PATTERN)
    except (RedisError, OSError) as exc:
        raise unavailable("redis", "Redis", url, exc) from exc
    finally:
        await client.aclose()
    what = _plural(sessions, "session:* key") + (f" and {_plural(cache, 'recipe:* key')}" if cache else "")
    return [f"--reset: deleted {what} from {found.where}"]

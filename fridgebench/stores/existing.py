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

``fridgebench load``'s Locust master, run without the CLI (plain ``locust -f``, Kubernetes), takes
the same two steps itself with synchronous clients (:class:`fridgebench.load.sync_stores.StoreAdmin`)
through the same census, decisions and lines (:func:`redis_census_sync`, :func:`redis_action`,
:func:`reuse_line`, :func:`reset_line`; :mod:`~fridgebench.stores.schema` for PostgreSQL).

Everything present at that point was written by someone else (or by an earlier, killed run):
from here on a store deletes only what it records writing (:class:`~fridgebench.stores.base.Ledger`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

import redis
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


class _Tally:
    """How many keys, and the first one (to name in messages)."""

    def __init__(self) -> None:
        self.n = 0
        self.example: str | None = None

    def add(self, key: bytes | str) -> None:
        self.n += 1
        if self.example is None:
            self.example = key.decode("utf-8", "backslashreplace") if isinstance(key, bytes) else str(key)


async def _count(client: aioredis.Redis, pattern: str) -> _Tally:
    tally = _Tally()
    async for k in client.scan_iter(match=pattern, count=SCAN_COUNT):
        tally.add(k)
    return tally


def _census(where: str, sessions: _Tally, cache: _Tally) -> RedisCensus:
    return RedisCensus(where, sessions.n, cache.n, sessions.example or cache.example)


async def redis_census(url: str) -> RedisCensus:
    """Count ``session:*`` and ``recipe:*`` keys (SCAN in batches; nothing is changed)."""
    client = aioredis.from_url(url)
    try:
        if not await client.dbsize():
            return RedisCensus(mask_url(url))
        sessions = await _count(client, SESSION_PATTERN)
        cache = await _count(client, RECIPE_PATTERN)
    except (RedisError, OSError) as exc:
        raise unavailable("redis", "Redis", url, exc) from exc
    finally:
        await client.aclose()
    return _census(mask_url(url), sessions, cache)


def redis_census_sync(client: redis.Redis, url: str) -> RedisCensus:
    """:func:`redis_census` with a synchronous client (the Locust side: gevent, no asyncio).
    Connection errors are the caller's to map (it holds the client)."""
    if not client.dbsize():
        return RedisCensus(mask_url(url))
    counts = []
    for pattern in (SESSION_PATTERN, RECIPE_PATTERN):
        tally = _Tally()
        for k in client.scan_iter(match=pattern, count=SCAN_COUNT):
            tally.add(k)
        counts.append(tally)
    return _census(mask_url(url), *counts)


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


def redis_action(found: RedisCensus, existing: Existing) -> Literal["reset", "reuse"] | None:
    """What to do about the keys a Redis db already holds: nothing (there are none), refuse (raises),
    or the caller deletes them (``"reset"``) / leaves them (``"reuse"``)."""
    if found.empty:
        return None
    if existing == "refuse":
        raise refuse_redis(found)
    return existing


def reuse_line(found: RedisCensus) -> str:
    return (f"--reuse: {found.describe()} already in {found.where} stay untouched; "
            "fridgebench deletes only the keys it writes")


def reset_line(found: RedisCensus, sessions: int, cache: int) -> str:
    what = _plural(sessions, "session:* key") + (f" and {_plural(cache, 'recipe:* key')}" if cache else "")
    return f"--reset: deleted {what} from {found.where}"


async def prepare_redis(url: str, existing: Existing) -> list[str]:
    """Step 2 for Redis: refuse, delete (``--reset``) or leave (``--reuse``) what is there.
    Returns the lines to tell the user."""
    found = await redis_census(url)
    action = redis_action(found, existing)
    if action is None:
        return []
    if action == "reuse":
        return [reuse_line(found)]
    client = aioredis.from_url(url)
    try:
        sessions = await scan_unlink(client, SESSION_PATTERN)
        cache = await scan_unlink(client, RECIPE_PATTERN)
    except (RedisError, OSError) as exc:
        raise unavailable("redis", "Redis", url, exc) from exc
    finally:
        await client.aclose()
    return [reset_line(found, sessions, cache)]

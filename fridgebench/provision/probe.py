"""Talk to a live PostgreSQL / Redis: reachability, version and durability settings.

Used for every source (embedded, system, external): what we report is always read from the
live server, never assumed from the flags we started it with.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import TYPE_CHECKING, Any, Awaitable, Callable, TypeVar

from fridgebench.config import mask_text, mask_url
from fridgebench.connection_errors import store_error
from fridgebench.errors import StoreUnavailable

if TYPE_CHECKING:  # the clients are imported where used: a command that fails on bad input never loads them
    import asyncpg
    import redis

T = TypeVar("T")

PG_DURABILITY = ("fsync", "synchronous_commit", "full_page_writes", "wal_level", "shared_buffers")
REDIS_DURABILITY = ("appendonly", "appendfsync", "save", "maxmemory", "maxmemory-policy")


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even when an event loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())  # type: ignore[arg-type]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:  # a loop runs here: use a fresh one elsewhere
        return pool.submit(lambda: asyncio.run(factory())).result()  # type: ignore[arg-type]


# --- PostgreSQL -------------------------------------------------------------------------------

async def pg_connect(dsn: str, *, timeout: float = 5.0, flag: str = "--postgres-dsn") -> asyncpg.Connection:
    """Connect or raise :class:`StoreUnavailable` with one line naming the masked DSN."""
    import asyncpg

    try:
        return await asyncpg.connect(dsn, timeout=timeout)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError, ValueError) as err:
        mapped = store_error(err, "postgres", dsn, flag, connecting=True)
        if mapped is None:
            mapped = StoreUnavailable(f"cannot use PostgreSQL at {mask_url(dsn)}: {mask_text(str(err)).splitlines()[0]}",
                                      hint=f"check {flag}")
        raise mapped from None


async def pg_describe(conn: asyncpg.Connection) -> tuple[str, dict[str, Any]]:
    """``(server_version, durability settings)`` read with SHOW."""
    version = await conn.fetchval("SHOW server_version")
    durability = {name: await conn.fetchval(f"SHOW {name}") for name in PG_DURABILITY}
    return str(version).split(" ")[0], durability


async def pg_probe(dsn: str, *, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
    conn = await pg_connect(dsn, timeout=timeout)
    try:
        return await pg_describe(conn)
    finally:
        await conn.close()


async def pg_alive(dsn: str) -> bool:
    import asyncpg

    try:
        conn = await asyncpg.connect(dsn, timeout=2.0)
    except Exception:
        return False
    try:
        return await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


# --- Redis ------------------------------------------------------------------------------------

def redis_client(url: str, *, timeout: float = 5.0) -> redis.Redis:
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout, decode_responses=True)


def redis_probe(url: str, *, timeout: float = 5.0, flag: str = "--redis-url") -> tuple[str, dict[str, Any]]:
    """PING, then ``(version, durability)``; :class:`StoreUnavailable` with one masked line on failure."""
    import redis

    where = mask_url(url)
    try:
        client = redis_client(url, timeout=timeout)
    except ValueError as err:
        raise StoreUnavailable(f"bad Redis URL {where}: {mask_text(str(err))}",
                               hint="use redis://[:password@]host:port/db or rediss://...") from None
    try:
        client.ping()
        info = client.info("server")
        durability: dict[str, Any] = {}
        for name in REDIS_DURABILITY:
            try:
                durability[name] = client.config_get(name).get(name, "")
            except redis.ResponseError:  # CONFIG disabled (managed Redis): say so instead of guessing
                durability[name] = "unavailable"
    except (redis.RedisError, OSError) as err:
        raise (store_error(err, "redis", url, flag, connecting=True) or err) from None
    finally:
        client.close()
    version = str(info.get("redis_version", "?"))
    if info.get("valkey_version"):
        version = f"{version} (valkey {info['valkey_version']})"
    return version, durability


def redis_server_pid(url: str) -> int | None:
    """``process_id`` of the server answering at ``url`` (None when nothing answers): tells our
    server from another one that took the port first."""
    try:
        client = redis_client(url, timeout=2.0)
        try:
            return int(client.info("server")["process_id"])
        finally:
            client.close()
    except Exception:
        return None


def redis_loading(url: str) -> bool | None:
    """Whether the Redis at ``url`` is still loading its data set (INFO persistence ``loading``);
    None when it does not answer."""
    try:
        client = redis_client(url, timeout=2.0)
        try:
            return str(client.info("persistence").get("loading", "0")) not in ("0", "")
        finally:
            client.close()
    except Exception:
        return None

"""Session stores: the contract (:mod:`.base`) and its implementations, built by name.

``make_store("postgres" | "redis-seed" | "redis-atomic" | "redis-fallback" | "pg-redis-cache",
postgres_dsn=..., redis_url=..., client=ClientOptions(...))``.
Imports of the implementations are deferred so importing this package stays cheap.
"""

from __future__ import annotations

from fridgebench.errors import UsageError
from fridgebench.stores.base import DEFAULT_TTL_S, Ledger, Removed, Session, SessionStore
from fridgebench.stores.client import ClientOptions

STORE_NAMES: tuple[str, ...] = ("postgres", "redis-seed", "redis-atomic", "redis-fallback", "pg-redis-cache")
# the server each store keeps its sessions in (redis-fallback: in Redis while Redis answers)
STORE_KINDS: dict[str, str] = {"postgres": "postgres", "redis-seed": "redis", "redis-atomic": "redis",
                               "redis-fallback": "redis", "pg-redis-cache": "postgres"}
# stores that always use both servers: the seed's Phase 2 fallback and PostgreSQL with a Redis cache
TWO_SERVER_STORES: frozenset[str] = frozenset({"redis-fallback", "pg-redis-cache"})

__all__ = ["DEFAULT_TTL_S", "STORE_KINDS", "STORE_NAMES", "TWO_SERVER_STORES", "ClientOptions", "Ledger",
           "Removed", "Session", "SessionStore", "make_store", "servers_needed"]


def servers_needed(stores: tuple[str, ...] | list[str], *, recipes: bool) -> frozenset[str]:
    """The servers a run of these stores needs: each store's own, both for the two-server stores,
    plus PostgreSQL for the Redis stores when the run looks up recipes (their cache reads
    PostgreSQL on a miss)."""
    kinds = {STORE_KINDS[s] for s in stores}
    if any(s in TWO_SERVER_STORES for s in stores):
        kinds |= {"postgres", "redis"}
    elif recipes and "redis" in kinds:
        kinds.add("postgres")
    return frozenset(kinds)


def make_store(name: str, *, postgres_dsn: str, redis_url: str, pool_size: int = 16,
               client: ClientOptions | None = None) -> SessionStore:
    """A closed store of the given name; ``await store.open()`` (or ``async with``) to connect.

    Redis stores get ``postgres_dsn`` too: the recipe cache reads PostgreSQL on a miss.
    ``client``: the clients' timeouts and retries (:mod:`.client`); by default no request timeout,
    a 10 s connect timeout and no retries. With ``client.retries`` the store is wrapped in
    :class:`~.retrying.RetryingStore`.
    """
    store: SessionStore
    if name == "postgres":
        from fridgebench.stores.postgres import PostgresStore

        store = PostgresStore(postgres_dsn, pool_size=pool_size, client=client)
    elif name == "redis-seed":
        from fridgebench.stores.redis_seed import RedisSeedStore

        store = RedisSeedStore(redis_url, postgres_dsn=postgres_dsn, pool_size=pool_size, client=client)
    elif name == "redis-atomic":
        from fridgebench.stores.redis_atomic import RedisAtomicStore

        store = RedisAtomicStore(redis_url, postgres_dsn=postgres_dsn, pool_size=pool_size, client=client)
    elif name == "redis-fallback":
        from fridgebench.stores.redis_fallback import RedisFallbackStore

        store = RedisFallbackStore(redis_url, postgres_dsn=postgres_dsn, pool_size=pool_size, client=client)
    elif name == "pg-redis-cache":
        from fridgebench.stores.pg_redis_cache import PgRedisCacheStore

        store = PgRedisCacheStore(redis_url, postgres_dsn=postgres_dsn, pool_size=pool_size, client=client)
    else:
        raise UsageError(
            f"unknown store {name!r}",
            hint=f"choose one of: {', '.join(STORE_NAMES)}",
        )
    if client is not None and client.retries:
        from fridgebench.stores.retrying import RetryingStore

        return RetryingStore(store, client.retries, client.backoff_s)
    return store

"""Session stores: the contract (:mod:`.base`) and its implementations, built by name.

``make_store("postgres" | "redis-seed" | "redis-atomic" | "postgres-app" | "redis-fallback" | ...,
postgres_dsn=..., redis_url=..., client=ClientOptions(...))``.
Imports of the implementations are deferred so importing this package stays cheap.

Each store belongs to a *path* (:data:`STORE_PATHS`): the **server** path is lean clients (what the
servers can serve), the **app** path is fridge2fork's own code (SQLAlchemy's async ORM, the seed's
redis.asyncio code; :mod:`.app`). ``compare`` pairs each PostgreSQL store with the Redis stores of
its path.
"""

from __future__ import annotations

from fridgebench.errors import UsageError
from fridgebench.stores.base import DEFAULT_TTL_S, Ledger, Removed, Session, SessionStore
from fridgebench.stores.client import ClientOptions

STORE_NAMES: tuple[str, ...] = ("postgres", "redis-seed", "redis-atomic", "postgres-app", "postgres-app-fixed",
                                 "redis-app", "redis-fallback", "pg-redis-cache")
# the server each store keeps its sessions in (redis-fallback: in Redis while Redis answers)
STORE_KINDS: dict[str, str] = {"postgres": "postgres", "redis-seed": "redis", "redis-atomic": "redis",
                               "postgres-app": "postgres", "postgres-app-fixed": "postgres", "redis-app": "redis",
                               "redis-fallback": "redis", "pg-redis-cache": "postgres"}
# stores that always use both servers: the seed's Phase 2 fallback and PostgreSQL with a Redis cache
TWO_SERVER_STORES: frozenset[str] = frozenset({"redis-fallback", "pg-redis-cache"})
# stores that take explicit client timeouts / retries (ClientOptions): the lean clients and the failure
# experiments' composites; the app path keeps the app's own client settings
CLIENT_OPTION_STORES: frozenset[str] = frozenset({"postgres", "redis-seed", "redis-atomic", "redis-fallback",
                                                  "pg-redis-cache"})
# "server": lean clients, what the servers can serve; "app": fridge2fork's own code (stores.app)
PATHS: tuple[str, ...] = ("app", "server")
STORE_PATHS: dict[str, str] = {"postgres": "server", "redis-seed": "server", "redis-atomic": "server",
                               "postgres-app": "app", "postgres-app-fixed": "app", "redis-app": "app"}
# what ``compare`` runs for each path when --stores is not given (the first PostgreSQL and the first
# Redis store of a path are the pair its verdict is about)
PATH_STORES: dict[str, tuple[str, ...]] = {"server": ("postgres", "redis-atomic"),
                                           "app": ("postgres-app", "postgres-app-fixed", "redis-app")}
# the server-path store writing the same rows / keys as an app-path one (``ttl`` measures the servers:
# expiry, memory; the client path does not change them)
SERVER_EQUIVALENT: dict[str, str] = {"postgres-app": "postgres", "postgres-app-fixed": "postgres",
                                     "redis-app": "redis-seed"}


def store_path(name: str) -> str:
    """The path a store belongs to ("server" for a store this table does not know)."""
    return STORE_PATHS.get(name, "server")


def stores_for_paths(paths: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The default stores of these paths, server path first (the order compare runs them in)."""
    return tuple(s for p in PATHS[::-1] if p in paths for s in PATH_STORES[p])


__all__ = ["CLIENT_OPTION_STORES", "DEFAULT_TTL_S", "PATHS", "PATH_STORES", "SERVER_EQUIVALENT", "STORE_KINDS",
           "STORE_NAMES", "STORE_PATHS", "TWO_SERVER_STORES", "ClientOptions", "Ledger", "Removed", "Session",
           "SessionStore", "make_store", "servers_needed", "store_path", "stores_for_paths"]


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
    elif name in ("postgres-app", "postgres-app-fixed"):  # the app's own pool and client settings
        from fridgebench.stores.app.postgres import PostgresAppFixedStore, PostgresAppStore

        cls = PostgresAppStore if name == "postgres-app" else PostgresAppFixedStore
        store = cls(postgres_dsn, pool_size=pool_size)
    elif name == "redis-app":  # its operations use the app's client and default pool
        from fridgebench.stores.app.redis import RedisAppStore

        store = RedisAppStore(redis_url, postgres_dsn=postgres_dsn, pool_size=pool_size)
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

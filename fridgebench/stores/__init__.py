"""Session stores: the contract (:mod:`.base`) and its implementations, built by name.

``make_store("postgres" | "redis-seed" | "redis-atomic" | "postgres-app" | ..., postgres_dsn=..., redis_url=...)``.
Imports of the implementations are deferred so importing this package stays cheap.

Each store belongs to a *path* (:data:`STORE_PATHS`): the **server** path is lean clients (what the
servers can serve), the **app** path is fridge2fork's own code (SQLAlchemy's async ORM, the seed's
redis.asyncio code; :mod:`.app`). ``compare`` pairs each PostgreSQL store with the Redis stores of
its path.
"""

from __future__ import annotations

from fridgebench.errors import UsageError
from fridgebench.stores.base import DEFAULT_TTL_S, Ledger, Removed, Session, SessionStore

STORE_NAMES: tuple[str, ...] = ("postgres", "redis-seed", "redis-atomic", "postgres-app", "postgres-app-fixed",
                                 "redis-app")
# the server each store keeps its sessions in
STORE_KINDS: dict[str, str] = {"postgres": "postgres", "redis-seed": "redis", "redis-atomic": "redis",
                               "postgres-app": "postgres", "postgres-app-fixed": "postgres", "redis-app": "redis"}
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

__all__ = ["DEFAULT_TTL_S", "PATHS", "PATH_STORES", "SERVER_EQUIVALENT", "STORE_KINDS", "STORE_NAMES", "STORE_PATHS",
           "Ledger", "Removed", "Session", "SessionStore", "make_store", "servers_needed", "store_path",
           "stores_for_paths"]


def servers_needed(stores: tuple[str, ...] | list[str], *, recipes: bool) -> frozenset[str]:
    """The servers a run of these stores needs: each store's own, plus PostgreSQL for the Redis
    stores when the run looks up recipes (their cache reads PostgreSQL on a miss)."""
    kinds = {STORE_KINDS[s] for s in stores}
    if recipes and "redis" in kinds:
        kinds.add("postgres")
    return frozenset(kinds)


def make_store(name: str, *, postgres_dsn: str, redis_url: str, pool_size: int = 16) -> SessionStore:
    """A closed store of the given name; ``await store.open()`` (or ``async with``) to connect.

    Redis stores get ``postgres_dsn`` too: the recipe cache reads PostgreSQL on a miss.
    """
    if name == "postgres":
        from fridgebench.stores.postgres import PostgresStore

        return PostgresStore(postgres_dsn, pool_size=pool_size)
    if name == "redis-seed":
        from fridgebench.stores.redis_seed import RedisSeedStore

        return RedisSeedStore(redis_url, postgres_dsn=postgres_dsn, pool_size=pool_size)
    if name == "redis-atomic":
        from fridgebench.stores.redis_atomic import RedisAtomicStore

        return RedisAtomicStore(redis_url, postgres_dsn=postgres_dsn, pool_size=pool_size)
    if name in ("postgres-app", "postgres-app-fixed"):  # the app's own pool: pool_size is not used
        from fridgebench.stores.app.postgres import PostgresAppFixedStore, PostgresAppStore

        cls = PostgresAppStore if name == "postgres-app" else PostgresAppFixedStore
        return cls(postgres_dsn, pool_size=pool_size)
    if name == "redis-app":  # its operations use the app's client and default pool
        from fridgebench.stores.app.redis import RedisAppStore

        return RedisAppStore(redis_url, postgres_dsn=postgres_dsn, pool_size=pool_size)
    raise UsageError(
        f"unknown store {name!r}",
        hint=f"choose one of: {', '.join(STORE_NAMES)}",
    )

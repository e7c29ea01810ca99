"""Session stores: the contract (:mod:`.base`) and its implementations, built by name.

``make_store("postgres" | "redis-seed" | "redis-atomic", postgres_dsn=..., redis_url=...)``.
Imports of the implementations are deferred so importing this package stays cheap.
"""

from __future__ import annotations

from fridgebench.errors import UsageError
from fridgebench.stores.base import DEFAULT_TTL_S, Ledger, Removed, Session, SessionStore

STORE_NAMES: tuple[str, ...] = ("postgres", "redis-seed", "redis-atomic")
# the server each store keeps its sessions in
STORE_KINDS: dict[str, str] = {"postgres": "postgres", "redis-seed": "redis", "redis-atomic": "redis"}

__all__ = ["DEFAULT_TTL_S", "STORE_KINDS", "STORE_NAMES", "Ledger", "Removed", "Session", "SessionStore",
           "make_store", "servers_needed"]


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
    raise UsageError(
        f"unknown store {name!r}",
        hint=f"choose one of: {', '.join(STORE_NAMES)}",
    )

"""Factory and connection failures: one clear line, never a password."""

from __future__ import annotations

import pytest

from fridgebench.errors import StoreUnavailable, UsageError
from fridgebench.stores import STORE_NAMES, make_store
from fridgebench.stores.postgres import PostgresStore
from tests import servers

GOOD_PG = servers.PG_ADMIN_DSN
GOOD_REDIS = servers.redis_url(servers.REDIS_DB_STORES)


def test_unknown_store_name_lists_the_allowed_ones() -> None:
    with pytest.raises(UsageError) as err:
        make_store("memcached", postgres_dsn=GOOD_PG, redis_url=GOOD_REDIS)
    for name in STORE_NAMES:
        assert name in str(err.value)
    assert "memcached" in str(err.value)


def test_factory_builds_each_store() -> None:
    for name in STORE_NAMES:
        store = make_store(name, postgres_dsn=GOOD_PG, redis_url=GOOD_REDIS, pool_size=3)
        assert store.name == name
        assert store.kind in ("postgres", "redis")


@pytest.mark.parametrize("name", STORE_NAMES)
async def test_unreachable_server_is_store_unavailable_with_masked_password(name: str) -> None:
    store = make_store(
        name,
        postgres_dsn="postgresql://app:s3cretpw@127.0.0.1:1/fridge",
        redis_url="redis://app:s3cretpw@127.0.0.1:1/0",
        pool_size=2,
    )
    with pytest.raises(StoreUnavailable) as err:
        await store.open()
    text = str(err.value)
    assert "s3cretpw" not in text and "s3cretpw" not in repr(err.value.args)
    assert "***" in text and name in text and "\n" not in text
    assert err.value.hint


async def test_unknown_postgres_database() -> None:
    store = PostgresStore(servers.pg_dsn("fb_no_such_db_x"), pool_size=1)
    with pytest.raises(StoreUnavailable, match="fb_no_such_db_x"):
        await store.open()


async def test_redis_db_out_of_range() -> None:
    store = make_store("redis-seed", postgres_dsn=GOOD_PG, redis_url=servers.redis_url(999), pool_size=1)
    with pytest.raises(StoreUnavailable, match=f"{servers.REDIS_PORT}/999"):
        await store.open()


async def test_redis_store_with_bad_postgres_for_recipes_is_unavailable() -> None:
    store = make_store("redis-atomic", postgres_dsn="postgresql://u:pw9x@127.0.0.1:1/x", redis_url=GOOD_REDIS)
    with pytest.raises(StoreUnavailable) as err:
        await store.open()
    assert "PostgreSQL" in str(err.value) and "pw9x" not in str(err.value)


async def test_postgres_rejects_unknown_ingredient(pg_dsn: str) -> None:
    async with PostgresStore(pg_dsn, pool_size=2) as store:
        await store.create("unknown-name-test", ttl_s=60)
        with pytest.raises(ValueError, match="치즈케이크맛"):
            await store.add_ingredients("unknown-name-test", ["김치", "치즈케이크맛"])
        got = await store.get("unknown-name-test")
        assert got is not None and got.ingredients == ()  # nothing half-applied
        await store.delete("unknown-name-test")


async def test_point_read_sql_is_what_get_runs(pg_dsn: str) -> None:
    async with PostgresStore(pg_dsn, pool_size=1) as store:
        await store.create("point-read", ttl_s=60)
        await store.add_ingredients("point-read", ["김치"])
        row = await store.pool.fetchrow(PostgresStore.point_read_sql, "point-read")
        assert row is not None and list(row["ingredients"]) == ["김치"]
        await store.delete("point-read")

"""The SessionStore contract, on every store, against real servers."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timedelta, timezone


from fridgebench.stores import schema
from fridgebench.stores.base import SessionStore

KOREAN = ["김치", "두부", "대파", "소고기 양지", "고추장"]


def sid() -> str:
    return str(uuid.uuid4())


def now() -> datetime:
    return datetime.now(timezone.utc)


async def test_create_then_get_empty_session(store: SessionStore) -> None:
    s = sid()
    before = now()
    await store.create(s, ttl_s=100)
    after = now()
    got = await store.get(s)
    assert got is not None
    assert got.session_id == s
    assert got.ingredients == ()
    assert got.created_at.tzinfo is not None and got.expires_at.tzinfo is not None
    # bracketed by the create's own start and end, however long a busy runner made it take (1 s: the
    # stores keep seconds or milliseconds, and the server's clock is this machine's)
    slack, ttl = timedelta(seconds=1), timedelta(seconds=100)
    assert before - slack <= got.created_at <= after + slack
    assert before + ttl - slack <= got.expires_at <= after + ttl + slack


async def test_missing_session_reads_none_and_ops_return_false(store: SessionStore) -> None:
    s = sid()
    assert await store.get(s) is None
    assert await store.add_ingredients(s, ["김치"]) is False
    assert await store.remove_ingredients(s, ["김치"]) is False
    assert await store.extend(s) is False
    assert await store.delete(s) is False
    assert await store.get(s) is None  # an add on a missing session creates nothing


async def test_add_keeps_order_and_korean_names(store: SessionStore) -> None:
    s = sid()
    await store.create(s)
    assert await store.add_ingredients(s, KOREAN[:3]) is True
    assert await store.add_ingredients(s, KOREAN[3:]) is True
    got = await store.get(s)
    assert got is not None and list(got.ingredients) == KOREAN


async def test_add_refreshes_ttl(store: SessionStore) -> None:
    s = sid()
    await store.create(s, ttl_s=5)
    assert await store.add_ingredients(s, ["양파"], ttl_s=500)
    got = await store.get(s)
    assert got is not None and got.expires_at - now() > timedelta(seconds=400)


async def test_remove_keeps_expiry(store: SessionStore) -> None:
    s = sid()
    await store.create(s, ttl_s=100)
    await store.add_ingredients(s, ["김치", "두부", "계란"], ttl_s=100)
    assert await store.remove_ingredients(s, ["두부", "마늘"]) is True  # absent name: no-op
    got = await store.get(s)
    assert got is not None and list(got.ingredients) == ["김치", "계란"]
    assert timedelta(seconds=90) < got.expires_at - now() < timedelta(seconds=101)
    assert await store.remove_ingredients(s, ["김치", "계란"])
    got = await store.get(s)
    assert got is not None and got.ingredients == ()


async def test_extend_and_delete(store: SessionStore) -> None:
    s = sid()
    await store.create(s, ttl_s=10)
    assert await store.extend(s, ttl_s=1000) is True
    got = await store.get(s)
    assert got is not None and got.expires_at - now() > timedelta(seconds=900)
    await store.add_ingredients(s, ["김치"], ttl_s=1000)
    assert await store.delete(s) is True
    assert await store.get(s) is None
    assert await store.delete(s) is False


async def test_create_over_existing_id_starts_empty(store: SessionStore) -> None:
    s = sid()
    await store.create(s)
    await store.add_ingredients(s, ["김치"])
    await store.create(s)
    got = await store.get(s)
    assert got is not None and got.ingredients == ()


async def test_expiry_sliding_ttl_count_and_cleanup(store: SessionStore) -> None:
    """Expiry, sliding expiry (an add refreshes the TTL), count_live and cleanup.

    Every wait is "at least" (sleep until past an expiry, measured from before the create), and
    every "still alive" check has a wide margin (the refreshed TTL is 30 s): a stall on a busy
    runner can only make the waits longer, never break an assertion. The count right after creating
    ``short`` (2 s) must see it, unless a stall delayed the count past its expiry: then that count is
    too late to judge (and the later ones still are).
    """
    short, sliding, long1, long2 = sid(), sid(), sid(), sid()
    await store.create(long1, ttl_s=100)
    await store.create(long2, ttl_s=100)
    await store.create(sliding, ttl_s=2)
    t_sliding = time.monotonic()  # its 2 s expiry was set before this
    assert await store.add_ingredients(sliding, ["두부"], ttl_s=30)  # refreshed: expires in 30 s, not 2 s
    t_before_short = time.monotonic()
    await store.create(short, ttl_s=2)
    t_short = time.monotonic()
    live = await store.count_live()
    assert live == 4 or (live == 3 and time.monotonic() - t_before_short >= 2), live
    await _sleep_until(max(t_short, t_sliding) + 2.1)  # past both original expiries
    assert await store.get(short) is None
    assert await store.add_ingredients(short, ["김치"]) is False
    assert await store.extend(short) is False
    got = await store.get(sliding)
    assert got is not None and got.ingredients == ("두부",)  # alive after its original 2 s
    assert await store.count_live() == 3
    removed = await store.cleanup_expired()
    assert removed == (1 if store.kind == "postgres" else 0)
    assert await store.cleanup_expired() == 0
    assert await store.count_live() == 3


async def _sleep_until(t: float) -> None:
    while (left := t - time.monotonic()) > 0:
        await asyncio.sleep(left)


async def test_recipe_ingredients(store: SessionStore) -> None:
    recipe = schema.recipes()[0]
    for _ in range(2):  # second call: a cache hit for the Redis stores
        got = await store.recipe_ingredients(recipe.id)
        assert got is not None and sorted(got) == sorted(recipe.ingredients)
    assert await store.recipe_ingredients(10_000_000) is None
    if store.kind == "redis":
        assert (store.cache_hits, store.cache_misses) == (1, 2)  # type: ignore[attr-defined]


async def test_bulk_load(store: SessionStore) -> None:
    ings = [i.name for i in schema.ingredients()]
    sessions = [(f"bulk-{n}-{sid()}", ings[n % 50 : n % 50 + 1 + n % 7]) for n in range(2500)]
    await store.bulk_load(sessions, ttl_s=600)
    assert await store.count_live() == 2500
    for s, names in (sessions[0], sessions[1234], sessions[-1]):
        got = await store.get(s)
        assert got is not None and list(got.ingredients) == names
        assert got.expires_at - now() > timedelta(seconds=590)
    removed = await store.discard_written()
    assert removed.sessions == 2500
    assert await store.count_live() == 0


async def test_concurrent_ops_on_many_sessions_do_not_interfere(store: SessionStore) -> None:
    ids = [sid() for _ in range(40)]
    await asyncio.gather(*(store.create(s) for s in ids))
    await asyncio.gather(*(store.add_ingredients(s, ["김치", "두부"]) for s in ids))
    got = await asyncio.gather(*(store.get(s) for s in ids))
    assert all(g is not None and g.ingredients == ("김치", "두부") for g in got)


async def test_pg_redis_cache_never_fills_an_older_copy_over_a_newer_write(pg_dsn: str, store_redis_url: str) -> None:
    """Cache-aside's race, forced: a read takes the session from PostgreSQL, a write commits and
    drops the cached copy, then the read fills the cache. The fill must not happen (the write bumped
    the session's generation), or every later read serves the older list."""
    from fridgebench.stores.pg_redis_cache import PgRedisCacheStore
    from tests.stores.helpers import open_store

    store = await open_store("pg-redis-cache", pg_dsn, store_redis_url)
    other = await open_store("pg-redis-cache", pg_dsn, store_redis_url)
    assert isinstance(store, PgRedisCacheStore)
    try:
        s = sid()
        await store.create(s)
        await store.add_ingredients(s, ["김치"])  # the cached copy is gone: the next read fills it
        plain_get = store.pg.get

        async def read_then_a_write_lands(session_id: str):  # type: ignore[no-untyped-def]
            got = await plain_get(session_id)
            await other.add_ingredients(session_id, ["두부"])  # commits and drops the cached copy
            return got

        store.pg.get = read_then_a_write_lands  # type: ignore[method-assign]
        old = await store.get(s)
        store.pg.get = plain_get  # type: ignore[method-assign]
        assert old is not None and old.ingredients == ("김치",)  # this read was older than the write ...
        latest = await store.get(s)
        assert latest is not None and latest.ingredients == ("김치", "두부")  # ... and did not poison the cache
    finally:
        for st in (store, other):
            await st.discard_written()
            await st.close()

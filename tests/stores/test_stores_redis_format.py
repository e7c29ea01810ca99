"""The Redis value format is the seed's, whichever store wrote it, and the seed's code can use it."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import redis.asyncio as aioredis

from fridgebench.stores._redis_base import RedisStoreBase
from fridgebench.stores.redis_atomic import RedisAtomicStore


def sid() -> str:
    return str(uuid.uuid4())


async def _server_ms(store: RedisStoreBase) -> int:
    sec, usec = await store.redis.time()
    return int(sec) * 1000 + int(usec) // 1000


async def raw(store: RedisStoreBase, session_id: str) -> bytes:
    value = await store.redis.get(store.key(session_id))
    assert value is not None
    return value


async def test_key_and_value_are_the_seeds(redis_store: RedisStoreBase, redis_url: str) -> None:
    # the default prefix, as in the seed: session:{id}
    plain = type(redis_store)(redis_url)
    async with plain:
        s = f"fbtest-{sid()}"
        before_ms = await _server_ms(plain)
        await plain.create(s, ttl_s=100)
        after_ms = await _server_ms(plain)
        try:
            value = await plain.redis.get(f"session:{s}")
            assert value is not None
            data = json.loads(value)
            assert list(data) == ["created_at", "ingredients"]
            assert data["ingredients"] == []
            assert value == json.dumps(data).encode()  # byte-for-byte what json.dumps writes
            created = datetime.fromisoformat(data["created_at"])
            assert created.tzinfo is not None  # with an offset, unlike the seed's naive now()
            # a full 100 s from the create, on the server's clock (however long a busy runner took
            # between the calls): SETEX 100 sets the expiry at the server's now + 100 000 ms
            expires_ms = await plain.redis.pexpiretime(f"session:{s}")
            assert before_ms + 100_000 <= expires_ms <= after_ms + 100_000
        finally:
            await plain.delete(s)


async def test_values_stay_valid_for_the_seeds_python_code(redis_store: RedisStoreBase) -> None:
    """After every store operation the seed's own add code still works on the value."""
    s = sid()
    await redis_store.create(s)
    await redis_store.add_ingredients(s, ["김치", "소고기 양지"])
    await redis_store.remove_ingredients(s, ["김치", "소고기 양지"])  # back to an empty list
    value = await raw(redis_store, s)
    assert b'"ingredients": []' in value or b'"ingredients":[]' in value  # an array, never {}
    data = json.loads(value)
    data["ingredients"].extend(["두부"])  # the seed's add, as written
    assert data["ingredients"] == ["두부"]
    assert set(data) == {"created_at", "ingredients"}


async def test_korean_text_written_by_lua_decodes_equal(redis_url: str, pg_dsn: str) -> None:
    store = RedisAtomicStore(redis_url, key_prefix=f"fbtest-{sid()}:session:")
    async with store:
        s = sid()
        await store.create(s)
        await store.add_ingredients(s, ["김치", "대파"])
        value = await raw(store, s)
        assert "김치".encode() in value  # cjson writes UTF-8 as is
        # json.dumps writes \uXXXX escapes; both decode to the same text
        assert json.loads(value)["ingredients"] == json.loads(json.dumps({"i": ["김치", "대파"]}))["i"]
        got = await store.get(s)
        assert got is not None and got.ingredients == ("김치", "대파")
        await store.discard_written()


async def test_atomic_add_has_set_semantics(pg_dsn: str, redis_url: str) -> None:
    store = RedisAtomicStore(redis_url, key_prefix=f"fbtest-{sid()}:session:")
    async with store:
        s = sid()
        await store.create(s)
        await store.add_ingredients(s, ["김치", "두부", "김치"])
        await store.add_ingredients(s, ["두부", "계란"])
        got = await store.get(s)
        assert got is not None and got.ingredients == ("김치", "두부", "계란")
        await store.discard_written()


async def test_reads_a_session_written_by_the_seeds_own_code(redis_store: RedisStoreBase) -> None:
    """The seed's create_session/add_ingredients verbatim (naive local created_at)."""
    r: aioredis.Redis = redis_store.redis
    session_id = sid()
    written = datetime.now()
    session_data = {"created_at": written.isoformat(), "ingredients": []}
    await r.execute_command("SETEX", f"{redis_store.key_prefix}{session_id}", 86400, json.dumps(session_data))
    redis_store.written.session(session_id)  # written on the store's behalf: deleted with its own
    assert await redis_store.add_ingredients(session_id, ["마늘"])
    got = await redis_store.get(session_id)
    assert got is not None and got.ingredients == ("마늘",)
    # the seed's naive timestamp is taken as UTC, to the microsecond, and kept through the add
    assert got.created_at == written.replace(tzinfo=timezone.utc)
    assert json.loads(await raw(redis_store, session_id))["created_at"] == session_data["created_at"]


async def test_other_fields_survive_atomic_updates(redis_url: str) -> None:
    store = RedisAtomicStore(redis_url, key_prefix=f"fbtest-{sid()}:session:")
    async with store:
        s = sid()
        await store.redis.set(store.key(s), json.dumps({"created_at": "2024-01-01T00:00:00", "ingredients": [], "v": 2}), ex=100)
        store.written.session(s)  # written here on the store's behalf: it deletes it with its own
        await store.add_ingredients(s, ["김치"])
        data = json.loads(await raw(store, s))
        assert data == {"created_at": "2024-01-01T00:00:00", "ingredients": ["김치"], "v": 2}
        await store.discard_written()


async def test_recipe_cache_value(redis_store: RedisStoreBase) -> None:
    names = await redis_store.recipe_ingredients(1)
    cached = await redis_store.redis.get("recipe:1")
    assert cached is not None and json.loads(cached) == names
    assert 3000 < await redis_store.redis.ttl("recipe:1") <= 3600

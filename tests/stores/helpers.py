"""Helpers the store tests import (a normal module: fixtures live in conftest.py)."""

from __future__ import annotations

import secrets

from fridgebench.stores import make_store
from fridgebench.stores._redis_base import RedisStoreBase
from fridgebench.stores.base import SessionStore

RUN_TAG = secrets.token_hex(4)
KEY_PREFIX = f"fbtest-{RUN_TAG}:session:"


async def open_store(name: str, pg_dsn: str, redis_url: str, pool_size: int = 16) -> SessionStore:
    store = make_store(name, postgres_dsn=pg_dsn, redis_url=redis_url, pool_size=pool_size)
    if isinstance(store, RedisStoreBase) or hasattr(store, "key_prefix"):  # the two-server stores too
        store.key_prefix = KEY_PREFIX  # type: ignore[attr-defined]
    await store.open()
    return store

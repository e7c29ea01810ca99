"""The seed's Redis format and TTL semantics, with atomic add/remove (Lua, EVALSHA).

Each add/remove runs as one server-side script: no lost updates. Added names already in
the session are skipped (set semantics, like PostgreSQL's unique constraint). The scripts
live next to this module (``add_ingredients.lua``, ``remove_ingredients.lua``) and run on
Redis >= 7.0 and Valkey.
"""

from __future__ import annotations

from importlib import resources
from typing import ClassVar

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from fridgebench.stores._redis_base import RedisStoreBase
from fridgebench.stores.base import DEFAULT_TTL_S


def lua_source(name: str) -> str:
    return resources.files("fridgebench.stores").joinpath(name).read_text(encoding="utf-8")


class RedisAtomicStore(RedisStoreBase):
    name: ClassVar[str] = "redis-atomic"

    _add: AsyncScript
    _remove: AsyncScript

    async def _on_open(self, client: aioredis.Redis) -> None:
        # register_script sends EVALSHA and falls back to EVAL (loading it) on NOSCRIPT,
        # so a server restart or SCRIPT FLUSH mid-run is harmless.
        self._add = client.register_script(lua_source("add_ingredients.lua"))
        self._remove = client.register_script(lua_source("remove_ingredients.lua"))
        await client.script_load(self._add.script)
        await client.script_load(self._remove.script)

    async def add_ingredients(self, session_id: str, names: list[str], ttl_s: int = DEFAULT_TTL_S) -> bool:
        return bool(await self._add(keys=[self.key(session_id)], args=[ttl_s, *names]))

    async def remove_ingredients(self, session_id: str, names: list[str]) -> bool:
        return bool(await self._remove(keys=[self.key(session_id)], args=list(names)))

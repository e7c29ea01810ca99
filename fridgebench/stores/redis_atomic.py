"""The seed's Redis format and TTL semantics, with atomic add/remove (Lua, EVALSHA).

Each add/remove runs as one server-side script (EVALSHA on the lean client; NOSCRIPT -> EVAL):
no lost updates. Added names already in
the session are skipped (set semantics, like PostgreSQL's unique constraint). The scripts
live next to this module (``add_ingredients.lua``, ``remove_ingredients.lua``) and run on
Redis >= 7.0 and Valkey.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any, ClassVar

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from fridgebench.stores._lean_redis import pack, raise_reply_error
from fridgebench.stores._redis_base import RedisStoreBase
from fridgebench.stores.base import DEFAULT_TTL_S


def lua_source(name: str) -> str:
    """A script's full source: the shared ``session_json.lua`` prelude, then the script."""
    files = resources.files("fridgebench.stores")
    return (files.joinpath("session_json.lua").read_text(encoding="utf-8")
            + files.joinpath(name).read_text(encoding="utf-8"))


class RedisAtomicStore(RedisStoreBase):
    name: ClassVar[str] = "redis-atomic"

    _add: tuple[str, str]  # (sha1, source)
    _remove: tuple[str, str]

    async def _on_open(self, client: aioredis.Redis) -> None:
        self._add = _script("add_ingredients.lua")
        self._remove = _script("remove_ingredients.lua")
        for sha, src in (self._add, self._remove):
            loaded = await client.script_load(src)
            assert loaded == sha, (loaded, sha)

    async def _run(self, script: tuple[str, str], key: str, args: list[Any]) -> Any:
        """EVALSHA; on NOSCRIPT (server restarted, SCRIPT FLUSH) EVAL the source, which also
        caches it, so the next EVALSHA finds it again."""
        sha, src = script
        reply = await self.lean.request(pack("EVALSHA", sha, 1, key, *args))
        try:
            return raise_reply_error(reply)
        except NoScriptError:
            return await self.lean.execute("EVAL", src, 1, key, *args)

    async def add_ingredients(self, session_id: str, names: list[str], ttl_s: int = DEFAULT_TTL_S) -> bool:
        return bool(await self._run(self._add, self.key(session_id), [ttl_s, *names]))

    async def remove_ingredients(self, session_id: str, names: list[str]) -> bool:
        return bool(await self._run(self._remove, self.key(session_id), list(names)))


def _script(name: str) -> tuple[str, str]:
    src = lua_source(name)
    return hashlib.sha1(src.encode()).hexdigest(), src

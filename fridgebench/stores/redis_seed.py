"""The seed's Redis session code, as written.

``add_ingredients`` is GET -> json.loads -> ``data["ingredients"].extend(names)`` -> SETEX:
a read-modify-write with no protection, so concurrent adds to one session lose updates.
That is deliberate: fridgebench measures the cost. Like the seed, names are not checked
against the catalogue and duplicates are kept.
"""

from __future__ import annotations

import json
from typing import ClassVar

from fridgebench.stores._redis_base import RedisStoreBase
from fridgebench.stores.base import DEFAULT_TTL_S


class RedisSeedStore(RedisStoreBase):
    name: ClassVar[str] = "redis-seed"

    async def add_ingredients(self, session_id: str, names: list[str], ttl_s: int = DEFAULT_TTL_S) -> bool:
        key = self.key(session_id)
        session_data = await self.redis.get(key)
        if not session_data:
            return False
        data = json.loads(session_data)
        data["ingredients"].extend(names)
        # TTL 연장 (24시간 갱신) -- the seed's comment: refresh to a full TTL
        await self.redis.execute_command("SETEX", key, ttl_s, json.dumps(data))
        return True

    async def remove_ingredients(self, session_id: str, names: list[str]) -> bool:
        """GET -> filter -> SET KEEPTTL (expiry unchanged); racy like the add.

        XX keeps a session that expired between the GET and the SET from coming back
        without a TTL (SET KEEPTTL on a missing key would create an immortal one).
        """
        key = self.key(session_id)
        session_data = await self.redis.get(key)
        if not session_data:
            return False
        data = json.loads(session_data)
        drop = set(names)
        data["ingredients"] = [n for n in data["ingredients"] if n not in drop]
        return bool(await self.redis.set(key, json.dumps(data), keepttl=True, xx=True))

"""The seed's Redis session code, as written.

``add_ingredients`` is GET -> json.loads -> ``data["ingredients"].extend(names)`` -> SETEX:
a read-modify-write with no protection, so concurrent adds to one session lose updates.
That is deliberate: fridgebench measures the cost. Like the seed, names are not checked
against the catalogue and duplicates are kept.

The GET and the write are two round trips on one pooled connection (as an application holding
a connection for the request would send them); other clients' commands can run in between.
"""

from __future__ import annotations

import json
from typing import Any, Callable, ClassVar

from fridgebench.stores._lean_redis import pack, raise_reply_error
from fridgebench.stores._redis_base import RedisStoreBase
from fridgebench.stores.base import DEFAULT_TTL_S


class RedisSeedStore(RedisStoreBase):
    name: ClassVar[str] = "redis-seed"

    async def _read_modify_write(self, session_id: str, change: Callable[[dict[str, Any]], None],
                                 write: Callable[[bytes, str], bytes]) -> bool:
        """GET, ``change`` the decoded session in place, send ``write(key, new_json)``: two round
        trips on one connection, nothing in between to stop another client's write."""
        key = self.key(session_id)
        pool = self.lean
        conn = await pool.acquire()
        try:
            session_data = raise_reply_error(await conn.request(pack("GET", key)))
            if not session_data:
                return False
            data = json.loads(session_data)
            change(data)
            return raise_reply_error(await conn.request(write(key, json.dumps(data)))) is not None
        finally:
            pool.release(conn)

    async def add_ingredients(self, session_id: str, names: list[str], ttl_s: int = DEFAULT_TTL_S) -> bool:
        # TTL 연장 (24시간 갱신) -- the seed's comment: the SETEX refreshes to a full TTL
        return await self._read_modify_write(session_id, lambda data: data["ingredients"].extend(names),
                                             lambda key, js: pack("SETEX", key, ttl_s, js))

    async def remove_ingredients(self, session_id: str, names: list[str]) -> bool:
        """GET -> filter -> SET KEEPTTL (expiry unchanged); racy like the add.

        XX keeps a session that expired between the GET and the SET from coming back
        without a TTL (SET KEEPTTL on a missing key would create an immortal one).
        """
        drop = set(names)

        def change(data: dict[str, Any]) -> None:
            data["ingredients"] = [n for n in data["ingredients"] if n not in drop]

        return await self._read_modify_write(session_id, change, lambda key, js: pack("SET", key, js, "KEEPTTL", "XX"))

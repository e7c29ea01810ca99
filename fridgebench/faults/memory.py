"""``memory-full``: Redis ``maxmemory`` lowered below the data set, under a ``maxmemory-policy``.

What a user who sizes Redis too small gets, by the policy they picked:

* ``noeviction`` (Redis's default) -- every write that needs memory is refused with ``-OOM``
  (a definite failure: nothing applied); reads and deletes go on;
* ``allkeys-lru`` / ``volatile-lru`` -- writes succeed and Redis evicts keys to make room: live
  sessions disappear (every session has a TTL, so ``volatile-lru`` evicts them as readily). The
  evictions are counted from ``INFO stats`` (``evicted_keys``) and the sessions lost are found by
  the read-back like any other loss.

``maxmemory`` is set to the memory in use minus ``fraction`` of the data set (so about that
fraction must go, or be refused), with ``CONFIG SET``, and both settings are restored on heal --
also after an error or Ctrl-C. Only on a server fridgebench started, unless the user opts in for an
external one (``--allow-config-set``): the machine's shared Redis is never reconfigured.
"""

from __future__ import annotations

import time
from typing import Any

import redis.asyncio as aioredis

from fridgebench.faults.base import Fault, FaultError
from fridgebench.provision.fleet import Controlled

POLICIES = ("noeviction", "allkeys-lru", "volatile-lru")


class MemoryFull(Fault):
    name = "memory-full"
    target = "redis"

    def __init__(self, server: Controlled, policy: str, *, fraction: float = 0.3, allow_external: bool = False) -> None:
        super().__init__()
        if policy not in POLICIES:
            raise ValueError(f"unknown maxmemory-policy {policy}")
        if server.kind != "redis":
            raise FaultError("memory-full applies to Redis")
        if server.external and not allow_external:
            raise FaultError("memory-full reconfigures Redis (CONFIG SET maxmemory); fridgebench does that only on a "
                             "server it started unless --allow-config-set is given")
        self.server = server
        self.policy = policy
        self.fraction = fraction
        self._saved: dict[str, str] | None = None
        self.detail: dict[str, Any] = {"policy": policy}

    def _client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(self.server.url, socket_timeout=5, socket_connect_timeout=5,
                                       decode_responses=True)

    async def inject(self) -> float:
        r = self._client()
        try:
            saved = await r.config_get("maxmemory")
            saved.update(await r.config_get("maxmemory-policy"))
            mem = await r.info("memory")
            used, dataset = int(mem["used_memory"]), int(mem.get("used_memory_dataset", mem["used_memory"]))
            limit = max(1024 * 1024, used - int(self.fraction * dataset))
            stats = await r.info("stats")
            self.detail.update(used_memory=used, used_memory_dataset=dataset, maxmemory=limit,
                               evicted_keys_before=int(stats.get("evicted_keys", 0)),
                               restores={k: saved[k] for k in ("maxmemory", "maxmemory-policy")})
            self._saved = {k: saved[k] for k in ("maxmemory", "maxmemory-policy")}
            await r.config_set("maxmemory-policy", self.policy)
            t = time.perf_counter()
            await r.config_set("maxmemory", str(limit))
            self.injected = True
            return t
        finally:
            await r.aclose()

    async def heal(self) -> float:
        t = time.perf_counter()
        await self._restore()
        self.healed = True
        return t

    async def _restore(self) -> None:
        if self._saved is None:
            return
        r = self._client()
        try:
            stats = await r.info("stats")
            self.detail["evicted_keys"] = int(stats.get("evicted_keys", 0)) - self.detail["evicted_keys_before"]
            await r.config_set("maxmemory", self._saved["maxmemory"])
            await r.config_set("maxmemory-policy", self._saved["maxmemory-policy"])
            self._saved = None
        finally:
            await r.aclose()

    async def emergency_heal(self) -> list[str]:
        if self._saved is None:
            return []
        try:
            await self._restore()
            return ["restored Redis maxmemory and maxmemory-policy"]
        except BaseException as exc:  # never raise from here
            return [f"could not restore Redis maxmemory ({exc}): the server is stopped with its run folder"
                    if not self.server.external else f"restore maxmemory on the external Redis by hand: {exc}"]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **self.detail}

"""Small helpers shared by the ttl experiment's parts: distributions, clocks, session ids."""

from __future__ import annotations

import math
import random
import time
import uuid
from typing import Any, Iterable

import asyncpg
import redis.asyncio as aioredis


def dist(values: Iterable[float], ndigits: int = 3) -> dict[str, Any]:
    """n, min, p50, p90, p99, max, mean of ``values`` (nearest-rank percentiles)."""
    s = sorted(values)
    if not s:
        return {"n": 0}

    def q(p: float) -> float:
        return s[min(len(s) - 1, max(0, math.ceil(p * len(s)) - 1))]

    return {
        "n": len(s),
        "min": round(s[0], ndigits),
        "p50": round(q(0.50), ndigits),
        "p90": round(q(0.90), ndigits),
        "p99": round(q(0.99), ndigits),
        "max": round(s[-1], ndigits),
        "mean": round(math.fsum(s) / len(s), ndigits),
    }


def session_ids(n: int, rng: random.Random, salt: int = 0) -> list[str]:
    """uuid4-shaped ids (what the application uses), reproducible from ``rng`` and ``salt``
    (a per-run random salt keeps them apart from sessions already in the store)."""
    return [str(uuid.UUID(int=rng.getrandbits(128) ^ salt, version=4)) for _ in range(n)]


async def redis_clock(r: aioredis.Redis, samples: int = 5) -> dict[str, float]:
    """Server clock minus local clock (s), from the TIME round trip with the smallest RTT."""
    best: tuple[float, float] | None = None
    for _ in range(samples):
        t0 = time.time()
        sec, usec = await r.time()
        t1 = time.time()
        server = sec + usec / 1e6
        cand = (t1 - t0, server - (t0 + t1) / 2)
        if best is None or cand[0] < best[0]:
            best = cand
    assert best is not None
    return {"offset_s": best[1], "rtt_s": best[0]}


async def pg_clock(conn: asyncpg.Connection | asyncpg.Pool, samples: int = 5) -> dict[str, float]:
    best: tuple[float, float] | None = None
    for _ in range(samples):
        t0 = time.time()
        server = float(await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())"))
        t1 = time.time()
        cand = (t1 - t0, server - (t0 + t1) / 2)
        if best is None or cand[0] < best[0]:
            best = cand
    assert best is not None
    return {"offset_s": best[1], "rtt_s": best[0]}


def redis_db(url: str) -> int:
    client = aioredis.from_url(url)
    try:
        return int(client.connection_pool.connection_kwargs.get("db", 0) or 0)
    finally:
        # nothing was connected; drop the pool object
        del client


def human_bytes(n: float | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def human_duration(seconds: float) -> str:
    """``45 s``, ``6 min``, ``2.5 h``, ``5.4 days``, ``171.1 years``."""
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"

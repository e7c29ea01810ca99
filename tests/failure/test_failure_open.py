"""A failure case connects to its store patiently before it starts.

The client options under test (1 s connect timeout) also bound the store's first connection; one slow
accept by a server still busy after an earlier case (seen: a restarted PostgreSQL's recipe-cache
connection timing out before case 6 of the default set) aborted the whole `fridgebench failure` run.
The case's opening now tries again, 1 s apart, and says so; a server that never answers still fails
with the store's line. Real servers: the worker's embedded PostgreSQL behind a fault proxy that
blackholes (accepts, never answers) and then heals, and its embedded Valkey.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from fridgebench.errors import StoreUnavailable
from fridgebench.experiments.failure.run import OPEN_ATTEMPTS, _opened
from fridgebench.faults.proxy import FaultProxy
from fridgebench.provision import Endpoints
from fridgebench.stores import make_store
from fridgebench.stores.client import ClientOptions

CLIENT = ClientOptions(timeout_s=1.0, connect_timeout_s=0.5, retries=0)


def _store(ep: Endpoints, proxy: FaultProxy):  # type: ignore[no-untyped-def]
    return make_store("redis-fallback", postgres_dsn=proxy.url_for(ep.postgres_dsn), redis_url=ep.redis_url,
                      pool_size=2, client=CLIENT)


async def test_a_slow_first_connection_is_tried_again_and_the_case_opens(embedded_endpoints: Endpoints) -> None:
    events: list[str] = []
    async with FaultProxy(*_pg_host_port(embedded_endpoints)) as proxy:
        proxy.blackhole()
        asyncio.get_running_loop().call_later(0.8, lambda: asyncio.ensure_future(proxy.heal()))
        t = time.perf_counter()
        async with _opened(_store(embedded_endpoints, proxy), "redis-fallback", events.append) as store:
            assert await store.get("no-such-session") is None  # open, and answering
        assert time.perf_counter() - t >= 1.0  # one timed-out attempt and the 1 s wait
    assert len(events) >= 1 and "connecting again in 1 s (attempt 2 of 3; the case has not started)" in events[0]
    assert "PostgreSQL" in events[0] or "postgres" in events[0].lower()


async def test_a_server_that_never_answers_still_fails_with_the_stores_line(embedded_endpoints: Endpoints) -> None:
    events: list[str] = []
    async with FaultProxy(*_pg_host_port(embedded_endpoints)) as proxy:
        proxy.blackhole()
        with pytest.raises(StoreUnavailable) as err:
            async with _opened(_store(embedded_endpoints, proxy), "redis-fallback", events.append):
                raise AssertionError("opened through a blackhole")
        await proxy.heal()
    assert len(events) == OPEN_ATTEMPTS - 1
    assert "redis-fallback" in err.value.message and "recipe cache backend" in err.value.message


def _pg_host_port(ep: Endpoints) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(ep.postgres_dsn)
    return parts.hostname or "127.0.0.1", int(parts.port or 5432)

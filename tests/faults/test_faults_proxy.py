"""The fault proxy, each fault observed by a real client against a real Redis (the machine's, db 9:
only PING/SET/GET through the proxy; nothing there is reconfigured)."""

from __future__ import annotations

import asyncio
import socket
import statistics
import time

import pytest
import redis.exceptions as rx

from fridgebench.faults.proxy import FaultProxy, ProxyFault, measure_added_latency
from fridgebench.stores._lean_redis import LeanPool
from tests import servers

DB = servers.REDIS_DB_SHARED


async def start() -> FaultProxy:
    return await FaultProxy(servers.REDIS_HOST, servers.REDIS_PORT).start()


def url(p: FaultProxy) -> str:
    return f"redis://127.0.0.1:{p.port}/{DB}"


async def rtt_ms(pool: LeanPool, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        assert await pool.execute("PING") == b"PONG"
        out.append((time.perf_counter() - t) * 1000)
    return out


async def test_forwards_both_ways() -> None:
    p = await start()
    pool = LeanPool(url(p), 2, read_timeout_s=5)
    try:
        await pool.open()
        await pool.execute("SET", "fbtest:proxy:k", "값")
        assert (await pool.execute("GET", "fbtest:proxy:k")).decode() == "값"
        await pool.execute("DEL", "fbtest:proxy:k")
        assert p.stats.accepted == 2 and p.stats.bytes_up > 0 and p.stats.bytes_down > 0
    finally:
        await pool.close()
        p.close()


async def test_latency_delays_every_reply_and_heal_removes_it() -> None:
    p = await start()
    pool = LeanPool(url(p), 1, read_timeout_s=10)
    try:
        await pool.open()
        p.latency(80, 0)
        slow = await rtt_ms(pool, 5)
        assert min(slow) >= 79, slow
        await p.heal()
        fast = await rtt_ms(pool, 21)
        assert statistics.median(fast) < 40, fast  # 80 ms gone (a generous bound for a loaded runner)
    finally:
        await pool.close()
        p.close()


async def test_reset_closes_open_connections_with_rst_and_resets_new_ones() -> None:
    p = await start()
    pool = LeanPool(url(p), 1, read_timeout_s=5, connect_timeout_s=5)
    try:
        await pool.open()
        assert await pool.execute("PING") == b"PONG"
        p.reset()
        with pytest.raises(rx.ConnectionError):  # the open connection: reset by the proxy
            await pool.execute("PING")
        with pytest.raises(rx.ConnectionError):  # a new one: accepted, then reset
            await pool.execute("PING")
        assert p.stats.reset >= 2
        await p.heal()
        assert await pool.execute("PING") == b"PONG"
    finally:
        await pool.close()
        p.close()


def test_reset_is_a_tcp_rst() -> None:
    async def main() -> None:
        p = await start()
        try:
            loop = asyncio.get_running_loop()
            sock = socket.create_connection(("127.0.0.1", p.port), timeout=5)
            await asyncio.sleep(0.05)
            p.reset()
            sock.setblocking(False)
            with pytest.raises(ConnectionResetError):  # RST, not an orderly FIN (which would read b"")
                await asyncio.wait_for(loop.sock_recv(sock, 10), 5)
            sock.close()
        finally:
            p.close()

    asyncio.run(main())


async def test_blackhole_accepts_but_never_answers_then_delivers_on_heal() -> None:
    p = await start()
    impatient = LeanPool(url(p), 1, read_timeout_s=0.3, connect_timeout_s=5)
    patient = LeanPool(url(p), 1, read_timeout_s=None, connect_timeout_s=5)
    try:
        await impatient.open()
        await patient.open()
        p.blackhole()
        t = time.perf_counter()
        with pytest.raises(rx.TimeoutError):
            await impatient.execute("PING")
        assert time.perf_counter() - t >= 0.29
        waiting = asyncio.ensure_future(patient.execute("PING"))  # no timeout: it waits
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", p.port), 5)  # connects fine
        writer.write(b"*1\r\n$4\r\nPING\r\n")
        await asyncio.sleep(0.3)
        assert not waiting.done() and not reader.at_eof()
        await p.heal()
        assert await asyncio.wait_for(waiting, 5) == b"PONG"  # held, then delivered
        assert await asyncio.wait_for(reader.readline(), 5) == b"+PONG\r\n"
        writer.close()
    finally:
        await impatient.close()
        await patient.close()
        p.close()


async def test_refuse_closes_the_port_and_open_connections_and_heal_reopens_it() -> None:
    p = await start()
    port = p.port
    pool = LeanPool(url(p), 1, read_timeout_s=5, connect_timeout_s=5)
    try:
        await pool.open()
        p.refuse()
        assert not p.listening
        with pytest.raises(rx.ConnectionError):  # the open connection was closed
            await pool.execute("PING")
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", port)
        await p.heal()
        assert p.port == port and await pool.execute("PING") == b"PONG"
    finally:
        await pool.close()
        p.close()


async def test_one_fault_at_a_time_and_close_leaves_nothing_listening() -> None:
    p = await start()
    port = p.port
    p.blackhole()
    with pytest.raises(RuntimeError, match="heal it first"):
        p.reset()
    p.close()
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_proxy_fault_emergency_heal_closes_the_proxy() -> None:
    p = await start()
    f = ProxyFault("blackhole", p, "redis")
    await f.inject()
    assert await f.emergency_heal() and not p.listening


async def test_added_latency_is_measured_direct_and_through_the_proxy() -> None:
    p = await start()
    try:
        m = await measure_added_latency("redis", servers.redis_url(DB), p, n=200, rounds=2)
    finally:
        p.close()
    assert m["samples"] == 200 and m["request"] == "PING"
    assert 0 < m["direct_p50_us"] < 1e6 and 0 < m["proxied_p50_us"] < 1e6
    assert m["added_p50_us"] == pytest.approx(m["proxied_p50_us"] - m["direct_p50_us"], abs=0.2)

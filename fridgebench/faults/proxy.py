"""A small asyncio TCP fault proxy: latency, reset, blackhole and refuse, between clients and a store.

Toxiproxy does this job elsewhere, but it is a Go binary and nothing installable here offers it,
so fridgebench carries its own. :class:`FaultProxy` listens on a free 127.0.0.1 port, opens one
upstream connection per client connection and copies bytes both ways (``asyncio.Protocol``s, no
parsing: it works for Redis and PostgreSQL alike). It runs in the caller's event loop -- the
same process as the load, so it cannot outlive fridgebench; what that costs per request is
measured (:func:`measure_added_latency`) and stated wherever it is used.

Faults (one at a time; :meth:`FaultProxy.heal` returns to plain forwarding):

* ``latency(ms, jitter_ms)`` -- every chunk the server sends back is held ``ms`` ± ``jitter_ms``
  (uniform, never negative), order kept per connection: each reply arrives that much later;
* ``reset()`` -- every open connection is closed with a TCP RST (``SO_LINGER`` 0) on both
  sides; while the fault lasts each new connection is accepted and reset at once;
* ``blackhole()`` -- nothing is read any more, in either direction, on open or new connections:
  connects succeed, requests are never answered (TCP keeps the bytes, so a client sees a hung
  server, not an error). On heal reading resumes and what was held is delivered, as TCP
  retransmission delivers it after a network partition heals -- a client that already gave up has
  closed its connection;
* ``refuse()`` -- the listening port is closed (new connects: ``ECONNREFUSED``) and open
  connections are closed (FIN), as a server gone from its port; heal listens again on the same port.
"""

from __future__ import annotations

import asyncio
import random
import socket
import statistics
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Literal

Mode = Literal["pass", "latency", "reset", "blackhole", "refuse"]
FAULTS: tuple[str, ...] = ("latency", "reset", "blackhole", "refuse")


def _rst(transport: asyncio.BaseTransport | None) -> None:
    """Close with a TCP RST rather than a FIN."""
    if transport is None or transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except (OSError, AttributeError, TypeError):
            pass
    transport.abort()  # type: ignore[attr-defined]


class _Side(asyncio.Protocol):
    """One end of a proxied connection: the client's (``downstream``) or the server's (``upstream``)."""

    def __init__(self, proxy: "FaultProxy", pair: "_Pair", role: Literal["client", "upstream"]) -> None:
        self.proxy = proxy
        self.pair = pair
        self.role = role
        self.transport: asyncio.Transport | None = None
        self.holds: set[str] = set()  # why reading is paused: "connecting", "blackhole", "flow"

    # -- reading on and off, for several reasons at once --------------------------------------------
    def hold(self, reason: str) -> None:
        was = bool(self.holds)
        self.holds.add(reason)
        if not was and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def reapply(self) -> None:
        if self.holds and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def release(self, reason: str) -> None:
        if reason not in self.holds:
            return
        self.holds.discard(reason)
        if not self.holds and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    # -- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.role == "client":
            self.pair.client = self
            self.proxy._accepted(self.pair)
        else:
            self.pair.upstream = self

    def data_received(self, data: bytes) -> None:
        self.proxy._forward(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.proxy._lost(self.pair, self)

    def pause_writing(self) -> None:  # our outgoing buffer is full: stop reading from the peer
        peer = self.pair.peer(self)
        if peer is not None:
            peer.hold("flow")

    def resume_writing(self) -> None:
        peer = self.pair.peer(self)
        if peer is not None:
            peer.release("flow")


@dataclass(eq=False)
class _Pair:
    client: _Side | None = None
    upstream: _Side | None = None
    release_at: float = 0.0  # latency: when the last held reply chunk goes out (order kept)
    closing: bool = False
    early: list[bytes] = field(default_factory=list)  # client bytes that came before the upstream connection

    def peer(self, side: _Side) -> _Side | None:
        return self.upstream if side is self.client else self.client

    def sides(self) -> list[_Side]:
        return [s for s in (self.client, self.upstream) if s is not None]


@dataclass
class ProxyStats:
    accepted: int = 0
    reset: int = 0  # connections closed with a RST by the reset fault
    refused_upstream: int = 0  # client connections whose upstream connect failed
    bytes_up: int = 0
    bytes_down: int = 0
    faults: list[dict[str, Any]] = field(default_factory=list)


class FaultProxy:
    """Forward 127.0.0.1:``port`` to ``upstream_host``:``upstream_port``; inject network faults."""

    def __init__(self, upstream_host: str, upstream_port: int, *, listen_host: str = "127.0.0.1",
                 listen_port: int = 0, seed: int = 0) -> None:
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.listen_host = listen_host
        self.port = listen_port
        self.mode: Mode = "pass"
        self.delay_s = 0.0
        self.jitter_s = 0.0
        self.stats = ProxyStats()
        self._rng = random.Random(f"{seed}/proxy-jitter")
        self._pairs: set[_Pair] = set()
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> "FaultProxy":
        self._loop = asyncio.get_running_loop()
        await self._listen()
        return self

    async def _listen(self) -> None:
        assert self._loop is not None
        self._server = await self._loop.create_server(
            lambda: _Side(self, _Pair(), "client"), self.listen_host, self.port, reuse_address=True)
        self.port = int(self._server.sockets[0].getsockname()[1])

    @property
    def address(self) -> tuple[str, int]:
        return self.listen_host, self.port

    def url_for(self, url: str) -> str:
        """``url`` (redis://, postgresql://) with its host and port replaced by this proxy's."""
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{userinfo + '@' if userinfo else ''}{self.listen_host}:{self.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    async def __aenter__(self) -> "FaultProxy":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop listening and drop every connection (idempotent; safe from a ``finally``)."""
        self._closed = True
        self.mode = "pass"
        if self._server is not None:
            self._server.close()
            self._server = None
        for pair in list(self._pairs):
            for side in pair.sides():
                if side.transport is not None:
                    side.transport.abort()
        self._pairs.clear()

    @property
    def listening(self) -> bool:
        return self._server is not None

    @property
    def open_connections(self) -> int:
        return len(self._pairs)

    # -- faults ------------------------------------------------------------------------------------
    def latency(self, ms: float, jitter_ms: float = 0.0) -> None:
        self._set("latency", {"ms": ms, "jitter_ms": jitter_ms})
        self.delay_s, self.jitter_s = ms / 1000.0, jitter_ms / 1000.0

    def reset(self) -> None:
        self._set("reset", {})
        for pair in list(self._pairs):
            self._reset_pair(pair)

    def blackhole(self) -> None:
        self._set("blackhole", {})
        for pair in self._pairs:
            for side in pair.sides():
                side.hold("blackhole")

    def refuse(self) -> None:
        self._set("refuse", {})
        if self._server is not None:
            self._server.close()
            self._server = None
        for pair in list(self._pairs):
            self._close_pair(pair)

    async def heal(self) -> None:
        """Back to plain forwarding (listening again after ``refuse``; held bytes delivered)."""
        was = self.mode
        self.mode = "pass"
        self.delay_s = self.jitter_s = 0.0
        self.stats.faults.append({"heal": was, "at": time.perf_counter()})
        for pair in self._pairs:
            for side in pair.sides():
                side.release("blackhole")
        if self._server is None and not self._closed:
            await self._listen()

    def _set(self, mode: Mode, params: dict[str, Any]) -> None:
        if self._closed:
            raise RuntimeError("the fault proxy is closed")
        if self.mode != "pass":
            raise RuntimeError(f"a {self.mode} fault is active: heal it first")
        self.mode = mode
        self.stats.faults.append({"fault": mode, **params, "at": time.perf_counter()})

    # -- plumbing ----------------------------------------------------------------------------------
    def _accepted(self, pair: _Pair) -> None:
        self.stats.accepted += 1
        if self.mode == "reset":
            self.stats.reset += 1
            _rst(pair.client.transport if pair.client else None)
            return
        self._pairs.add(pair)
        client = pair.client
        assert client is not None and self._loop is not None
        client.hold("connecting")
        if self.mode == "blackhole":
            client.hold("blackhole")
        self._loop.call_soon(client.reapply)  # a pause inside connection_made may not hold (uvloop)
        self._loop.create_task(self._connect_upstream(pair))

    async def _connect_upstream(self, pair: _Pair) -> None:
        assert self._loop is not None
        try:
            await self._loop.create_connection(lambda: _Side(self, pair, "upstream"),
                                               self.upstream_host, self.upstream_port)
        except OSError:
            self.stats.refused_upstream += 1
            self._pairs.discard(pair)
            _rst(pair.client.transport if pair.client else None)  # as the server's refusal would look
            return
        up, client = pair.upstream, pair.client
        if up is None:
            return
        if client is None or client.transport is None or pair.closing or self._closed:
            if up.transport is not None:
                up.transport.abort()
            return
        if self.mode == "blackhole":
            up.hold("blackhole")
        if pair.early:
            _write_if_open(up, b"".join(pair.early))
            pair.early.clear()
        client.release("connecting")

    def _forward(self, side: _Side, data: bytes) -> None:
        pair = side.pair
        peer = pair.peer(side)
        if peer is None or peer.transport is None:
            if side.role == "client" and not pair.closing:  # read before the upstream connection was up
                self.stats.bytes_up += len(data)
                pair.early.append(data)
            return
        if side.role == "client":
            self.stats.bytes_up += len(data)
            _write_if_open(peer, data)
            return
        self.stats.bytes_down += len(data)
        if self.mode != "latency" or self._loop is None:
            if pair.release_at and pair.release_at > time.perf_counter():  # keep order after a heal
                self._later(pair, peer, data, pair.release_at)
            else:
                _write_if_open(peer, data)
            return
        delay = max(0.0, self.delay_s + (self._rng.uniform(-self.jitter_s, self.jitter_s) if self.jitter_s else 0.0))
        self._later(pair, peer, data, time.perf_counter() + delay)

    def _later(self, pair: _Pair, peer: _Side, data: bytes, at: float) -> None:
        assert self._loop is not None
        at = max(at, pair.release_at)
        pair.release_at = at
        self._loop.call_later(max(0.0, at - time.perf_counter()), _write_if_open, peer, data)

    def _lost(self, pair: _Pair, side: _Side) -> None:
        peer = pair.peer(side)
        if peer is not None and peer.transport is not None and not pair.closing:
            pair.closing = True
            wait = pair.release_at - time.perf_counter()
            if wait > 0 and self._loop is not None:  # let held replies go out first
                self._loop.call_later(wait, _close_if_open, peer)
            else:
                peer.transport.close()
        if all(s.transport is None for s in pair.sides()):
            self._pairs.discard(pair)

    def _reset_pair(self, pair: _Pair) -> None:
        pair.closing = True
        self.stats.reset += 1
        for s in pair.sides():
            _rst(s.transport)
        self._pairs.discard(pair)

    def _close_pair(self, pair: _Pair) -> None:
        pair.closing = True
        for s in pair.sides():
            if s.transport is not None:
                s.transport.close()
        self._pairs.discard(pair)


def _write_if_open(side: _Side, data: bytes) -> None:
    t = side.transport
    if t is not None and not t.is_closing():
        try:
            t.write(data)
        except RuntimeError:  # uvloop: closed under us, connection_lost not delivered yet
            pass


def _close_if_open(side: _Side) -> None:
    if side.transport is not None:
        side.transport.close()


# --- what the proxy costs ----------------------------------------------------------------------

async def _redis_ping_us(host: str, port: int, n: int) -> list[float]:
    reader, writer = await asyncio.open_connection(host, port)
    out = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            writer.write(b"*1\r\n$4\r\nPING\r\n")
            line = await reader.readline()
            out.append((time.perf_counter() - t) * 1e6)
            if not line.startswith((b"+", b"-")):
                raise ConnectionError(f"unexpected reply to PING: {line!r}")
    finally:
        writer.close()
    return out


async def _pg_select_us(dsn: str, n: int) -> list[float]:
    import asyncpg

    conn = await asyncpg.connect(dsn, timeout=10)
    out = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            await conn.fetchval("SELECT 1")
            out.append((time.perf_counter() - t) * 1e6)
    finally:
        await conn.close()
    return out


async def measure_added_latency(kind: str, direct_url: str, proxy: FaultProxy, *, n: int = 1000,
                                rounds: int = 4) -> dict[str, Any]:
    """p50 / p99 of the cheapest request (Redis PING, PostgreSQL ``SELECT 1``) over one connection,
    direct and through ``proxy`` (no fault), alternating in ``rounds`` so drift favours neither."""
    from urllib.parse import urlsplit

    direct: list[float] = []
    proxied: list[float] = []
    per = max(1, n // rounds)
    for _ in range(rounds):
        if kind == "redis":
            u = urlsplit(direct_url)
            direct += await _redis_ping_us(u.hostname or "127.0.0.1", u.port or 6379, per)
            proxied += await _redis_ping_us(proxy.listen_host, proxy.port, per)
        else:
            direct += await _pg_select_us(direct_url, per)
            proxied += await _pg_select_us(proxy.url_for(direct_url), per)

    def pct(xs: list[float], q: float) -> float:
        s = sorted(xs)
        return round(s[min(len(s) - 1, int(q * len(s)))], 1)

    d50, p50 = statistics.median(direct), statistics.median(proxied)
    return {
        "request": "PING" if kind == "redis" else "SELECT 1",
        "samples": len(direct),
        "direct_p50_us": round(d50, 1), "direct_p99_us": pct(direct, 0.99),
        "proxied_p50_us": round(p50, 1), "proxied_p99_us": pct(proxied, 0.99),
        "added_p50_us": round(p50 - d50, 1),
    }


# --- as a fault the experiment injects ---------------------------------------------------------

from fridgebench.faults.base import Fault  # noqa: E402  (the proxy above stands on its own)


class ProxyFault(Fault):
    """One of :data:`FAULTS` through a running :class:`FaultProxy`."""

    def __init__(self, name: str, proxy: FaultProxy, target: str, *, latency_ms: float = 0.0,
                 jitter_ms: float = 0.0) -> None:
        super().__init__()
        if name not in FAULTS:
            raise ValueError(f"not a network fault: {name}")
        self.name = name
        self.target = target
        self.proxy = proxy
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms

    async def inject(self) -> float:
        t = time.perf_counter()
        if self.name == "latency":
            self.proxy.latency(self.latency_ms, self.jitter_ms)
        elif self.name == "reset":
            self.proxy.reset()
        elif self.name == "blackhole":
            self.proxy.blackhole()
        else:
            self.proxy.refuse()
        self.injected = True
        return t

    async def heal(self) -> float:
        t = time.perf_counter()
        await self.proxy.heal()
        self.healed = True
        return t

    async def emergency_heal(self) -> list[str]:
        if self.proxy.listening or self.proxy.open_connections:
            self.proxy.close()
            return [f"closed the fault proxy on 127.0.0.1:{self.proxy.port}"]
        return []

    def describe(self) -> dict[str, Any]:
        d = {**super().describe(), "proxy": f"127.0.0.1:{self.proxy.port}",
             "upstream": f"{self.proxy.upstream_host}:{self.proxy.upstream_port}",
             "connections_accepted": self.proxy.stats.accepted, "connections_reset": self.proxy.stats.reset}
        if self.name == "latency":
            d.update(latency_ms=self.latency_ms, jitter_ms=self.jitter_ms)
        return d

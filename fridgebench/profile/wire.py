"""A counting TCP relay: round trips and statements of one store's own connections, as sent.

:class:`WireTap` listens on a free 127.0.0.1 port and relays every connection to the real server,
unchanged. It counts, per connection:

* **round trips** — "flights": a flight is everything the client sends before the server answers
  anything; the next bytes the client sends after a reply begin the next flight. Whatever the
  client library (asyncpg, SQLAlchemy on asyncpg, redis-py, the lean clients), that is the number
  of times an operation waited for the network;
* **statements** (PostgreSQL: every ``Query`` and ``Execute`` message of the frontend protocol,
  named by the SQL's first word — BEGIN, SELECT, UPDATE, COMMIT ... — from the ``Parse`` that
  prepared it) and **commands** (Redis: every RESP command, by name, read with hiredis).

Because it sees only the connections made through it, the counts are this store's alone, also
on a shared server where the server's own counters are server-wide. It sits in the same process
as the client, so the profile times nothing that goes through it (:mod:`.run` measures CPU and
latency on direct connections in a second pass).

A TLS connection cannot be read: its round trips are still counted, its statements are not
(``readable`` turns False).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import hiredis

Protocol = Literal["postgres", "redis"]

_SSL_REQUEST, _GSS_REQUEST, _CANCEL_REQUEST = 80877103, 80877104, 80877102


@dataclass(frozen=True)
class WireCounts:
    """Cumulative counts of a tap; subtract two snapshots for a window."""

    round_trips: int = 0
    statements: int = 0
    by_verb: dict[str, int] = field(default_factory=dict)
    bytes_sent: int = 0
    bytes_received: int = 0
    connections: int = 0
    readable: bool = True

    def __sub__(self, other: "WireCounts") -> "WireCounts":
        verbs = Counter(self.by_verb)
        verbs.subtract(other.by_verb)
        return WireCounts(self.round_trips - other.round_trips, self.statements - other.statements,
                          {k: v for k, v in verbs.items() if v}, self.bytes_sent - other.bytes_sent,
                          self.bytes_received - other.bytes_received, self.connections - other.connections,
                          self.readable and other.readable)


def sql_verb(sql: str) -> str:
    """The first keyword of a statement (comments and parentheses skipped), upper-cased."""
    s = sql.lstrip()
    while True:
        if s.startswith("--"):
            s = s.partition("\n")[2].lstrip()
        elif s.startswith("/*"):
            s = s.partition("*/")[2].lstrip()
        elif s.startswith("("):
            s = s[1:].lstrip()
        else:
            break
    word = ""
    for ch in s:
        if not (ch.isalpha() or ch == "_"):
            break
        word += ch
    return word.upper() or "?"


class _Tally:
    """What all connections of a tap have sent so far (mutated by the relays)."""

    def __init__(self) -> None:
        self.round_trips = 0
        self.statements = 0
        self.by_verb: Counter[str] = Counter()
        self.bytes_sent = 0
        self.bytes_received = 0
        self.connections = 0
        self.unreadable = False

    def statement(self, verb: str) -> None:
        self.statements += 1
        self.by_verb[verb] += 1


class _PostgresReader:
    """The frontend side of the PostgreSQL protocol: counts Query and Execute messages."""

    def __init__(self, tally: _Tally) -> None:
        self.tally = tally
        self.buf = bytearray()
        self.started = False  # past the startup packet: typed messages follow
        self.awaiting_ssl_answer = False
        self.dead = False  # TLS (or something unreadable): stop parsing
        self.prepared: dict[bytes, str] = {}  # statement name -> verb
        self.portals: dict[bytes, str] = {}  # portal name -> verb

    def server_bytes(self, data: bytes) -> None:
        if self.awaiting_ssl_answer and data:
            self.awaiting_ssl_answer = False
            if data[:1] in (b"S", b"G"):  # TLS / GSS encryption accepted: the rest is unreadable
                self.dead = True
                self.tally.unreadable = True

    def client_bytes(self, data: bytes) -> None:
        if self.dead:
            return
        self.buf += data
        buf = self.buf
        while True:
            if not self.started:
                if len(buf) < 8:
                    return
                length, code = struct.unpack_from("!ii", buf)
                if len(buf) < length:
                    return
                del buf[:length]
                if code in (_SSL_REQUEST, _GSS_REQUEST):
                    self.awaiting_ssl_answer = True
                elif code != _CANCEL_REQUEST:
                    self.started = True
                continue
            if len(buf) < 5:
                return
            kind = buf[0]
            length = struct.unpack_from("!i", buf, 1)[0]
            if len(buf) < 1 + length:
                return
            body = bytes(buf[5:1 + length])
            del buf[:1 + length]
            self._message(kind, body)

    def _message(self, kind: int, body: bytes) -> None:
        if kind == 0x51:  # 'Q' simple query
            self.tally.statement(sql_verb(body.split(b"\0", 1)[0].decode("utf-8", "replace")))
        elif kind == 0x50:  # 'P' Parse: name, query
            name, _, rest = body.partition(b"\0")
            self.prepared[name] = sql_verb(rest.split(b"\0", 1)[0].decode("utf-8", "replace"))
        elif kind == 0x42:  # 'B' Bind: portal, statement
            portal, _, rest = body.partition(b"\0")
            self.portals[portal] = self.prepared.get(rest.split(b"\0", 1)[0], "?")
        elif kind == 0x45:  # 'E' Execute: portal
            self.tally.statement(self.portals.get(body.split(b"\0", 1)[0], "?"))


class _RedisReader:
    """Client-to-server RESP: every command, by name."""

    def __init__(self, tally: _Tally) -> None:
        self.tally = tally
        self.reader = hiredis.Reader()
        self.dead = False

    def server_bytes(self, data: bytes) -> None:
        pass

    def client_bytes(self, data: bytes) -> None:
        if self.dead:
            return
        try:
            self.reader.feed(data)
            while (item := self.reader.gets()) is not False:
                name = item[0] if isinstance(item, list) and item else b"?"
                self.tally.statement(name.decode("ascii", "replace").upper() if isinstance(name, bytes) else "?")
        except hiredis.ProtocolError:  # TLS, or not RESP
            self.dead = True
            self.tally.unreadable = True


class WireTap:
    """Relay 127.0.0.1:``port`` -> ``host``:``target_port``, counting (see the module docstring).

    ``async with WireTap(...) as tap:`` starts it; ``tap.port`` is where clients connect;
    :meth:`counts` is a snapshot."""

    def __init__(self, host: str, target_port: int, protocol: Protocol) -> None:
        self.host = host
        self.target_port = target_port
        self.protocol = protocol
        self.port = 0
        self._tally = _Tally()
        self._server: asyncio.base_events.Server | None = None
        self._relays: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> "WireTap":
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for t in list(self._relays):
            t.cancel()
        await asyncio.gather(*self._relays, return_exceptions=True)
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    def counts(self) -> WireCounts:
        t = self._tally
        return WireCounts(t.round_trips, t.statements, dict(t.by_verb), t.bytes_sent, t.bytes_received,
                          t.connections, not t.unreadable)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.add(task)
        try:
            await self._relay(client_r, client_w)
        except asyncio.CancelledError:  # the tap is closing: the connection ends here, quietly
            pass
        finally:
            self._relays.discard(task)

    async def _relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            client_w.close()
            return
        tally = self._tally
        tally.connections += 1
        reader = _PostgresReader(tally) if self.protocol == "postgres" else _RedisReader(tally)
        state = {"up": False}  # True while the client's current flight is unanswered

        async def upstream() -> None:
            while data := await client_r.read(65536):
                if not state["up"]:
                    state["up"] = True
                    tally.round_trips += 1
                tally.bytes_sent += len(data)
                reader.client_bytes(data)
                server_w.write(data)
                await server_w.drain()

        async def downstream() -> None:
            while data := await server_r.read(65536):
                state["up"] = False
                tally.bytes_received += len(data)
                reader.server_bytes(data)
                client_w.write(data)
                await client_w.drain()

        pumps = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for p in pumps:
                p.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for w in (client_w, server_w):
                w.close()

"""A lean PostgreSQL path for the store's per-operation statements (the measured hot path).

asyncpg opens and authenticates each connection (DSN, passfile, SCRAM/md5, TLS, server
settings); then this module takes over the connection's transport and speaks the extended
query protocol itself: each statement is parsed once per connection (named, Parse + Describe),
then every call is one write of Bind + Execute + Sync (parameters and results in text format)
and one read up to ReadyForQuery. Text results because decoding is where the client's time
goes: ``datetime.fromisoformat`` and ``str.split`` are single C calls, where binary arrays and
timestamps need a Python loop (measured: ~15 µs per session read under load). The connection
is opened with ``DateStyle=ISO`` and ``TimeZone=UTC`` so the text forms are fixed.

Why: measured on this machine, asyncpg's ``fetchrow`` on one connection costs ~30 µs more per
call than pgbench for the session point read (93 vs 49 µs), whatever the pooling; the same
Bind/Execute/Sync written by an ``asyncio.Protocol`` costs 60 µs (benchmarks/README.md).

Scope: only the types the store's statements use (parameters: text, int, int[] as text;
results: timestamptz, int2/4/8, bool, text/varchar, one-dimensional text[] and int[]);
anything else raises.
Errors are asyncpg's exception classes (built by ``asyncpg.PostgresError.new`` from the
server's ErrorResponse, so SQLSTATE subclasses match what asyncpg raises) and the connection
stays usable; a lost connection raises ``asyncpg.ConnectionDoesNotExistError``; a call that is
cancelled or times out leaves the connection unusable, and it is discarded (the pool opens a
replacement on a later acquire).
"""

from __future__ import annotations

import asyncio
import struct
from datetime import datetime
from typing import Any, Callable, Sequence

import asyncpg
from asyncpg.exceptions import ConnectionDoesNotExistError

_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_HDR = struct.Struct("!ci")
_SYNC = b"S\x00\x00\x00\x04"


def _timestamptz(b: bytes) -> datetime:
    t = b.decode()
    try:
        return datetime.fromisoformat(t)
    except ValueError:
        if t == "infinity":  # as asyncpg decodes +-infinity: naive max/min
            return datetime.max
        if t == "-infinity":
            return datetime.min
        raise asyncpg.InterfaceError(f"lean PostgreSQL path: cannot read timestamptz {t!r}") from None


def _array_items(s: str) -> list[str | None]:
    """A one-dimensional array literal in PostgreSQL's text output -> items (NULL -> None)."""
    if s == "{}":
        return []
    if s[0] != "{":
        raise asyncpg.InterfaceError(f"lean PostgreSQL path: unsupported array literal {s[:40]!r}")
    if '"' not in s and "\\" not in s:  # no element needed quoting: the common case
        items: list[str | None] = s[1:-1].split(",")  # type: ignore[assignment]
        if "NULL" in items:
            return [None if x == "NULL" else x for x in items]
        if "{" in s[1:]:
            raise asyncpg.InterfaceError("lean PostgreSQL path: multi-dimensional arrays are not supported")
        return items
    out: list[str | None] = []
    i, n = 1, len(s) - 1
    while i < n:
        if s[i] == '"':
            i += 1
            buf = []
            while s[i] != '"':
                if s[i] == "\\":
                    i += 1
                buf.append(s[i])
                i += 1
            i += 1
            out.append("".join(buf))
        else:
            j = s.find(",", i)
            if j < 0 or j > n:
                j = n
            tok = s[i:j]
            if tok.startswith("{"):
                raise asyncpg.InterfaceError("lean PostgreSQL path: multi-dimensional arrays are not supported")
            out.append(None if tok == "NULL" else tok)
            i = j
        if i < n and s[i] == ",":
            i += 1
    return out


def _text_array(b: bytes) -> list[str | None]:
    return _array_items(b.decode())


def _int_array(b: bytes) -> list[int | None]:
    return [None if x is None else int(x) for x in _array_items(b.decode())]


def _text(b: bytes) -> str:
    return b.decode()


_DECODERS: dict[int, Callable[[bytes], Any]] = {
    16: lambda b: b == b"t",  # bool
    20: int,  # int8
    21: int,  # int2
    23: int,  # int4
    25: _text,  # text
    1043: _text,  # varchar
    1184: _timestamptz,  # timestamptz
    1009: _text_array,  # text[]
    1015: _text_array,  # varchar[]
    1007: _int_array,  # int4[]
    1016: _int_array,  # int8[]
}


def _param(v: Any) -> bytes | None:
    """Text-format parameter: str, int, bool, or a list of ints/strings (an array literal)."""
    if v is None:
        return None
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, bool):
        return b"t" if v else b"f"
    if isinstance(v, int):
        return str(v).encode()
    if isinstance(v, (list, tuple)):
        parts = []
        for x in v:
            if isinstance(x, int) and not isinstance(x, bool):
                parts.append(str(x))
            else:
                parts.append('"' + str(x).replace("\\", "\\\\").replace('"', '\\"') + '"')
        return ("{" + ",".join(parts) + "}").encode()
    raise asyncpg.InterfaceError(f"lean PostgreSQL path: cannot send a {type(v).__name__} parameter")


def _msg(kind: bytes, body: bytes) -> bytes:
    return kind + _I32.pack(len(body) + 4) + body


class _Prepared:
    __slots__ = ("name", "bind_head", "result_tail", "decoders")

    def __init__(self, name: bytes, decoders: list[Callable[[bytes], Any]]) -> None:
        self.name = name
        self.decoders = decoders
        self.bind_head = b"\x00" + name + b"\x00" + _I16.pack(0)  # unnamed portal; all params text
        self.result_tail = _I16.pack(0)  # all results text


class LeanPgConnection(asyncio.Protocol):
    """One PostgreSQL connection, authenticated by asyncpg, then driven directly."""

    def __init__(self, loop: asyncio.AbstractEventLoop, apg: asyncpg.Connection) -> None:
        self._loop = loop
        self._apg = apg  # kept to terminate it; never used for queries after the takeover
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[Any] | None = None
        self._rows: list[bytes] = []
        self._error: dict[str, str] | None = None
        self._rowdesc: list[int] | None = None
        self._prepared: dict[str, _Prepared] = {}
        self.broken = False

    @classmethod
    async def connect(cls, dsn: str, timeout: float) -> "LeanPgConnection":
        apg = await asyncpg.connect(dsn, timeout=timeout, server_settings={"DateStyle": "ISO", "TimeZone": "UTC"})
        transport = apg._transport  # noqa: SLF001 - the takeover (see the module docstring)
        if transport is None or apg.is_closed():
            raise ConnectionDoesNotExistError("connection closed during setup")
        conn = cls(asyncio.get_running_loop(), apg)
        conn._transport = transport
        transport.set_protocol(conn)
        return conn

    # -- asyncio.Protocol -------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        buf = self._buf
        if buf:
            buf += data
            data = bytes(buf)
            buf.clear()
        pos = 0
        end = len(data)
        unpack = _HDR.unpack_from
        while end - pos >= 5:
            kind, ln = unpack(data, pos)
            nxt = pos + 1 + ln
            if nxt > end:
                break
            if kind == b"D":
                self._rows.append(data[pos + 5 : nxt])
            elif kind == b"Z":
                w, self._waiter = self._waiter, None
                rows, self._rows = self._rows, []
                err, self._error = self._error, None
                if w is not None and not w.done():
                    w.set_result((rows, err))
            elif kind == b"E":
                self._error = _fields(data[pos + 5 : nxt])
            elif kind == b"T":
                self._rowdesc = _rowdesc(data[pos + 5 : nxt])
            elif kind == b"n":
                self._rowdesc = []
            # '1' '2' '3' 'C' 'I' 's' 't' 'N' 'S' 'A' 'K': nothing to do
            pos = nxt
        if pos < end:
            buf += data[pos:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.broken = True
        self._transport = None
        w, self._waiter = self._waiter, None
        if w is not None and not w.done():
            w.set_exception(ConnectionDoesNotExistError("connection was closed in the middle of operation"))

    # -- requests ---------------------------------------------------------------------------
    async def _roundtrip(self, data: bytes) -> list[bytes]:
        t = self._transport
        if t is None or self.broken:
            raise ConnectionDoesNotExistError("connection is closed")
        fut = self._loop.create_future()
        self._waiter = fut
        t.write(data)
        try:
            rows, err = await fut
        except BaseException:
            self.close(abort=True)  # cancelled or lost: the stream's state is unknown
            raise
        if err is not None:
            raise asyncpg.PostgresError.new(err)
        return rows

    async def _prepare(self, sql: str) -> _Prepared:
        name = f"fb_lean_{len(self._prepared)}".encode()
        self._rowdesc = None
        await self._roundtrip(
            _msg(b"P", name + b"\x00" + sql.encode() + b"\x00" + _I16.pack(0))
            + _msg(b"D", b"S" + name + b"\x00")
            + _SYNC
        )
        oids = self._rowdesc or []
        try:
            decoders = [_DECODERS[o] for o in oids]
        except KeyError as exc:
            raise asyncpg.InterfaceError(f"lean PostgreSQL path: result type oid {exc.args[0]} not supported") from None
        st = _Prepared(name, decoders)
        self._prepared[sql] = st
        return st

    async def fetch(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        st = self._prepared.get(sql) or await self._prepare(sql)
        parts = [st.bind_head, _I16.pack(len(args))]
        for a in args:
            p = _param(a)
            if p is None:
                parts.append(b"\xff\xff\xff\xff")
            else:
                parts.append(_I32.pack(len(p)))
                parts.append(p)
        parts.append(st.result_tail)
        body = b"".join(parts)
        rows = await self._roundtrip(b"B" + _I32.pack(len(body) + 4) + body + b"E\x00\x00\x00\t\x00\x00\x00\x00\x00" + _SYNC)
        decs = st.decoders
        unpack = _I32.unpack_from
        out = []
        for r in rows:
            vals = []
            pos = 2
            for dec in decs:
                ln = unpack(r, pos)[0]
                pos += 4
                if ln < 0:
                    vals.append(None)
                else:
                    vals.append(dec(r[pos : pos + ln]))
                    pos += ln
            out.append(tuple(vals))
        return out

    async def fetchrow(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        rows = await self.fetch(sql, args)
        return rows[0] if rows else None

    async def fetchval(self, sql: str, *args: Any) -> Any:
        rows = await self.fetch(sql, args)
        return rows[0][0] if rows else None

    @property
    def server_pid(self) -> int:
        return self._apg.get_server_pid()

    def is_closed(self) -> bool:
        return self.broken

    def close(self, abort: bool = False) -> None:
        self.broken = True
        t, self._transport = self._transport, None
        if t is not None and not abort:
            try:
                t.write(b"X\x00\x00\x00\x04")  # Terminate
            except Exception:  # noqa: BLE001 - closing anyway
                pass
        try:
            self._apg.terminate()  # aborts the (shared) transport
        except Exception:  # noqa: BLE001 - already gone
            if t is not None:
                t.abort()


def _rowdesc(body: bytes) -> list[int]:
    n = _I16.unpack_from(body, 0)[0]
    oids, p = [], 2
    for _ in range(n):
        p = body.index(b"\x00", p) + 1  # column name
        oids.append(_I32.unpack_from(body, p + 6)[0])  # table oid(4), attnum(2), type oid(4), ...
        p += 18
    return oids


def _fields(body: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in body.split(b"\x00"):
        if part:
            out[chr(part[0])] = part[1:].decode(errors="replace")
    return out

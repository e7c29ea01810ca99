"""A lean asyncio Redis client for the stores' per-operation commands (the measured hot path).

Why: redis-py's command path, pool checkout and ``pipeline()`` cost ~100 µs per session read
on top of a ~23 µs round trip (benchmarks/README.md), which would be measured as "Redis".
This client is the minimum an efficient application would run:

* one :class:`asyncio.Protocol` per connection, replies parsed by ``hiredis.Reader`` (the C
  parser redis-py itself uses), strictly one request (of one or more packed commands) in flight
  per connection;
* a fixed number of connections handed out from a LIFO free-list (:class:`LeanPool`): the
  engine never has more operations in flight than ``pool_size``, yet an acquire on an empty
  list still waits (FIFO) for a release;
* what redis URLs allow (parsed by redis-py's own ``parse_url``): host/port or unix socket,
  ``db`` (SELECT on connect), username/password (AUTH on connect), ``rediss://`` (TLS with
  redis-py's ``ssl_*`` options), ``socket_connect_timeout`` and ``socket_timeout``;
* errors are redis-py's exception classes, so callers catch and the engine records them as
  before: ``ConnectionError`` (connect failed, connection lost), ``TimeoutError`` (read or
  connect timeout), ``AuthenticationError``, ``ResponseError`` and its subclasses
  (``NoScriptError`` for NOSCRIPT, ...).

A connection that fails, times out, or whose request is cancelled mid-flight (its reply would
be read by the next request) is closed and dropped; the pool opens a replacement on the next
acquire. Everything that is not per-operation (SCAN, UNLINK, bulk pipelines, SCRIPT LOAD,
INFO) stays on redis-py.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import hiredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url
from fridgebench.stores._lifo import LifoPool
from fridgebench.stores.outcomes import mark_connecting
from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    BusyLoadingError,
    ConnectionError,
    ExecAbortError,
    NoPermissionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TimeoutError,
)

__all__ = ["LeanConnection", "LeanPool", "pack", "raise_reply_error"]

DEFAULT_CONNECT_TIMEOUT_S = 10.0
_FROM_URL: Any = object()  # a timeout not given: read it from the URL (else the default)

# redis-py's mapping of an error reply's first word to its exception class (parsers/base.py)
_ERRORS: dict[str, type[RedisError]] = {
    "NOSCRIPT": NoScriptError,
    "NOAUTH": AuthenticationError,
    "WRONGPASS": AuthenticationError,
    "NOPERM": NoPermissionError,
    "LOADING": BusyLoadingError,
    "READONLY": ReadOnlyError,
    "OOM": OutOfMemoryError,
    "EXECABORT": ExecAbortError,
}
_ReplyError = hiredis.ReplyError


def raise_reply_error(reply: Any) -> Any:
    """Return ``reply``, or raise it as redis-py's exception when it is an error reply."""
    if type(reply) is _ReplyError:
        msg = str(reply)
        code, _, rest = msg.partition(" ")
        cls = _ERRORS.get(code)
        if cls is None:
            if msg.startswith("ERR invalid password") or msg.startswith("ERR AUTH"):
                raise AuthenticationError(msg)
            if "wrong number of arguments for 'auth'" in msg:
                raise AuthenticationWrongNumberOfArgsError(msg)
            raise ResponseError(msg)
        raise cls(rest or msg)
    return reply


def _arg(a: Any) -> bytes:
    if isinstance(a, bytes):
        return a
    if isinstance(a, str):
        return a.encode()
    if isinstance(a, (int, float)):
        return repr(a).encode()
    raise TypeError(f"cannot send {type(a).__name__} to Redis")


def pack(*args: Any) -> bytes:
    """One command in RESP: ``*n\\r\\n$len\\r\\narg\\r\\n...``."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = _arg(a)
        parts.append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(parts)


class LeanConnection(asyncio.Protocol):
    """One Redis connection: ``await conn.request(packed, n)`` -> the reply (n == 1) or n replies."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout_s: float | None) -> None:
        self._loop = loop
        self._read_timeout_s = read_timeout_s
        self._reader = hiredis.Reader()
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[Any] | None = None
        self._want = 0
        self._replies: list[Any] = []
        self.broken = False
        self._lost_reason = "Connection closed by server."

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        w = self._waiter
        if w is None:  # a reply nobody asked for: the stream is out of step
            self._fail(ConnectionError("unexpected data from Redis; connection dropped"))
            return
        try:
            if self._want == 1:
                reply = reader.gets()
                if reply is False:
                    return
                self._waiter = None
                if not w.done():
                    w.set_result(reply)
                return
            replies = self._replies
            while len(replies) < self._want:
                reply = reader.gets()
                if reply is False:
                    return
                replies.append(reply)
        except hiredis.ProtocolError as exc:
            self._fail(ConnectionError(f"Redis protocol error: {exc}"))
            return
        self._waiter = None
        self._replies = []
        if not w.done():
            w.set_result(replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.broken = True
        self._transport = None
        w, self._waiter = self._waiter, None
        if w is not None and not w.done():
            reason = f"Connection lost: {exc}" if exc else self._lost_reason
            w.set_exception(ConnectionError(reason))

    # -- requests ---------------------------------------------------------------------------
    async def request(self, packed: bytes, n: int = 1) -> Any:
        """Write ``packed`` (``n`` commands) and wait for ``n`` replies (error replies returned,
        not raised: see :func:`raise_reply_error`)."""
        t = self._transport
        if t is None or self.broken or t.is_closing():
            raise ConnectionError("Connection closed.")
        fut = self._loop.create_future()
        self._waiter = fut
        self._want = n
        try:
            t.write(packed)
        except RuntimeError as exc:  # uvloop: the peer closed it and connection_lost is not delivered yet
            self._fail(None)
            raise ConnectionError(f"Connection closed: {exc}") from exc
        timeout = self._read_timeout_s
        handle = self._loop.call_later(timeout, self._on_timeout, fut) if timeout is not None else None
        try:
            return await fut
        except BaseException:
            # cancelled, timed out or lost: the reply (if any) would be read by the next request
            self._fail(None)
            raise
        finally:
            if handle is not None:
                handle.cancel()

    async def command(self, *args: Any) -> Any:
        return raise_reply_error(await self.request(pack(*args)))

    def _on_timeout(self, fut: asyncio.Future[Any]) -> None:
        if not fut.done():
            fut.set_exception(TimeoutError("Timeout reading from Redis"))

    def _fail(self, exc: BaseException | None) -> None:
        self.broken = True
        w, self._waiter = self._waiter, None
        if exc is not None and w is not None and not w.done():
            w.set_exception(exc)
        t, self._transport = self._transport, None
        if t is not None:
            t.abort()

    def close(self) -> None:
        self._lost_reason = "Connection closed."
        self.broken = True
        t, self._transport = self._transport, None
        if t is not None:
            t.close()


class LeanPool:
    """``size`` connections to the Redis at ``url``, handed out LIFO; opened by :meth:`open`."""

    def __init__(self, url: str, size: int, *, connect_timeout_s: float | None = _FROM_URL,
                 read_timeout_s: float | None = _FROM_URL) -> None:
        """Timeouts not given come from the URL's ``socket_connect_timeout`` / ``socket_timeout``
        (connect: else 10 s; read: else none); ``None`` given explicitly means no timeout."""
        kw: dict[str, Any] = dict(parse_url(url))
        cls = kw.pop("connection_class", None)
        self.url = url
        self.size = max(1, size)
        self.host: str = kw.get("host", "localhost")
        self.port: int = int(kw.get("port", 6379))
        self.path: str | None = kw.get("path") if cls is UnixDomainSocketConnection else None
        self.db = int(kw.get("db", 0) or 0)
        self.username: str | None = kw.get("username")
        self.password: str | None = kw.get("password")
        ct = kw.get("socket_connect_timeout", kw.get("socket_timeout"))
        self.connect_timeout_s: float | None = connect_timeout_s if connect_timeout_s is not _FROM_URL else (
            ct if ct is not None else DEFAULT_CONNECT_TIMEOUT_S)
        self.read_timeout_s: float | None = (read_timeout_s if read_timeout_s is not _FROM_URL
                                             else kw.get("socket_timeout"))
        self.ssl: ssl.SSLContext | None = None
        if cls is SSLConnection:  # rediss://: redis-py's own context from the ssl_* options
            self.ssl = SSLConnection(**{k: v for k, v in kw.items() if k.startswith("ssl_")}).ssl_context.get()
        self._setup = b"".join(self._setup_commands())
        self._n_setup = len(self._setup_commands())
        self._pool: LifoPool[LeanConnection] = LifoPool(
            self.size, self._connect, _is_broken, LeanConnection.close,
            lambda: ConnectionError("the Redis pool is closed"))
        self.free = self._pool.free  # the hot path pops from it directly
        self.acquire = self._pool.acquire  # type: ignore[method-assign]  # one call level less
        self.release = self._pool.release  # type: ignore[method-assign]

    def _setup_commands(self) -> list[bytes]:
        out = []
        if self.password is not None:
            out.append(pack("AUTH", self.username, self.password) if self.username else pack("AUTH", self.password))
        if self.db:
            out.append(pack("SELECT", self.db))
        return out

    async def open(self) -> None:
        """Open all ``size`` connections (fails with the first connect/AUTH/SELECT error)."""
        await self._pool.open()
        self.free = self._pool.free

    async def _connect(self) -> LeanConnection:
        try:
            return await self._open_connection()
        except Exception as exc:  # nothing was sent on this connection: stores/outcomes.py reads it so
            mark_connecting(exc)
            raise

    async def _open_connection(self) -> LeanConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                if self.path:
                    _, conn = await loop.create_unix_connection(
                        lambda: LeanConnection(loop, self.read_timeout_s), self.path)
                else:
                    _, conn = await loop.create_connection(
                        lambda: LeanConnection(loop, self.read_timeout_s), self.host, self.port,
                        ssl=self.ssl, server_hostname=self.host if self.ssl else None)
        except (TimeoutError, asyncio.TimeoutError) as exc:
            raise TimeoutError(f"Timeout connecting to {self._where()}") from exc
        except OSError as exc:
            raise ConnectionError(f"Error {exc.errno} connecting to {self._where()}. {exc.strerror or exc}.") from exc
        if self._setup:
            try:
                replies = await conn.request(self._setup, self._n_setup)
                if self._n_setup == 1:
                    replies = [replies]
                for r in replies:
                    raise_reply_error(r)
            except BaseException:
                conn.close()
                raise
        return conn

    def _where(self) -> str:
        return f"unix:{self.path}" if self.path else f"{self.host}:{self.port}"

    # -- checkout ---------------------------------------------------------------------------
    async def acquire(self) -> LeanConnection:
        return await self._pool.acquire()

    def release(self, conn: LeanConnection) -> None:
        self._pool.release(conn)

    @property
    def dropped(self) -> int:
        return self._pool.dropped

    async def execute(self, *args: Any) -> Any:
        """One command on a pooled connection; error replies raised."""
        free = self.free
        conn = free.pop() if free and not free[-1].broken else await self._pool.acquire()
        try:
            return raise_reply_error(await conn.request(pack(*args)))
        finally:
            self._pool.release(conn)

    async def request(self, packed: bytes, n: int = 1) -> Any:
        """Packed command(s) on a pooled connection; replies returned as they are (errors not raised)."""
        free = self.free
        conn = free.pop() if free and not free[-1].broken else await self._pool.acquire()
        try:
            return await conn.request(packed, n)
        finally:
            self._pool.release(conn)

    async def close(self) -> None:
        for conn in self._pool.close():
            conn.close()


def _is_broken(conn: LeanConnection) -> bool:
    return conn.broken

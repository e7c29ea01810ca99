"""A fixed-size LIFO free-list of connections, shared by the lean Redis client and PostgreSQL.

The engine never has more operations in flight than ``pool_size``, so on the measured path an
acquire is a ``list.pop()``; when the list is empty it still waits (FIFO) for a release.
A connection found broken (on checkout, or released as broken) is closed and dropped; the
next acquire opens a replacement, so a server restart gives errors, then recovery.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Awaitable, Callable, Generic, TypeVar

T = TypeVar("T")


class PoolClosed(Exception):
    pass


class LifoPool(Generic[T]):
    def __init__(self, size: int, connect: Callable[[], Awaitable[T]], is_broken: Callable[[T], bool],
                 discard: Callable[[T], None], closed_error: Callable[[], BaseException] = PoolClosed) -> None:
        self.size = max(1, size)
        self._connect = connect
        self._is_broken = is_broken
        self._discard = discard
        self._closed_error = closed_error
        self.free: list[T] = []  # hot path: ``pool.free.pop()`` when non-empty and not broken
        self._waiters: collections.deque[asyncio.Future[T | None]] = collections.deque()
        self._open = 0  # connections existing or being opened
        self._closed = True
        self.dropped = 0  # broken connections discarded (each replaced on a later acquire)

    async def open(self, n: int | None = None) -> None:
        """Open ``n`` (default all ``size``) connections now; fails with the first error."""
        self._closed = False
        n = self.size if n is None else max(0, min(n, self.size))
        results = await asyncio.gather(*(self._connect() for _ in range(n)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        good = [r for r in results if not isinstance(r, BaseException)]
        if errors:
            for c in good:
                self._discard(c)  # type: ignore[arg-type]
            self._closed = True
            raise errors[0]
        self.free.extend(good)  # type: ignore[arg-type]
        self._open = len(good)

    async def acquire(self) -> T:
        free = self.free
        while free:
            conn = free.pop()
            if not self._is_broken(conn):
                return conn
            self._drop(conn)
        if self._closed:
            raise self._closed_error()
        if self._open < self.size:
            return await self._replacement()
        fut: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            got = await fut  # a released connection, or None: open a replacement yourself
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                handed = fut.result()  # handed over just as we were cancelled: pass it on
                if handed is None:
                    self._wake(None)
                else:
                    self.release(handed)
            raise
        if got is None:
            return await self._replacement()
        if self._is_broken(got):
            self._drop(got)
            return await self._replacement()
        return got

    async def _replacement(self) -> T:
        self._open += 1
        try:
            return await self._connect()
        except BaseException:
            self._open -= 1
            self._wake(None)
            raise

    def release(self, conn: T) -> None:
        if self._closed or self._is_broken(conn):
            self._drop(conn)
            self._wake(None)
        elif not self._wake(conn):
            self.free.append(conn)

    def discard(self, conn: T) -> None:
        """Give back a connection that must not be reused (state unknown after an error)."""
        self._drop(conn)
        self._wake(None)

    def _wake(self, conn: T | None) -> bool:
        while self._waiters:
            w = self._waiters.popleft()
            if w.done():
                continue
            if conn is None and self._open >= self.size:
                self._waiters.appendleft(w)
                return False
            w.set_result(conn)
            return True
        return False

    def _drop(self, conn: T) -> None:
        self._discard(conn)
        if not self._closed:
            self._open -= 1
            self.dropped += 1

    def close(self) -> list[T]:
        """Mark closed; returns the idle connections (the caller closes them)."""
        self._closed = True
        idle = list(self.free)
        self.free.clear()  # in place: holders of ``free`` see it empty
        self._open = 0
        while self._waiters:
            w = self._waiters.popleft()
            if not w.done():
                w.set_exception(self._closed_error())
        return idle

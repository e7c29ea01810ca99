"""The servers' own counters, read before and after a window of operations (never reset).

PostgreSQL, all read at once by one statement and updated by the server immediately (no lazily
flushed statistics):

* **write transactions**: the transaction-id counter (``pg_current_snapshot()``'s xmax). A
  transaction gets an id when it first writes a row; its COMMIT then waits for the WAL to be
  flushed to disk when ``synchronous_commit`` is on (read-only transactions never wait). So the
  counter's advance is the number of commits that flushed WAL;
* **WAL bytes**: ``pg_current_wal_insert_lsn()``'s advance;
* **statements and their execution time**: ``pg_stat_statements`` (calls, total_exec_time), for
  this database only, when the module is loaded and the extension exists in this database
  (fridgebench's own servers load it; on someone else's server it is used only if they have).

Redis: ``INFO commandstats`` (calls and server-side µs per command; ``INFO`` itself left out).

All of these are server-wide (pg_stat_statements: database-wide): on a server others use, their
traffic lands in the window too. :func:`background` measures the counters over an idle window, so
a profile can say whether it ran on a quiet server.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as aioredis


@dataclass(frozen=True)
class PgSnapshot:
    xid: int
    wal_lsn: int
    statements: int | None  # pg_stat_statements calls in this database (None: not available)
    exec_ms: float | None
    statement_calls: dict[str, int] = field(default_factory=dict)  # queryid -> calls
    statement_texts: dict[str, str] = field(default_factory=dict)  # queryid -> the statement's start

    def minus(self, before: "PgSnapshot", own_statements: int = 1) -> dict[str, Any]:
        """The window's figures; ``own_statements`` of the counted calls were this reader's own."""
        out: dict[str, Any] = {"write_transactions": self.xid - before.xid, "wal_bytes": self.wal_lsn - before.wal_lsn}
        if self.statements is not None and before.statements is not None:
            out["statements"] = self.statements - before.statements - own_statements
            out["exec_ms"] = round((self.exec_ms or 0) - (before.exec_ms or 0), 4)
            by_text: dict[str, int] = {}  # two statements may start alike: keyed by id, summed by text
            for q, n in self.statement_calls.items():
                d = n - before.statement_calls.get(q, 0)
                if d > 0:
                    text = self.statement_texts.get(q, q)
                    by_text[text] = by_text.get(text, 0) + d
            out["statement_calls"] = by_text
        return out


def _lsn(text: str) -> int:
    hi, _, lo = text.partition("/")
    return (int(hi, 16) << 32) + int(lo, 16)


class PgCounters:
    """Reads :class:`PgSnapshot` over one connection of its own."""

    def __init__(self, conn: asyncpg.Connection, pgss_schema: str | None, synchronous_commit: str) -> None:
        self.conn = conn
        self.pgss_schema = pgss_schema
        self.synchronous_commit = synchronous_commit
        base = ("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xid, "
                "pg_current_wal_insert_lsn()::text AS lsn")
        if pgss_schema is None:
            self._sql = base
        else:
            view = f'"{pgss_schema}".pg_stat_statements'
            self._sql = (base + ", (SELECT coalesce(json_object_agg(queryid::text || '/' || userid::text || '/' || toplevel::text, "
                         "json_build_array(calls, left(query, 200))), '{}') "
                         f"FROM {view} WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())) "
                         "AS calls, "
                         f"(SELECT coalesce(sum(total_exec_time), 0) FROM {view} "
                         "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())) AS exec_ms")

    @classmethod
    async def connect(cls, dsn: str) -> "PgCounters":
        """A connection of its own; pg_stat_statements only where it is loaded and installed here."""
        conn = await asyncpg.connect(dsn, timeout=10)
        try:
            schema = await conn.fetchval(
                "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                "WHERE e.extname = 'pg_stat_statements'")
            if schema is not None:
                try:  # the extension exists; the module must also be loaded for the view to answer
                    await conn.fetchval(f'SELECT count(*) FROM "{schema}".pg_stat_statements LIMIT 1')
                except asyncpg.PostgresError:
                    schema = None
            sync = str(await conn.fetchval("SHOW synchronous_commit"))
            counters = cls(conn, schema, sync)
            try:
                await counters.snapshot()
            except asyncpg.PostgresError:  # e.g. a standby (no WAL insert position): without pg_stat_statements
                counters = cls(conn, None, sync)  # and, failing that too, the caller goes without server counters
                await counters.snapshot()
        except BaseException:
            await conn.close()
            raise
        return counters

    @property
    def has_statements(self) -> bool:
        return self.pgss_schema is not None

    async def snapshot(self) -> PgSnapshot:
        row = await self.conn.fetchrow(self._sql)
        if self.pgss_schema is None:
            return PgSnapshot(int(row["xid"]), _lsn(row["lsn"]), None, None)
        entries = json.loads(row["calls"])
        calls = {k: int(v[0]) for k, v in entries.items()}
        texts = {k: str(v[1]) for k, v in entries.items()}
        return PgSnapshot(int(row["xid"]), _lsn(row["lsn"]), sum(calls.values()), float(row["exec_ms"]), calls, texts)

    async def close(self) -> None:
        await self.conn.close()


@dataclass(frozen=True)
class RedisSnapshot:
    calls: dict[str, int]
    usec: dict[str, int]

    def minus(self, before: "RedisSnapshot") -> dict[str, Any]:
        calls = {c: n - before.calls.get(c, 0) for c, n in self.calls.items()}
        usec = {c: n - before.usec.get(c, 0) for c, n in self.usec.items()}
        calls = {c: n for c, n in calls.items() if n > 0}
        return {"commands": sum(calls.values()), "by_command": calls,
                "server_us": sum(usec.get(c, 0) for c in calls)}


class RedisCounters:
    """``INFO commandstats`` through a client of its own."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    @classmethod
    async def connect(cls, url: str) -> "RedisCounters":
        client = aioredis.from_url(url)
        try:
            await client.ping()
        except BaseException:
            await client.aclose()
            raise
        return cls(client)

    async def snapshot(self) -> RedisSnapshot:
        stats = await self.client.info("commandstats")
        calls: dict[str, int] = {}
        usec: dict[str, int] = {}
        for key, v in stats.items():
            name = key.removeprefix("cmdstat_").upper()
            if name == "INFO" or not isinstance(v, dict):
                continue
            calls[name] = int(v.get("calls", 0))
            usec[name] = int(v.get("usec", 0))
        return RedisSnapshot(calls, usec)

    async def close(self) -> None:
        await self.client.aclose()


async def background(snapshot: Any, seconds: float = 0.3) -> dict[str, Any]:
    """What moved on the server while nothing of ours ran, per second."""
    a = await snapshot()
    await asyncio.sleep(seconds)
    b = await snapshot()
    d = b.minus(a)
    return {k: round(v / seconds, 1) for k, v in d.items() if isinstance(v, (int, float))}

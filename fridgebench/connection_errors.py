"""One mapping from the client libraries' connection failures to one clear line each.

fridgebench talks to PostgreSQL through asyncpg and psycopg and to Redis through redis-py (and
the migrate's raw writer, whose failures are already ``StoreUnavailable``). Each library reports
"unreachable", "no such database", "wrong password" or "the server went away" in its own way.
:func:`store_error` turns any of them into a :class:`StoreUnavailable` that names the server (by
its masked URL), the cause and what to do. It is the only place that knows these exception types:

* the places that connect call it (``provision.probe``, ``migrate.run``, ``migrate.target``), and
* the CLI's error boundary calls it for anything that escapes a command, so a command that
  forgets to wrap a connect still prints the same line, never "unexpected OperationalError".

The client libraries are imported lazily: only once an error is being classified.
"""

from __future__ import annotations

import asyncio
import re
from typing import Literal, Mapping

from fridgebench.config import mask_text, mask_url
from fridgebench.errors import FridgebenchError, StoreUnavailable

Kind = Literal["postgres", "redis"]

# what each store's URL is called on the command line, for the hints
DEFAULT_FLAG: Mapping[str, str] = {"postgres": "--postgres-dsn", "redis": "--redis-url"}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return mask_text(text.splitlines()[0].strip() if text else type(exc).__name__)


def _at(url: str | None) -> str:
    return f" at {mask_url(url)}" if url else ""


def _library(exc: BaseException) -> Kind | None:
    """Which store's client raised ``exc``: by its type, else by the frames it passed through
    (asyncpg raises plain ``OSError`` / ``TimeoutError`` when it cannot connect)."""
    mod = type(exc).__module__
    if mod.startswith(("asyncpg", "psycopg")):
        return "postgres"
    if mod.startswith("redis"):
        return "redis"
    tb = exc.__traceback__
    found: Kind | None = None
    while tb is not None:  # the innermost library frame wins
        name = str(tb.tb_frame.f_globals.get("__name__", ""))
        if name.startswith(("asyncpg", "psycopg")):
            found = "postgres"
        elif name.startswith("redis"):
            found = "redis"
        tb = tb.tb_next
    return found


def store_error(exc: BaseException, kind: Kind | None = None, url: str | None = None,
                flag: str | None = None, *, connecting: bool = False) -> FridgebenchError | None:
    """The one-line error for a connection-level failure ``exc`` of store ``kind`` at ``url``
    (both guessed when not given), or None when ``exc`` is not one (a bug, or a query error).

    ``connecting``: ``exc`` came from connecting (or the first command), so any error reply of
    the server is about the connection (e.g. ``AUTH`` refused), not a bug of ours."""
    if isinstance(exc, FridgebenchError):
        return exc
    kind = kind or _library(exc)
    if kind == "postgres":
        return _postgres(exc, url, flag or DEFAULT_FLAG["postgres"])
    if kind == "redis":
        return _redis(exc, url, flag or DEFAULT_FLAG["redis"], connecting)
    return None


def from_targets(exc: BaseException, targets: Mapping[str, tuple[str, str]]) -> FridgebenchError | None:
    """:func:`store_error` for an exception that escaped a command; ``targets`` maps a store kind to
    the ``(url, flag)`` the command was given, so the line names the right server and flag."""
    kind = _library(exc)
    if kind is None:
        return None
    url, flag = targets.get(kind, (None, None))
    return store_error(exc, kind, url, flag)


# --- PostgreSQL ---------------------------------------------------------------------------------

_PG_CLOSED = ("terminating connection", "server closed the connection", "connection is closed",
              "connection was closed", "connection not open", "consuming input failed", "could not receive data",
              "could not send data", "SSL SYSCALL error", "connection has been lost")


def _pg_kind(exc: BaseException) -> str | None:
    """``missing_db`` | ``password`` | ``login`` | ``starting`` | ``too_many`` | ``closed`` | ``unreachable``."""
    import asyncpg
    import psycopg

    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return "missing_db"
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return "password"
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return "login"
    if isinstance(exc, asyncpg.CannotConnectNowError):
        return "starting"
    if isinstance(exc, asyncpg.TooManyConnectionsError):
        return "too_many"
    if isinstance(exc, (asyncpg.ConnectionDoesNotExistError, asyncpg.ConnectionFailureError,
                        asyncpg.AdminShutdownError, asyncpg.CrashShutdownError)):
        return "closed"
    if isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc):
        return "closed"
    if isinstance(exc, psycopg.Error):
        state = getattr(exc, "sqlstate", None) or ""
        text = str(exc)
        if state == "3D000" or re.search(r'database "[^"]*" does not exist', text):
            return "missing_db"
        if state == "28P01" or "password authentication failed" in text or "no password supplied" in text:
            return "password"
        if state.startswith("28") or re.search(r'role "[^"]*" does not exist', text) or "no pg_hba.conf entry" in text:
            return "login"
        if state == "57P03" or "the database system is starting up" in text or "shutting down" in text:
            return "starting"
        if state == "53300" or "too many clients" in text:
            return "too_many"
        if state in ("57P01", "57P02") or state.startswith("08") or any(s in text for s in _PG_CLOSED):
            return "closed"
        if isinstance(exc, psycopg.OperationalError) and not state:
            return "unreachable"  # connection failed, host not found, timeout ...
        return None
    if isinstance(exc, (OSError, asyncio.TimeoutError)):
        return "unreachable"
    return None


def _postgres(exc: BaseException, url: str | None, flag: str) -> StoreUnavailable | None:
    kind = _pg_kind(exc)
    where = _at(url)
    why = _first_line(exc)
    if kind == "missing_db":
        return StoreUnavailable(f"PostgreSQL{where}: the database does not exist",
                                hint=f"create it (createdb) or name an existing one in {flag}")
    if kind == "password":
        return StoreUnavailable(f"PostgreSQL{where} rejected the password",
                                hint=f"check the user and password in {flag}")
    if kind == "login":
        return StoreUnavailable(f"PostgreSQL{where} refused the login: {why}",
                                hint=f"check the user in {flag} and the server's pg_hba.conf")
    if kind == "starting":
        return StoreUnavailable(f"PostgreSQL{where} is not accepting connections now: {why}",
                                hint="wait until it has started (or restarted), then run again")
    if kind == "too_many":
        return StoreUnavailable(f"PostgreSQL{where} has no free connection slot: {why}",
                                hint="lower --concurrency, or raise the server's max_connections")
    if kind == "closed":
        return StoreUnavailable(f"PostgreSQL{where} closed the connection: {why}",
                                hint="the server was stopped, restarted or crashed; check its log, then run again")
    if kind == "unreachable":
        if isinstance(exc, asyncio.TimeoutError) or (isinstance(exc, OSError) and "timed out" in str(exc)):
            why = "timed out"
        elif isinstance(exc, OSError) and exc.strerror:
            why = mask_text(exc.strerror)
        return StoreUnavailable(f"cannot reach PostgreSQL{where}: {why}",
                                hint="is the server running and the host/port right?")
    return None


# --- Redis ----------------------------------------------------------------------------------------

def _redis(exc: BaseException, url: str | None, flag: str, connecting: bool) -> StoreUnavailable | None:
    import redis

    where = _at(url)
    why = _first_line(exc)
    text = str(exc)
    if isinstance(exc, redis.AuthenticationError) or (
            isinstance(exc, redis.ResponseError) and ("WRONGPASS" in text or "NOAUTH" in text
                                                      or (connecting and "AUTH" in text))):
        return StoreUnavailable(f"Redis{where} refused the credentials: {why}",
                                hint=f"check the user/password in {flag}")
    if isinstance(exc, redis.ResponseError) and "DB index is out of range" in text:
        return StoreUnavailable(f"Redis{where} has no such db index: {why}",
                                hint=f"pick a db index below the server's `databases` setting (16 by default) in {flag}")
    if isinstance(exc, redis.BusyLoadingError):
        return StoreUnavailable(f"Redis{where} is loading its dataset: {why}",
                                hint="wait until it has loaded, then run again")
    if isinstance(exc, redis.ReadOnlyError):
        return StoreUnavailable(f"Redis{where} is a read-only replica: {why}",
                                hint=f"point {flag} at the primary")
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        if "closed" in text.lower() or "reset by peer" in text or "Broken pipe" in text:
            return StoreUnavailable(f"Redis{where} closed the connection: {why}",
                                    hint="the server was stopped, restarted or crashed; check it, then run again")
        return StoreUnavailable(f"cannot reach Redis{where}: {why}",
                                hint="is the server running and the host/port right?")
    if isinstance(exc, (OSError, asyncio.TimeoutError)):
        return StoreUnavailable(f"cannot reach Redis{where}: {'timed out' if isinstance(exc, asyncio.TimeoutError) else why}",
                                hint="is the server running and the host/port right?")
    if connecting and isinstance(exc, redis.ResponseError):
        return StoreUnavailable(f"Redis{where} answered with an error: {why}", hint=f"check {flag}")
    return None

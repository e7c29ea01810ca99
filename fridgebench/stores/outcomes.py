"""What a failed request means for the data: certainly not applied, or unknown.

Jepsen's three outcomes for a write: *ok* (acknowledged), *fail* (certainly not applied) and
*info* (indeterminate: it may or may not have been applied). A client library's exception says
which, if read with care:

* the request never left: the connection could not be opened (refused, connect timeout), the
  pool was closed, or the server refused it before running it (Redis ``-LOADING``, ``-OOM``,
  PostgreSQL 57P03 "starting up", "too many clients", a SQL error that rolled the statement back)
  -> **definite** failure;
* the request left and no answer came back: a read timeout, the connection lost or reset
  mid-request, PostgreSQL 57P01/57P02 (the server shut down or crashed while the statement ran:
  its commit may or may not have reached the WAL) -> **indeterminate**.

:func:`classify` is the one place that reads the client libraries' exceptions this way (the
engine records each failure under the returned class name). :func:`mark_connecting` is called
where connections are opened, so a timeout or ``OSError`` raised there reads as "never sent".
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

_CONNECTING = "fb_connecting"
_OVERRIDE = "fb_outcome"


@dataclass(frozen=True)
class Outcome:
    name: str  # short class name, used in timelines and error tables
    definite: bool  # True: the request was certainly not applied
    retryable: bool  # worth trying again (the server may come back)
    meaning: str = ""


def _o(name: str, definite: bool, retryable: bool, meaning: str) -> Outcome:
    return Outcome(name, definite, retryable, meaning)


REFUSED = _o("refused", True, True, "connection refused or could not be opened: nothing was sent")
CONNECT_TIMEOUT = _o("connect-timeout", True, True, "no connection within the connect timeout: nothing was sent")
LOADING = _o("loading", True, True, "Redis -LOADING: the server is loading its data set and runs no command")
STARTING = _o("starting", True, True, "PostgreSQL 57P03: starting up or in crash recovery; connection refused")
TOO_MANY = _o("too-many-connections", True, True, "PostgreSQL 53300: no free connection slot")
OOM = _o("oom", True, False, "Redis -OOM: maxmemory reached under noeviction; the write was refused")
READ_ONLY = _o("read-only", True, False, "Redis -READONLY: a replica refused the write")
SERVER_ERROR = _o("server-error", True, False, "the server refused the request with an error reply; nothing applied")
POOL_CLOSED = _o("pool-closed", True, False, "the client was closing: nothing was sent")
DEAD_CONNECTION = _o("dead-connection", True, True,
                     "a pooled connection the server had just ended (its error not yet read): nothing was sent")
TIMEOUT = _o("timeout", False, True, "sent, no reply within the request timeout: may have been applied")
LOST = _o("connection-lost", False, True, "sent, then the connection was closed or reset: may have been applied")
SHUTDOWN = _o("server-shutdown", False, True,
              "PostgreSQL 57P01/57P02: the server shut down or crashed while the statement ran: may have committed")
UNFINISHED = _o("unfinished", False, False, "still waiting when the run ended: may have been applied")
OTHER = _o("other", False, False, "an unexpected error: treated as may-have-been-applied")

OUTCOMES: dict[str, Outcome] = {o.name: o for o in (
    REFUSED, CONNECT_TIMEOUT, LOADING, STARTING, TOO_MANY, OOM, READ_ONLY, SERVER_ERROR, POOL_CLOSED, DEAD_CONNECTION,
    TIMEOUT, LOST, SHUTDOWN, UNFINISHED, OTHER)}


def mark_connecting(exc: BaseException) -> None:
    """Note that ``exc`` was raised while opening a connection (so the request was never sent)."""
    try:
        setattr(exc, _CONNECTING, True)
    except (AttributeError, TypeError):  # an exception type without a __dict__
        pass


def mark_indeterminate(exc: BaseException) -> None:
    """After retries: an earlier attempt may have been applied, whatever this last error says."""
    o = classify(exc)
    if o.definite:
        try:
            setattr(exc, _OVERRIDE, Outcome(o.name, False, o.retryable,
                                            o.meaning + "; an earlier attempt timed out or lost its "
                                            "connection, so the write may have been applied"))
        except (AttributeError, TypeError):
            pass


def classify(exc: BaseException) -> Outcome:
    """The outcome class of a request that raised ``exc`` (see the module docstring)."""
    forced = getattr(exc, _OVERRIDE, None)
    if isinstance(forced, Outcome):
        return forced
    connecting = bool(getattr(exc, _CONNECTING, False))
    mod = type(exc).__module__
    if mod.startswith("redis"):
        return _redis(exc, connecting)
    if mod.startswith("asyncpg"):
        return _asyncpg(exc, connecting)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):
        return CONNECT_TIMEOUT if connecting else TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return REFUSED
    if isinstance(exc, OSError):
        return REFUSED if connecting else LOST
    return OTHER


def _redis(exc: BaseException, connecting: bool) -> Outcome:
    from redis import exceptions as rx

    text = str(exc)
    if isinstance(exc, rx.BusyLoadingError):
        return LOADING
    if isinstance(exc, rx.OutOfMemoryError):
        return OOM
    if isinstance(exc, rx.ReadOnlyError):
        return READ_ONLY
    if isinstance(exc, rx.TimeoutError):
        return CONNECT_TIMEOUT if connecting or "connecting" in text else TIMEOUT
    if isinstance(exc, rx.ConnectionError):  # AuthenticationError is one too
        if isinstance(exc, rx.AuthenticationError):
            return SERVER_ERROR
        if "pool is closed" in text:
            return POOL_CLOSED
        if connecting or "connecting to" in text:
            return REFUSED
        return LOST
    if isinstance(exc, rx.ResponseError):
        return SERVER_ERROR
    return OTHER


def _asyncpg(exc: BaseException, connecting: bool) -> Outcome:
    import asyncpg

    if isinstance(exc, asyncpg.CannotConnectNowError):
        return STARTING
    if isinstance(exc, asyncpg.TooManyConnectionsError):
        return TOO_MANY
    if isinstance(exc, (asyncpg.AdminShutdownError, asyncpg.CrashShutdownError)):
        return REFUSED if connecting else SHUTDOWN
    if isinstance(exc, (asyncpg.ConnectionDoesNotExistError, asyncpg.ConnectionFailureError)):
        return REFUSED if connecting else LOST
    if isinstance(exc, asyncpg.PostgresError):
        return REFUSED if connecting else SERVER_ERROR
    if isinstance(exc, asyncpg.exceptions._base.InternalClientError) and "cannot switch to state" in str(exc):
        return DEAD_CONNECTION  # the protocol refused to start the query: nothing went out
    if isinstance(exc, asyncpg.InterfaceError):
        if "pool is closed" in str(exc):
            return POOL_CLOSED
        return REFUSED if connecting else LOST if "closed" in str(exc) else OTHER
    return OTHER

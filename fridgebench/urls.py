"""Every connection URL fridgebench accepts, checked before anything connects or starts.

One module for every command that takes a store's address (``compare``, ``ttl``, ``up``,
``migrate`` and ``migrate verify`` / ``cleanup``, ``rehearse fill`` / ``write``) and for the
environment fallbacks ``FRIDGEBENCH_POSTGRES_DSN`` / ``FRIDGEBENCH_REDIS_URL``.

The client libraries are lenient in ways that hurt here: redis-py reads
``redis://host:6379/abc`` as db 0 (so a run lands on another database than the one printed),
libpq fills a ``postgresql://`` with no database from the OS user's name, and the four clients
fridgebench uses (asyncpg, psycopg, redis-py and the migrate's raw RESP writer) do not all honour
the same options. So a URL is accepted only when every part of it means one thing to all of
them: anything else is a :class:`~fridgebench.errors.UsageError` (exit 2) naming the flag and the
bad part. What is accepted is also described (:attr:`PostgresTarget.display`,
:attr:`RedisTarget.display`): ``user@host:port/db``, never a password, for every command's
first line.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import re
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

from fridgebench.config import mask_url
from fridgebench.errors import UsageError

PG_SCHEMES = ("postgresql", "postgres")
REDIS_SCHEMES = ("redis", "rediss", "unix")
PG_EXAMPLE = "postgresql://user@host:5432/dbname[?sslmode=require]"
REDIS_EXAMPLE = "redis://host:6379/0 (rediss://... for TLS, unix:///path/redis.sock?db=0)"

# Query options every PostgreSQL client fridgebench uses (asyncpg and libpq via psycopg) reads the
# same way. An option only libpq knows (connect_timeout, keepalives, ...) would be sent to the
# server as a setting by asyncpg and refused there, so it is refused here, up front.
_PG_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
PG_OPTIONS: Mapping[str, str] = {
    "sslmode": " | ".join(_PG_SSLMODES),
    "sslrootcert": "a file", "sslcert": "a file", "sslkey": "a file", "sslcrl": "a file", "sslpassword": "text",
    "ssl_min_protocol_version": "TLSv1.2 | TLSv1.3", "ssl_max_protocol_version": "TLSv1.2 | TLSv1.3",
    "target_session_attrs": "any | read-write | read-only | primary | standby | prefer-standby",
    "application_name": "text", "options": "server settings, e.g. -c statement_timeout=5s",
    "passfile": "a file", "host": "a host name or a unix socket folder", "port": "a port number",
    "user": "a role name", "password": "text", "dbname": "a database name",
}
# Query options of redis-py URLs that every Redis client fridgebench uses honours.
_REDIS_TIMEOUTS = ("socket_timeout", "socket_connect_timeout")
_REDIS_SSL = ("ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname")
_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9._-]*[A-Za-z0-9_])?$")


@dataclass(frozen=True)
class PostgresTarget:
    """A validated PostgreSQL URL. ``url`` is what the clients get (it may hold a password)."""

    url: str
    user: str
    host: str  # a host name, an IP address, or a unix socket folder
    port: int
    database: str
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def display(self) -> str:
        """``user@host:port/db``: the resolved target, for humans; never a password."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{self.port}/{self.database}"

    @property
    def masked(self) -> str:
        return mask_url(self.url)


@dataclass(frozen=True)
class RedisTarget:
    """A validated Redis URL. ``url`` is what the clients get (it may hold a password)."""

    url: str
    scheme: str  # redis | rediss | unix
    host: str  # empty for unix://
    port: int  # 0 for unix://
    socket: str  # the unix socket path for unix://, else empty
    db: int
    username: str = ""
    password: str | None = field(default=None, repr=False)
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def display(self) -> str:
        """``redis://[user@]host:port/db`` (or ``unix:///path?db=N``); never a password."""
        user = f"{self.username}@" if self.username else ""
        if self.scheme == "unix":
            return f"unix://{user}{self.socket}?db={self.db}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{user}{host}:{self.port}/{self.db}"

    @property
    def masked(self) -> str:
        return mask_url(self.url)

    @property
    def ssl_options(self) -> dict[str, object]:
        """The ``ssl_*`` options, typed as redis-py's ``SSLConnection`` takes them."""
        out: dict[str, object] = {}
        for k, v in self.options.items():
            if k == "ssl_check_hostname":
                out[k] = _BOOLS[v.lower()]
            elif k.startswith("ssl_"):
                out[k] = v
        return out


def _bad(flag: str, url: str, what: str, hint: str) -> UsageError:
    """``flag`` is the option (``--redis-url``) or, for a value from the environment, ``NAME=``."""
    sep = "" if flag.endswith("=") else " "
    shown = f"{flag}{sep}{mask_url(url)}" if url else flag.rstrip("=")
    return UsageError(f"{shown}: {what}", hint=hint)


def _split_netloc(flag: str, url: str, netloc: str, example: str) -> tuple[str, str | None, str, str]:
    """``(user, password, host, port text)`` of a URL's authority part, decoded; refused when ambiguous."""
    userinfo, at, hostport = netloc.rpartition("@")
    if at and "@" in userinfo:
        raise _bad(flag, url, "the user or password holds an unencoded '@'",
                   "percent-encode it as %40, e.g. postgresql://app:p%40ss@db/fridge")
    user, colon, password = userinfo.partition(":")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise _bad(flag, url, f"the IPv6 host {hostport!r} has no closing ']'", f"use e.g. {example}")
        host, rest = hostport[1:end], hostport[end + 1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise _bad(flag, url, f"[{host}] is not an IPv6 address", f"use e.g. {example}") from None
        if rest and not rest.startswith(":"):
            raise _bad(flag, url, f"unexpected {rest!r} after the host [{host}]", f"use e.g. {example}")
        port = rest[1:] if rest else ""
    else:
        if "," in hostport:
            raise _bad(flag, url, f"several hosts ({hostport}) are not supported", "name one host")
        if hostport.count(":") > 1:
            raise _bad(flag, url, f"the host and port {hostport!r} are not valid",
                       f"an IPv6 address goes in brackets ([::1]:6379); use e.g. {example}")
        host, _, port = hostport.partition(":")
        host = unquote(host)
        if host and not _HOSTNAME.match(host):
            raise _bad(flag, url, f"the host {host!r} is not a valid host name or address", f"use e.g. {example}")
    return unquote(user), (unquote(password) if colon else None), host, port


def _port(flag: str, url: str, text: str, default: int, example: str) -> int:
    if text == "":
        return default
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise _bad(flag, url, f"the port {text!r} is not a port number (1-65535)", f"use e.g. {example}")
    return int(text)


def _query(flag: str, url: str, query: str, allowed: Mapping[str, str] | tuple[str, ...], example: str) -> dict[str, str]:
    if not query:
        return {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise _bad(flag, url, f"the options {query!r} are not name=value pairs joined by &",
                   f"use e.g. {example}") from None
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise _bad(flag, url, f"the option {name!r} is given twice", "keep one")
        if name not in allowed:
            raise _bad(flag, url, f"unknown option {name!r}", f"fridgebench accepts: {', '.join(allowed)}")
        out[name] = value
    return out


def postgres(value: str, flag: str = "--postgres-dsn") -> PostgresTarget:
    """Validate a PostgreSQL URL; :class:`UsageError` naming ``flag`` and the bad part otherwise."""
    url = value
    if not url or url != url.strip():
        raise _bad(flag, url, "is empty" if not url.strip() else "has spaces around it", f"use {PG_EXAMPLE}")
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise _bad(flag, url, "not a PostgreSQL URL", f"use {PG_EXAMPLE}"
                   + ("; fridgebench takes URLs, not key=value DSNs" if "=" in url else ""))
    if scheme not in PG_SCHEMES:
        raise _bad(flag, url, f"not a PostgreSQL URL (scheme {scheme!r}; fridgebench speaks postgresql://)",
                   f"use {PG_EXAMPLE}")
    parts = urlsplit(url)
    if parts.fragment:
        raise _bad(flag, url, f"unexpected '#{parts.fragment}'", f"use {PG_EXAMPLE}")
    user, password, host, port_text = _split_netloc(flag, url, parts.netloc, PG_EXAMPLE)
    opts = _query(flag, url, parts.query, PG_OPTIONS, PG_EXAMPLE)
    if "sslmode" in opts and opts["sslmode"] not in _PG_SSLMODES:
        raise _bad(flag, url, f"sslmode={opts['sslmode']!r} is not a mode", f"use one of: {', '.join(_PG_SSLMODES)}")
    for part, in_url in (("host", host), ("port", port_text), ("user", user), ("password", password),
                         ("dbname", parts.path.lstrip("/"))):
        if part in opts and in_url:
            raise _bad(flag, url, f"{part} is given both in the URL and as ?{part}=", "keep one")
    path = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
    database = path or opts.get("dbname", "")
    host = host or opts.get("host", "")
    if not database:
        missing = "names no database" + (" and no host" if not host else "")
        raise _bad(flag, url, f"{missing} (PostgreSQL would pick a database named after the user)",
                   f"name {'them' if not host else 'it'}: {PG_EXAMPLE}, e.g. postgresql://{user or 'app'}@{host or 'localhost'}:5432/fridge")
    if "/" in database:
        raise _bad(flag, url, f"the database name {database!r} holds a '/'", "percent-encode it as %2F if it really does")
    if not host:
        raise _bad(flag, url, "names no host (each client library would guess its own default)",
                   f"name it: {PG_EXAMPLE} (a unix socket: postgresql://user@/dbname?host=/var/run/postgresql)")
    if not host.startswith("/") and not _HOSTNAME.match(host):
        raise _bad(flag, url, f"?host={host!r} is not a host name or a socket folder", f"use {PG_EXAMPLE}")
    env_port = os.environ.get("PGPORT", "")  # what both client libraries fall back to
    port = _port(flag, url, port_text or opts.get("port", ""), int(env_port) if env_port.isdigit() else 5432,
                 PG_EXAMPLE)
    user = user or opts.get("user", "") or os.environ.get("PGUSER", "") or getpass.getuser()
    return PostgresTarget(url=url, user=user, host=host, port=port, database=database, options=opts)


def redis(value: str, flag: str = "--redis-url") -> RedisTarget:
    """Validate a Redis URL; :class:`UsageError` naming ``flag`` and the bad part otherwise."""
    url = value
    if not url or url != url.strip():
        raise _bad(flag, url, "is empty" if not url.strip() else "has spaces around it", f"use {REDIS_EXAMPLE}")
    scheme, sep, _ = url.partition("://")
    if not sep or scheme not in REDIS_SCHEMES:
        raise _bad(flag, url, "not a Redis URL" + (f" (scheme {scheme!r})" if sep else ""), f"use {REDIS_EXAMPLE}")
    parts = urlsplit(url)
    if parts.fragment:
        raise _bad(flag, url, f"unexpected '#{parts.fragment}'", f"use {REDIS_EXAMPLE}")
    allowed = _REDIS_TIMEOUTS + (_REDIS_SSL if scheme == "rediss" else ()) + (("db",) if scheme == "unix" else ())
    try:
        opts = _query(flag, url, parts.query, allowed, REDIS_EXAMPLE)
    except UsageError:
        name = next((k for k, _ in parse_qsl(parts.query, keep_blank_values=True)), "")
        if scheme != "unix" and name == "db":
            raise _bad(flag, url, "the db index goes in the path, not in ?db=",
                       "use redis://host:6379/N") from None
        if scheme == "redis" and name in _REDIS_SSL:
            raise _bad(flag, url, f"{name} applies to TLS connections", "use rediss:// for TLS") from None
        raise
    for name in _REDIS_TIMEOUTS:
        if name in opts:
            try:
                ok = 0 < float(opts[name]) < float("inf")
            except ValueError:
                ok = False
            if not ok:
                raise _bad(flag, url, f"{name}={opts[name]!r} is not a number of seconds > 0",
                           f"e.g. ?{name}=5")
    if "ssl_cert_reqs" in opts and opts["ssl_cert_reqs"] not in ("none", "optional", "required"):
        raise _bad(flag, url, f"ssl_cert_reqs={opts['ssl_cert_reqs']!r} is not none, optional or required",
                   "e.g. ?ssl_cert_reqs=required")
    if "ssl_check_hostname" in opts and opts["ssl_check_hostname"].lower() not in _BOOLS:
        raise _bad(flag, url, f"ssl_check_hostname={opts['ssl_check_hostname']!r} is not true or false",
                   "e.g. ?ssl_check_hostname=true")
    user, password, host, port_text = _split_netloc(flag, url, parts.netloc, REDIS_EXAMPLE)
    if scheme == "unix":
        if host or port_text:
            raise _bad(flag, url, f"a unix:// URL names a socket path, not a host ({parts.netloc})",
                       "use unix:///path/to/redis.sock?db=0")
        socket = unquote(parts.path)
        if not socket.startswith("/") or socket == "/":
            raise _bad(flag, url, "names no socket path", "use unix:///path/to/redis.sock?db=0")
        db_text = opts.get("db", "0")
        where = "?db="
    else:
        if not host:
            raise _bad(flag, url, "names no host", f"use {REDIS_EXAMPLE}")
        socket = ""
        db_text = parts.path[1:] if parts.path.startswith("/") else parts.path
        db_text = db_text or "0"
        where = "the path"
    if not db_text.isdigit() or not db_text.isascii():
        raise _bad(flag, url, f"the db index {unquote(db_text)!r} in {where} is not a number "
                   "(redis-py would silently use db 0)",
                   "use a db index 0-15 (or up to the server's `databases` setting), e.g. "
                   + ("unix:///path/redis.sock?db=3" if scheme == "unix" else "redis://host:6379/3"))
    port = 0 if scheme == "unix" else _port(flag, url, port_text, 6379, REDIS_EXAMPLE)
    return RedisTarget(url=url, scheme=scheme, host=host, port=port, socket=socket, db=int(db_text),
                       username=user, password=password, options=opts)


def describe(kind: str, url: str) -> str:
    """The resolved target of a URL already accepted (``user@host:port/db``), or the masked URL when it
    does not parse (a masked URL from an older record)."""
    try:
        return (postgres(url) if kind == "postgres" else redis(url)).display
    except UsageError:
        return mask_url(url)

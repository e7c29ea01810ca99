"""External stores: never started or stopped, only checked up front and described."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from fridgebench.config import mask_url
from fridgebench.errors import UsageError
from fridgebench.provision import probe
from fridgebench.provision.base import ServerInfo


def _host_port(url: str, default_port: int) -> tuple[str, int | None]:
    try:
        s = urlsplit(url)
        return s.hostname or "", s.port or default_port
    except ValueError:
        return "", None


def postgres(dsn: str) -> ServerInfo:
    """Check the DSN (connect, SHOW) and describe the server; :class:`StoreUnavailable` if unusable."""
    if not dsn.startswith(("postgres://", "postgresql://")):  # asyncpg takes URLs only, not key=value DSNs
        raise UsageError(f"--postgres-dsn {mask_url(dsn)}: not a PostgreSQL URL",
                         hint="use postgresql://user:password@host:5432/dbname[?sslmode=require]")
    t0 = time.monotonic()
    version, durability = probe.run_sync(lambda: probe.pg_probe(dsn))
    host, port = _host_port(dsn, 5432)
    return ServerInfo("postgres", "external", mask_url(dsn), version=version, host=host, port=port,
                      durability=durability, started_in_s=None,
                      notes=(f"connected in {time.monotonic() - t0:.2f} s",))


def redis(url: str) -> ServerInfo:
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise UsageError(f"--redis-url {mask_url(url)}: not a Redis URL",
                         hint="use redis://[:password@]host:6379/0 or rediss://... for TLS")
    t0 = time.monotonic()
    version, durability = probe.redis_probe(url)
    host, port = _host_port(url, 6379)
    return ServerInfo("redis", "external", mask_url(url), version=version, host=host, port=port,
                      durability=durability, started_in_s=None,
                      notes=(f"connected in {time.monotonic() - t0:.2f} s",))


def unused(kind: str) -> ServerInfo:
    """Placeholder for a store the command does not need."""
    return ServerInfo(kind, "external", "")  # type: ignore[arg-type]

"""External stores: never started or stopped, only checked up front and described."""

from __future__ import annotations

import time

from fridgebench import urls
from fridgebench.config import mask_url
from fridgebench.provision import probe
from fridgebench.provision.base import ServerInfo


def postgres(dsn: str) -> ServerInfo:
    """Check the DSN (valid, then connect and SHOW) and describe the server; :class:`UsageError` for a
    malformed DSN, :class:`StoreUnavailable` if unusable."""
    target = urls.postgres(dsn, "--postgres-dsn")
    t0 = time.monotonic()
    version, durability = probe.run_sync(lambda: probe.pg_probe(dsn))
    return ServerInfo("postgres", "external", mask_url(dsn), version=version, host=target.host, port=target.port,
                      durability=durability, started_in_s=None,
                      notes=(f"connected in {time.monotonic() - t0:.2f} s",))


def redis(url: str) -> ServerInfo:
    target = urls.redis(url, "--redis-url")
    t0 = time.monotonic()
    version, durability = probe.redis_probe(url)
    host, port = (target.socket, None) if target.scheme == "unix" else (target.host, target.port)
    return ServerInfo("redis", "external", mask_url(url), version=version, host=host, port=port,
                      durability=durability, started_in_s=None,
                      notes=(f"connected in {time.monotonic() - t0:.2f} s",))


def unused(kind: str) -> ServerInfo:
    """Placeholder for a store the command does not need."""
    return ServerInfo(kind, "external", "")  # type: ignore[arg-type]

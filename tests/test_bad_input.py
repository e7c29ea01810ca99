"""Bad input through the real CLI (a subprocess, as an operator runs it), against real servers.

Issue 9, part B: every URL validated before anything connects (exit 2, the bad part named), a
PostgreSQL DSN must name its database, every command's first lines name the resolved target,
``ttl --ttl`` bounded and long waits announced with their end time, ``rehearse write`` fails when
nothing it did succeeded, one mapping of connection errors for every command, flag overrides named
as flags, ``--out`` checked before any server starts, no ``*.tmp`` left by a failed write, servers
left running by a killed ``up`` shown by ``status`` and reported by ``down``, and ``migrate
verify``'s own exit status for differences.

Servers: throwaway Valkey servers started here, fresh ``fb_test_*`` databases on the machine's
PostgreSQL (:mod:`tests.servers`), and fridgebench's embedded servers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
import redis

from fridgebench.provision.binaries import embedded_valkey
from fridgebench.provision.local import free_port
from tests import procs, servers
from tests.procs import servers_under

FB = [sys.executable, "-m", "fridgebench.cli"]
UNREACHABLE_PG = "postgresql://postgres:hunter2@127.0.0.1:1/fb_test_nowhere"


def fb(*args: str, env: dict[str, str] | None = None, timeout: float = 180,
       **popen: object) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FRIDGEBENCH_") or k.startswith("FRIDGEBENCH_TEST")}
    return subprocess.run([*FB, *args], capture_output=True, text=True, timeout=timeout,
                          env={**clean, "COLUMNS": "200", **(env or {})}, **popen)  # type: ignore[call-overload]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def one_error(res: subprocess.CompletedProcess[str], code: int) -> str:
    """The single ``error:`` line of a run that exited ``code`` with no traceback."""
    assert res.returncode == code, f"exit {res.returncode}: {res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr + res.stdout
    lines = error_lines(res.stderr)
    assert len(lines) == 1, res.stderr
    assert "hunter2" not in res.stderr + res.stdout
    return lines[0]


@pytest.fixture
def run_root(fb_run_root: Path) -> Path:
    """A private run root (conftest: removed afterwards, whatever a failed test left running)."""
    return fb_run_root


@contextlib.contextmanager
def throwaway_valkey(*extra: str) -> Iterator[int]:
    """A Valkey fridgebench did not start, on a free port: its port; stopped afterwards."""
    port = free_port()
    folder = tempfile.mkdtemp(prefix="fb-test-valkey-")
    proc = subprocess.Popen([str(embedded_valkey()), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", folder, *extra], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, "throwaway Valkey did not start"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def valkey() -> Iterator[int]:
    with throwaway_valkey() as port:
        yield port


@pytest.fixture
def pg_db() -> Iterator[str]:
    """A fresh, empty ``fb_test_*`` database on the machine's PostgreSQL (dropped afterwards)."""
    with servers.machine_database("fb_test_input") as dsn:
        yield dsn


def no_server_started(res: subprocess.CompletedProcess[str], root: Path) -> None:
    assert "started PostgreSQL" not in res.stderr and "started Valkey" not in res.stderr, res.stderr
    assert servers_under(root) == []
    assert not list(root.glob("run-*")) and not (root / "up.json").exists()


# --- item 2: every URL validated before connecting -------------------------------------------------

# every command (and flag) that takes a Redis URL
REDIS_COMMANDS = {
    "compare": ["compare", "--stores", "redis-atomic", "--duration", "1", "--warmup", "0", "--redis-url"],
    "ttl": ["ttl", "--stores", "redis-atomic", "--redis-url"],
    "up": ["up", "--redis-url"],
    "migrate": ["migrate", "--dry-run", "--from", UNREACHABLE_PG, "--to"],
    "migrate verify": ["migrate", "verify", "--from", UNREACHABLE_PG, "--to"],
    "migrate cleanup": ["migrate", "cleanup", "--from", UNREACHABLE_PG, "--to"],
}


@pytest.mark.parametrize("command", list(REDIS_COMMANDS))
def test_a_non_numeric_redis_db_index_is_refused_not_read_as_db_0(command: str, valkey: int, run_root: Path,
                                                                  tmp_path: Path) -> None:
    """redis-py reads redis://host:port/abc as db 0: compare then ran (and reset sessions) on db 0."""
    db0 = redis.Redis(port=valkey, db=0)
    db0.set("session:not-fridgebenchs", '{"created_at": "2024-01-01T00:00:00+00:00", "ingredients": ["김치"]}')
    db0.set("other:keep", "1")
    connections = db0.info("stats")["total_connections_received"]
    url = f"redis://127.0.0.1:{valkey}/abc"
    extra = {"compare": ["--run-dir", str(run_root), "--out", str(tmp_path / "out")],
             "ttl": ["--run-dir", str(run_root), "--out", str(tmp_path / "out")],
             "up": ["--run-dir", str(run_root)]}.get(command, [])
    res = fb(*REDIS_COMMANDS[command], url, *extra)
    line = one_error(res, 2)
    flag = "--to" if command.startswith("migrate") else "--redis-url"
    assert f"{flag} {url}:" in line and "db index 'abc'" in line, line
    assert sorted(db0.keys()) == [b"other:keep", b"session:not-fridgebenchs"]  # db 0 untouched
    assert db0.info("stats")["total_connections_received"] == connections  # nothing even connected
    no_server_started(res, run_root)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", list(REDIS_COMMANDS))
def test_a_malformed_redis_url_is_a_usage_error(command: str, run_root: Path) -> None:
    """``redis://:::`` exited 1 ("unexpected ValueError"); it is bad input: exit 2, naming the part."""
    extra = ["--run-dir", str(run_root)] if command in ("compare", "ttl", "up") else []
    line = one_error(fb(*REDIS_COMMANDS[command], "redis://:::", *extra), 2)
    assert "redis://:::" in line and "':::' are not valid" in line and "brackets" in line, line


@pytest.mark.parametrize(("url", "needle"), [
    ("redis://127.0.0.1:99999/0", "the port '99999' is not a port number"),
    ("redis://127.0.0.1:6379/0?db=3", "the db index goes in the path"),
    ("redis://127.0.0.1:6379/0?socket_timeout=soon", "socket_timeout='soon' is not a number"),
    ("redis://127.0.0.1:6379/0?retry_on_timeout=yes", "unknown option 'retry_on_timeout'"),
    ("redis://127.0.0.1:6379/0?ssl_cert_reqs=none", "use rediss://"),
    ("redis://127.0.0.1:6379/-1", "db index '-1'"),
    ("redis:///0", "names no host"),
    ("unix:///tmp/redis.sock?db=two", "db index 'two' in ?db="),
    ("http://127.0.0.1:6379/0", "not a Redis URL (scheme 'http')"),
])
def test_each_bad_part_of_a_redis_url_is_named(url: str, needle: str, run_root: Path) -> None:
    res = fb("up", "--run-dir", str(run_root), "--redis-url", url)
    assert needle in one_error(res, 2)
    no_server_started(res, run_root)


@pytest.mark.parametrize(("url", "needle"), [
    ("mysql://app@127.0.0.1/fridge", "not a PostgreSQL URL (scheme 'mysql'"),
    ("postgresql://app@127.0.0.1:0/fridge", "the port '0' is not a port number"),
    ("postgresql://app@db1,db2/fridge", "several hosts"),
    ("postgresql://app@127.0.0.1/fridge?connect_timeout=3", "unknown option 'connect_timeout'"),
    ("postgresql://app@127.0.0.1/fridge?sslmode=always", "sslmode='always' is not a mode"),
    ("postgresql://app:p@ss@127.0.0.1/fridge", "unencoded '@'"),
])
def test_each_bad_part_of_a_postgres_url_is_named(url: str, needle: str, run_root: Path) -> None:
    line = one_error(fb("up", "--run-dir", str(run_root), "--postgres-dsn", url), 2)
    assert needle in line, line
    assert servers_under(run_root) == []


def test_environment_fallbacks_are_validated_and_named(valkey: int, run_root: Path) -> None:
    url = f"redis://127.0.0.1:{valkey}/abc"
    line = one_error(fb("up", "--run-dir", str(run_root), env={"FRIDGEBENCH_REDIS_URL": url}), 2)
    assert line.startswith(f"error: FRIDGEBENCH_REDIS_URL={url}: the db index 'abc'"), line
    line = one_error(fb("migrate", "--dry-run", env={"FRIDGEBENCH_REDIS_URL": url,
                                                      "FRIDGEBENCH_POSTGRES_DSN": UNREACHABLE_PG}), 2)
    assert line.startswith(f"error: FRIDGEBENCH_REDIS_URL={url}:"), line
    line = one_error(fb("rehearse", "write", env={"FRIDGEBENCH_POSTGRES_DSN": "postgresql://127.0.0.1:1"}), 2)
    assert line.startswith("error: FRIDGEBENCH_POSTGRES_DSN=postgresql://127.0.0.1:1: names no database"), line
    assert servers_under(run_root) == []


# --- item 3: a DSN must name its database; every command names its targets --------------------------

PG_COMMANDS = {
    "compare": ["compare", "--stores", "postgres", "--postgres-dsn"],
    "ttl": ["ttl", "--stores", "postgres", "--postgres-dsn"],
    "up": ["up", "--postgres-dsn"],
    "migrate": ["migrate", "--dry-run", "--to", "redis://127.0.0.1:1/0", "--from"],
    "migrate verify": ["migrate", "verify", "--to", "redis://127.0.0.1:1/0", "--from"],
    "migrate cleanup": ["migrate", "cleanup", "--from"],
    "rehearse fill": ["rehearse", "fill", "--dsn"],
    "rehearse write": ["rehearse", "write", "--dsn"],
}


NO_DATABASE = ("postgresql://", "postgresql://postgres@127.0.0.1:1", "postgres://127.0.0.1:1/")


@pytest.mark.parametrize(("command", "url"), [(c, NO_DATABASE[i % 3]) for i, c in enumerate(PG_COMMANDS)])
def test_a_dsn_without_a_database_is_refused(command: str, url: str, run_root: Path, tmp_path: Path) -> None:
    """``postgresql://`` was accepted: libpq picked role and database named after the OS user and
    fridgebench created its tables there. PGHOST/PGPORT point nowhere, so the old behaviour fails
    harmlessly instead of reaching a real server."""
    extra = ["--run-dir", str(run_root), "--out", str(tmp_path)] if command in ("compare", "ttl") else \
        ["--run-dir", str(run_root)] if command == "up" else []
    flag = PG_COMMANDS[command][-1]
    res = fb(*PG_COMMANDS[command], url, *extra, env={"PGHOST": "127.0.0.1", "PGPORT": "1"})
    line = one_error(res, 2)
    assert f"{flag} {url}: names no database" in line, line
    assert "postgresql://user@host:5432/dbname" in line  # how to name one
    no_server_started(res, run_root)


def test_first_lines_name_each_target_as_user_host_port_db(pg_db: str, valkey: int, run_root: Path,
                                                           tmp_path: Path) -> None:
    name = pg_db.rsplit("/", 1)[1]
    with_password = pg_db.replace("://postgres@", "://postgres:hunter2@")  # trust auth: never asked for
    pg_target = f"postgres@{servers.PG_HOST}:{servers.PG_PORT}/{name}"
    redis_url = f"redis://127.0.0.1:{valkey}/3"

    res = fb("up", "--run-dir", str(run_root), "--postgres-dsn", with_password, "--redis-url", redis_url)
    assert res.returncode == 0, res.stderr
    first = res.stderr.splitlines()[:2]
    assert any(line.startswith("using PostgreSQL") and f" on {pg_target};" in line for line in first), first
    assert any(line.startswith("using Redis") or line.startswith("using Valkey") for line in first), first
    assert any(f" on {redis_url};" in line for line in first), first
    assert "hunter2" not in res.stderr + res.stdout

    res = fb("rehearse", "fill", "--dsn", with_password, "--sessions", "50")
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines()[0] == f"rehearse fill: PostgreSQL {pg_target}"
    res = fb("migrate", "--dry-run", "--from", with_password, "--to", redis_url, env={"FRIDGEBENCH_REPORTS": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    assert res.stderr.splitlines()[0] == f"migrate PostgreSQL {pg_target} → Redis {redis_url} (dry run)"
    res = fb("migrate", "verify", "--from", with_password, "--to", redis_url, env={"FRIDGEBENCH_REPORTS": str(tmp_path)})
    assert res.stderr.splitlines()[0] == f"verify PostgreSQL {pg_target} against Redis {redis_url}", res.stderr
    assert "hunter2" not in res.stderr + res.stdout


# --- item 5: ttl's TTL bounded; long waits say when they end --------------------------------------

def test_ttl_refuses_a_ttl_of_decades_before_starting_anything(run_root: Path, tmp_path: Path) -> None:
    for ttl, how_long in (("999999999", "years"), ("3601", "h")):
        res = fb("ttl", "--ttl", ttl, "--run-dir", str(run_root), "--out", str(tmp_path))
        line = one_error(res, 2)
        assert "above the maximum of 3600 s" in line and "would wait about" in line and how_long in line, line
        no_server_started(res, run_root)
    assert list(tmp_path.iterdir()) == []


_END = re.compile(r"takes about .+: expected to end around (\d\d:\d\d:\d\d)")


def _announced_end(stderr: str) -> datetime:
    m = _END.search(stderr)
    assert m, stderr
    now = datetime.now().astimezone()
    end = now.replace(hour=int(m[1][:2]), minute=int(m[1][3:5]), second=int(m[1][6:]), microsecond=0)
    return end if end >= now - timedelta(hours=12) else end + timedelta(days=1)


@pytest.mark.parametrize(("args", "expected_s"), [
    # ttl: per store the creation spread (2 s) plus up to 1.8 TTLs
    (["ttl", "--ttl", "100", "--stores", "postgres", "--postgres-dsn", UNREACHABLE_PG], 2 + 1.8 * 100),
    # compare: per store warm-up and duration, plus loading the scenario's 20,000 sessions (~3 s) and ~1 s more
    (["compare", "--stores", "postgres", "--duration", "300", "--warmup", "0", "--postgres-dsn", UNREACHABLE_PG], 304),
    (["rehearse", "write", "--duration", "7200", "--dsn", UNREACHABLE_PG], 7200),
])
def test_a_wait_over_a_minute_prints_its_expected_end(args: list[str], expected_s: float, tmp_path: Path,
                                                      run_root: Path) -> None:
    """The store is unreachable: the announcement comes before any connection (and the run fails fast)."""
    extra = ["--out", str(tmp_path), "--run-dir", str(run_root)] if args[0] in ("ttl", "compare") else []
    t0 = datetime.now().astimezone()
    res = fb(*args, *extra)
    line = one_error(res, 1)
    assert "cannot reach PostgreSQL" in line
    end = _announced_end(res.stderr)
    assert abs((end - t0).total_seconds() - expected_s) < 30, (end, t0, res.stderr)
    assert list(tmp_path.iterdir()) == []  # a run that never reached its stores leaves no run folder


def test_a_short_run_prints_no_end_time(run_root: Path, tmp_path: Path) -> None:
    res = fb("ttl", "--ttl", "5", "--stores", "postgres", "--postgres-dsn", UNREACHABLE_PG, "--out", str(tmp_path))
    one_error(res, 1)
    assert "expected to end" not in res.stderr


# --- item 6: rehearse write fails when nothing it did succeeded ------------------------------------

@pytest.mark.parametrize("json_out", [False, True])
def test_rehearse_write_without_the_tables_fails(pg_db: str, json_out: bool) -> None:
    res = fb("rehearse", "write", "--dsn", pg_db, "--duration", "1", *(["--json"] if json_out else []))
    line = one_error(res, 1)
    assert "has no fridge2fork tables" in line and "fridgebench rehearse fill --dsn" in line, line
    assert res.stdout == ""


def test_rehearse_write_where_every_operation_fails_says_why_once(pg_db: str) -> None:
    assert fb("rehearse", "fill", "--dsn", pg_db, "--sessions", "200").returncode == 0
    with psycopg.connect(pg_db, autocommit=True) as c:  # every change refused, as a read-only replica would
        c.execute("""CREATE FUNCTION fb_refuse() RETURNS trigger LANGUAGE plpgsql AS
                     $$BEGIN RAISE EXCEPTION 'rehearsal database is read-only'; END$$""")
        for table in ("user_fridge_sessions", "user_fridge_ingredients"):
            c.execute(f"CREATE TRIGGER fb_refuse BEFORE INSERT OR UPDATE OR DELETE ON {table} "
                      "FOR EACH STATEMENT EXECUTE FUNCTION fb_refuse()")
    for json_out in (False, True):
        res = fb("rehearse", "write", "--dsn", pg_db, "--duration", "1", "--rate", "200",
                 *(["--json"] if json_out else []))
        line = one_error(res, 1)
        assert "every operation failed" in line and "the first:" in line, line
        assert res.stderr.count("rehearsal database is read-only") == 1, res.stderr
        assert res.stdout == ""


def test_rehearse_write_reports_its_first_error_when_some_fail(pg_db: str) -> None:
    assert fb("rehearse", "fill", "--dsn", pg_db, "--sessions", "200").returncode == 0
    with psycopg.connect(pg_db, autocommit=True) as c:  # only creates are refused
        c.execute("""CREATE FUNCTION fb_no_create() RETURNS trigger LANGUAGE plpgsql AS
                     $$BEGIN RAISE EXCEPTION 'no new sessions today'; END$$""")
        c.execute("CREATE TRIGGER fb_no_create BEFORE INSERT ON user_fridge_sessions "
                  "FOR EACH STATEMENT EXECUTE FUNCTION fb_no_create()")
    res = fb("rehearse", "write", "--dsn", pg_db, "--duration", "1.5", "--rate", "200", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["errors"] > 0 and sum(doc["ops"].values()) > 0
    assert doc["ops"]["create"] == 0 and "no new sessions today" in doc["first_error"]


# --- item 7: one mapping of connection errors, every command ----------------------------------------

@pytest.mark.parametrize("command", ["compare", "up", "migrate", "migrate cleanup", "rehearse fill", "rehearse write"])
def test_connection_errors_read_the_same_in_every_command(command: str, run_root: Path, tmp_path: Path,
                                                          valkey: int) -> None:
    args = {
        "compare": ["compare", "--stores", "postgres", "--out", str(tmp_path), "--run-dir", str(run_root),
                    "--postgres-dsn"],
        "up": ["up", "--run-dir", str(run_root), "--postgres-dsn"],
        "migrate": ["migrate", "--to", f"redis://127.0.0.1:{valkey}/0", "--from"],
        "migrate cleanup": ["migrate", "cleanup", "--from"],
        "rehearse fill": ["rehearse", "fill", "--dsn"],
        "rehearse write": ["rehearse", "write", "--dsn"],
    }[command]
    env = {"FRIDGEBENCH_REPORTS": str(tmp_path)}
    unreachable = one_error(fb(*args, UNREACHABLE_PG, env=env), 1)
    assert unreachable.startswith("error: cannot reach PostgreSQL at postgresql://postgres:***@127.0.0.1:1/"), unreachable
    assert "is the server running" in unreachable and "unexpected" not in unreachable
    missing = servers.pg_dsn("fb_test_input_no_such_db").replace("://postgres@", "://postgres:hunter2@")
    no_db = one_error(fb(*args, missing, env=env), 1)
    assert "the database does not exist" in no_db and "createdb" in no_db and "unexpected" not in no_db, no_db
    assert servers_under(run_root) == []


# --- also: flag overrides are named as flags --------------------------------------------------------

@pytest.mark.parametrize(("args", "needle"), [
    (["--duration", "-1"], "--duration -1: should be greater than 0"),
    (["--warmup", "-2"], "--warmup -2: should be greater than or equal to 0"),
    (["--rate", "0"], "--rate 0: should be greater than 0"),
    (["--concurrency", "0"], "--concurrency 0:"),
    (["--sessions", "0"], "--sessions 0:"),
])
def test_a_bad_flag_override_names_the_flag_not_the_scenario_file(args: list[str], needle: str, run_root: Path,
                                                                   tmp_path: Path) -> None:
    res = fb("compare", *args, "--run-dir", str(run_root), "--out", str(tmp_path))
    line = one_error(res, 2)
    assert needle in line and ".toml" not in line, line
    no_server_started(res, run_root)


# --- also: --out checked first; no partial file after a failed write --------------------------------

def _unwritable_folder(base: Path) -> Path:
    """A folder nobody may write to: a 0555 one, or -- as root, who writes through modes -- sysfs's
    root, where not even root may create a file."""
    if os.geteuid() == 0:
        return Path("/sys")
    path = base / "read-only"
    path.mkdir(mode=0o555)
    return path


@pytest.mark.parametrize("case", ["file", "inside a file", "read-only"])
def test_an_unusable_out_folder_is_refused_before_any_server_starts(case: str, tmp_path: Path,
                                                                     run_root: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder\n")
    out = {"file": tmp_path / "a-file", "inside a file": tmp_path / "a-file" / "reports",
           "read-only": _unwritable_folder(tmp_path)}[case]
    before = sorted(p.name for p in out.iterdir()) if out.is_dir() else None
    for command in ("compare", "ttl"):
        res = fb(command, "--out", str(out), "--run-dir", str(run_root))
        line = one_error(res, 2)
        assert f"--out {out}:" in line and "pass a folder" in line, line
        assert ("not a folder" in line) if case != "read-only" else ("cannot write there" in line), line
        no_server_started(res, run_root)
    if before is not None:
        assert sorted(p.name for p in out.iterdir()) == before


def test_a_failed_results_write_leaves_no_tmp_file(pg_db: str, valkey: int, tmp_path: Path, run_root: Path) -> None:
    """Writes beyond ``ulimit -f`` fail (EFBIG) like a full disk: the run fails, marked INCOMPLETE,
    and no ``*.tmp`` (the disk-full run left a 0-byte ``*.hlog.tmp``). External stores, so no server
    process inherits the limit."""
    out = tmp_path / "out"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))

    res = fb("compare", "--stores", "postgres,redis-atomic", "--duration", "1", "--warmup", "0", "--sessions", "300",
             "--postgres-dsn", pg_db, "--redis-url", f"redis://127.0.0.1:{valkey}/0", "--out", str(out),
             "--run-dir", str(run_root), preexec_fn=limit)
    line = one_error(res, 1)
    assert "file too large" in line, line
    (run,) = list(out.iterdir())
    left = sorted(p.name for p in run.iterdir())
    assert "INCOMPLETE" in left and "results.json" not in left, left
    assert not [n for n in left if n.endswith(".tmp")], left


# --- also: servers a killed `up` left running ----------------------------------------------------------

def test_status_and_down_see_the_servers_of_an_up_killed_mid_start(run_root: Path) -> None:
    proc = procs.popen([*FB, "up", "--run-dir", str(run_root)], stderr=subprocess.PIPE, text=True,
                       start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while not any("started PostgreSQL" in line for line in lines):
        assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # after PostgreSQL started, before `up` recorded anything
    proc.wait(30)
    reader.join(10)
    left = servers_under(run_root)
    assert left, "the killed up left no server behind: nothing to test"
    assert not (run_root / "up.json").exists()

    res = fb("status", "--run-dir", str(run_root))
    assert res.returncode == 1, res.stderr
    assert "left running" in res.stderr and "fridgebench down" in res.stderr, res.stderr
    res = fb("status", "--run-dir", str(run_root), "--json")
    assert res.returncode == 1
    shown = {s["pid"]: s for s in json.loads(res.stdout)["servers"]}
    assert {p.pid for p in left} <= set(shown) and all(not s["recorded"] and s["alive"] for s in shown.values())

    res = fb("down", "--run-dir", str(run_root))
    assert res.returncode == 0, res.stderr
    assert "nothing to stop" not in res.stderr
    for p in left:
        assert f"(pid {p.pid})" in res.stderr, res.stderr
    assert servers_under(run_root) == []
    res = fb("status", "--run-dir", str(run_root))
    assert res.returncode == 0 and "left running" not in res.stderr, res.stderr


# --- also: migrate verify's own exit status for differences -----------------------------------------

def test_verify_exits_5_for_differences_and_1_when_it_cannot_compare(pg_db: str, valkey: int, tmp_path: Path) -> None:
    env = {"FRIDGEBENCH_REPORTS": str(tmp_path)}
    url = f"redis://127.0.0.1:{valkey}/2"
    assert fb("rehearse", "fill", "--dsn", pg_db, "--sessions", "100").returncode == 0
    res = fb("migrate", "--from", pg_db, "--to", url, env=env)
    assert res.returncode == 0, res.stderr
    res = fb("migrate", "verify", "--from", pg_db, "--to", url, "--settle", "0", env=env)
    assert res.returncode == 0, res.stderr
    r = redis.Redis(port=valkey, db=2)
    r.delete(next(iter(r.scan_iter(match="session:*"))))
    res = fb("migrate", "verify", "--from", pg_db, "--to", url, "--settle", "0", env=env)
    line = one_error(res, 5)
    assert "1 sessions differ" in line, line
    unreachable = one_error(fb("migrate", "verify", "--from", pg_db, "--to", "redis://127.0.0.1:1/2", env=env), 1)
    assert "cannot reach Redis" in unreachable
    assert "5 differences found" in " ".join(fb("migrate", "verify", "--help").stdout.split())


# --- every client reads a URL the same way -------------------------------------------------------------

def test_migrate_writes_where_a_unix_socket_url_points(pg_db: str, tmp_path: Path) -> None:
    """The backfill's raw writer read unix:///path?db=N as host 127.0.0.1:6379, db "path": it now
    reads every URL through the same validated parse as the other clients."""
    sock = tmp_path / "valkey.sock"
    with throwaway_valkey("--unixsocket", str(sock), "--unixsocketperm", "700") as port:
        url = f"unix://{sock}?db=4"
        env = {"FRIDGEBENCH_REPORTS": str(tmp_path / "reports")}
        assert fb("rehearse", "fill", "--dsn", pg_db, "--sessions", "200").returncode == 0
        res = fb("migrate", "--from", pg_db, "--to", url, env=env)
        assert res.returncode == 0, res.stderr
        assert res.stderr.splitlines()[0].endswith(f"→ Redis {url}")
        written = int(res.stderr.split(" sessions written")[0].rsplit(" ", 1)[1].replace(",", ""))
        r = redis.Redis(port=port, db=4)
        assert written > 150 and len(list(r.scan_iter(match="session:*", count=1000))) == written
        assert redis.Redis(port=port, db=0).dbsize() == 0
        res = fb("migrate", "verify", "--from", pg_db, "--to", url, "--settle", "0", env=env)
        assert res.returncode == 0 and "no differences" in res.stderr, res.stderr

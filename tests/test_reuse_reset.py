"""--reuse / --reset through the CLI: given together they are one usage line (exit 2) before anything
starts or connects, in every command that takes them; and the refusal of stores holding sessions
fridgebench did not write where no other test looked — `up` with external stores, and `compare` on
the servers `up` left running.

Covered elsewhere (not repeated): compare and ttl refusing, --reuse and --reset on external stores
(tests/test_external_safety.py); load (tests/load/test_load_external_safety.py); rehearse fill
(tests/migrate/test_migrate_cli.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
import typer

from fridgebench.cli import app
from tests.helpers import cli
from tests.procs import servers_under
from tests.test_external_safety import (FOREIGN_SESSION, error_line, flat, foreign_pg, foreign_redis,  # noqa: F401  (fixtures)
                                        pg_snapshot, redis_snapshot)

SECRET = "pw-never-shown"
UNREACHABLE = ["--postgres-dsn", f"postgresql://app:{SECRET}@127.0.0.1:1/fridge", "--redis-url",
               f"redis://:{SECRET}@127.0.0.1:1/0"]

# every command taking both flags, with what it needs besides them to get as far as it can
BOTH_FLAGS: dict[str, list[str]] = {
    "compare": ["compare", "--duration", "1"],
    "ttl": ["ttl", "--sessions", "10", "--ttl", "1"],
    "up": ["up"],
    "load": ["load", "--duration", "1"],
    "failure": ["failure", "reset", "--stores", "redis-atomic", "--duration", "4"],
    "rehearse fill": ["rehearse", "fill", "--dsn", f"postgresql://app:{SECRET}@127.0.0.1:1/fridge"],
}


def _commands_with(option: str) -> set[str]:
    """Every (sub)command of the CLI that declares ``option``, as "group command"."""
    found: set[str] = set()

    def walk(cmd: Any, path: tuple[str, ...]) -> None:  # Typer's own (vendored) click: duck-typed
        if path and any(option in getattr(p, "opts", ()) for p in cmd.params):
            found.add(" ".join(path))
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def test_the_table_names_every_command_that_takes_both_flags() -> None:
    assert _commands_with("--reuse") == _commands_with("--reset") == set(BOTH_FLAGS)


# each command with its own servers and with unreachable external ones (rehearse fill only ever
# fills a database it is given)
CASES = [(c, s) for c in BOTH_FLAGS for s in ("own servers", "unreachable external stores")
         if not (c == "rehearse fill" and s == "own servers")]


@pytest.mark.parametrize("command, stores", CASES)
def test_reuse_with_reset_is_one_usage_line_before_anything_starts(command: str, stores: str, fb_run_root: Path,
                                                                   tmp_path: Path) -> None:
    args = [*BOTH_FLAGS[command], "--reuse", "--reset"]
    if command != "rehearse fill":
        args += ["--run-dir", str(fb_run_root)]
        if stores != "own servers":
            args += UNREACHABLE  # nothing may connect: a connection error would be exit 1
    out = tmp_path / "reports"
    res = cli(*args, env={"FRIDGEBENCH_REPORTS": str(out)}, timeout=60)
    assert res.returncode == 2, res.stderr[-3000:]
    assert error_line(res.stderr) == "error: --reuse and --reset exclude each other — pick one"
    assert SECRET not in res.stderr + res.stdout
    assert not any(line.startswith(("started ", "using ")) for line in res.stderr.splitlines()), res.stderr
    assert servers_under(fb_run_root) == []
    assert not out.exists() or not any(out.iterdir())  # no run folder
    if command == "up":
        status = cli("status", "--run-dir", str(fb_run_root), "--json")
        assert status.returncode == 0 and json.loads(status.stdout) == {"servers": []}  # nothing recorded


# --- `up` with external stores holding someone else's sessions -------------------------------------

def test_up_refuses_external_stores_holding_foreign_sessions_before_starting_anything(
        foreign_redis: Any, foreign_pg: Any, fb_run_root: Path) -> None:  # noqa: F811
    url, client, redis_before = foreign_redis
    dsn, pg_before = foreign_pg
    for given, needle in ((["--redis-url", url], "5 session:* keys and 3 recipe:* keys (e.g. session:foreign-"),
                          (["--postgres-dsn", dsn], "8 sessions, 3 of them expired (e.g. session_id 'foreign-")):
        res = cli("up", "--run-dir", str(fb_run_root), *given)
        assert res.returncode == 2, res.stderr[-3000:]
        line = error_line(res.stderr)
        assert needle in line and "--reuse" in line and "--reset" in line, line
        assert "started " not in res.stderr  # the other store, which `up` would start, was not started
        assert servers_under(fb_run_root) == []
        status = cli("status", "--run-dir", str(fb_run_root), "--json")
        assert json.loads(status.stdout) == {"servers": []}
    assert redis_snapshot(client) == redis_before
    assert pg_snapshot(dsn) == pg_before


def test_up_reuse_leaves_foreign_sessions_and_reset_deletes_them_saying_how_many(
        foreign_redis: Any, foreign_pg: Any, fb_run_root: Path) -> None:  # noqa: F811
    url, client, redis_before = foreign_redis
    dsn, pg_before = foreign_pg
    external = ["--run-dir", str(fb_run_root), "--postgres-dsn", dsn, "--redis-url", url]
    res = cli("up", *external, "--reuse")
    assert res.returncode == 0, res.stderr[-3000:]
    err = flat(res.stderr)
    assert "--reuse: 5 session:* keys and 3 recipe:* keys (e.g. session:foreign-" in err
    assert servers_under(fb_run_root) == []  # both external: nothing started, nothing to record
    assert redis_snapshot(client) == redis_before
    assert pg_snapshot(dsn) == pg_before

    res = cli("up", *external, "--reset")
    assert res.returncode == 0, res.stderr[-3000:]
    err = flat(res.stderr)
    assert f"--reset: deleted 5 session:* keys and 3 recipe:* keys from {url}" in err
    assert "--reset: deleted 8 sessions from" in err
    assert sorted(client.scan_iter()) == [b"other:keep", b"other:ttl"]
    assert pg_snapshot(dsn) == ([], [])


# --- the servers `up` left running are stores fridgebench did not start for this command ------------

def test_compare_on_ups_servers_refuses_their_foreign_sessions_and_reuse_leaves_them(fb_run_root: Path,
                                                                                     tmp_path: Path) -> None:
    up = cli("up", "--run-dir", str(fb_run_root), "--json", timeout=120)
    assert up.returncode == 0, up.stderr[-3000:]
    urls = {s["kind"]: s["url"] for s in json.loads(up.stdout)["servers"]}
    client = redis.Redis.from_url(urls["redis"])
    try:
        client.set("session:someone-else", FOREIGN_SESSION, ex=5000)
        with psycopg.connect(urls["postgres"], autocommit=True) as c:
            c.execute("INSERT INTO user_fridge_sessions (session_id) VALUES ('someone-else')")
        before = redis_snapshot(client)
        short = ["--duration", "1", "--warmup", "0.2", "--sessions", "200", "--rate", "300", "--no-profile",
                 "--no-report", "--run-dir", str(fb_run_root)]
        for stores, needle in (("redis-atomic", "1 session:* key (e.g. session:someone-else)"),
                               ("postgres", "1 session (e.g. session_id 'someone-else')")):
            res = cli("compare", *short, "--stores", stores, "--out", str(tmp_path / "refused"))
            assert res.returncode == 2, res.stderr[-3000:]
            assert needle in error_line(res.stderr)
        assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())

        res = cli("compare", *short, "--stores", "postgres,redis-atomic", "--reuse", "--out", str(tmp_path / "ok"))
        assert res.returncode == 0, res.stderr[-3000:]
        assert "using `fridgebench up`'s" in res.stderr
        assert redis_snapshot(client) == before  # the foreign key as it was, nothing of compare's left
        with psycopg.connect(urls["postgres"]) as c:
            assert c.execute("SELECT session_id FROM user_fridge_sessions").fetchall() == [("someone-else",)]
    finally:
        client.close()

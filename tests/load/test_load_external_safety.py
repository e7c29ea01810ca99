"""Issue 9's rule for `fridgebench load`: it never destroys what it did not write.

The same foreign data as ``tests/test_external_safety.py`` (its fixtures and snapshots, imported):
a Redis db holding 5 foreign ``session:*`` keys (one immortal), 3 ``recipe:*`` keys (two of recipes
the workload looks up, one immortal) and 2 unrelated keys; a fridge2fork database holding 8 foreign
sessions (3 expired) with their ingredient rows. Afterwards every foreign key and row is compared
with what was there before — values and expiry instants to the millisecond (Redis ``DUMP`` and
``PEXPIRETIME``), every column of every row — and nothing of fridgebench's is left: the population,
every session any user created in any process, every recipe cache key a user's ``SET ... NX`` created.

Through the CLI (its provisioning does the check) with one Locust process, a master and two workers,
and an interrupted run; and under plain ``locust -f`` (the Kubernetes path), where the Locust master
does the same check itself and says the same lines.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from fridgebench.measure.results import INCOMPLETE_MARKER, load_results
from tests import procs, servers
from tests.load.helpers import FB, fb, locust_processes
from tests.procs import servers_under
from tests.test_external_safety import (MIXED, error_line, flat, foreign_pg, foreign_redis,  # noqa: F401 - fixtures
                                        pg_snapshot, redis_snapshot)

ROOT = Path(__file__).resolve().parents[2]
SHORT = ["--duration", "1", "--warmup", "0.2", "--sessions", "300", "--users", "4", "--spawn-rate", "4"]
ALL = "redis-seed,redis-atomic,postgres"
DELETED = re.compile(r"(redis-seed|redis-atomic|postgres): deleted the ([\d,]+) sessions(?: and ([\d,]+) recipe "
                     r"cache keys)? it had written \(by id\)")


def _scenario(tmp_path: Path, duration: int = 1) -> Path:
    p = tmp_path / "every-write.toml"
    p.write_text(MIXED.replace("duration_seconds = 1", f"duration_seconds = {duration}"), encoding="utf-8")
    return p


def _deleted(stderr: str) -> dict[str, tuple[int, int]]:
    """What each store's run said it deleted: (sessions, recipe cache keys)."""
    return {m[1]: (int(m[2].replace(",", "")), int((m[3] or "0").replace(",", ""))) for m in DELETED.finditer(flat(stderr))}


def _assert_it_wrote_and_deleted(doc: dict[str, Any], stderr: str, *, processes: int) -> None:
    """The run did write (creates acknowledged in every process, recipe keys cached) and said it
    deleted what it wrote; the foreign data compares equal elsewhere."""
    stores = doc["sections"]["load"]["stores"]
    deleted = _deleted(stderr)
    assert set(deleted) == set(stores), stderr[-3000:]
    for name, run in stores.items():
        assert run["requests_total"]["create"]["ok"] > 0 and run["requests_total"]["add"]["ok"] > 0, name
        assert run["overall"]["errors"] == 0, (name, run["errors"])
        assert len(run["process_requests"]) == processes and all(n > 0 for n in run["process_requests"].values())
        get = run["requests_total"]["get"]  # every process reads the population the master loaded: the run's
        assert get["not_found"] <= 0.25 * get["requests"], (name, get)  # salt travelled in the plan (~5% deleted)
        sessions, cache = deleted[name]
        # exactly what is still there of what it wrote: the 300 loaded and every session created, less those its
        # users deleted (the seed's GET -> SETEX may write a session back that a delete removed in between)
        total = run["requests_total"]
        exact = 300 + total["create"]["ok"] - total.get("delete", {}).get("ok", 0)
        assert sessions == exact if name != "redis-seed" else sessions >= exact, (  # what to diagnose it by
            name, deleted[name], exact, {op: total.get(op) for op in ("create", "delete", "add")}, run.get("correctness"))
        if name != "postgres":
            c = run["recipe_cache"]
            assert c["hits"] > 0 and c["misses"] > 0, (name, c)  # it read the foreign entries and cached its own
            assert 0 < cache <= c["misses"], (name, deleted[name], c)


# --- through the CLI -----------------------------------------------------------------------------

def test_load_refuses_stores_holding_foreign_sessions_with_the_same_line(foreign_redis, foreign_pg,
                                                                        tmp_path: Path) -> None:
    url, client, before = foreign_redis
    dsn, pg_before = foreign_pg
    res = fb("load", *SHORT, "--stores", "redis-atomic", "--redis-url", url, "--out", str(tmp_path))
    assert res.returncode == 2, res.stderr[-3000:]
    line = error_line(res.stderr)
    assert "5 session:* keys and 3 recipe:* keys (e.g. session:foreign-" in line and "fridgebench did not write" in line
    assert "--reuse" in line and "--reset" in line
    res = fb("load", *SHORT, "--stores", "postgres", "--postgres-dsn", dsn, "--out", str(tmp_path))
    assert res.returncode == 2, res.stderr[-3000:]
    line = error_line(res.stderr)
    assert "8 sessions, 3 of them expired (e.g. session_id 'foreign-" in line and "--reuse" in line
    assert redis_snapshot(client) == before and pg_snapshot(dsn) == pg_before
    assert not list(tmp_path.glob("**/results.json")) and locust_processes(str(tmp_path)) == []


@pytest.mark.parametrize("processes", [1, 2])
def test_load_reuse_leaves_every_foreign_key_and_row_as_it_was(foreign_redis, foreign_pg, tmp_path: Path,
                                                              processes: int) -> None:
    url, client, before = foreign_redis
    dsn, pg_before = foreign_pg
    extra = ["--processes", "2"] if processes == 2 else []
    out = tmp_path / "reports"
    res = fb("load", str(_scenario(tmp_path)), *SHORT, *extra, "--stores", ALL, "--reuse", "--json",
             "--redis-url", url, "--postgres-dsn", dsn, "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    assert redis_snapshot(client) == before  # values and expiry instants, to the millisecond; nothing added
    assert pg_snapshot(dsn) == pg_before  # every column of every row, the expired ones included; nothing added
    err = flat(res.stderr)
    assert "--reuse: 5 session:* keys and 3 recipe:* keys (e.g. session:foreign-" in err
    assert "--reuse: 8 sessions, 3 of them expired (e.g. session_id 'foreign-" in err
    doc = load_results(next(out.iterdir())).to_dict()
    _assert_it_wrote_and_deleted(doc, res.stderr, processes=processes)
    assert locust_processes(str(out)) == []


def test_load_reset_deletes_the_foreign_data_first_and_says_how_many(foreign_redis, foreign_pg, tmp_path: Path) -> None:
    url, client, _ = foreign_redis
    dsn, _ = foreign_pg
    res = fb("load", str(_scenario(tmp_path)), *SHORT, "--stores", "redis-atomic,postgres", "--reset",
             "--redis-url", url, "--postgres-dsn", dsn, "--out", str(tmp_path / "r"))
    assert res.returncode == 0, res.stderr[-3000:]
    err = flat(res.stderr)
    assert f"--reset: deleted 5 session:* keys and 3 recipe:* keys from {url}" in err
    assert "--reset: deleted 8 sessions from" in err
    assert sorted(client.scan_iter()) == [b"other:keep", b"other:ttl"]  # nothing else, the run's own included
    assert pg_snapshot(dsn) == ([], [])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_reuse_run_deletes_what_every_worker_wrote_and_nothing_else(
        foreign_redis, foreign_pg, tmp_path: Path, sig: int) -> None:
    """Ctrl-C / SIGTERM mid-measurement with two workers: the master stops the users, collects the
    workers' last reports (the sessions they created) and deletes exactly what the run wrote."""
    url, client, before = foreign_redis
    dsn, pg_before = foreign_pg
    out = tmp_path / "reports"
    proc = procs.popen([*FB, "load", str(_scenario(tmp_path, duration=60)), "--stores", "redis-atomic,postgres",
                        "--reuse", "--processes", "2", "--sessions", "2000", "--users", "4", "--spawn-rate", "4",
                        "--warmup", "0.2", "--redis-url", url, "--postgres-dsn", dsn, "--out", str(out)],
                       stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                       env={**os.environ, "COLUMNS": "200"})
    seen = procs.stderr_until(proc, "/60 s", within=120)
    assert "redis-atomic: 5/60 s" in seen, seen  # measuring, with both workers' users creating sessions
    assert client.dbsize() > len(before) + 2000  # the population and the users' sessions and cache keys
    proc.send_signal(sig)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130, rest
    assert "interrupted" in rest and "Traceback" not in rest
    deleted = _deleted(seen + rest)
    assert deleted.get("redis-atomic", (0, 0))[0] > 1900 and deleted["redis-atomic"][1] > 0, rest
    assert redis_snapshot(client) == before  # its own keys gone, from every worker; the foreign ones as they were
    assert pg_snapshot(dsn) == pg_before
    run_dir = next(out.iterdir())
    assert (run_dir / INCOMPLETE_MARKER).exists() and not (run_dir / "results.json").exists()
    assert locust_processes(str(out)) == []


# --- plain `locust -f`: the master checks the stores itself ------------------------------------------

def _plain_locust_args(env: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    """``locust -f`` the packaged locustfile, headless, one process, configured by environment only."""
    base = {"FRIDGEBENCH_SCENARIO": str(_scenario(tmp_path)), "FRIDGEBENCH_DURATION": "1",
            "FRIDGEBENCH_WARMUP": "0.2", "FRIDGEBENCH_SESSIONS": "300", "FRIDGEBENCH_REPORTS": str(tmp_path / "r")}
    full = {k: v for k, v in os.environ.items() if not k.startswith("FRIDGEBENCH_")} | base | env
    return dict(args=[sys.executable, "-m", "locust", "-f", str(ROOT / "fridgebench/load/locustfile.py"),
                      "--headless", "-u", "3", "-r", "3"], cwd=tmp_path, env=full, text=True)


def _plain_locust(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(**_plain_locust_args(env, tmp_path), capture_output=True, timeout=180)


def test_plain_locust_refuses_reuses_and_resets_as_the_cli_does(foreign_redis, foreign_pg, tmp_path: Path) -> None:
    url, client, before = foreign_redis
    dsn, pg_before = foreign_pg
    stores = {"FRIDGEBENCH_REDIS_URL": url, "FRIDGEBENCH_POSTGRES_DSN": dsn, "FRIDGEBENCH_STORES": "redis-atomic,postgres"}

    # refused before anything is written: Redis is checked first, so the database is left as it was too
    with servers.machine_database() as empty:
        res = _plain_locust({**stores, "FRIDGEBENCH_POSTGRES_DSN": empty}, tmp_path)
        assert res.returncode == 2, res.stderr[-3000:]
        assert (f"the Redis at {url} already holds 5 session:* keys and 3 recipe:* keys (e.g. session:foreign-"
                in res.stderr) and "pass --reuse" in res.stderr, res.stderr[-3000:]
        with psycopg.connect(empty) as c:  # step 1 is read-only: not even the tables were created
            assert c.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone() == (0,)
    res = _plain_locust({**stores, "FRIDGEBENCH_STORES": "postgres", "FRIDGEBENCH_SCENARIO": "session-lifecycle"},
                        tmp_path)
    assert res.returncode == 2, res.stderr[-3000:]
    assert "already holds 8 sessions, 3 of them expired (e.g. session_id 'foreign-" in res.stderr
    assert redis_snapshot(client) == before and pg_snapshot(dsn) == pg_before
    assert not list(tmp_path.glob("r/*/results.json"))

    res = _plain_locust({**stores, "FRIDGEBENCH_EXISTING": "reuse"}, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "--reuse: 5 session:* keys and 3 recipe:* keys (e.g. session:foreign-" in res.stderr
    assert "--reuse: 8 sessions, 3 of them expired" in res.stderr
    assert redis_snapshot(client) == before and pg_snapshot(dsn) == pg_before
    doc = load_results(next((tmp_path / "r").iterdir())).to_dict()
    _assert_it_wrote_and_deleted(doc, res.stderr, processes=1)

    res = _plain_locust({**stores, "FRIDGEBENCH_EXISTING": "reset"}, tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"--reset: deleted 5 session:* keys and 3 recipe:* keys from {url}" in res.stderr
    assert "--reset: deleted 8 sessions from" in res.stderr
    assert sorted(client.scan_iter()) == [b"other:keep", b"other:ttl"]
    assert pg_snapshot(dsn) == ([], [])
    assert locust_processes(str(tmp_path)) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_plain_locust_stopped_mid_run_deletes_what_it_wrote(foreign_redis, tmp_path: Path, sig: int) -> None:
    """A pod's termination (SIGTERM) or Ctrl-C: plain Locust, headless with fridgebench's load shape,
    has no SIGTERM handler of its own while the test runs; the locustfile's deletes what the run wrote."""
    url, client, before = foreign_redis
    kw = _plain_locust_args({
        "FRIDGEBENCH_REDIS_URL": url, "FRIDGEBENCH_STORES": "redis-atomic", "FRIDGEBENCH_SCENARIO": "session-lifecycle",
        "FRIDGEBENCH_DURATION": "60", "FRIDGEBENCH_SESSIONS": "1000", "FRIDGEBENCH_EXISTING": "reuse"}, tmp_path)
    # procs.popen: if an assertion below fails, the test's end stops Locust (SIGTERM: it deletes what it wrote)
    # rather than leave it writing into the shared db for the rest of its group
    proc = procs.popen(kw.pop("args"), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, **kw)
    seen = procs.stderr_until(proc, "warming up", within=90)
    assert "redis-atomic: 3 users running" in seen, seen[-3000:]
    deadline = time.monotonic() + 90  # the users create sessions: wait until some are there (30 s was too
    # short once on a loaded machine: 1,009 of 1,020 keys)
    while client.dbsize() < len(before) + 1000 + 20 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.dbsize() >= len(before) + 1000 + 20
    proc.send_signal(sig)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130, rest[-3000:]
    deleted = _deleted(rest)
    assert deleted.get("redis-atomic", (0, 0))[0] > 1000, rest[-3000:]
    assert redis_snapshot(client) == before
    run_dir = next((tmp_path / "r").iterdir())
    assert (run_dir / INCOMPLETE_MARKER).exists() and not (run_dir / "results.json").exists()
    assert locust_processes(str(tmp_path)) == []


def test_plain_locust_refuses_a_different_catalogue_and_changes_nothing(tmp_path: Path) -> None:
    """The psycopg side of the catalogue check: the same refusal as every other command."""
    with servers.machine_database() as dsn:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("CREATE TABLE ingredients (id integer PRIMARY KEY, name text UNIQUE NOT NULL, "
                      "category text, is_common boolean)")
            c.execute("INSERT INTO ingredients VALUES (1, 'apple', 'fruit', true)")
        res = _plain_locust({"FRIDGEBENCH_POSTGRES_DSN": dsn, "FRIDGEBENCH_STORES": "postgres"}, tmp_path)
        assert res.returncode == 2, res.stderr[-3000:]
        assert "holds a different ingredient catalogue (1 rows differ, e.g. id 1 is 'apple'" in res.stderr
        with psycopg.connect(dsn) as c:
            assert c.execute("SELECT id, name, category FROM ingredients").fetchall() == [(1, "apple", "fruit")]
            assert c.execute("SELECT count(*) FROM recipes").fetchone() == (0,)  # the catalogue: all or nothing
    assert locust_processes(str(tmp_path)) == []


# --- only the servers the chosen stores need -----------------------------------------------------

@pytest.mark.embedded
@pytest.mark.parametrize("args, kinds", [
    (["--stores", "postgres"], ["postgres"]),
    (["--stores", "redis-atomic"], ["redis"]),  # session-lifecycle: no recipe lookups
    (["recipe-cache", "--stores", "redis-atomic"], ["postgres", "redis"]),  # the cache reads PostgreSQL on a miss
])
def test_load_starts_only_the_servers_the_stores_need(args: list[str], kinds: list[str], tmp_path: Path,
                                                     run_root: Path) -> None:
    out = tmp_path / "reports"
    res = fb("load", *args, *SHORT, "--run-dir", str(run_root), "--out", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    doc = load_results(next(out.iterdir()))
    assert sorted(s["kind"] for s in doc.environment.servers) == kinds
    assert ("started PostgreSQL" in res.stderr) == ("postgres" in kinds)
    assert ("started Valkey" in res.stderr) == ("redis" in kinds)
    assert servers_under(run_root) == [] and locust_processes(str(out)) == []

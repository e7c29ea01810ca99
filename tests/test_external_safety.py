"""Issue 9: fridgebench never destroys what it did not write, in an external Redis or PostgreSQL.

Every test goes through the real CLI (a subprocess) against real servers: the machine's Redis at
db :data:`servers.REDIS_DB_SAFETY` and a fresh database on the machine's PostgreSQL, each seeded
with "foreign" data — sessions and recipe cache keys fridgebench did not write, live, expired
and immortal, plus unrelated keys and tables. Afterwards the foreign data is compared key by key /
row by row with what was there before: values and expiry instants (Redis ``PEXPIRETIME``, exact
to the millisecond) unchanged, and nothing of fridgebench's own left behind.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import asyncpg
import psycopg
import pytest
import redis

from fridgebench.measure.results import load_results
from fridgebench.stores import schema
from tests import procs, servers
from tests.helpers import cli

SHORT = ["--duration", "1", "--warmup", "0.2", "--sessions", "300", "--rate", "400"]
TTL_SHORT = ["--sessions", "10", "--ttl", "1", "--ingredients", "2", "--memory-counts", "200",
             "--cleanup-sessions", "200", "--cleanup-every", "0.1"]

# A scenario touching every write path: create, add, remove, extend, delete, and recipe lookups
# (the Redis stores cache recipe:{id} keys, filled from PostgreSQL on a miss).
MIXED = """
name = "every-write"
description = "every operation, recipe lookups included"
[population]
sessions = 300
ingredients = [0, 5]
[mix]
create = 10
get = 30
add = 20
remove = 10
extend = 10
delete = 5
recipe = 40
[load]
model = "open"
rate = 400
concurrency = 8
warmup_seconds = 0.2
duration_seconds = 1
"""

FOREIGN_SESSION = json.dumps({"created_at": "2024-05-01T09:00:00", "ingredients": ["김치", "두부"]})


def flat(text: str) -> str:
    """stderr with Rich's line wrapping undone."""
    return " ".join(text.split())


def error_line(stderr: str) -> str:
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    return errors[0]


# --- Redis ------------------------------------------------------------------------------------

def redis_snapshot(client: redis.Redis) -> dict[bytes, tuple[bytes, int]]:
    """Every key of the db: its serialized value (DUMP) and absolute expiry (PEXPIRETIME, -1: none)."""
    return {k: (client.dump(k), client.execute_command("PEXPIRETIME", k)) for k in client.scan_iter(count=1000)}


def config_sets(client: redis.Redis) -> int:
    """CONFIG SET calls the server has served (Redis 7 counts subcommands apart)."""
    return int(client.info("commandstats").get("cmdstat_config|set", {}).get("calls", 0))


@pytest.fixture
def foreign_redis() -> Iterator[tuple[str, redis.Redis, dict[bytes, tuple[bytes, int]]]]:
    """Db REDIS_DB_SAFETY holding 5 foreign session:* keys (one without expiry), 3 recipe:* keys
    (two of recipes the workload looks up, one immortal) and two unrelated keys."""
    with servers.machine_redis_db(servers.REDIS_DB_SAFETY) as url:
        client = redis.Redis.from_url(url)
        try:
            yield url, client, put_foreign_keys(client)
        finally:
            client.close()


def put_foreign_keys(client: redis.Redis) -> dict[bytes, tuple[bytes, int]]:
    """The foreign keys of :func:`foreign_redis`, written into ``client``'s db: its snapshot."""
    for i in range(4):
        client.set(f"session:foreign-{i}", FOREIGN_SESSION, ex=5000 + i)
    client.set("session:foreign-immortal", FOREIGN_SESSION)
    client.set("recipe:1", json.dumps(["someone", "else's", "cache"]), ex=3000)
    client.set("recipe:2", json.dumps(["또", "다른"]), ex=3100)
    client.set("recipe:999999", json.dumps(["immortal"]))
    client.set("other:keep", "1")
    client.set("other:ttl", "2", ex=7000)
    before = redis_snapshot(client)
    assert len(before) == 10
    return before


def test_redis_holding_foreign_sessions_is_refused_by_compare_and_ttl(foreign_redis, tmp_path: Path) -> None:
    url, client, before = foreign_redis
    for args in (["compare", *SHORT, "--stores", "redis-atomic"], ["ttl", *TTL_SHORT, "--stores", "redis-seed"]):
        res = cli(*args, "--redis-url", url, "--out", str(tmp_path / args[0]))
        assert res.returncode == 2, res.stderr[-3000:]
        line = error_line(res.stderr)
        assert "5 session:* keys and 3 recipe:* keys" in line and "(e.g. session:foreign-" in line, line
        assert "--reuse" in line and "--reset" in line
        assert redis_snapshot(client) == before
        assert not list(tmp_path.glob("**/results.json"))  # nothing measured


def test_redis_reuse_leaves_every_foreign_key_as_it_was(foreign_redis, tmp_path: Path) -> None:
    url, client, before = foreign_redis
    scenario = tmp_path / "every-write.toml"
    scenario.write_text(MIXED, encoding="utf-8")
    with servers.machine_database() as dsn:  # the recipe cache reads PostgreSQL on a miss
        res = cli("compare", str(scenario), "--stores", "redis-seed,redis-atomic,redis-app", "--reuse", "--json",
                  "--profile",  # it writes (and deletes) sessions of its own too
                  "--redis-url", url, "--postgres-dsn", dsn, "--out", str(tmp_path / "c"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert redis_snapshot(client) == before  # values and expiry instants, to the millisecond; nothing added
    err = flat(res.stderr)
    assert "--reuse: 5 session:* keys and 3 recipe:* keys (e.g. session:foreign-" in err
    doc = json.loads(res.stdout)
    for name, run in doc["sections"]["compare"]["stores"].items():
        ops = run["ops"]
        assert ops["create"]["ok"] > 0 and ops["add"]["ok"] > 0 and ops["delete"]["count"] > 0, name
        cache = run["recipe_cache"]
        assert cache["hits"] > 0 and cache["misses"] > 0, name  # it read foreign entries and cached its own
        assert f"{name}: deleted the" in err and f"{name}: profiled" in err


def test_ttl_reuse_leaves_every_foreign_key_and_the_servers_configuration_as_they_were(tmp_path: Path) -> None:
    """The same foreign keys on a server of the test's own (fridgebench did not start it either): the
    server-wide counter of CONFIG SET calls, and ttl's server-wide memory figures, are read there, not on
    the machine's shared Redis, where anyone's CONFIG SET or keys would move them."""
    with servers.throwaway_redis() as server:
        client = server.client(3)
        try:
            before = put_foreign_keys(client)
            sets_before = config_sets(client)
            res = cli("ttl", *TTL_SHORT, "--stores", "redis-seed,redis-atomic", "--reuse", "--redis-url",
                      server.url(3), "--out", str(tmp_path / "t"), "--json")
            assert res.returncode == 0, res.stderr[-3000:]
            assert "Bytes per session" in res.stderr
            assert redis_snapshot(client) == before
            # a server fridgebench did not start keeps its configuration: no CONFIG SET (server-wide) during the run
            assert config_sets(client) == sets_before
            assert client.config_get("notify-keyspace-events")["notify-keyspace-events"] == ""  # as it started
            assert "does not change the configuration of a server it did not start" in flat(res.stderr)
            assert json.loads(res.stdout)["sections"]["ttl"]["expiry"]["redis-atomic"]["notifications"] is False
        finally:
            client.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_reuse_run_deletes_what_it_wrote_and_nothing_else(foreign_redis, tmp_path: Path,
                                                                         sig: int) -> None:
    url, client, before = foreign_redis
    proc = procs.popen([sys.executable, "-c", "from fridgebench.cli import main; main()", "compare",
                        "--stores", "redis-atomic", "--reuse", "--duration", "60", "--sessions", "2000",
                        "--rate", "300", "--redis-url", url, "--out", str(tmp_path)],
                       stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    seen = procs.stderr_until(proc, "loaded", within=60)
    assert "loaded 2,000 sessions" in seen, seen
    assert client.dbsize() > len(before)  # its sessions are there mid-run
    time.sleep(1.0)
    proc.send_signal(sig)
    rest = proc.stderr.read()
    assert proc.wait(timeout=60) == 130, rest
    assert "interrupted" in rest and "Traceback" not in rest
    assert redis_snapshot(client) == before  # its own keys gone, the foreign ones as they were


def test_failure_refuses_foreign_sessions_and_with_reuse_leaves_them_as_they_were(foreign_redis, tmp_path: Path) -> None:
    """failure writes sessions too (and faults the connection to the store): the same rule as compare."""
    url, client, before = foreign_redis
    args = ["failure", "reset", "--stores", "redis-atomic", "--warmup", "0.2", "--duration", "2", "--at", "0.5",
            "--down", "0.5", "--rate", "200", "--sessions", "200", "--no-report", "--redis-url", url]
    with servers.machine_database() as dsn:  # the recipe lookups read PostgreSQL
        res = cli(*args, "--postgres-dsn", dsn, "--out", str(tmp_path / "refused"))
        assert res.returncode == 2, res.stderr[-3000:]
        line = error_line(res.stderr)
        assert "5 session:* keys and 3 recipe:* keys" in line and "--reuse" in line, line
        assert redis_snapshot(client) == before and not list(tmp_path.glob("**/results.json"))
        res = cli(*args, "--postgres-dsn", dsn, "--reuse", "--json", "--out", str(tmp_path / "reused"))
    assert res.returncode == 0, res.stderr[-3000:]
    case = json.loads(res.stdout)["sections"]["failure"]["cases"][0]
    assert case["fault"] == "reset" and case["accounting"]["sessions_acknowledged_before_fault"] > 0
    assert redis_snapshot(client) == before  # what the run wrote is gone; nothing else was touched


@pytest.mark.parametrize("args", [["compare", *SHORT, "--stores", "redis-atomic"],
                                  ["ttl", *TTL_SHORT, "--stores", "redis-seed"]], ids=["compare", "ttl"])
def test_redis_reset_deletes_the_sessions_and_cache_keys_and_says_how_many(foreign_redis, tmp_path: Path,
                                                                         args: list[str]) -> None:
    url, client, _before = foreign_redis
    res = cli(*args, "--reset", "--redis-url", url, "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"--reset: deleted 5 session:* keys and 3 recipe:* keys from {url}" in flat(res.stderr)
    assert sorted(client.scan_iter()) == [b"other:keep", b"other:ttl"]  # nothing else, ours included


# --- PostgreSQL -------------------------------------------------------------------------------

def pg_snapshot(dsn: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with psycopg.connect(dsn) as c:
        return (c.execute("SELECT * FROM user_fridge_sessions ORDER BY session_id").fetchall(),
                c.execute("SELECT * FROM user_fridge_ingredients ORDER BY id").fetchall())


def scratch_schemas(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as c:
        return [r[0] for r in c.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'fridgebench%'")]


async def _seed_pg(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await schema.setup_schema(conn)
        await conn.execute("""
            INSERT INTO user_fridge_sessions (session_id, created_at, expires_at, last_accessed)
            SELECT 'foreign-live-' || g, now() - interval '1 hour', now() + interval '20 hours', now()
              FROM generate_series(1, 5) g
            UNION ALL
            SELECT 'foreign-expired-' || g, now() - interval '2 days', now() - g * interval '1 hour', now()
              FROM generate_series(1, 3) g""")
        await conn.execute("""
            INSERT INTO user_fridge_ingredients (session_id, ingredient_id, added_at)
            SELECT s.session_id, i.id, now() - interval '30 minutes'
              FROM user_fridge_sessions s CROSS JOIN (SELECT id FROM ingredients ORDER BY id LIMIT 3) i""")
    finally:
        await conn.close()


@pytest.fixture
def foreign_pg() -> Iterator[tuple[str, tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]]:
    """A fridge2fork database holding 8 foreign sessions (3 expired) with 3 ingredient rows each."""
    with servers.machine_database() as dsn:
        asyncio.run(_seed_pg(dsn))
        before = pg_snapshot(dsn)
        assert len(before[0]) == 8 and len(before[1]) == 24
        yield dsn, before


def test_postgres_holding_foreign_sessions_is_refused_by_compare_and_ttl(foreign_pg, tmp_path: Path) -> None:
    dsn, before = foreign_pg
    for args in (["compare", *SHORT, "--stores", "postgres"], ["ttl", *TTL_SHORT, "--stores", "postgres"]):
        res = cli(*args, "--postgres-dsn", dsn, "--out", str(tmp_path / args[0]))
        assert res.returncode == 2, res.stderr[-3000:]
        line = error_line(res.stderr)
        assert "8 sessions, 3 of them expired (e.g. session_id 'foreign-" in line, line
        assert "--reuse" in line and "--reset" in line
        assert pg_snapshot(dsn) == before


def test_postgres_reuse_leaves_every_foreign_row_as_it_was(foreign_pg, tmp_path: Path) -> None:
    """compare on top of them, then ttl, whose cleanup job deletes expired rows: not these."""
    dsn, before = foreign_pg
    scenario = tmp_path / "every-write.toml"
    scenario.write_text(MIXED, encoding="utf-8")
    res = cli("compare", str(scenario), "--stores", "postgres,postgres-app,postgres-app-fixed", "--reuse", "--profile",
              "--postgres-dsn", dsn, "--out", str(tmp_path / "c"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert pg_snapshot(dsn) == before  # every column of every row, the expired ones included; nothing added
    err = flat(res.stderr)
    assert "--reuse: 8 sessions, 3 of them expired (e.g. session_id 'foreign-" in err
    for name in ("postgres", "postgres-app", "postgres-app-fixed"):
        assert f"{name}: deleted the" in err and f"{name}: profiled" in err  # the profile wrote (and removed) too

    res = cli("ttl", *TTL_SHORT, "--stores", "postgres", "--reuse", "--postgres-dsn", dsn,
              "--json", "--out", str(tmp_path / "t"))
    assert res.returncode == 0, res.stderr[-3000:]
    ttl = json.loads(res.stdout)["sections"]["ttl"]
    assert ttl["expiry"]["postgres"]["rows_deleted_by_cleanup"] > 0  # the application's job ran ...
    assert ttl["cleanup"]["variants"][0]["deleted_sessions"] == 100
    assert pg_snapshot(dsn) == before  # ... on fridgebench's rows only
    assert scratch_schemas(dsn) == []  # its scratch schema is gone


@pytest.mark.parametrize("args", [["compare", *SHORT], ["ttl", *TTL_SHORT]], ids=["compare", "ttl"])
def test_postgres_reset_deletes_the_sessions_and_says_how_many(foreign_pg, tmp_path: Path, args: list[str]) -> None:
    dsn, _before = foreign_pg
    res = cli(*args, "--stores", "postgres", "--reset", "--postgres-dsn", dsn, "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "--reset: deleted 8 sessions from" in flat(res.stderr)
    assert pg_snapshot(dsn) == ([], [])


# --- the schema: tables created beside other tables are announced ------------------------------

def test_creating_the_tables_in_a_database_with_other_tables_is_said(tmp_path: Path) -> None:
    with servers.machine_database() as dsn:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("CREATE TABLE app_users (id int PRIMARY KEY)")
            c.execute("CREATE SCHEMA billing")
            c.execute("CREATE TABLE billing.invoices (id int)")
        name = dsn.rsplit("/", 1)[1]
        res = cli("compare", *SHORT, "--stores", "postgres", "--postgres-dsn", dsn, "--out", str(tmp_path))
        assert res.returncode == 0, res.stderr[-3000:]
        assert (f"creating the fridge2fork tables (ingredients, user_fridge_sessions, user_fridge_ingredients, "
                f"recipes, recipe_ingredients) in database '{name}', which already holds 2 other tables"
                in flat(res.stderr))
        res = cli("compare", *SHORT, "--stores", "postgres", "--postgres-dsn", dsn, "--out", str(tmp_path))
        assert res.returncode == 0 and "creating the fridge2fork tables" not in res.stderr  # they exist now


def test_a_different_catalogue_is_refused_not_overwritten(tmp_path: Path) -> None:
    with servers.machine_database() as dsn:
        with psycopg.connect(dsn, autocommit=True) as c:
            c.execute("CREATE TABLE ingredients (id integer PRIMARY KEY, name text UNIQUE NOT NULL, "
                      "category text, is_common boolean)")
            c.execute("INSERT INTO ingredients VALUES (1, 'apple', 'fruit', true)")
        res = cli("compare", *SHORT, "--stores", "postgres", "--postgres-dsn", dsn, "--out", str(tmp_path))
        assert res.returncode == 2, res.stderr[-3000:]
        assert "different ingredient catalogue" in error_line(res.stderr) and "id 1 is 'apple'" in res.stderr
        with psycopg.connect(dsn) as c:
            assert c.execute("SELECT id, name, category FROM ingredients").fetchall() == [(1, "apple", "fruit")]


# --- only the servers the chosen stores need ----------------------------------------------------

@pytest.mark.embedded
@pytest.mark.parametrize("args, kinds", [
    (["compare", *SHORT, "--stores", "postgres"], ["postgres"]),
    (["compare", *SHORT, "--stores", "redis-atomic"], ["redis"]),  # session-lifecycle: no recipe lookups
    (["compare", "recipe-cache", *SHORT, "--stores", "redis-atomic"], ["postgres", "redis"]),  # cache misses
    (["ttl", *TTL_SHORT, "--stores", "redis-seed"], ["redis"]),
])
def test_only_the_servers_the_stores_need_are_started(args: list[str], kinds: list[str], tmp_path: Path,
                                                      fb_run_root: Path) -> None:
    from tests.procs import servers_under

    root = fb_run_root  # removed afterwards
    res = cli(*args, "--run-dir", str(root), "--out", str(tmp_path), timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    doc = load_results(next(p for p in tmp_path.iterdir() if p.is_dir()))
    assert sorted(s["kind"] for s in doc.environment.servers) == kinds
    started = [line for line in res.stderr.splitlines() if line.startswith("started ")]
    assert len(started) == len(kinds), started
    assert ("started PostgreSQL" in res.stderr) == ("postgres" in kinds)
    assert ("started Valkey" in res.stderr) == ("redis" in kinds)
    assert servers_under(root) == []


# --- the verdict when nothing is significant ----------------------------------------------------

def test_a_run_with_no_significant_ratio_is_inconclusive(tmp_path: Path) -> None:
    with servers.machine_database() as dsn, servers.machine_redis_db(servers.REDIS_DB_SAFETY) as url:
        res = cli("compare", "--duration", "2", "--warmup", "0.3", "--sessions", "300", "--rate", "300",
                  "--stores", "postgres,redis-atomic", "--json", "--postgres-dsn", dsn, "--redis-url", url,
                  "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads(res.stdout)
    rows = doc["sections"]["compare"]["comparisons"]
    assert rows and not any(r["significant"] for r in rows)  # two seconds: too few to tell the stores apart
    perf = next(c for c in doc["claims"] if c["key"] == "performance")
    assert perf["verdict"] == "inconclusive", perf
    assert "not significant: too few measured seconds for a 95% interval" in perf["measured"]

"""migrate's and rehearse's promises through the real command line.

Safety refusals run against a real Redis configured to lose sessions (an evicting policy, too
little ``maxmemory``): a throwaway server started here, never the machine's shared one.
"""

from __future__ import annotations

import json
import time

import psycopg
import pytest

from fridgebench.measure.results import load_results
from fridgebench.migrate import rehearsal
from tests.helpers import cli, fill, verify_cli
from tests.servers import throwaway_redis

LIVE = ("--live", "--until-caught-up")


def _errors(stderr: str) -> list[str]:
    assert "Traceback" not in stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _installed(dsn: str) -> bool:
    with psycopg.connect(dsn) as c:
        return bool(c.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'fridgebench_migrate'").fetchone()[0]
                    + c.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'fridgebench_migrate_%'").fetchone()[0])


def _sessions(r) -> dict[bytes, tuple[bytes, int]]:  # type: ignore[no-untyped-def]
    keys = list(r.scan_iter(match="session:*", count=1000))
    pipe = r.pipeline(transaction=False)
    for k in keys:
        pipe.get(k)
        pipe.pexpiretime(k)
    got = pipe.execute()
    return {k: (got[2 * i], got[2 * i + 1]) for i, k in enumerate(keys)}


# --- safety -------------------------------------------------------------------------------------

@pytest.mark.parametrize("policy", ["allkeys-lru", "volatile-lru"])
def test_an_evicting_redis_is_refused_and_force_migrates_with_a_warning(policy, pg_dsn, reports):
    fill(pg_dsn, 500)
    with throwaway_redis("--maxmemory-policy", policy, "--maxmemory", "256mb") as server:
        url, r = server.url(), server.client()
        res = cli("migrate", "--from", pg_dsn, "--to", url, *LIVE)
        assert res.returncode == 2, res.stderr
        errors = _errors(res.stderr)
        assert len(errors) == 1 and policy in errors[0] and "--force" in errors[0], res.stderr
        assert r.dbsize() == 0, "a refused migrate wrote to Redis"
        assert not _installed(pg_dsn), "a refused migrate installed triggers in the application's database"
        assert not list(reports.glob("*/results.json"))

        res = cli("migrate", "--from", pg_dsn, "--to", url, *LIVE, "--force", "--json")
        assert res.returncode == 0, res.stderr
        doc = json.loads(res.stdout)
        warned = [w for w in doc["plan"]["warnings"] if w.startswith("--force:") and policy in w]
        assert warned, doc["plan"]["warnings"]
        assert any(line.startswith("warning: --force") and policy in line for line in res.stderr.splitlines())
        assert warned[0] in load_results(doc["results"]).warnings  # the results file says what was forced
        assert doc["backfill"]["written"] > 400
        assert verify_cli(pg_dsn, url)["total_differences"] == 0
        r.close()


def test_too_little_maxmemory_is_refused_before_anything_is_installed_or_written(pg_dsn, reports):
    fill(pg_dsn, 3000)  # an estimate of ~1.5 MB
    with throwaway_redis("--maxmemory-policy", "noeviction") as server:
        url, r = server.url(), server.client()
        r.config_set("maxmemory", int(r.info("memory")["used_memory"]) + 500_000)
        for extra in ((), ("--dry-run",)):
            res = cli("migrate", "--from", pg_dsn, "--to", url, *LIVE, *extra)
            assert res.returncode == 2, res.stderr
            errors = _errors(res.stderr)
            assert len(errors) == 1 and "maxmemory" in errors[0] and "--force" in errors[0], res.stderr
        assert r.dbsize() == 0 and not _installed(pg_dsn)
        r.config_set("maxmemory", 0)
        res = cli("migrate", "--from", pg_dsn, "--to", url, *LIVE)
        assert res.returncode == 0, res.stderr
        assert "warning" not in res.stderr
        r.close()


# --- cleanup --to -------------------------------------------------------------------------------

def test_cleanup_to_removes_the_bookkeeping_keeps_every_session_and_twice_is_fine(pg_dsn, redis_url, rds, reports):
    rehearsal.fill(pg_dsn, 1500, seed=4, existing="reuse", expiring_share=0.0)
    args = ("migrate", "--from", pg_dsn, "--to", redis_url, *LIVE)
    assert cli(*args).returncode == 0
    with psycopg.connect(pg_dsn, autocommit=True) as c:  # the application changes a few: version keys, a tombstone
        ids = [r[0] for r in c.execute("SELECT session_id FROM user_fridge_sessions WHERE expires_at > now() "
                                       "ORDER BY session_id LIMIT 5")]
        c.execute("UPDATE user_fridge_sessions SET expires_at = now() + interval '24 hours' "
                  "WHERE session_id = ANY(%s)", [ids[:4]])
        c.execute("DELETE FROM user_fridge_sessions WHERE session_id = %s", [ids[4]])
    assert cli(*args).returncode == 0
    assert len(list(rds.scan_iter(match="fridgebench:migrate:v:*"))) == 5
    assert len(list(rds.scan_iter(match="fridgebench:migrate:owned:*"))) == 64
    before = _sessions(rds)
    assert len(before) > 1000

    res = cli("migrate", "cleanup", "--from", pg_dsn, "--to", redis_url)
    assert res.returncode == 0, res.stderr
    assert "5 version keys" in res.stderr and "64 ownership sets" in res.stderr
    assert not list(rds.scan_iter(match="fridgebench:*")), "bookkeeping left in Redis"
    assert _sessions(rds) == before  # every session kept: value and expiry instant
    assert not _installed(pg_dsn)

    again = cli("migrate", "cleanup", "--from", pg_dsn, "--to", redis_url)
    assert again.returncode == 0, again.stderr
    assert "0 version keys" in again.stderr and "Traceback" not in again.stderr
    assert _sessions(rds) == before
    assert cli("migrate", "cleanup", "--from", pg_dsn).returncode == 0
    assert verify_cli(pg_dsn, redis_url)["total_differences"] == 0  # still exactly PostgreSQL's sessions


# --- --debug ------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", ["unreachable", "usage"])
def test_debug_shows_the_traceback_and_still_the_one_masked_line(case, pg_dsn, redis_url):
    fill(pg_dsn, 10)
    if case == "unreachable":
        args, code = ["migrate", "--from", "postgresql://postgres:hunter2@127.0.0.1:1/x", "--to", redis_url], 1
    else:
        args, code = ["migrate", "--from", pg_dsn, "--to", redis_url, "--table", "sessions=nope"], 2
    plain, debug = cli(*args), cli("--debug", *args)
    assert plain.returncode == debug.returncode == code, (plain.stderr, debug.stderr)
    assert "Traceback" not in plain.stderr
    assert "Traceback" in debug.stderr and "fridgebench" in debug.stderr  # frames of our code
    one = _errors(plain.stderr)
    assert len(one) == 1
    assert one[0] in debug.stderr.splitlines()  # the same one line, after the traceback
    assert "hunter2" not in plain.stderr + debug.stderr + plain.stdout + debug.stdout


# --- rehearse fill / write -----------------------------------------------------------------------

def _counts(dsn: str) -> tuple[int, int, int]:
    with psycopg.connect(dsn) as c:
        total, live = c.execute("SELECT count(*), count(*) FILTER (WHERE expires_at > now()) "
                                "FROM user_fridge_sessions").fetchone()
        rows = c.execute("SELECT count(*) FROM user_fridge_ingredients").fetchone()[0]
    return int(total), int(live), int(rows)


def test_rehearse_fill_as_a_command(pg_dsn):
    res = cli("rehearse", "fill", "--dsn", pg_dsn, "--sessions", "800", "--seed", "3", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)  # the document alone on stdout
    total, live, rows = _counts(pg_dsn)
    assert doc["sessions"] == total == 800 and doc["ingredient_rows"] == rows > 800
    assert doc["expired"] > 0 and doc["expiring_soon"] > 0
    assert doc["live"] - doc["expiring_soon"] <= live <= doc["live"]  # some may have expired since
    assert "filled 800 sessions" in res.stderr

    refused = cli("rehearse", "fill", "--dsn", pg_dsn, "--sessions", "100")
    assert refused.returncode == 2
    errors = _errors(refused.stderr)
    assert len(errors) == 1 and "--reuse" in errors[0] and "--reset" in errors[0]
    both = cli("rehearse", "fill", "--dsn", pg_dsn, "--sessions", "100", "--reuse", "--reset")
    assert both.returncode == 2 and "exclude" in _errors(both.stderr)[0]
    assert _counts(pg_dsn)[0] == 800  # neither changed anything

    assert cli("rehearse", "fill", "--dsn", pg_dsn, "--sessions", "100", "--seed", "4", "--reuse").returncode == 0
    assert _counts(pg_dsn)[0] == 900
    assert cli("rehearse", "fill", "--dsn", pg_dsn, "--sessions", "300", "--reset").returncode == 0
    assert _counts(pg_dsn)[0] == 300

    missing = cli("rehearse", "fill", "--sessions", "10", env={"FRIDGEBENCH_POSTGRES_DSN": ""})
    assert missing.returncode == 2 and "--dsn" in _errors(missing.stderr)[0]


def test_rehearse_write_as_a_command(pg_dsn):
    rehearsal.fill(pg_dsn, 500, seed=5, existing="reuse")
    with psycopg.connect(pg_dsn) as c:
        t0 = c.execute("SELECT now()").fetchone()[0]
    started = time.monotonic()
    res = cli("rehearse", "write", "--dsn", pg_dsn, "--rate", "200", "--duration", "1.5", "--seed", "5", "--json")
    wall = time.monotonic() - started
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    ops = doc["ops"]
    total = sum(ops.values())
    assert 0 < total <= 200 * 1.5 + 1  # paced: never above the rate
    assert doc["errors"] <= total // 20
    assert 1.5 <= doc["seconds"] < wall  # it stopped by itself after --duration
    with psycopg.connect(pg_dsn) as c:  # its creates are in the database (a later delete may take some)
        created = c.execute("SELECT count(*) FROM user_fridge_sessions WHERE created_at >= %s", [t0]).fetchone()[0]
    assert ops["create"] - ops["delete"] <= created <= ops["create"]
    assert ops["create"] > 0 and ops["add"] > 0
    assert f"{total:,} operations" in res.stderr

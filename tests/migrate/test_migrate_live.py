"""Live changes on real servers: a concurrent writer, --follow + verify, kill -9 and resume,
replays twice and out of order, expiry mid-migration, cleanup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import psycopg
import redis

from tests.helpers import cli, fill
from fridgebench.migrate import capture, engine, run, target
from fridgebench.migrate.rehearsal import Writer
from fridgebench.migrate.source import SourceSchema


def _checkpoint(dsn: str) -> dict | None:
    with psycopg.connect(dsn) as c:
        if not c.execute("SELECT to_regclass('fridgebench_migrate.checkpoint') IS NOT NULL").fetchone()[0]:
            return None
        row = c.execute("SELECT written, backfill_done, last_session_id FROM fridgebench_migrate.checkpoint").fetchone()
        return {"written": row[0], "done": row[1], "last": row[2]} if row else None


def _popen(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "from fridgebench.cli import main; main()", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _verify(dsn: str, url: str, *extra: str) -> dict:
    res = cli("migrate", "verify", "--from", dsn, "--to", url, "--json", *extra)
    doc = json.loads(res.stdout)
    assert (res.returncode == 0) == (doc["total_differences"] == 0), res.stderr
    return doc


def test_live_migration_under_a_concurrent_writer_then_verify_is_clean(pg_dsn, redis_url, rds, reports):
    from fridgebench.migrate import rehearsal

    # no session about to expire: the key counts compared at the end must not race an expiry
    # (verify itself counts a session that expired between its PostgreSQL and Redis reads as equal)
    rehearsal.fill(pg_dsn, 3000, seed=1, existing="reuse", expiring_share=0.0)
    w = Writer(pg_dsn, rate=400, seed=11)
    t = threading.Thread(target=w.run, args=(8.0,))
    t.start()
    time.sleep(0.5)
    opts = run.Options(dsn=pg_dsn, url=redis_url, live=True, until_caught_up=True, batch_size=200, rate_limit=1500)
    first = run.migrate(opts)  # backfill runs ~2 s while the writer changes sessions
    assert first["backfill"]["written"] > 2000
    # --rate-limit holds: never faster than 1,500 sessions/s (a lower bound on time; a slow machine passes)
    assert first["backfill"]["written"] / first["backfill"]["seconds"] <= 1500 * 1.1
    t.join()
    assert w.stats.total > 1000 and min(w.stats.ops[o] for o in ("create", "add", "remove", "extend", "delete")) > 0
    second = run.migrate(opts)  # resumes: backfill done, applies what the writer did since
    assert second["resumed"] and second["backfill"]["already_done"]
    assert first["changes"]["change_rows"] + second["changes"]["change_rows"] > 500
    doc = _verify(pg_dsn, redis_url)
    assert doc["total_differences"] == 0, doc["samples"]
    assert doc["checked"] == doc["redis_keys"]


def test_follow_is_verifiable_while_running_and_stops_cleanly_on_ctrl_c(pg_dsn, redis_url, rds, reports):
    fill(pg_dsn, 2000)
    p = _popen("migrate", "--from", pg_dsn, "--to", redis_url, "--live", "--follow")
    try:
        deadline = time.time() + 30
        while not ((_checkpoint(pg_dsn) or {}).get("done")) and time.time() < deadline:
            time.sleep(0.2)
        assert (_checkpoint(pg_dsn) or {}).get("done"), "backfill did not finish"
        w = Writer(pg_dsn, rate=300, seed=5)
        wt = threading.Thread(target=w.run, args=(4.0,))
        wt.start()
        time.sleep(2.0)
        during = _verify(pg_dsn, redis_url, "--settle", "5")  # the writer is still changing sessions
        wt.join()
        # strict while the writer is mid-flight: a lag the applier has not caught up with is reported
        # as in flight (separately), never as a difference (test_migrate_verify stresses this)
        assert during["checked"] > 1000 and during["total_differences"] == 0, during["samples"]
        time.sleep(1.0)
        after = _verify(pg_dsn, redis_url)
        assert after["total_differences"] == 0 and after["in_flight"] == 0, after["samples"]
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert "resumable" in err


def test_kill_9_mid_backfill_then_resume_loses_and_resurrects_nothing(pg_dsn, redis_url, rds, reports):
    fill(pg_dsn, 30000, seed=4)
    args = ("migrate", "--from", pg_dsn, "--to", redis_url, "--live", "--until-caught-up",
            "--rate-limit", "6000", "--batch-size", "300")
    p = _popen(*args)
    deadline = time.time() + 60
    while time.time() < deadline:
        cp = _checkpoint(pg_dsn)
        if cp and cp["written"] > 6000:
            break
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    cp = _checkpoint(pg_dsn)
    assert cp and not cp["done"] and cp["written"] > 6000
    # while it is down, the application keeps going: delete migrated and unmigrated sessions, add, extend
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        gone_before = [r[0] for r in c.execute(
            "SELECT session_id FROM user_fridge_sessions WHERE session_id <= %s AND expires_at > now() "
            "ORDER BY session_id LIMIT 50", [cp["last"]])]
        gone_after = [r[0] for r in c.execute(
            "SELECT session_id FROM user_fridge_sessions WHERE session_id > %s AND expires_at > now() "
            "ORDER BY session_id LIMIT 50", [cp["last"]])]
        assert gone_before and all(rds.exists(f"session:{s}") for s in gone_before)
        c.execute("DELETE FROM user_fridge_sessions WHERE session_id = ANY(%s)", [gone_before + gone_after])
        c.execute("""INSERT INTO user_fridge_ingredients (session_id, ingredient_id)
                     SELECT session_id, 2 FROM user_fridge_sessions WHERE expires_at > now()
                     ORDER BY session_id LIMIT 100 ON CONFLICT DO NOTHING""")
        c.execute("""UPDATE user_fridge_sessions SET expires_at = now() + interval '24 hours'
                     WHERE session_id IN (SELECT session_id FROM user_fridge_sessions ORDER BY session_id LIMIT 100)""")
    res = cli(*args[:-4], timeout=120)  # same command, no rate limit
    assert res.returncode == 0, res.stderr
    assert "resumed" in res.stderr
    for s in gone_before + gone_after:
        assert not rds.exists(f"session:{s}"), "a deleted session was resurrected"
    doc = _verify(pg_dsn, redis_url)
    assert doc["total_differences"] == 0, doc["samples"]
    assert doc["differences"]["extra"] == 0 and doc["differences"]["missing"] == 0


def test_changes_replayed_twice_and_out_of_order_never_regress(pg_dsn, redis_url, rds, reports):
    fill(pg_dsn, 50)
    src = SourceSchema()
    assert run.migrate(run.Options(dsn=pg_dsn, url=redis_url, live=True, until_caught_up=True))["backfill"]["written"] > 40
    r = redis.Redis.from_url(redis_url)
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        epoch = capture.capture_epoch(c)
    applier = target.Applier(r, overwrite=False, epoch=epoch)
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        sid = c.execute("SELECT session_id FROM user_fridge_sessions WHERE expires_at > now() LIMIT 1").fetchone()[0]
        old = engine.read_states(c, src, [sid], version_base=epoch, capture_on=True)
        c.execute("INSERT INTO user_fridge_ingredients (session_id, ingredient_id) VALUES (%s, 3) ON CONFLICT DO NOTHING", [sid])
        c.execute("INSERT INTO user_fridge_ingredients (session_id, ingredient_id) VALUES (%s, 5) ON CONFLICT DO NOTHING", [sid])
        new = engine.read_states(c, src, [sid], version_base=epoch, capture_on=True)
        assert new[0][3] > old[0][3]
        assert applier.apply(new).written == 1
        assert applier.apply(new).written == 1  # twice: idempotent, same value
        value_new = r.get(f"session:{sid}")
        assert applier.apply(old).stale == 1  # older state after the newer one: refused
        assert r.get(f"session:{sid}") == value_new
        c.execute("DELETE FROM user_fridge_sessions WHERE session_id = %s", [sid])
        gone = engine.read_states(c, src, [sid], version_base=epoch, capture_on=True)
        assert gone[0][1] is None
        assert applier.apply(gone).deleted == 1
        assert applier.apply(new).stale == 1 and not r.exists(f"session:{sid}")  # no resurrection
    r.close()
    assert _verify(pg_dsn, redis_url)["total_differences"] == 0


def test_sessions_expiring_mid_migration_disappear_from_redis(pg_dsn, redis_url, rds, reports):
    fill(pg_dsn, 200)
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        soon = [r[0] for r in c.execute(
            """UPDATE user_fridge_sessions SET expires_at = now() + interval '2 seconds'
               WHERE session_id IN (SELECT session_id FROM user_fridge_sessions WHERE expires_at > now() LIMIT 20)
               RETURNING session_id""")]
    # --no-report: the 2-second sessions must still be there when migrate returns
    assert cli("migrate", "--from", pg_dsn, "--to", redis_url, "--no-report").returncode == 0
    assert sum(rds.exists(f"session:{s}") for s in soon) > 0
    time.sleep(2.5)
    assert sum(rds.exists(f"session:{s}") for s in soon) == 0
    assert _verify(pg_dsn, redis_url)["total_differences"] == 0


def test_cleanup_removes_what_migrate_installed_and_never_touches_app_rows(pg_dsn, redis_url, rds, reports):
    fill(pg_dsn, 300)
    with psycopg.connect(pg_dsn) as c:
        before = c.execute("SELECT count(*), sum(hashtext(session_id || expires_at::text)) FROM user_fridge_sessions").fetchone()
    assert cli("migrate", "--from", pg_dsn, "--to", redis_url, "--live", "--until-caught-up").returncode == 0
    res = cli("migrate", "cleanup", "--from", pg_dsn)
    assert res.returncode == 0 and "trigger" in res.stderr
    with psycopg.connect(pg_dsn) as c:
        assert c.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'fridgebench_migrate_%'").fetchone()[0] == 0
        assert c.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'fridgebench_migrate'").fetchone()[0] == 0
        after = c.execute("SELECT count(*), sum(hashtext(session_id || expires_at::text)) FROM user_fridge_sessions").fetchone()
    assert before == after

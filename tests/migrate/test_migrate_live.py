"""Live changes on real servers: a concurrent writer, --follow + verify, kill -9 and resume,
replays twice and out of order, expiry mid-migration, cleanup."""

from __future__ import annotations

import os
import signal
import threading
import time

import psycopg
import redis
from psycopg import sql

from tests.helpers import (assert_counted_on_both_sides, checkpoint, cli, db_now, fill, popen_cli, verify_cli,
                           wait_caught_up)
from fridgebench.migrate import apply, capture, run, target
from fridgebench.migrate.rehearsal import Writer
from fridgebench.migrate.source import SourceSchema


def _checkpoint(dsn: str) -> dict | None:
    return checkpoint(dsn)


_popen = popen_cli
_verify = verify_cli


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
    t0 = db_now(pg_dsn)
    doc = _verify(pg_dsn, redis_url)
    assert doc["total_differences"] == 0, doc["samples"]
    assert_counted_on_both_sides(pg_dsn, t0, doc)


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
        # the writer is still changing sessions (unless a stall outlasted its 4 s: then this is a second
        # "after"); --settle bounds how long a change may take to be applied: 20 s, not the default 5, so a
        # busy runner's stall of the applier is not read as a difference (it re-checks only what differs)
        during = _verify(pg_dsn, redis_url, "--settle", "20")
        wt.join()
        # strict while the writer is mid-flight: a lag the applier has not caught up with is reported
        # as in flight (separately), never as a difference (test_migrate_verify stresses this)
        assert during["checked"] > 1000 and during["total_differences"] == 0, during["samples"]
        wait_caught_up(pg_dsn)  # the writer stopped: --follow applies its last changes
        after = _verify(pg_dsn, redis_url)
        assert after["total_differences"] == 0 and after["in_flight"] == 0, after["samples"]
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert "resumable" in err


def test_kill_9_mid_backfill_then_resume_loses_and_resurrects_nothing(pg_dsn, redis_url, rds, reports):
    fill(pg_dsn, 20000, seed=4)
    args = ("migrate", "--from", pg_dsn, "--to", redis_url, "--live", "--until-caught-up",
            "--rate-limit", "6000", "--batch-size", "300")
    p = _popen(*args)
    deadline = time.time() + 60
    while time.time() < deadline:
        cp = _checkpoint(pg_dsn)
        if cp and cp["written"] > 4000:
            break
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    cp = _checkpoint(pg_dsn)
    assert cp and not cp["done"] and cp["written"] > 4000
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
    res = cli(*args, timeout=120)  # the same command line, as an operator reruns it
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
        old = apply.read_states(c, src, [sid], version_base=epoch, capture_on=True)
        c.execute("INSERT INTO user_fridge_ingredients (session_id, ingredient_id) VALUES (%s, 3) ON CONFLICT DO NOTHING", [sid])
        c.execute("INSERT INTO user_fridge_ingredients (session_id, ingredient_id) VALUES (%s, 5) ON CONFLICT DO NOTHING", [sid])
        new = apply.read_states(c, src, [sid], version_base=epoch, capture_on=True)
        assert new[0][3] > old[0][3]
        assert applier.apply(new).written == 1
        assert applier.apply(new).written == 1  # twice: idempotent, same value
        value_new = r.get(f"session:{sid}")
        assert applier.apply(old).stale == 1  # older state after the newer one: refused
        assert r.get(f"session:{sid}") == value_new
        c.execute("DELETE FROM user_fridge_sessions WHERE session_id = %s", [sid])
        gone = apply.read_states(c, src, [sid], version_base=epoch, capture_on=True)
        assert gone[0][1] is None
        assert applier.apply(gone).deleted == 1
        assert applier.apply(new).stale == 1 and not r.exists(f"session:{sid}")  # no resurrection
    r.close()
    assert _verify(pg_dsn, redis_url)["total_differences"] == 0


def test_sessions_expiring_mid_migration_disappear_from_redis(pg_dsn, redis_url, rds, reports):
    """Sessions expiring a few seconds after the migration are written with their exact expiry
    and vanish from Redis at it. The migration runs in-process (no interpreter start inside the
    window) and the disappearance is polled with a deadline."""
    fill(pg_dsn, 200)
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        soon = dict(c.execute(
            """UPDATE user_fridge_sessions SET expires_at = now() + interval '5 seconds'
               WHERE session_id IN (SELECT session_id FROM user_fridge_sessions WHERE expires_at > now() LIMIT 20)
               RETURNING session_id, floor(extract(epoch FROM expires_at) * 1000)::bigint""").fetchall())
    run.migrate(run.Options(dsn=pg_dsn, url=redis_url))
    written = [s for s in soon if rds.exists(f"session:{s}")]
    checked_ms = time.time() * 1000
    # one not in Redis had expired by the time it was looked for (a stall can make the migration itself
    # outlast the 5 s: then there is nothing left to judge, not a failure)
    assert all(soon[s] <= checked_ms for s in soon if s not in written), "a live session was not written"
    assert written or checked_ms >= min(soon.values()), "none of the sessions expiring in 5 s was written"
    assert all(rds.pexpiretime(f"session:{s}") == soon[s] for s in written)  # the same instant, to the ms
    deadline = max(soon.values()) / 1000 + 10
    while any(rds.exists(f"session:{s}") for s in soon):
        assert time.time() < deadline, "sessions outlived their expiry in Redis"
        time.sleep(0.1)
    assert _verify(pg_dsn, redis_url)["total_differences"] == 0


def _app_tables_digest(dsn: str) -> dict[str, tuple[int, str]]:
    """Every table of the application's schema, every column: its definition, and per table the
    row count and an md5 over all rows (each row as text, sorted)."""
    with psycopg.connect(dsn) as c:
        digest: dict[str, tuple[int, str]] = {"columns": (0, c.execute(
            """SELECT md5(string_agg(table_name || '.' || column_name || ' ' || data_type || ' '
                                     || coalesce(column_default, ''), ',' ORDER BY table_name, ordinal_position))
               FROM information_schema.columns WHERE table_schema = 'public'""").fetchone()[0])}
        tables = [r[0] for r in c.execute("SELECT table_name FROM information_schema.tables "
                                          "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")]
        assert {"ingredients", "user_fridge_sessions", "user_fridge_ingredients"} <= set(tables)
        for t in tables:
            n, h = c.execute(sql.SQL("SELECT count(*), md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) "
                                     "FROM {} x").format(sql.Identifier(t))).fetchone()
            digest[t] = (int(n), h)
    return digest


def _scripted_app(dsn: str, ids: list[str], ops: int = 400) -> None:
    """The application at work, deterministically (explicit ids, values and timestamps, one
    statement per transaction, in a fixed order): creates, adds, removes, extends, deletes. Run
    on two copies of a database it leaves them identical, unless something else writes."""
    base = "2030-01-01 00:00:00+00"
    with psycopg.connect(dsn, autocommit=True) as c:
        for i in range(ops):
            sid, ing, at = ids[(i * 37) % len(ids)], 1 + (i * 7) % 50, base
            kind = i % 5
            if kind == 0:
                new = f"scripted-{i:05d}"
                c.execute("INSERT INTO user_fridge_sessions (session_id, created_at, expires_at, last_accessed) "
                          "VALUES (%s, %s::timestamptz, %s::timestamptz + interval '1 day', %s::timestamptz)",
                          [new, at, at, at])
                ids.append(new)
            elif kind == 1:
                c.execute("INSERT INTO user_fridge_ingredients (session_id, ingredient_id, added_at) "
                          "SELECT session_id, %s, %s::timestamptz + %s * interval '1 second' "
                          "FROM user_fridge_sessions WHERE session_id = %s ON CONFLICT DO NOTHING",
                          [ing, at, i, sid])
            elif kind == 2:
                c.execute("DELETE FROM user_fridge_ingredients WHERE session_id = %s AND ingredient_id = "
                          "(SELECT min(ingredient_id) FROM user_fridge_ingredients WHERE session_id = %s)", [sid, sid])
            elif kind == 3:
                c.execute("UPDATE user_fridge_sessions SET expires_at = %s::timestamptz + %s * interval '1 minute', "
                          "last_accessed = %s::timestamptz WHERE session_id = %s", [at, i, at, sid])
            else:
                c.execute("DELETE FROM user_fridge_sessions WHERE session_id = %s", [sid])


def test_migrate_never_touches_the_application_rows_while_the_app_writes(pg_dsn, redis_url, rds, reports):
    """With the application writing while migrate's triggers are installed (during the backfill
    and after it), every application table, column and row ends exactly as the same writes leave
    a copy of the database migrate never touched; cleanup removes everything migrate installed."""
    from tests.servers import pg_admin

    fill(pg_dsn, 3000)
    db = pg_dsn.rsplit("/", 1)[1]
    control = f"{db}_ctl"
    pg_admin(f'CREATE DATABASE "{control}" TEMPLATE "{db}"')
    control_dsn = pg_dsn.rsplit("/", 1)[0] + "/" + control
    try:
        with psycopg.connect(pg_dsn) as c:
            ids = [r[0] for r in c.execute("SELECT session_id FROM user_fridge_sessions ORDER BY session_id LIMIT 300")]
        args = ("migrate", "--from", pg_dsn, "--to", redis_url, "--live", "--until-caught-up", "--rate-limit", "2000")
        p = _popen(*args)
        try:
            deadline = time.monotonic() + 60
            with psycopg.connect(pg_dsn, autocommit=True) as c:
                while not c.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'fridgebench_migrate_%'"
                                    ).fetchone()[0]:
                    assert time.monotonic() < deadline and p.poll() is None, "the triggers never appeared"
                    time.sleep(0.02)
            _scripted_app(pg_dsn, list(ids))  # while the backfill runs, and on after it
            assert _checkpoint(pg_dsn) is not None
        finally:
            out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        _scripted_app(control_dsn, list(ids))
        res = cli(*args)  # the same command applies what the app did after the first run caught up
        assert res.returncode == 0, res.stderr
        assert _verify(pg_dsn, redis_url)["total_differences"] == 0
        res = cli("migrate", "cleanup", "--from", pg_dsn)
        assert res.returncode == 0 and "trigger" in res.stderr
        with psycopg.connect(pg_dsn) as c:
            assert c.execute("SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'fridgebench_migrate_%'").fetchone()[0] == 0
            assert c.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'fridgebench_migrate'").fetchone()[0] == 0
            assert c.execute("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                             "WHERE n.nspname = 'fridgebench_migrate'").fetchone()[0] == 0
        assert _app_tables_digest(pg_dsn) == _app_tables_digest(control_dsn)
    finally:
        pg_admin(f'DROP DATABASE IF EXISTS "{control}" WITH (FORCE)')

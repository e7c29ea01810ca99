"""Resumability beyond the backfill, and the bookkeeping a resume relies on.

* kill -9 while ``--live --follow`` applies changes, then the *same* command line resumes it;
* SIGTERM and Ctrl-C of ``migrate``: exit 130, a resumable checkpoint, results left marked
  incomplete (never a ``results.json``), then the same command line finishes and verify finds
  0 differences;
* the Redis bookkeeping by its documented names (README): 64 ownership sets
  ``fridgebench:migrate:owned:NN`` and a version key ``fridgebench:migrate:v:{id}`` per session a
  change was applied to (a 48 h tombstone after a delete), each with its expiry.
"""

from __future__ import annotations

import json
import os
import signal
import threading

import psycopg
import pytest

from fridgebench.errors import UsageError
from fridgebench.measure.results import INCOMPLETE_MARKER, load_results
from fridgebench.migrate import rehearsal
from fridgebench.migrate.rehearsal import Writer
from tests.helpers import (assert_counted_on_both_sides, checkpoint, cli, db_now, fill, popen_cli, verify_cli,
                           wait_caught_up, wait_until)

OWNED = [f"fridgebench:migrate:owned:{i:02d}" for i in range(64)]
TOMBSTONE_MS = 48 * 3600 * 1000


def _live_expiries(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as c:
        return dict(c.execute("SELECT session_id, floor(extract(epoch FROM expires_at) * 1000)::bigint "
                              "FROM user_fridge_sessions WHERE expires_at > now()").fetchall())


def _stop(p) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    if p.poll() is None:
        p.kill()
    return p.communicate(timeout=60)


def test_kill_9_while_follow_applies_changes_then_the_same_command_resumes(pg_dsn, redis_url, rds, reports):
    fill(pg_dsn, 3000, seed=12)
    args = ("migrate", "--from", pg_dsn, "--to", redis_url, "--live", "--follow", "--batch-size", "500")
    writer = Writer(pg_dsn, rate=400, seed=21)
    wt = threading.Thread(target=writer.run, args=(600.0,))
    p = popen_cli(*args)
    try:
        wait_until("the backfill", lambda: (checkpoint(pg_dsn) or {}).get("done"))
        wt.start()
        # killed while applying: the writer keeps the applier busy with passes
        wait_until("changes applied", lambda: (checkpoint(pg_dsn) or {}).get("applied", 0) > 300)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(30)
    finally:
        _stop(p)
    killed = checkpoint(pg_dsn)
    assert killed and killed["done"] and killed["applied"] > 300
    ops_at_kill = writer.stats.total
    try:
        # the application goes on while migrate is down
        wait_until("the application to change more sessions", lambda: writer.stats.total > ops_at_kill + 300)
        p = popen_cli(*args)  # the same command line, as an operator reruns it
        try:
            wait_until("the rerun to apply changes", lambda: (checkpoint(pg_dsn) or {}).get("applied", 0)
                       > killed["applied"])
            writer.stop.set()
            wt.join()
            wait_caught_up(pg_dsn)
            during = verify_cli(pg_dsn, redis_url)  # while --follow still runs
            assert during["total_differences"] == 0 and during["in_flight"] == 0, during["samples"]
            now = checkpoint(pg_dsn)
            assert now is not None
            assert now["run_id"] == killed["run_id"], "a new migration was started instead of resuming"
            assert now["written"] == killed["written"], "the backfill ran again"
        finally:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=60)
        assert p.returncode == 130, err
        assert "resumable" in err and "Traceback" not in err
    finally:
        writer.stop.set()
        if wt.is_alive():
            wt.join()
    # the application changed sessions on both sides of the kill (deletes included)
    assert writer.stats.total > ops_at_kill + 300 and writer.stats.ops["delete"] > 0
    t0 = db_now(pg_dsn)
    after = verify_cli(pg_dsn, redis_url)
    assert after["total_differences"] == 0 and after["checked"] > 2000, after["samples"]
    assert_counted_on_both_sides(pg_dsn, t0, after)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_migrate_resumably_and_the_same_command_finishes(sig, pg_dsn, redis_url, rds, reports):
    rehearsal.fill(pg_dsn, 6000, seed=8, existing="reuse", expiring_share=0.0)
    args = ("migrate", "--from", pg_dsn, "--to", redis_url, "--live", "--until-caught-up",
            "--rate-limit", "3000", "--batch-size", "300")
    p = popen_cli(*args)
    try:
        wait_until("part of the backfill", lambda: (checkpoint(pg_dsn) or {}).get("written", 0) > 1000)
        p.send_signal(sig)
        out, err = p.communicate(timeout=60)
    finally:
        _stop(p)
    assert p.returncode == 130, err
    assert "resumable" in err and "Traceback" not in err
    assert out == ""  # nothing on stdout presented as a result
    # the run's results are marked incomplete and never named results.json
    runs = [d for d in reports.iterdir() if d.is_dir()]
    assert len(runs) == 1, runs
    assert (runs[0] / INCOMPLETE_MARKER).exists() and not (runs[0] / "results.json").exists()
    assert json.loads((runs[0] / "results.json.partial").read_text())["complete"] is False
    with pytest.raises(UsageError, match="did not finish"):
        load_results(runs[0])
    # the checkpoint claims only what Redis holds
    cp = checkpoint(pg_dsn)
    assert cp is not None and not cp["done"] and 1000 < cp["written"] < 6000
    with psycopg.connect(pg_dsn) as c:
        claimed = [r[0] for r in c.execute("SELECT session_id FROM user_fridge_sessions WHERE expires_at > now() "
                                           "AND session_id <= %s", [cp["last"]])] if cp["last"] else []
    pipe = rds.pipeline(transaction=False)
    for sid in claimed:
        pipe.exists(f"session:{sid}")
    assert all(pipe.execute())
    res = cli(*args, timeout=120)  # the same command line
    assert res.returncode == 0, res.stderr
    assert "resumed" in res.stderr
    assert checkpoint(pg_dsn)["run_id"] == cp["run_id"]  # type: ignore[index]
    doc = verify_cli(pg_dsn, redis_url)
    assert doc["total_differences"] == 0 and doc["checked"] == doc["redis_keys"] > 5500, doc["samples"]
    complete = [d for d in reports.iterdir() if (d / "results.json").exists()]
    assert len(complete) == 2  # the resumed migrate's and verify's, each complete
    assert all(load_results(d).complete for d in complete)


def test_bookkeeping_keys_by_their_documented_names_and_expiries(pg_dsn, redis_url, rds, reports):
    rehearsal.fill(pg_dsn, 2000, seed=2, existing="reuse", expiring_share=0.0)  # every bucket gets members
    args = ("migrate", "--from", pg_dsn, "--to", redis_url, "--live", "--until-caught-up")
    res = cli(*args)
    assert res.returncode == 0, res.stderr
    live = _live_expiries(pg_dsn)
    # after the backfill: the 64 ownership sets, no version key (nothing changed since the snapshot)
    assert {k.decode() for k in rds.scan_iter(match="fridgebench:*", count=1000)} == set(OWNED)
    assert {m.decode() for m in rds.sunion(OWNED)} == set(live)
    for name in OWNED:
        members = [m.decode() for m in rds.smembers(name)]
        assert rds.pexpiretime(name) >= max(live[m] for m in members), name  # outlives every member
    # the application adds (and so extends), extends, and deletes; the same command applies them
    added, extended, deleted = sorted(live)[:3]
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute("INSERT INTO user_fridge_ingredients (session_id, ingredient_id) VALUES (%s, 9) "
                  "ON CONFLICT DO NOTHING", [added])
        c.execute("UPDATE user_fridge_sessions SET expires_at = now() + interval '24 hours' "
                  "WHERE session_id = ANY(%s)", [[added, extended]])
        c.execute("DELETE FROM user_fridge_sessions WHERE session_id = %s", [deleted])
        epoch = int(c.execute("SELECT value FROM fridgebench_migrate.meta WHERE key = 'epoch'").fetchone()[0])
    res = cli(*args)
    assert res.returncode == 0, res.stderr
    now = _live_expiries(pg_dsn)
    for sid in (added, extended):
        vkey = f"fridgebench:migrate:v:{sid}"
        assert int(rds.get(vkey)) > epoch
        # the version key vanishes with its session: both expire at PostgreSQL's expires_at
        assert rds.pexpiretime(vkey) == rds.pexpiretime(f"session:{sid}") == now[sid]
    assert not rds.exists(f"session:{deleted}")
    tomb = f"fridgebench:migrate:v:{deleted}"
    assert int(rds.get(tomb)) > epoch
    assert TOMBSTONE_MS - 120_000 < rds.pttl(tomb) <= TOMBSTONE_MS  # a 48 h tombstone: no resurrection
    versioned = {k.decode() for k in rds.scan_iter(match="fridgebench:migrate:v:*", count=1000)}
    assert versioned == {f"fridgebench:migrate:v:{s}" for s in (added, extended, deleted)}
    pipe = rds.pipeline(transaction=False)
    every = list(rds.scan_iter(count=1000))
    for k in every:
        pipe.pttl(k)
    assert -1 not in pipe.execute(), "a key without an expiry"
    assert verify_cli(pg_dsn, redis_url)["total_differences"] == 0

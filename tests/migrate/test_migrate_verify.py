"""verify against real servers: differences are matched by session id and explained by versions.

While a migrate runs, a difference is "in flight" only when Redis holds an older version and the
missing change rows are not applied yet (or Redis is already ahead of the state verify read); a
difference at the same version, or a change below the apply watermark that Redis lacks, is reported
even while migrate runs. The stress test verifies repeatedly, with no settle time, while
migrate --follow applies three writers' changes, and demands 0 unexplained differences every time.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest
import redis

from tests import procs
from tests.helpers import assert_counted_on_both_sides, fill
from fridgebench.migrate import capture, run, target, verify
from fridgebench.migrate.rehearsal import Writer
from fridgebench.migrate.source import SourceSchema

SRC = SourceSchema()


def _live_ids(dsn: str, n: int, offset: int = 0) -> list[str]:
    with psycopg.connect(dsn) as c:
        return [r[0] for r in c.execute(
            "SELECT session_id FROM user_fridge_sessions WHERE expires_at > now() + interval '1 hour' "
            "ORDER BY md5(session_id) OFFSET %s LIMIT %s", [offset, n])]


def _migrated(dsn: str, url: str, n: int) -> None:
    fill(dsn, n)
    doc = run.migrate(run.Options(dsn=dsn, url=url, live=True, until_caught_up=True))
    assert doc["backfill"]["written"] > n * 0.8


def _verify(dsn: str, r: redis.Redis, **kw) -> verify.VerifyReport:
    return verify.verify(SRC, dsn, r, sample=10_000, **kw)


def _applied_past(dsn: str, sid: str) -> bool:
    """Every change row of ``sid`` lies below the apply watermark (so a missing one reads as lost)."""
    with psycopg.connect(dsn) as c:
        wm = verify._apply_watermark(c)
        top = c.execute(f"SELECT max(txid::text::bigint) FROM {capture.CAPTURE_SCHEMA}.changes WHERE session_id = %s",
                        [sid]).fetchone()[0]
    return wm is not None and top is not None and top < wm


class _PretendMigrateRuns:
    """Hold migrate's advisory lock, as a running migrate --follow does (verify reads it)."""

    def __init__(self, dsn: str) -> None:
        self.c = psycopg.connect(dsn, autocommit=True)

    def __enter__(self) -> "_PretendMigrateRuns":
        capture.try_lock(self.c)
        return self

    def __exit__(self, *exc: object) -> None:
        self.c.close()


@pytest.mark.parametrize("plan", ["default", "batched_hash_join"])
def test_many_differences_are_reported_for_the_right_sessions_and_kinds(pg_dsn, redis_url, rds, reports, plan):
    # The recheck's state query returns rows in plan order, not input order (a hash join that
    # spills to batches returns them batch by batch): a positional pairing compared one session's
    # PostgreSQL state with another's Redis value. The answer must not depend on the plan.
    _migrated(pg_dsn, redis_url, 3000)
    ids = _live_ids(pg_dsn, 600)
    missing, content, ttl = ids[:150], ids[150:300], ids[300:450]
    extra = [f"zz-extra-{i:04d}" for i in range(150)]
    pipe = rds.pipeline(transaction=False)
    for s in missing:
        pipe.delete(target.session_key(s))
    for s in content:
        pipe.set(target.session_key(s), json.dumps({"created_at": "2020-01-01T00:00:00.000000+00:00",
                                                    "ingredients": ["tampered"]}), keepttl=True)
    for s in ttl:
        pipe.pexpire(target.session_key(s), 3_600_000)
    for s in extra:
        pipe.set(target.session_key(s), b'{"created_at": null, "ingredients": []}', px=3_600_000)
    pipe.execute()
    dsn = pg_dsn + ("?options=-c%20enable_nestloop%3Doff%20-c%20enable_mergejoin%3Doff%20-c%20work_mem%3D64kB"
                    if plan == "batched_hash_join" else "")
    rep = _verify(dsn, rds, settle_s=0)
    assert rep.differences == {"missing": 150, "extra": 150, "content": 150, "ttl": 150, "no_expiry": 0}
    assert rep.in_flight == 0
    by_kind: dict[str, set[str]] = {}
    for smp in rep.samples:
        by_kind.setdefault(smp["kind"], set()).add(smp["session_id"])
    assert by_kind == {"missing": set(missing), "content": set(content), "ttl": set(ttl), "extra": set(extra)}


def test_in_flight_only_when_a_change_is_not_applied_yet(pg_dsn, redis_url, rds, reports):
    _migrated(pg_dsn, redis_url, 300)
    lag, lost, same = _live_ids(pg_dsn, 3)
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        # "lost": a change applied (below the watermark) whose result Redis no longer holds
        old_val = rds.get(target.session_key(lost))
        epoch = capture.capture_epoch(c)
        assert rds.get(target.version_key(lost)) is None  # backfilled unchanged: no version key, owned
        old_ver = target.read_versions(rds, [lost], epoch)[lost]
        assert old_ver == epoch
        c.execute("INSERT INTO user_fridge_ingredients (session_id, ingredient_id) VALUES (%s, 7) "
                  "ON CONFLICT DO NOTHING", [lost])
        c.execute("UPDATE user_fridge_sessions SET expires_at = now() + interval '24 hours' WHERE session_id = %s", [lost])
    run.migrate(run.Options(dsn=pg_dsn, url=redis_url, live=True, until_caught_up=True))
    # "lost" needs the apply watermark past the session's change rows. The watermark is the
    # cluster-wide snapshot xmin: another transaction anywhere on the server (a busy shared machine)
    # holds it back, and verify then rightly calls the difference "in flight". Apply again until it passes.
    deadline = time.monotonic() + 120
    while not _applied_past(pg_dsn, lost):
        assert time.monotonic() < deadline, "the apply watermark never passed the session's changes"
        time.sleep(0.5)
        run.migrate(run.Options(dsn=pg_dsn, url=redis_url, live=True, until_caught_up=True))
    assert rds.get(target.session_key(lost)) != old_val
    assert target.read_versions(rds, [lost], epoch)[lost] > old_ver  # the applier wrote a newer version key
    rds.delete(target.version_key(lost))  # back to the backfill's state and version
    rds.set(target.session_key(lost), old_val, keepttl=True)
    assert target.read_versions(rds, [lost], epoch)[lost] == old_ver
    # "same": Redis holds the current version with another value (an apply bug would look like this)
    rds.set(target.session_key(same), b'{"created_at": null, "ingredients": ["x"]}', keepttl=True)
    # "lag": changed in PostgreSQL after the last apply: a genuine change in flight
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute("DELETE FROM user_fridge_sessions WHERE session_id = %s", [lag])
    with _PretendMigrateRuns(pg_dsn):
        rep = _verify(pg_dsn, rds, settle_s=0.6)
    assert rep.in_flight == 1
    assert rep.differences["content"] == 2 and rep.total == 2, rep.samples
    why = {s["session_id"]: s["why"] for s in rep.samples}
    assert "every change of the session is applied" in why[lost]
    assert "same version" in why[same]
    assert lag not in why
    rep = _verify(pg_dsn, rds, settle_s=0)  # nothing is applying changes: the lag is a difference too
    assert rep.in_flight == 0 and rep.differences["extra"] == 1 and rep.total == 3
    assert {s["session_id"] for s in rep.samples} == {lag, lost, same}


def test_verify_during_follow_under_three_fast_writers_never_reports_false_differences(pg_dsn, redis_url, rds, reports):
    fill(pg_dsn, 3000, seed=9)
    p = procs.popen([sys.executable, "-c", "from fridgebench.cli import main; main()", "migrate",
                     "--from", pg_dsn, "--to", redis_url, "--live", "--follow"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        with psycopg.connect(pg_dsn, autocommit=True) as c:
            deadline = time.time() + 30
            while time.time() < deadline:
                if c.execute("SELECT to_regclass('fridgebench_migrate.checkpoint') IS NOT NULL").fetchone()[0]:
                    row = c.execute("SELECT backfill_done FROM fridgebench_migrate.checkpoint").fetchone()
                    if row and row[0]:
                        break
                time.sleep(0.1)
            else:
                pytest.fail("backfill did not finish")
            writers = [Writer(pg_dsn, rate=0, seed=100 + k) for k in range(3)]  # as fast as they go
            threads = [threading.Thread(target=w.run, args=(600.0,)) for w in writers]
            for t in threads:
                t.start()
            time.sleep(0.5)
            during: list[verify.VerifyReport] = []
            # the writers run until verify has run at least 10 times under them (for at least 12 s,
            # and 3000 changes), however slow this machine is today: a deadline, not a fixed window
            t0 = time.monotonic()
            try:
                while (len(during) < 10 or time.monotonic() - t0 < 12
                       or sum(w.stats.total for w in writers) <= 3000):
                    assert time.monotonic() - t0 < 240, (len(during), sum(w.stats.total for w in writers))
                    assert all(t.is_alive() for t in threads), "a writer died"
                    during.append(_verify(pg_dsn, rds, settle_s=0))  # one recheck: the lag must be explained
            finally:
                for w in writers:
                    w.stop.set()
                for t in threads:
                    t.join()
            assert sum(w.stats.total for w in writers) > 3000
            assert len(during) >= 10
            bad = [(i, rep.differences, rep.samples[:3]) for i, rep in enumerate(during) if rep.total]
            assert not bad, bad
            assert sum(rep.in_flight for rep in during) > 0, "the in-flight path was never exercised"
            deadline = time.time() + 30
            while time.time() < deadline:  # lag zero: the watermark passed every change row
                wm, mx = c.execute("SELECT (SELECT apply_watermark FROM fridgebench_migrate.checkpoint)::text, "
                                   "(SELECT max(txid) FROM fridgebench_migrate.changes)::text").fetchone()
                if int(wm) > int(mx):
                    break
                time.sleep(0.1)
            for _ in range(5):
                t0 = c.execute("SELECT now()").fetchone()[0]
                rep = _verify(pg_dsn, rds, settle_s=0)
                assert rep.total == 0 and rep.in_flight == 0, (rep.differences, rep.samples[:3])
                # every live session is counted on both sides, except one that expired while verify ran
                # (counted when PostgreSQL was read, gone when Redis was scanned); the fill makes some
                # sessions expire within two minutes, so that happens
                assert_counted_on_both_sides(pg_dsn, t0, rep.to_dict())
    finally:
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    assert p.returncode == 130, err

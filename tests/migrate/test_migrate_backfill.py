"""Backfill + verify on real servers: format, expiry, ordering, the seed's app code, bad input."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime

import psycopg
import pytest

from tests.helpers import cli, db_now, expired_since, fill
from tests.servers import throwaway_redis
from fridgebench.migrate import target
from fridgebench.errors import MigrationRefused
from fridgebench.migrate.target import TargetState, check_safe


def _live(dsn: str) -> dict[str, tuple[int, list[str]]]:
    with psycopg.connect(dsn) as c:
        rows = c.execute(
            """SELECT s.session_id, floor(extract(epoch FROM s.expires_at) * 1000)::bigint,
                      COALESCE(array_agg(i.name ORDER BY ui.added_at, ui.id) FILTER (WHERE i.name IS NOT NULL), '{}')
               FROM user_fridge_sessions s LEFT JOIN user_fridge_ingredients ui USING (session_id)
               LEFT JOIN ingredients i ON i.id = ui.ingredient_id
               WHERE s.expires_at > now() GROUP BY 1, 2""").fetchall()
    return {r[0]: (r[1], list(r[2])) for r in rows}


def test_backfill_writes_every_live_session_in_the_seed_format(pg_dsn, redis_url, rds, reports):
    fill(pg_dsn, 1500)
    expected = _live(pg_dsn)
    with psycopg.connect(pg_dsn) as c:
        expired = [r[0] for r in c.execute("SELECT session_id FROM user_fridge_sessions WHERE expires_at <= now()")]
    assert expired, "the rehearsal data should hold expired sessions"
    res = cli("migrate", "--from", pg_dsn, "--to", redis_url, "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["backfill"]["written"] >= len(expected) - 5  # a few may expire between the two reads
    keys = {k.decode()[len("session:"):] for k in rds.scan_iter(match="session:*", count=1000)}
    assert not keys & set(expired), "expired sessions must be skipped"
    for sid, (pxat, names) in list(expected.items())[:300]:
        raw = rds.get(f"session:{sid}")
        if raw is None:
            continue  # expired meanwhile
        value = json.loads(raw)
        assert set(value) == {"created_at", "ingredients"}
        assert value["ingredients"] == names  # order: added_at, then id
        assert datetime.fromisoformat(value["created_at"]).utcoffset() is not None
        assert rds.pexpiretime(f"session:{sid}") == pxat  # same expiry instant, to the ms
    # no key without an expiry, anywhere
    pipe = rds.pipeline(transaction=False)
    allkeys = list(rds.scan_iter(count=1000))
    for k in allkeys:
        pipe.pttl(k)
    # -1: no expiry (never allowed); -2: expired between SCAN and PTTL (the fill has sessions
    # expiring within two minutes)
    assert -1 not in pipe.execute(), "a key without an expiry"
    ver = cli("migrate", "verify", "--from", pg_dsn, "--to", redis_url, "--json")
    assert ver.returncode == 0, ver.stderr
    assert json.loads(ver.stdout)["total_differences"] == 0
    assert (reports).exists() and any(reports.glob("*/results.json"))


@pytest.mark.filterwarnings("ignore:Call to deprecated setex")  # the seed's own call, kept as written
def test_seed_application_code_reads_and_extends_migrated_sessions(pg_dsn, redis_url, rds, reports):
    """The seed's own code works on what migrate wrote: its add (GET -> json.loads -> extend ->
    SETEX) finds the session's ingredients as PostgreSQL has them, and what it writes back reads
    as that session through fridgebench's seed store; verify then sees exactly that one session
    differ (the add went to Redis only)."""
    import asyncio

    from fridgebench.stores.redis_seed import RedisSeedStore

    fill(pg_dsn, 200)
    assert cli("migrate", "--from", pg_dsn, "--to", redis_url).returncode == 0
    live = _live(pg_dsn)
    sid = next(s for s, (_px, names) in live.items() if len(names) >= 2)
    key = f"session:{sid}"
    # the seed's add_ingredients, verbatim in spirit
    session_data = rds.get(key)
    data = json.loads(session_data)
    assert data["ingredients"] == live[sid][1]  # what the application had, in its order
    created = datetime.fromisoformat(data["created_at"])
    data["ingredients"].extend(["김치", "두부"])
    rds.setex(key, 86400, json.dumps(data))

    async def read():  # type: ignore[no-untyped-def]
        async with RedisSeedStore(redis_url) as store:
            return await store.get(sid)

    got = asyncio.run(read())
    assert got is not None and list(got.ingredients) == live[sid][1] + ["김치", "두부"]
    assert got.created_at == created
    assert 86300 < (got.expires_at - datetime.now(created.tzinfo)).total_seconds() <= 86400
    ver = cli("migrate", "verify", "--from", pg_dsn, "--to", redis_url, "--json", "--settle", "0")
    doc = json.loads(ver.stdout)
    assert doc["total_differences"] == 1 and [smp["session_id"] for smp in doc["samples"]] == [sid], doc


def test_verify_finds_missing_extra_changed_and_ttl(pg_dsn, redis_url, rds, reports):
    fill(pg_dsn, 300)
    assert cli("migrate", "--from", pg_dsn, "--to", redis_url).returncode == 0
    keys = [k.decode() for k in rds.scan_iter(match="session:*")][:4]
    rds.delete(keys[0])  # missing
    v = json.loads(rds.get(keys[1]))
    v["ingredients"].append("없는재료")
    rds.set(keys[1], json.dumps(v, ensure_ascii=False), keepttl=True)  # content
    rds.pexpire(keys[2], 3_600_000)  # ttl off
    rds.set("session:ghost", "{}", ex=100)  # extra
    res = cli("migrate", "verify", "--from", pg_dsn, "--to", redis_url, "--json", "--settle", "0")
    assert res.returncode == 5  # ExitStatus.DIFFERENCES: its own status, apart from "could not verify" (1)
    doc = json.loads(res.stdout)
    assert doc["differences"] == {"missing": 1, "extra": 1, "content": 1, "ttl": 1, "no_expiry": 0}
    assert len(doc["samples"]) == 4
    assert "differ" in res.stderr and "Traceback" not in res.stderr


def test_refuses_a_target_holding_foreign_sessions_unless_overwrite(pg_dsn, redis_url, rds, reports):
    fill(pg_dsn, 100)
    rds.set("session:someone-elses", '{"created_at": "x", "ingredients": []}', ex=600)
    res = cli("migrate", "--from", pg_dsn, "--to", redis_url)
    assert res.returncode == 2
    assert "--overwrite" in res.stderr and res.stderr.count("error:") == 1
    assert rds.dbsize() == 1  # nothing written
    assert cli("migrate", "--from", pg_dsn, "--to", redis_url, "--overwrite").returncode == 0
    assert rds.dbsize() > 100


def test_inspect_counts_exactly_the_session_keys_neither_owned_nor_versioned(rds):
    """The preflight's ownership check (one SMISMEMBER per ownership set, EXISTS for the rest) on
    real Redis: owned and versioned keys are fridgebench's, every other session key is foreign."""
    owned = [f"own-{i}" for i in range(700)]
    versioned = [f"ver-{i}" for i in range(30)]
    foreign = [f"app-{i}" for i in range(12)]
    pipe = rds.pipeline(transaction=False)
    for sid in owned + versioned + foreign:
        pipe.set(target.session_key(sid), b"{}", ex=600)
    for sid in owned:
        pipe.sadd(target.owner_key(sid), sid)
    for sid in versioned:
        pipe.set(target.version_key(sid), 7, ex=600)
    pipe.execute()
    st = target.inspect(rds)
    assert st.session_keys == 742 and st.foreign_keys == 12
    assert st.sample_foreign and all(k.startswith("session:app-") for k in st.sample_foreign)
    rds.srem(target.owner_key(owned[0]), owned[0])  # one owned key loses its ownership: now foreign
    assert target.inspect(rds).foreign_keys == 13


@pytest.mark.parametrize("state, estimate, force, says", [
    (TargetState("7.0", "allkeys-lru", 0, 0, 0, 0, []), 10, False, "--force"),
    # volatile-* evicts keys with a TTL: every migrated session, and the ownership sets
    (TargetState("7.0", "volatile-lru", 0, 0, 0, 0, []), 10, False, "volatile-lru"),
    (TargetState("7.0", "noeviction", 1000, 900, 0, 0, []), 500, False, "maxmemory"),
    # PEXPIREAT NX/GT and PEXPIRETIME need Redis 7: refused even with --force
    (TargetState("6.2.14", "noeviction", 0, 0, 0, 0, []), 10, True, "7.0 or newer"),
])
def test_safety_check_refuses_what_could_drop_or_break_sessions(state, estimate, force, says):
    with pytest.raises(MigrationRefused, match=re.escape(says)):
        check_safe(state, estimate_bytes=estimate, overwrite=False, force=force, where="r")


def test_force_turns_an_eviction_hazard_into_a_warning():
    warned = check_safe(TargetState("7.0", "allkeys-lru", 0, 0, 0, 0, []), estimate_bytes=10, overwrite=False,
                        force=True, where="r")
    assert warned and "evict" in warned[0]


def test_dry_run_changes_nothing(pg_dsn, redis_url, rds, reports):
    fill(pg_dsn, 400)
    res = cli("migrate", "--from", pg_dsn, "--to", redis_url, "--dry-run", "--live", "--json")
    assert res.returncode == 0, res.stderr
    plan = json.loads(res.stdout)["plan"]
    assert plan["live_sessions"] > 300 and plan["expired_sessions"] > 0
    assert plan["estimated_redis_bytes"] > plan["live_sessions"] * 100
    assert rds.dbsize() == 0
    with psycopg.connect(pg_dsn) as c:
        assert c.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'fridgebench_migrate'").fetchone()[0] == 0


def test_bad_input_gives_one_line_and_nonzero_exit(pg_dsn, redis_url, reports):
    bad_pg = cli("migrate", "--from", "postgresql://postgres:sekret@127.0.0.1:1/x", "--to", redis_url)
    assert bad_pg.returncode == 1 and "cannot" in bad_pg.stderr and "sekret" not in bad_pg.stderr + bad_pg.stdout
    fill(pg_dsn, 10)
    bad_r = cli("migrate", "--from", pg_dsn, "--to", "redis://:hunter2@127.0.0.1:1/0")
    assert bad_r.returncode == 1 and "cannot reach Redis" in bad_r.stderr and "hunter2" not in bad_r.stderr
    wrong = cli("migrate", "--from", pg_dsn, "--to", redis_url, "--table", "sessions=nope")
    assert wrong.returncode == 2 and "no table 'nope'" in wrong.stderr
    for r in (bad_pg, bad_r, wrong):
        assert "Traceback" not in r.stderr
        assert len([l for l in r.stderr.splitlines() if l.startswith("error:")]) == 1


def test_parallel_backfill_frames_match_the_value_contract_and_cover_every_range(pg_dsn, redis_url, rds, reports):
    """The RESP frames PostgreSQL builds carry exactly the value every other reader renders, and the
    key ranges of a parallel backfill cover every live session once (checkpointed per range)."""
    from fridgebench.migrate import apply, rehearsal, run
    from fridgebench.migrate.source import SourceSchema

    rehearsal.fill(pg_dsn, 6000, seed=3, existing="reuse", expiring_share=0.0)  # none expires mid-test
    with psycopg.connect(pg_dsn) as c:  # a name that needs JSON escaping
        c.execute("""UPDATE ingredients SET name = 'a "quoted" \\ name' WHERE id = (
                       SELECT ingredient_id FROM user_fridge_ingredients GROUP BY 1 ORDER BY count(*) DESC LIMIT 1)""")
    s = run.migrate(run.Options(dsn=pg_dsn, url=redis_url, concurrency=3, batch_size=250))
    cp = s["checkpoint"]
    assert cp["backfill_done"] and len(cp["ranges"]) > 3 and all(r["done"] for r in cp["ranges"])
    src = SourceSchema()
    with psycopg.connect(pg_dsn) as c:
        ids = [r[0] for r in c.execute("SELECT session_id FROM user_fridge_sessions WHERE expires_at > now()")]
        states = apply.read_states(c, src, ids, version_base=0, capture_on=False)
    # one key per session, plus the 64 ownership sets (no per-session bookkeeping key)
    assert s["backfill"]["written"] == len(ids) and rds.dbsize() == len(ids) + target.OWNER_BUCKETS
    pipe = rds.pipeline(transaction=False)
    for sid, _v, _px, _ver in states:
        pipe.get(f"session:{sid}")
        pipe.pexpiretime(f"session:{sid}")
        pipe.sismember(target.owner_key(sid), sid)
        pipe.pexpiretime(target.owner_key(sid))
        pipe.exists(target.version_key(sid))
    got = pipe.execute()
    for k, (sid, value, pxat, _ver) in enumerate(states):
        v, px, owned, owner_px, vkey = got[5 * k:5 * k + 5]
        assert v.decode() == value, sid  # byte-identical JSON
        assert px == pxat
        assert owned, sid
        assert owner_px >= pxat  # the ownership outlives every session it vouches for
        assert vkey == 0  # at the epoch: no version key needed
    assert sum(rds.scard(k) for k in target.owner_keys()) == len(ids)
    assert any('\\"quoted\\"' in v for _s, v, _p, _x in states)


@pytest.fixture
def written_sizes(monkeypatch) -> list[int]:
    """The number of sessions in each write of the backfill (each call of ``target.batch_commands``,
    which still frames them)."""
    sizes: list[int] = []
    real = target.batch_commands

    def recording(ids, *args, **kwargs):
        sizes.append(len(ids))
        return real(ids, *args, **kwargs)

    monkeypatch.setattr(target, "batch_commands", recording)
    return sizes


def test_batches_hold_about_batch_size_live_sessions_when_most_rows_are_expired(pg_dsn, redis_url, rds, reports,
                                                                               written_sizes):
    """A table keeping expired rows (the application's cleanup job is behind): batches span more
    keys (up to 8x) so each still holds about --batch-size live sessions, and every live one lands."""
    from fridgebench.migrate import rehearsal, run

    rehearsal.fill(pg_dsn, 8000, seed=5, existing="reuse", expired_share=0.85, expiring_share=0.0)
    sizes = written_sizes
    s = run.migrate(run.Options(dsn=pg_dsn, url=redis_url, concurrency=1, batch_size=100))
    with psycopg.connect(pg_dsn) as c:
        live = c.execute("SELECT count(*) FROM user_fridge_sessions WHERE expires_at > now()").fetchone()[0]
    assert 900 < live < 1500 and s["backfill"]["written"] == live == sum(sizes)
    full = sorted(sizes[1:-1])  # the first batch spans batch_size keys; the last is the remainder
    assert full and full[len(full) // 2] >= 60, sizes  # ~15 live per 100 keys without the adaptation
    assert max(sizes) <= 100  # never more than --batch-size sessions in one write


def test_a_span_grown_over_expired_keys_that_meets_live_ones_still_writes_and_paces_in_batch_size_pieces(
        pg_dsn, redis_url, rds, reports, written_sizes):
    """Keys expired up to some id, live after it: the batch after the expired stretch spans 8x the
    keys and finds them all live. It is written in --batch-size pieces, each paced by --rate-limit
    and each with its ownership acknowledged first; every live session lands, owned."""
    from fridgebench.migrate import rehearsal, run

    rehearsal.fill(pg_dsn, 3000, seed=6, existing="reuse", expired_share=0.0, expiring_share=0.0)
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute("""UPDATE user_fridge_sessions SET expires_at = now() - interval '1 hour' WHERE session_id IN
                     (SELECT session_id FROM user_fridge_sessions ORDER BY session_id LIMIT 600)""")
        live = c.execute("SELECT count(*) FROM user_fridge_sessions WHERE expires_at > now()").fetchone()[0]
    sizes = written_sizes
    t0 = time.perf_counter()
    s = run.migrate(run.Options(dsn=pg_dsn, url=redis_url, concurrency=1, rate_limit=1000))  # pieces of 100
    dt = time.perf_counter() - t0
    assert s["backfill"]["written"] == live == sum(sizes) == 2400
    assert max(sizes) <= 100, sizes
    assert dt >= 2400 / 1000 * 0.9  # paced
    pipe = rds.pipeline(transaction=False)
    with psycopg.connect(pg_dsn) as c:
        ids = [r[0] for r in c.execute("SELECT session_id FROM user_fridge_sessions WHERE expires_at > now()")]
    for sid in ids:
        pipe.sismember(target.owner_key(sid), sid)
    assert all(pipe.execute())


def test_range_prefix_is_the_contiguous_cursor():
    from fridgebench.migrate.backfill import _prefix

    r = lambda lo, hi, last=None, done=False: {"lo": lo, "hi": hi, "last": last, "done": done}  # noqa: E731
    assert _prefix([r(None, "b"), r("b", None)], None) is None
    assert _prefix([r(None, "b", "a"), r("b", None, "x")], None) == "a"
    assert _prefix([r(None, "b", "a", True), r("b", "d")], None) == "b"  # range 0 done, range 1 not started
    assert _prefix([r(None, "b", "a"), r("b", "d", "c", True)], None) == "a"  # range 1 ahead: not contiguous
    assert _prefix([r(None, "b", "a", True), r("b", "d", "c"), r("d", None, "z", True)], None) == "c"
    assert _prefix([r(None, "b", "a", True), r("b", "d", "c", True), r("d", None, "z", True)], None) == "z"
    assert _prefix([r("k", "m", None), r("m", None)], "k") == "k"


def test_a_key_range_with_no_live_sessions_is_backfilled_cleanly(pg_dsn, redis_url, rds, reports, monkeypatch):
    """A range whose sessions are all gone (deleted while a migration was down, say) yields a COPY
    of just its header and trailer; it must count as done, not break the batch parser."""
    from fridgebench.migrate import backfill, run

    fill(pg_dsn, 3000, seed=5)

    def split(conn, src, after, live, parts):  # type: ignore[no-untyped-def]
        # session ids are UUIDs: none sorts at or below "0", so (None, "0"] and ("0", "00"] are empty
        return [{"lo": None, "hi": "0", "last": None, "done": False},
                {"lo": "0", "hi": "00", "last": None, "done": False},
                {"lo": "00", "hi": None, "last": None, "done": False}]

    monkeypatch.setattr(backfill, "_split", split)
    t0 = db_now(pg_dsn)
    s = run.migrate(run.Options(dsn=pg_dsn, url=redis_url, concurrency=2, batch_size=250))
    with psycopg.connect(pg_dsn) as c:
        live = c.execute("SELECT count(*) FROM user_fridge_sessions WHERE expires_at > now()").fetchone()[0]
    assert s["checkpoint"]["backfill_done"] and all(r["done"] for r in s["checkpoint"]["ranges"])
    # the fill leaves some sessions expiring within minutes: those that expired after the backfill read
    # them were written, and are no longer live
    late = expired_since(pg_dsn, t0)
    assert live > 1000 and live <= s["backfill"]["written"] <= live + late, (s["backfill"]["written"], live, late)
    assert live + target.OWNER_BUCKETS <= rds.dbsize() <= s["backfill"]["written"] + target.OWNER_BUCKETS


def _parse(payload: bytes) -> list[list[bytes]]:
    import hiredis

    reader = hiredis.Reader()
    reader.feed(payload)
    cmds = []
    while (c := reader.gets()) is not False:
        cmds.append(c)
    return cmds


@pytest.mark.parametrize("pxats", [[1764000000123, 1764000009999], [99_999_999_999_999, 7]])
def test_batch_commands_are_well_formed_resp_in_the_documented_order(pxats):
    """Both framing paths (13-digit expiries and any other) give the same commands, parsed back by
    hiredis: the ownership in one MULTI/EXEC (sent, and acknowledged, first), then the writes:
    version keys for versions above the epoch, then the SETs."""
    ids = ["a-1", "세션-2"]
    values = [b'{"created_at": null, "ingredients": []}', '{"ingredients": ["김치"]}'.encode()]
    own, own_replies, writes, replies = target.batch_commands(ids, values, pxats, [5, 9], epoch=5)
    cmds = _parse(own)
    assert cmds[0] == [b"MULTI"] and cmds[-1] == [b"EXEC"] and cmds.count([b"EXEC"]) == 1
    owned = cmds[1:-1]
    assert all(c[0] in (b"SADD", b"PEXPIREAT") for c in owned)
    sadds = [c for c in owned if c[0] == b"SADD"]
    assert sorted(m for c in sadds for m in c[2:]) == sorted(s.encode() for s in ids)
    for c in sadds:  # each id in the set its bucket names, and every set touched gets both expiries
        assert all(c[1] == target.owner_key(m.decode()) for m in c[2:])
        assert [x[3] for x in owned if x[0] == b"PEXPIREAT" and x[1] == c[1]] == [b"NX", b"GT"]
    assert all(c[2] == b"%d" % max(pxats) for c in owned if c[0] == b"PEXPIREAT")
    # replies: +OK, +QUEUED per queued command, EXEC's header and one line per result
    assert own_replies == 1 + len(owned) + 1 + len(owned)
    rest = _parse(writes)
    assert rest[0] == [b"SET", target.version_key(ids[1]), b"9", b"PXAT", b"%d" % pxats[1]]  # only 9 > epoch
    assert rest[1:] == [[b"SET", target.session_key(s), v, b"PXAT", b"%d" % p] for s, v, p in zip(ids, values, pxats)]
    assert replies == len(rest)
    assert target.batch_commands([], [], [], None, epoch=5) == (b"", 0, b"", 0)


def test_a_batch_sent_to_redis_leaves_every_key_owned_and_every_set_expiring(rds, redis_url):
    """On real Redis: the reply counts are exact (nothing left unread), every session key is in its
    ownership set, each set expires no earlier than its members; a batch whose sessions all expired
    before it reached Redis (a reader's now() is its snapshot's) leaves no key at all, and none
    without an expiry."""
    ids = [f"tx-{i}" for i in range(230)]
    values = [b'{"created_at": null, "ingredients": ["%d"]}' % i for i in range(230)]
    pxats = [int(time.time() * 1000) + 600_000 + 1000 * i for i in range(230)]
    versions = [5] * 230
    versions[17] = 8
    raw = target.RawRedis(redis_url)
    try:
        own, own_replies, writes, replies = target.batch_commands(ids, values, pxats, versions, epoch=5)
        raw.send(own, own_replies)
        raw.send(writes, replies)  # waits for exactly ``replies`` lines: a wrong count hangs or leaves lines
        raw.sock.settimeout(0.2)
        with pytest.raises(OSError):  # nothing left unread
            raw.sock.recv(1)
        raw.sock.settimeout(30)
        for s, px in zip(ids, pxats):
            assert rds.pexpiretime(target.session_key(s)) == px
            assert rds.sismember(target.owner_key(s), s)
            assert rds.pexpiretime(target.owner_key(s)) >= px
        assert int(rds.get(target.version_key(ids[17]))) == 8 and rds.get(target.version_key(ids[16])) is None
        rds.flushdb()
        gone = [f"gone-{i}" for i in range(300)]
        past = int(time.time() * 1000) - 60_000
        own, own_replies, writes, replies = target.batch_commands(gone, [b"{}"] * 300, [past] * 300, None, epoch=5)
        raw.send(own, own_replies)
        raw.send(writes, replies)
    finally:
        raw.close()
    assert all(rds.pttl(k) != -1 for k in rds.scan_iter(count=1000)), "a key without an expiry"
    assert not any(rds.scan_iter(match="session:*", count=1000))


def _session_ids(r) -> set[str]:  # type: ignore[no-untyped-def]
    return {k.decode()[len("session:"):] for k in r.scan_iter(match="session:*", count=2000)}


def _owned_ids(r) -> set[str]:  # type: ignore[no-untyped-def]
    """Members of the 64 ownership sets, by their documented names (README)."""
    return {m.decode() for m in r.sunion([f"fridgebench:migrate:owned:{i:02d}" for i in range(64)])}


def test_redis_refusing_mid_backfill_is_one_line_and_the_checkpoint_claims_only_acknowledged_batches(
        pg_dsn, reports):
    """Each reader sends a batch before querying the next one and reads its replies after: a batch
    Redis refuses (here: out of memory, part-way through) must end the run with one clear line,
    every range's checkpointed cursor must cover only sessions Redis really holds, and every
    session key left must be owned (else the resumed run would refuse it as foreign). On a
    throwaway Redis (maxmemory is server-wide; noeviction set explicitly), never the shared one."""
    fill(pg_dsn, 6000, seed=7)
    with throwaway_redis("--maxmemory-policy", "noeviction") as server:
        rds = server.client()
        url = server.url()
        used = int(rds.info("memory")["used_memory"])
        rds.config_set("maxmemory", used + 1_500_000)  # room for a few batches, not for 6000 sessions
        args = ("migrate", "--from", pg_dsn, "--to", url, "--batch-size", "200", "--force")
        res = cli(*args)
        assert res.returncode == 1, res.stdout + res.stderr
        assert "Traceback" not in res.stderr
        errors = [l for l in res.stderr.splitlines() if l.startswith("error:")]
        assert len(errors) == 1 and "OOM" in errors[0], res.stderr
        # too little maxmemory is refused without --force (test_migrate_cli); with it, said and let through
        said = " ".join(res.stderr.split())  # the console wraps lines at its width
        assert "warning: --force: maxmemory" in said and "below the estimated" in said, res.stderr
        with psycopg.connect(pg_dsn) as c:
            ranges = c.execute("SELECT ranges FROM fridgebench_migrate.checkpoint").fetchone()[0]
            covered = 0
            for r in ranges:
                if r["last"] is None:
                    continue
                ids = [row[0] for row in c.execute(
                    "SELECT session_id FROM user_fridge_sessions WHERE expires_at > now() + interval '1 minute' "
                    "AND (%(lo)s::text IS NULL OR session_id > %(lo)s) AND session_id <= %(last)s",
                    {"lo": r["lo"], "last": r["last"]})]
                covered += len(ids)
                pipe = rds.pipeline(transaction=False)
                for sid in ids:
                    pipe.exists(f"session:{sid}")
                assert all(pipe.execute()), "the checkpoint claims a batch Redis never acknowledged"
        assert covered > 0, "no batch was acknowledged before the refusal: the test proves nothing"
        left = _session_ids(rds)
        assert 0 < len(left) < 6000
        assert left <= _owned_ids(rds), f"{len(left - _owned_ids(rds))} session keys left without their ownership"
        # the same command resumes once Redis has room, and the result is exact
        rds.config_set("maxmemory", 0)
        res = cli(*args)
        assert res.returncode == 0, res.stderr
        assert "resumed" in res.stderr
        ver = cli("migrate", "verify", "--from", pg_dsn, "--to", url, "--json")
        assert ver.returncode == 0, ver.stderr
        assert json.loads(ver.stdout)["total_differences"] == 0
        rds.close()

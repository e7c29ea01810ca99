"""Backfill, apply, verify: the moving parts of ``fridgebench migrate``.

Order of a run (each step checkpointed in ``fridgebench_migrate.checkpoint``):

1. ``--live``: install change capture (triggers) — *before* the snapshot.
2. Backfill from one REPEATABLE READ snapshot, exported to ``concurrency`` reader threads that
   each take disjoint ``session_id`` ranges (split at sampled percentiles) and cut them into
   batches of about ``batch_size`` sessions; per batch PostgreSQL renders the values (one row),
   Python frames the ``SADD``s to the ownership sets (one MULTI/EXEC, acknowledged first) and then
   ``SET session:{id} json PXAT`` per session as one pipelined write (see
   :mod:`fridgebench.migrate.target`). Each range's cursor (the upper
   bound of the last batch Redis acknowledged, contiguously within the range) is checkpointed,
   and ``last_session_id`` stays the contiguous prefix over all ranges; a resumed backfill
   continues every range after its cursor from a *new* snapshot — correct because every commit
   after the first snapshot is in the change table from the first snapshot's xmin on, and is
   applied next.
3. Apply changes in txid windows (see :mod:`fridgebench.migrate.capture`) through the
   compare-and-set script, until caught up (or forever with ``--follow``).
"""

from __future__ import annotations

import concurrent.futures
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

import psycopg
import redis
from psycopg import sql

from fridgebench.errors import MigrationError
from fridgebench.migrate import capture, target
from fridgebench.migrate.capture import Checkpoint
from fridgebench.migrate.source import SourceSchema

Progress = Callable[[str, dict[str, Any]], None]


def _noop(event: str, data: dict[str, Any]) -> None:
    return None


@dataclass
class BackfillStats:
    total: int = 0
    written: int = 0
    seconds: float = 0.0
    resumed_after: str | None = None


def _plan_settings(conn: psycopg.Connection) -> None:
    """Keep the backfill's plan on the two primary-key index scans (merge, group aggregate).

    Local to our own read-only transaction. No parallel workers: the backfill runs its own
    readers, one per key range, and a Gather on top of each would only compete for the same cores.
    """
    for setting in ("jit = off", "max_parallel_workers_per_gather = 0", "enable_bitmapscan = off",
                    "enable_hashagg = off", "enable_sort = off"):
        conn.execute(f"SET LOCAL {setting}")


def _range_start(r: dict[str, Any]) -> str | None:
    return r["last"] if r.get("last") is not None else r["lo"]


def _prefix(ranges: list[dict[str, Any]], base: str | None) -> str | None:
    """The contiguous cursor over ordered ranges: every live session <= it is in Redis."""
    cur = base
    for r in ranges:
        if r["done"]:
            if r["hi"] is None:
                return cur if r.get("last") is None else r["last"]
            cur = r["hi"]
            continue
        return _range_start(r) if _range_start(r) is not None else cur
    return cur


def _split(conn: psycopg.Connection, src: SourceSchema, after: str | None, live: int, parts: int) -> list[dict[str, Any]]:
    """Ranges ``(lo, hi]`` over the live keys after ``after``, split at sampled percentiles."""
    points: list[str] = []
    if parts > 1:
        est = conn.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                           [src.sessions]).fetchone()
        rel = max(int(est[0]) if est and est[0] and est[0] > 0 else 0, live, 1)
        pct = min(100.0, max(0.001, 100.0 * 20000 / rel))  # ~20k sampled keys
        got = conn.execute(src.split_points_query(after=after, percent=pct, parts=parts)).fetchone()[0] or []
        # PostgreSQL's order (its collation), not Python's: drop NULLs and repeats only
        points = [p for k, p in enumerate(got) if p is not None and (k == 0 or p != got[k - 1])]
    bounds: list[str | None] = [after, *points, None]
    return [{"lo": bounds[i], "hi": bounds[i + 1], "last": None, "done": False} for i in range(len(bounds) - 1)]


class _Reader(threading.Thread):
    """One key range at a time, cut into batches; each batch is one query and one pipelined write.

    Each reader has its own PostgreSQL connection importing the coordinator's exported snapshot
    (so all readers see exactly one state) and its own Redis socket. Each batch's upper bound is
    the id ``batch_size`` keys further along the primary key's index (PostgreSQL orders, so the
    database's collation decides; batches are even whatever the ids' physical order) -- more keys
    (up to 8x) where the previous batch found expired sessions among them, so a batch holds about
    ``batch_size`` live ones. Per batch
    PostgreSQL returns the rendered values, ids and expiries in one row
    (``SourceSchema.backfill_batch_query``); ``target.batch_commands`` frames them: the ownership
    (one MULTI/EXEC, acknowledged before anything else is sent), then the ``SET``s as one pipelined
    write whose replies are counted. A batch's upper bound becomes the range's cursor once Redis
    acknowledged the batch.
    """

    def __init__(self, owner: "_Backfill", idx: int) -> None:
        super().__init__(daemon=True, name=f"fridgebench-backfill-{idx}")
        self.o = owner
        self.conn: psycopg.Connection | None = None
        self.sent = 0

    def run(self) -> None:
        o = self.o
        rds = None
        try:
            self.conn = conn = psycopg.connect(o.dsn, autocommit=False, prepare_threshold=0)
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            # the first statement of the transaction: it adopts the coordinator's snapshot
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(o.snapshot)))
            _plan_settings(conn)
            conn.execute("SET LOCAL client_encoding = 'UTF8'")
            rds = target.RawRedis(o.url)
            while not o.stop.is_set():
                try:
                    i = o.todo.get_nowait()
                except queue.Empty:
                    break
                self._range(conn, rds, i)
            conn.rollback()
        except BaseException as err:  # surfaced by the coordinator
            if not o.stop.is_set():
                o.error = o.error or err
            o.stop.set()
        finally:
            if rds is not None:
                rds.close()
            if self.conn is not None:
                try:
                    self.conn.close()
                except Exception:
                    pass

    def _range(self, conn: psycopg.Connection, rds: target.RawRedis, i: int) -> None:
        """Batch after batch of range ``i``. A batch's write is sent before the next batch's query
        and its replies are read after it, so Redis applies one batch while PostgreSQL renders the
        next; a batch counts as done (its bound becomes the range's cursor) only once its replies
        are in. At most one batch per reader is unacknowledged, and it is acknowledged before a
        stop or an error in this reader ends the range."""
        o = self.o
        r = o.ranges[i]
        a, hi = _range_start(r), r["hi"]
        pending: tuple[int, int, str | None] | None = None  # (replies, sessions, bound) sent, unacknowledged
        span = o.batch_size  # keys per batch; expired sessions count as keys, so it follows the live share

        def acknowledge() -> None:
            nonlocal pending
            if pending is not None:
                replies, n, bound = pending
                pending = None
                rds.wait(replies)
                o.done.put((i, n, bound, False))

        try:
            while True:
                if o.stop.is_set():
                    acknowledge()
                    raise _Stopped()
                row = conn.execute(o.bound_queries[(a is not None, hi is not None)],
                                   {"lo": a, "hi": hi, "n": span - 1}).fetchone()
                b = row[0] if row is not None else hi  # fewer than batch_size keys left: to the range's end
                last = row is None or b == hi
                q = o.queries[(a is not None, b is not None)]
                values, ids, pxats, versions, sessions = conn.execute(q, {"lo": a, "hi": b}, binary=True).fetchone()
                acknowledge()
                # the next batch spans as many keys as should hold ~batch_size live sessions at this
                # batch's live share (at most 8x: a table keeping many expired rows still gets full batches)
                span = 8 * o.batch_size if not sessions else \
                    min(8 * o.batch_size, max(o.batch_size, o.batch_size * span // sessions))
                if sessions:
                    vals = values.split(b"\n")
                    if not len(vals) == len(ids) == len(pxats) == sessions or (versions is not None
                                                                              and len(versions) != sessions):
                        raise MigrationError(f"internal error: a backfill batch came back misaligned "
                                             f"({len(vals)} values, {len(ids)} ids, {sessions} sessions)",
                                             hint="run with --debug and report it; nothing was written for this batch")
                    pending = (self._write(rds, ids, vals, pxats, versions), sessions, b)
                else:
                    o.done.put((i, 0, b, False))
                if last:
                    break
                a = b
            acknowledge()
        except (psycopg.Error, _Stopped, MigrationError):
            try:  # what was sent is confirmed before the range ends; the error in flight is the one to report
                acknowledge()
            except Exception:
                pass
            raise
        o.done.put((i, 0, None, True))

    def _write(self, rds: target.RawRedis, ids: list[str], vals: list[bytes], pxats: list[int],
               versions: list[int] | None) -> int:
        """Write one batch in pieces of at most ``batch_size`` sessions (a span sized for a low live
        share can meet mostly live keys): each piece paced, its ownership acknowledged before any
        of its session keys is written. Returns the reply count of the last piece's writes, which
        is left unread (the caller acknowledges it after its next query)."""
        o = self.o
        unread = 0
        for c0 in range(0, len(ids), o.batch_size):
            piece = slice(c0, c0 + o.batch_size)
            own, own_replies, writes, replies = target.batch_commands(
                ids[piece], vals[piece], pxats[piece], versions[piece] if versions is not None else None, o.version_base)
            if o.rate_each > 0:
                self.sent += len(ids[piece])
                _pace(o.t0, self.sent, o.rate_each, o.stop)
            if unread:
                rds.wait(unread)  # the previous piece of this batch
            rds.send(own, own_replies)
            rds.write(writes)
            unread = replies
        return unread


def _pace(t0: float, count: int, rate: float, stop: threading.Event | None = None) -> None:
    """Sleep until ``count`` items at ``rate`` per second since ``t0`` are due, or ``stop`` is set."""
    due = t0 + count / rate
    while (now := time.perf_counter()) < due and not (stop is not None and stop.is_set()):
        time.sleep(min(due - now, 0.1))


class _Stopped(Exception):
    pass


@dataclass
class _Backfill:
    src: SourceSchema
    dsn: str
    url: str
    snapshot: str
    ranges: list[dict[str, Any]]
    version_base: int
    batch_size: int
    rate_each: float
    t0: float
    queries: dict[tuple[bool, bool], sql.Composable]
    bound_queries: dict[tuple[bool, bool], sql.Composable]
    stop: threading.Event = field(default_factory=threading.Event)
    todo: "queue.Queue[int]" = field(default_factory=queue.Queue)
    done: "queue.Queue[tuple[int, int, str | None, bool]]" = field(default_factory=queue.Queue)
    error: BaseException | None = None


def backfill(src: SourceSchema, dsn: str, url: str, cp: Checkpoint, ckpt: psycopg.Connection, *,
             batch_size: int = 4000, rate_limit: float = 0.0, concurrency: int = 3,
             progress: Progress = _noop) -> BackfillStats:
    """Parallel backfill from one snapshot: ``concurrency`` readers over key ranges (see ``_Reader``).

    The coordinator's REPEATABLE READ transaction exports its snapshot and stays open until every
    reader is done; the ranges (split at sampled key percentiles) and each range's cursor are
    checkpointed, so a resumed run continues every range after its own cursor, from a new snapshot.
    """
    stats = BackfillStats(resumed_after=cp.last_session_id)
    t0 = time.perf_counter()
    workers = max(1, concurrency)
    with psycopg.connect(dsn, autocommit=False) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        conn.execute("SET LOCAL jit = off")
        xmin = capture.horizon(conn)  # first statement: this is the transaction's snapshot
        if cp.snapshot_xmin is None:
            cp.snapshot_xmin = xmin
            if cp.live:
                cp.apply_watermark = xmin  # every commit invisible to this snapshot has txid >= xmin
            capture.save_checkpoint(ckpt, cp)
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
        live_after, _ = conn.execute(src.count_query(after=cp.last_session_id)).fetchone()
        stats.total = int(live_after)
        if cp.ranges is None:
            parts = 1 if workers == 1 or stats.total < 2000 else min(4 * workers, max(2, stats.total // 1000))
            cp.ranges = _split(conn, src, cp.last_session_id, stats.total, parts)
            capture.save_checkpoint(ckpt, cp)
        progress("backfill_start", {"total": stats.total, "resumed_after": cp.last_session_id, "done_before": cp.written,
                                    "ranges": len(cp.ranges)})
        capture_on = cp.live and capture.capture_installed(conn)
        catalogue = src.catalogue_mode(conn)
        queries = {(lower, upper): src.backfill_batch_query(version_base=cp.epoch, capture=capture_on, lower=lower,
                                                            upper=upper, catalogue=catalogue)
                   for lower in (False, True) for upper in (False, True)}
        n_readers = max(1, min(workers, sum(1 for r in cp.ranges if not r["done"])))
        rate_each = rate_limit / n_readers if rate_limit > 0 else 0.0
        if rate_each > 0:  # paced: batches of at most ~0.1 s of the allowed rate, so writes stay smooth
            batch_size = max(50, min(batch_size, int(rate_each / 10)))
        bound_queries = {(lower, upper): src.batch_bound_query(lower=lower, upper=upper)
                         for lower in (False, True) for upper in (False, True)}
        bf = _Backfill(src=src, dsn=dsn, url=url, snapshot=snapshot, ranges=cp.ranges, version_base=cp.epoch,
                       batch_size=batch_size, rate_each=rate_each, t0=t0,
                       queries=queries, bound_queries=bound_queries)
        base = cp.ranges[0]["lo"] if cp.ranges else cp.last_session_id
        for i, r in enumerate(cp.ranges):
            if not r["done"]:
                bf.todo.put(i)
        readers = [_Reader(bf, k) for k in range(min(workers, bf.todo.qsize()))]
        last_save = 0.0

        def drain(timeout: float) -> bool:
            moved = False
            try:
                item = bf.done.get(timeout=timeout)
                while True:
                    i, count, last, finished = item
                    r = cp.ranges[i]
                    if finished:
                        r["done"] = True
                    else:
                        if last is not None:  # the unbounded tail batch: the range is done next
                            r["last"] = last
                        stats.written += count
                        cp.written += count
                    moved = True
                    item = bf.done.get_nowait()
            except queue.Empty:
                pass
            if moved:
                cp.last_session_id = _prefix(cp.ranges, base)
                progress("backfill_progress", {"written": stats.written})
            return moved

        try:
            for t in readers:
                t.start()
            while any(t.is_alive() for t in readers):
                if drain(0.05) and time.perf_counter() - last_save > 0.2:
                    capture.save_checkpoint(ckpt, cp)
                    last_save = time.perf_counter()
            drain(0)
            if bf.error is not None:
                raise bf.error
            if all(r["done"] for r in cp.ranges):
                cp.backfill_done = True
            conn.commit()
        finally:
            bf.stop.set()  # Ctrl-C / error: readers leave after their current batch
            for t in readers:
                if t.is_alive() and t.conn is not None:
                    try:
                        t.conn.cancel()
                    except Exception:
                        pass
                t.join(timeout=30)
            drain(0)  # batches Redis acknowledged meanwhile
            capture.save_checkpoint(ckpt, cp)
    stats.seconds = time.perf_counter() - t0
    progress("backfill_done", {"written": stats.written, "seconds": stats.seconds})
    return stats


# --- apply ------------------------------------------------------------------------------------

@dataclass
class ApplyStats:
    passes: int = 0
    change_rows: int = 0
    sessions: int = 0
    counts: target.ApplyCounts = field(default_factory=target.ApplyCounts)
    lag: int = 0
    lag_age_s: float = 0.0
    seconds: float = 0.0


def read_states(conn: psycopg.Connection, src: SourceSchema, ids: list[str], *, version_base: int,
                capture_on: bool, catalogue: str | None = None) -> list[tuple[str, str | None, int | None, int]]:
    """``catalogue``: the applier's fast name lookup (a ``catalogue_mode``); None (verify), the reference join."""
    rows = conn.execute(src.state_query(version_base=version_base, capture=capture_on, catalogue=catalogue),
                        {"ids": ids}).fetchall()
    return [(r[0], r[1], int(r[2]) if r[2] is not None else None, int(r[3])) for r in rows]


def apply_changes(src: SourceSchema, conn: psycopg.Connection, applier: target.Applier, cp: Checkpoint,
                  ckpt: psycopg.Connection, *, follow: bool = False, batch_size: int = 500, poll_s: float = 0.2,
                  rate_limit: float = 0.0, stop: threading.Event | None = None,
                  progress: Progress = _noop) -> ApplyStats:
    """Apply change windows until the lag is zero (or, with ``follow``, until ``stop``/Ctrl-C)."""
    capture.require_capture(conn)
    if cp.apply_watermark is None:
        raise MigrationError("the checkpoint has no change watermark", hint="run fridgebench migrate cleanup, then migrate --live again")
    stats = ApplyStats()
    t0 = time.perf_counter()
    # Rows of transactions that finished above the horizon (xmin) are applied as soon as they are
    # final; ``done`` remembers their txids until the horizon passes them, so a long transaction
    # elsewhere in the cluster delays nothing but its own rows. Only the horizon is checkpointed:
    # after a crash those rows are applied again, which is idempotent.
    done: set[int] = set()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fridgebench-apply") as writer:
        try:
            _apply_passes(src, conn, applier, cp, ckpt, stats, writer, done, t0, follow=follow, batch_size=batch_size,
                          poll_s=poll_s, rate_limit=rate_limit, stop=stop, progress=progress)
        finally:
            stats.seconds = time.perf_counter() - t0
    return stats


def _apply_passes(src: SourceSchema, conn: psycopg.Connection, applier: target.Applier, cp: Checkpoint,
                  ckpt: psycopg.Connection, stats: ApplyStats, writer: concurrent.futures.Executor, done: set[int],
                  t0: float, *, follow: bool, batch_size: int, poll_s: float, rate_limit: float,
                  stop: threading.Event | None, progress: Progress) -> None:
    while stop is None or not stop.is_set():
        xmin, xmax, xip = capture.snapshot(conn)
        lo = cp.apply_watermark
        sids, nrows, txids = capture.changed_sessions(conn, lo, xmax, sorted(set(xip) | done))
        # Redis applies chunk k (in ``writer``) while PostgreSQL reads chunk k+1: a pass holds each
        # session once and every write is a compare-and-set on its version, so chunks commute; the
        # watermark is checkpointed only after the pass's last chunk is applied.
        pending: concurrent.futures.Future[target.ApplyCounts] | None = None
        try:
            for i in range(0, len(sids), batch_size):
                chunk = sids[i:i + batch_size]
                # the catalogue lookup's mode and the states in ONE snapshot, as in the backfill: the
                # application may change the catalogue while migrate follows it
                with conn.transaction():
                    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    states = read_states(conn, src, chunk, version_base=cp.epoch, capture_on=True,
                                         catalogue=src.catalogue_mode(conn))
                if pending is not None:
                    stats.counts.add(pending.result())
                pending = writer.submit(applier.apply, states)
                stats.sessions += len(chunk)
                if rate_limit > 0:
                    _pace(t0, stats.sessions, rate_limit, stop)
        except BaseException:
            if pending is not None:  # finish what Redis was given; the error in flight is the one to report
                try:
                    pending.result()
                except Exception:
                    pass
            raise
        if pending is not None:
            stats.counts.add(pending.result())
        done |= set(txids)
        new_lo = max(lo, xmin)
        done = {t for t in done if t >= new_lo}
        cp.apply_watermark = new_lo
        cp.changes_applied += nrows
        stats.change_rows += nrows
        stats.passes += 1
        capture.save_checkpoint(ckpt, cp)
        stats.lag, stats.lag_age_s = capture.pending(conn, new_lo, sorted(done))
        progress("apply_pass", {"rows": nrows, "sessions": len(sids), "lag": stats.lag, "lag_age_s": stats.lag_age_s,
                                "applied": stats.change_rows})
        if not follow and stats.lag == 0:
            break
        if not sids:
            time.sleep(poll_s)


# --- verify -----------------------------------------------------------------------------------

CATEGORIES = ("missing", "extra", "content", "ttl", "no_expiry")


@dataclass
class VerifyReport:
    checked: int = 0
    redis_keys: int = 0
    differences: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CATEGORIES})
    samples: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0  # differed, but a change for the session is not applied yet and migrate is running
    resolved_on_recheck: int = 0  # differed in the first pass (changed while verifying), equal on recheck
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.differences.values())

    def to_dict(self) -> dict[str, Any]:
        return {"checked": self.checked, "redis_keys": self.redis_keys, "differences": self.differences,
                "total_differences": self.total, "in_flight": self.in_flight,
                "resolved_on_recheck": self.resolved_on_recheck, "samples": self.samples, "seconds": round(self.seconds, 3)}


def _parse_created(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return datetime.fromisoformat(v)
        except ValueError:
            return v
    return v


def _compare(expected: tuple[str, int] | None, got: tuple[bytes | None, int], tol_ms: int) -> tuple[str, str] | None:
    """``None`` when equal, else ``(category, detail)``. ``got`` is (value, pexpiretime)."""
    value, pexp = got
    if expected is None:
        return ("extra", "in Redis, not live in PostgreSQL") if value is not None else None
    if value is None:
        return ("missing", "live in PostgreSQL, absent from Redis")
    exp_json, exp_px = expected
    try:
        a, b = json.loads(exp_json), json.loads(value)
    except ValueError:
        return ("content", "Redis value is not JSON")
    if not isinstance(b, dict) or set(b) != {"created_at", "ingredients"}:
        return ("content", f"Redis value has keys {sorted(b) if isinstance(b, dict) else type(b).__name__}")
    if a["ingredients"] != b["ingredients"]:
        return ("content", f"ingredients {a['ingredients']} in PostgreSQL vs {b['ingredients']} in Redis")
    if _parse_created(a["created_at"]) != _parse_created(b["created_at"]):
        return ("content", f"created_at {a['created_at']} vs {b['created_at']}")
    if pexp < 0:
        return ("no_expiry", "Redis key has no expiry")
    if abs(pexp - exp_px) > tol_ms:
        return ("ttl", f"expires {exp_px} ms in PostgreSQL vs {pexp} ms in Redis ({(pexp - exp_px) / 1000:+.3f} s)")
    return None


def _redis_read(r: redis.Redis, sids: list[str]) -> list[tuple[bytes | None, int]]:
    pipe = r.pipeline(transaction=False)
    for s in sids:
        k = target.session_key(s)
        pipe.get(k)
        pipe.pexpiretime(k)
    res = pipe.execute()
    return [(res[2 * i], int(res[2 * i + 1])) for i in range(len(sids))]


def verify(src: SourceSchema, dsn: str, r: redis.Redis, *, ttl_tolerance_s: float = 1.0, sample: int = 10,
           settle_s: float = 5.0, progress: Progress = _noop) -> VerifyReport:
    rep = VerifyReport()
    t0 = time.perf_counter()
    tol = int(ttl_tolerance_s * 1000)
    suspects: set[str] = set()
    live: set[str] = set()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET jit = off")
        pending_rows: list[tuple[str, str, int]] = []

        def flush() -> None:
            got = _redis_read(r, [p[0] for p in pending_rows])
            for (sid, js, px), g in zip(pending_rows, got):
                if _compare((js, px), g, tol) is not None:
                    suspects.add(sid)
            pending_rows.clear()

        with conn.cursor().copy(sql.SQL("COPY ({}) TO STDOUT").format(src.live_sessions_query())) as copy:
            copy.set_types(["text", "text", "int8"])
            for sid, js, px in copy.rows():
                live.add(sid)
                pending_rows.append((sid, js, px))
                if len(pending_rows) >= 2000:
                    flush()
                    progress("verify_progress", {"checked": len(live)})
        if pending_rows:
            flush()
        rep.checked = len(live)
        for key in r.scan_iter(match=b"session:*", count=2000):
            rep.redis_keys += 1
            sid = key[len(target.SESSION_PREFIX):].decode(errors="replace")
            if sid not in live:
                suspects.add(sid)
        # Recheck each suspect against its current state until equal, or ``settle_s`` passed while a
        # migrate runs. Every pass reads, in this order: the apply watermark W, the PostgreSQL states
        # (with their versions, one statement), then Redis (value, expiry, version key, clock). Pairs
        # are matched by session id, never by position (the state query returns rows in plan order).
        capture_on = capture.capture_installed(conn)
        migrate_running = _migrate_running(conn)
        epoch = capture.capture_epoch(conn) if capture_on else None
        versioned = epoch is not None
        deadline = time.perf_counter() + settle_s
        remaining = sorted(suspects)
        n_suspects = len(remaining)
        diffs: dict[str, _Diff] = {}
        passes = 0
        while remaining:
            passes += 1
            wm = _apply_watermark(conn) if versioned else None
            diffs = {}
            for i in range(0, len(remaining), 1000):
                chunk = remaining[i:i + 1000]
                states = {st[0]: st for st in read_states(conn, src, chunk, version_base=epoch or 0,
                                                          capture_on=versioned)}
                got, now_ms = _redis_read_versioned(r, chunk, epoch or 0)
                for sid in chunk:
                    _, js, px, vp = states[sid]
                    value, pexp, vr = got[sid]
                    if js is not None and value is None and px is not None and px <= now_ms:
                        continue  # live when PostgreSQL was read, expired (PXAT) by the time Redis was
                    d = _compare((js, px) if js is not None else None, (value, pexp), tol)
                    if d is not None:
                        diffs[sid] = _Diff(d[0], d[1], vp if versioned else None, vr)
            if diffs and versioned:
                _classify(conn, diffs, wm, epoch or 0)
            remaining = sorted(diffs)
            if not remaining or time.perf_counter() > deadline:
                break
            if not migrate_running and (passes >= 2 or not any(d.state == "ahead" for d in diffs.values())):
                break  # nothing applies changes: a lag is a difference; only "Redis ahead" earns a second look
            time.sleep(0.25)
        rep.resolved_on_recheck = n_suspects - len(diffs)
        for sid, d in sorted(diffs.items()):
            if migrate_running and d.state in ("behind", "ahead"):
                rep.in_flight += 1
                continue
            rep.differences[d.kind] += 1
            if len(rep.samples) < sample:
                smp: dict[str, Any] = {"session_id": sid, "kind": d.kind, "detail": d.detail}
                if versioned:
                    smp.update(pg_version=d.vp - (epoch or 0) if d.vp is not None else None,
                               redis_version=d.vr - (epoch or 0) if d.vr is not None else None,
                               why=_WHY.get(d.state, d.state))
                rep.samples.append(smp)
    rep.seconds = time.perf_counter() - t0
    return rep


@dataclass
class _Diff:
    kind: str
    detail: str
    vp: int | None  # version of the PostgreSQL state read (epoch + change rows visible to that statement)
    vr: int | None  # version key in Redis (None: absent)
    state: str = "unexplained"  # behind | ahead | same_version | lost | unexplained


_WHY = {
    "same_version": "Redis holds the same version as PostgreSQL with a different value",
    "lost": "every change of the session is applied (below the apply watermark), yet Redis holds an older version",
    "behind": "Redis holds an older version and migrate is not running to apply the rest",
    "ahead": "Redis holds a newer version than PostgreSQL (PostgreSQL changed back? a second writer?)",
    "unexplained": "no version information to explain it",
}


def _apply_watermark(conn: psycopg.Connection) -> int | None:
    row = conn.execute(sql.SQL("SELECT min(apply_watermark)::text FROM {}.checkpoint WHERE live").format(
        sql.Identifier(capture.CAPTURE_SCHEMA))).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def _classify(conn: psycopg.Connection, diffs: dict[str, _Diff], wm: int | None, epoch: int) -> None:
    """Explain each difference by versions (read W, then PostgreSQL, then Redis; see ``verify``).

    * Redis version > PostgreSQL's: the session changed after PostgreSQL was read and the applier
      already wrote the newer state -> ``ahead`` (re-read).
    * equal versions, different value: a real difference (``same_version``).
    * Redis version < PostgreSQL's: every change row with ``txid < W`` was final before W was read
      and is applied (W is checkpointed after its pass wrote Redis), so Redis must hold at least
      ``epoch + rows(txid < W)``. Below that: a change was lost (``lost``). At or above it, the rows
      between are not applied yet -> ``behind`` (in flight while migrate runs).
    """
    final: dict[str, int] = {}
    if wm is not None:
        final = dict(conn.execute(sql.SQL(
            "SELECT session_id, count(*) FROM {}.changes WHERE txid < %s::text::xid8 AND session_id = ANY(%s) "
            "GROUP BY session_id").format(sql.Identifier(capture.CAPTURE_SCHEMA)), [str(wm), list(diffs)]).fetchall())
    for sid, d in diffs.items():
        vp, vr, n_final = d.vp or 0, d.vr, int(final.get(sid, 0))
        if vr is not None and vr > vp:
            d.state = "ahead"
        elif vr is not None and vr == vp:
            d.state = "same_version"
        elif wm is not None and n_final > 0 and (vr is None or vr < epoch + n_final):
            d.state = "lost"  # no version key, or an older one, though applied changes exist
        else:
            d.state = "behind"


def _redis_read_versioned(r: redis.Redis, sids: list[str], epoch: int) -> tuple[dict[str, tuple[bytes | None, int, int | None]], int]:
    """``{sid: (value, pexpiretime, version)}`` and Redis's clock (ms) after the reads.

    One MULTI/EXEC: a plain pipeline is not atomic (another client's command -- the applier's
    script -- can run between its commands), and a value read before an apply paired with the
    version read after it looks like "same version, different value", a false difference."""
    pipe = r.pipeline(transaction=True)
    for s in sids:
        pipe.get(target.session_key(s))
        pipe.pexpiretime(target.session_key(s))
        pipe.get(target.version_key(s))
        pipe.sismember(target.owner_key(s), s)  # backfilled at the epoch, no change applied since
    pipe.time()
    res = pipe.execute()
    sec, usec = res[-1]
    out = {}
    for i, s in enumerate(sids):
        out[s] = (res[4 * i], int(res[4 * i + 1]), target.version_in_redis(res[4 * i + 2], bool(res[4 * i + 3]), epoch))
    return out, int(sec) * 1000 + int(usec) // 1000


def _migrate_running(conn: psycopg.Connection) -> bool:
    got = conn.execute("SELECT pg_try_advisory_lock(%s)", [capture.ADVISORY_KEY]).fetchone()[0]
    if got:
        conn.execute("SELECT pg_advisory_unlock(%s)", [capture.ADVISORY_KEY])
    return not got

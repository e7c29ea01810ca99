"""Backfill: every live session, from one snapshot, into Redis (step 2 of ``fridgebench migrate``).

Order of a run (each step checkpointed in ``fridgebench_migrate.checkpoint``; :mod:`.run` composes them):

1. ``--live``: install change capture (triggers) — *before* the snapshot (:mod:`.capture`).
2. Backfill (this module) from one REPEATABLE READ snapshot, exported to ``concurrency`` reader
   threads that each take disjoint ``session_id`` ranges (split at sampled percentiles) and cut them
   into batches of about ``batch_size`` sessions; per batch PostgreSQL renders the values (one row),
   Python frames the ``SADD``s to the ownership sets (one MULTI/EXEC, acknowledged first) and then
   ``SET session:{id} json PXAT`` per session as one pipelined write (see
   :mod:`fridgebench.migrate.target`). Each range's cursor (the upper
   bound of the last batch Redis acknowledged, contiguously within the range) is checkpointed,
   and ``last_session_id`` stays the contiguous prefix over all ranges; a resumed backfill
   continues every range after its cursor from a *new* snapshot — correct because every commit
   after the first snapshot is in the change table from the first snapshot's xmin on, and is
   applied next.
3. Apply changes (:mod:`.apply`); 4. verify (:mod:`.verify`).
"""


from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from fridgebench.errors import MigrationError
from fridgebench.migrate import capture, target
from fridgebench.migrate.capture import Checkpoint
from fridgebench.migrate.source import SourceSchema

from fridgebench.migrate.progress import Progress, no_progress, pace


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
                pace(o.t0, self.sent, o.rate_each, o.stop)
            if unread:
                rds.wait(unread)  # the previous piece of this batch
            rds.send(own, own_replies)
            rds.write(writes)
            unread = replies
        return unread


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
             progress: Progress = no_progress) -> BackfillStats:
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



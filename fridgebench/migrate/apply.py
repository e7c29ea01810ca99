"""Apply: captured changes, in txid windows, through the compare-and-set script (step 3 of migrate).

Until caught up, or forever with ``--follow`` (see :mod:`fridgebench.migrate.capture` for the windows).
"""


from __future__ import annotations

import concurrent.futures
import threading
import time
from dataclasses import dataclass, field

import psycopg

from fridgebench.errors import MigrationError
from fridgebench.migrate import capture, target
from fridgebench.migrate.capture import Checkpoint
from fridgebench.migrate.source import SourceSchema

from fridgebench.migrate.progress import Progress, no_progress, pace


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
                  progress: Progress = no_progress) -> ApplyStats:
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
                    pace(t0, stats.sessions, rate_limit, stop)
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



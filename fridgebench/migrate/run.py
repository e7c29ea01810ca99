"""``migrate`` as one library call: checks, dry run, capture, backfill, apply, summary."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

from fridgebench.config import mask_text, mask_url
from fridgebench.connection_errors import store_error
from fridgebench.errors import MigrationRefused, StoreUnavailable, UsageError
from fridgebench.measure.results import new_run_id
from fridgebench.migrate import capture, target
from fridgebench.migrate.apply import apply_changes
from fridgebench.migrate.backfill import backfill
from fridgebench.migrate.progress import Progress, no_progress
from fridgebench.migrate.verify import VerifyReport, verify as verify_sessions
from fridgebench.migrate.capture import Checkpoint
from fridgebench.migrate.source import SourceSchema


@dataclass
class Options:
    dsn: str
    url: str
    schema: SourceSchema = field(default_factory=SourceSchema)
    dry_run: bool = False
    live: bool = False
    follow: bool = False
    until_caught_up: bool = False
    batch_size: int = 4000
    rate_limit: float = 0.0
    concurrency: int = 3
    overwrite: bool = False
    force: bool = False


def pg_connect(dsn: str, *, autocommit: bool = True, flag: str = "--from") -> psycopg.Connection:
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=5)
    except psycopg.OperationalError as err:
        mapped = store_error(err, "postgres", dsn, flag, connecting=True)
        if mapped is None:
            first = mask_text(str(err).strip().splitlines()[0]) if str(err).strip() else "connection failed"
            mapped = StoreUnavailable(f"cannot use PostgreSQL at {mask_url(dsn)}: {first}",
                                      hint=f"check {flag} (host, port, database, credentials)")
        raise mapped from None
    except psycopg.ProgrammingError as err:
        raise UsageError(f"{flag} {mask_url(dsn)} is not a PostgreSQL DSN: {mask_text(str(err))}") from None


def target_id(url: str) -> str:
    return mask_url(url)


def _sample_sizes(conn: psycopg.Connection, src: SourceSchema) -> tuple[float, float]:
    rows = conn.execute(src.live_sessions_query(limit=2000)).fetchall()
    if not rows:
        return 0.0, 0.0
    return (sum(len(r[1].encode()) for r in rows) / len(rows), sum(len(r[0]) for r in rows) / len(rows))


def plan(conn: psycopg.Connection, r: Any, opts: Options) -> dict[str, Any]:
    """Counts, estimates and safety checks. Changes nothing."""
    src = opts.schema
    src.validate(conn)
    live, expired = conn.execute(src.count_query()).fetchone()
    avg_value, avg_id = _sample_sizes(conn, src)
    estimate = target.estimate_memory(int(live), avg_value, avg_id)
    cp = capture.load_checkpoint(conn, target_id(opts.url))
    state = target.inspect(r)
    warnings = target.check_safe(state, estimate_bytes=estimate if cp is None else 0, overwrite=opts.overwrite,
                                 force=opts.force, where=mask_url(opts.url))
    rate = opts.rate_limit if opts.rate_limit > 0 else 100_000.0
    return {"live_sessions": int(live), "expired_sessions": int(expired), "avg_value_bytes": round(avg_value, 1),
            "estimated_redis_bytes": estimate, "estimated_seconds": round(int(live) / rate, 1),
            "redis": {"version": state.version, "maxmemory_policy": state.policy, "maxmemory": state.maxmemory,
                      "used_memory": state.used_memory, "session_keys": state.session_keys,
                      "foreign_session_keys": state.foreign_keys},
            "resuming": cp.to_dict() if cp else None, "warnings": warnings}


class Timeline:
    """Wraps a progress sink and keeps what reports plot: sessions written and change lag over time."""

    MAX_POINTS = 2000  # a --follow run lasting days keeps every other point once full

    def __init__(self, sink: Progress) -> None:
        self.sink = sink
        self.t0 = time.perf_counter()
        self.backfill: list[list[float]] = []  # [seconds since start, sessions written]
        self.lag: list[list[float]] = []  # [seconds since start, change rows pending, age of the oldest (s)]

    def _keep(self, points: list[list[float]], point: list[float]) -> None:
        points.append(point)
        if len(points) > self.MAX_POINTS:
            del points[1::2]

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        t = round(time.perf_counter() - self.t0, 3)
        if event == "backfill_start":
            self._keep(self.backfill, [t, float(data.get("done_before") or 0)])
        elif event in ("backfill_progress", "backfill_done"):
            self._keep(self.backfill, [t, float(data["written"])])
        elif event == "apply_pass":
            self._keep(self.lag, [t, float(data["lag"]), round(float(data.get("lag_age_s") or 0), 3)])
        self.sink(event, data)

    def to_dict(self) -> dict[str, Any]:
        return {"backfill": self.backfill, "lag": self.lag,
                "what": "backfill: [s, sessions written]; lag: [s, change rows pending, oldest pending age s]"}


def migrate(opts: Options, progress: Progress = no_progress) -> dict[str, Any]:
    timeline = Timeline(progress)
    summary = _migrate(opts, timeline)
    if not opts.dry_run:
        summary["timeline"] = timeline.to_dict()
    return summary


def _migrate(opts: Options, progress: Progress) -> dict[str, Any]:
    if opts.follow and opts.until_caught_up:
        raise UsageError("--follow and --until-caught-up exclude each other", hint="pick one")
    if (opts.follow or opts.until_caught_up) and not opts.live:
        raise UsageError("--follow / --until-caught-up apply live changes", hint="add --live")
    t0 = time.perf_counter()
    r = target.client(opts.url)
    lock = pg_connect(opts.dsn)
    ckpt = pg_connect(opts.dsn)
    try:
        capture.try_lock(lock)
        summary: dict[str, Any] = {"source": mask_url(opts.dsn), "target": mask_url(opts.url), "live": opts.live,
                                   "dry_run": opts.dry_run}
        summary["plan"] = plan(ckpt, r, opts)
        progress("plan", summary["plan"])
        if opts.dry_run:
            summary["duration_s"] = round(time.perf_counter() - t0, 3)
            return summary
        tid = target_id(opts.url)
        cp = capture.load_checkpoint(ckpt, tid)
        if cp is not None and cp.live != opts.live:
            raise MigrationRefused(
                f"a {'live' if cp.live else 'one-shot'} migration to this target is checkpointed; this run is "
                f"{'live' if opts.live else 'one-shot'}",
                hint="run the same command as before, or fridgebench migrate cleanup to start over")
        if opts.live:
            epoch = capture.install_capture(ckpt, opts.schema)  # before any snapshot
        else:
            capture.install_base(ckpt)
            epoch = cp.epoch if cp else int(time.time()) * capture.VERSION_SHIFT
        if cp is None:
            cp = Checkpoint(target=tid, run_id=new_run_id("migrate"), epoch=epoch, live=opts.live)
            capture.save_checkpoint(ckpt, cp)
            summary["resumed"] = False
        else:
            summary["resumed"] = True
        summary["run_id"] = cp.run_id
        bf = None
        if not cp.backfill_done:
            bf = backfill(opts.schema, opts.dsn, opts.url, cp, ckpt, batch_size=opts.batch_size,
                                 rate_limit=opts.rate_limit, concurrency=opts.concurrency, progress=progress)
        summary["backfill"] = {"written": bf.written if bf else 0, "seconds": round(bf.seconds, 3) if bf else 0.0,
                               "rate_per_s": round(bf.written / bf.seconds, 1) if bf and bf.seconds else None,
                               "resumed_after": bf.resumed_after if bf else None, "already_done": bf is None,
                               "written_all_runs": cp.written}
        if opts.live:
            applier = target.Applier(r, overwrite=opts.overwrite, epoch=cp.epoch)
            with pg_connect(opts.dsn) as conn:
                st = apply_changes(opts.schema, conn, applier, cp, ckpt, follow=opts.follow,
                                          rate_limit=opts.rate_limit, progress=progress)
            summary["changes"] = {"change_rows": st.change_rows, "sessions": st.sessions,
                                  "written": st.counts.written, "deleted": st.counts.deleted,
                                  "stale_skipped": st.counts.stale, "foreign_skipped": st.counts.foreign,
                                  "lag": st.lag, "passes": st.passes, "applied_all_runs": cp.changes_applied,
                                  "seconds": round(st.seconds, 3)}
        summary["sessions_written"] = summary["backfill"]["written"]
        summary["skipped_expired"] = summary["plan"]["expired_sessions"]
        summary["duration_s"] = round(time.perf_counter() - t0, 3)
        summary["checkpoint"] = cp.to_dict()
        return summary
    finally:
        lock.close()
        ckpt.close()
        r.close()


def verify(dsn: str, url: str, schema: SourceSchema, *, ttl_tolerance_s: float, sample: int, settle_s: float,
           progress: Progress = no_progress) -> VerifyReport:
    r = target.client(url)
    try:
        with pg_connect(dsn) as conn:
            schema.validate(conn)
        return verify_sessions(schema, dsn, r, ttl_tolerance_s=ttl_tolerance_s, sample=sample, settle_s=settle_s,
                             progress=progress)
    finally:
        r.close()


def cleanup(dsn: str, url: str | None = None) -> list[str]:
    removed: list[str] = []
    with pg_connect(dsn) as conn:
        capture.try_lock(conn)
        removed += capture.cleanup(conn)
    if url:
        r = target.client(url)
        try:
            n = 0
            batch: list[bytes] = []
            for k in r.scan_iter(match=target.VERSION_PREFIX + b"*", count=2000):
                batch.append(k)
                if len(batch) >= 1000:
                    n += r.unlink(*batch)
                    batch = []
            if batch:
                n += r.unlink(*batch)
            removed.append(f"{n} version keys (fridgebench:migrate:v:*) in Redis")
            owned = r.unlink(*target.owner_keys())  # UNLINK: freed in the background, Redis never stalls
            removed.append(f"{owned} ownership sets (fridgebench:migrate:owned:*) in Redis")
        finally:
            r.close()
    return removed

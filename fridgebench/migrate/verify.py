"""Verify: every live session in PostgreSQL against Redis, differences explained by versions.
"""


from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
import redis
from psycopg import sql

from fridgebench.migrate import capture, target
from fridgebench.migrate.source import SourceSchema

from fridgebench.migrate.apply import read_states
from fridgebench.migrate.progress import Progress, no_progress


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
           settle_s: float = 5.0, progress: Progress = no_progress) -> VerifyReport:
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

"""Change capture and checkpoints, all inside PostgreSQL schema ``fridgebench_migrate``.

Capture: AFTER ... FOR EACH STATEMENT triggers with transition tables on the three source tables
append *which session changed* to ``fridgebench_migrate.changes(id bigserial, session_id, op,
txid xid8 default pg_current_xact_id())``. The triggers never touch the application's rows; they
run SECURITY DEFINER so the application's role needs no grant on our schema.

Why the change table can be consumed without losing a row that commits late: the applier reads
windows of *transaction ids*, not of row ids. ``W' = pg_snapshot_xmin(pg_current_snapshot())`` is a
horizon below which every transaction has finished, so the rows with ``W <= txid < W'`` are final
(visible now, or never). The checkpoint keeps ``W``; a long-running writer transaction only delays
the horizon (visible as lag), it can never be skipped.

Versions: the number of change rows for a session that are visible in the snapshot that also read
its state (``count(*)``, same statement). Later snapshots see a superset of committed rows, and
every commit touching a session adds at least one row for it, so equal counts mean equal state and
a larger count means a newer state. The count is offset by ``epoch`` (capture install time in
seconds, shifted left 22 bits) so versions stay comparable across re-installs. The change table is
append-only while the migration runs; ``cleanup`` drops it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from fridgebench.errors import MigrationError, MigrationRefused
from fridgebench.migrate.source import CAPTURE_SCHEMA, SourceSchema, ident

VERSION_SHIFT = 1 << 22  # room for 4M changes per session per install
TRIGGER_PREFIX = "fridgebench_migrate_"
ADVISORY_KEY = 0x66726D67  # 'frmg'

_S = sql.Identifier(CAPTURE_SCHEMA)

BASE_DDL = sql.SQL("""
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.checkpoint (
    target text PRIMARY KEY,          -- masked Redis URL: one migration per target
    run_id text NOT NULL,
    epoch bigint NOT NULL,            -- version base (seconds << 22)
    live boolean NOT NULL,
    snapshot_xmin xid8,               -- xmin of the first backfill snapshot
    last_session_id text,             -- backfill cursor: every live session <= this is written
    backfill_done boolean NOT NULL DEFAULT false,
    apply_watermark xid8,             -- every change row with txid < this is applied
    written bigint NOT NULL DEFAULT 0,
    changes_applied bigint NOT NULL DEFAULT 0,
    started_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- parallel backfill: the key ranges and each one's cursor (a checkpoint of an older version has none)
ALTER TABLE {s}.checkpoint ADD COLUMN IF NOT EXISTS ranges jsonb;
""").format(s=_S)


def install_base(conn: psycopg.Connection) -> None:
    conn.execute(BASE_DDL)


def capture_installed(conn: psycopg.Connection) -> bool:
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", [f"{CAPTURE_SCHEMA}.changes"]).fetchone()[0]


def capture_epoch(conn: psycopg.Connection) -> int | None:
    if not conn.execute("SELECT to_regclass(%s) IS NOT NULL", [f"{CAPTURE_SCHEMA}.meta"]).fetchone()[0]:
        return None
    row = conn.execute(sql.SQL("SELECT value FROM {s}.meta WHERE key = 'epoch'").format(s=_S)).fetchone()
    return int(row[0]) if row else None


def install_capture(conn: psycopg.Connection, src: SourceSchema, *, lock_timeout_s: float = 10.0) -> int:
    """Install the change table and the triggers (idempotent). Returns the version epoch.

    CREATE TRIGGER waits for writers already running on each table, so once this commits every
    later write fires a trigger, and every earlier one is committed (visible to the backfill
    snapshot taken afterwards).
    """
    epoch = capture_epoch(conn)
    if epoch is not None and capture_installed(conn):
        return epoch
    epoch = int(time.time()) * VERSION_SHIFT
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{int(lock_timeout_s * 1000)}ms")))
        install_base(conn)
        conn.execute(sql.SQL("""
            CREATE TABLE IF NOT EXISTS {s}.changes (
                id bigserial PRIMARY KEY,
                session_id text NOT NULL,
                op text NOT NULL,
                txid xid8 NOT NULL DEFAULT pg_current_xact_id(),
                at timestamptz NOT NULL DEFAULT clock_timestamp());
            CREATE INDEX IF NOT EXISTS changes_txid ON {s}.changes (txid);
            CREATE INDEX IF NOT EXISTS changes_session ON {s}.changes (session_id);
        """).format(s=_S))
        conn.execute(sql.SQL("INSERT INTO {s}.meta VALUES ('epoch', {e}), ('source', {src}) "
                             "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value").format(
            s=_S, e=sql.Literal(str(epoch)), src=sql.Literal(_src_repr(src))))
        tables = [(src.sessions, src.session_id, "s"), (src.items, src.item_session_id, "i")]
        for table, col, tag in tables:
            for event, rel in (("INSERT", "new_rows"), ("DELETE", "old_rows"), ("UPDATE", "new_rows")):
                fn = sql.Identifier(f"capture_{tag}_{event.lower()}")
                body = sql.SQL("INSERT INTO {s}.changes (session_id, op) SELECT DISTINCT {col}::text, {op} FROM {rel};").format(
                    s=_S, col=sql.Identifier(col), op=sql.Literal(f"{tag}{event[0]}"), rel=sql.Identifier(rel))
                if event == "UPDATE":  # a changed key: both the old and the new session changed
                    body = sql.SQL("INSERT INTO {s}.changes (session_id, op) SELECT DISTINCT sid, {op} FROM "
                                   "(SELECT {col}::text AS sid FROM new_rows UNION SELECT {col}::text FROM old_rows) u;").format(
                        s=_S, col=sql.Identifier(col), op=sql.Literal(f"{tag}U"))
                _create_trigger(conn, table, event, fn, body, both=(event == "UPDATE"))
        # a renamed catalogue entry changes every session holding it
        body = sql.SQL("""INSERT INTO {s}.changes (session_id, op)
                          SELECT DISTINCT ui.{isid}::text, 'cU' FROM {items} ui
                          JOIN new_rows n ON n.{cid} = ui.{ing}
                          JOIN old_rows o ON o.{cid} = n.{cid} AND o.{cname} IS DISTINCT FROM n.{cname};""").format(
            s=_S, isid=sql.Identifier(src.item_session_id), items=ident(src.items), cid=sql.Identifier(src.catalogue_id),
            ing=sql.Identifier(src.item_ingredient_id), cname=sql.Identifier(src.catalogue_name))
        _create_trigger(conn, src.catalogue, "UPDATE", sql.Identifier("capture_c_update"), body, both=True)
    return epoch


def _src_repr(src: SourceSchema) -> str:
    import json

    return json.dumps(src.to_dict())


def _create_trigger(conn: psycopg.Connection, table: str, event: str, fn: sql.Identifier,
                    body: sql.Composable, *, both: bool) -> None:
    conn.execute(sql.SQL("""CREATE OR REPLACE FUNCTION {s}.{fn}() RETURNS trigger
                            LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS
                            $fb$ BEGIN {body} RETURN NULL; END $fb$""").format(s=_S, fn=fn, body=body))
    tname = sql.Identifier(TRIGGER_PREFIX + fn.as_string(conn).strip('"'))
    refs = sql.SQL("REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows") if both else (
        sql.SQL("REFERENCING OLD TABLE AS old_rows") if event == "DELETE" else sql.SQL("REFERENCING NEW TABLE AS new_rows"))
    conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {t} ON {tbl}").format(t=tname, tbl=ident(table)))
    conn.execute(sql.SQL("CREATE TRIGGER {t} AFTER {ev} ON {tbl} {refs} FOR EACH STATEMENT EXECUTE FUNCTION {s}.{fn}()").format(
        t=tname, ev=sql.SQL(event), tbl=ident(table), refs=refs, s=_S, fn=fn))


def cleanup(conn: psycopg.Connection) -> list[str]:
    """Drop every trigger and the schema migrate installed. Returns what was removed."""
    removed: list[str] = []
    with conn.transaction():
        rows = conn.execute(
            """SELECT t.tgname, c.oid::regclass::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
               WHERE t.tgname LIKE %s AND NOT t.tgisinternal""", [TRIGGER_PREFIX + "%"]).fetchall()
        for tg, rel in rows:
            conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(tg), sql.SQL(rel)))
            removed.append(f"trigger {tg} on {rel}")
        if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [CAPTURE_SCHEMA]).fetchone():
            conn.execute(sql.SQL("DROP SCHEMA {s} CASCADE").format(s=_S))
            removed.append(f"schema {CAPTURE_SCHEMA} (change table, checkpoints)")
    return removed


# --- checkpoint -------------------------------------------------------------------------------

@dataclass
class Checkpoint:
    target: str
    run_id: str
    epoch: int
    live: bool
    snapshot_xmin: int | None = None
    last_session_id: str | None = None
    backfill_done: bool = False
    apply_watermark: int | None = None
    written: int = 0
    changes_applied: int = 0
    started_at: datetime | None = None
    # parallel backfill: [{"lo": id|None (exclusive), "hi": id|None (inclusive), "last": id|None, "done": bool}]
    # ``last`` is the range's cursor (every live session in (lo, last] is in Redis); ``last_session_id``
    # above stays the contiguous prefix over all ranges (every live session <= it is in Redis).
    ranges: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, datetime) else v) for k, v in self.__dict__.items()}


def load_checkpoint(conn: psycopg.Connection, target: str) -> Checkpoint | None:
    if not conn.execute("SELECT to_regclass(%s) IS NOT NULL", [f"{CAPTURE_SCHEMA}.checkpoint"]).fetchone()[0]:
        return None
    row = conn.execute(sql.SQL(
        """SELECT target, run_id, epoch, live, snapshot_xmin::text::bigint, last_session_id, backfill_done,
                  apply_watermark::text::bigint, written, changes_applied, started_at,
                  to_jsonb(c) -> 'ranges'  -- NULL (not an error) in a checkpoint table from an older version
           FROM {s}.checkpoint c WHERE target = %s""").format(s=_S), [target]).fetchone()
    return Checkpoint(*row) if row else None


def save_checkpoint(conn: psycopg.Connection, cp: Checkpoint) -> None:
    conn.execute(sql.SQL(
        """INSERT INTO {s}.checkpoint (target, run_id, epoch, live, snapshot_xmin, last_session_id, backfill_done,
                                       apply_watermark, written, changes_applied, ranges)
           VALUES (%(target)s, %(run_id)s, %(epoch)s, %(live)s, %(snapshot_xmin)s::text::xid8, %(last_session_id)s,
                   %(backfill_done)s, %(apply_watermark)s::text::xid8, %(written)s, %(changes_applied)s, %(ranges)s)
           ON CONFLICT (target) DO UPDATE SET run_id = EXCLUDED.run_id, epoch = EXCLUDED.epoch, live = EXCLUDED.live,
             snapshot_xmin = EXCLUDED.snapshot_xmin, last_session_id = EXCLUDED.last_session_id,
             backfill_done = EXCLUDED.backfill_done, apply_watermark = EXCLUDED.apply_watermark,
             written = EXCLUDED.written, changes_applied = EXCLUDED.changes_applied, ranges = EXCLUDED.ranges,
             updated_at = now()""").format(s=_S),
        {**{k: v for k, v in cp.__dict__.items() if k not in ("started_at", "ranges")},
         "ranges": Jsonb(cp.ranges) if cp.ranges is not None else None})


def try_lock(conn: psycopg.Connection) -> None:
    """One migrate per source database at a time (session advisory lock, released on disconnect)."""
    if not conn.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_KEY]).fetchone()[0]:
        raise MigrationRefused("another fridgebench migrate is running against this database",
                               hint="wait for it to finish or stop it (it resumes later)")


def horizon(conn: psycopg.Connection) -> int:
    """Every transaction with an id below this has finished (committed or aborted)."""
    return int(conn.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").fetchone()[0])


def snapshot(conn: psycopg.Connection) -> tuple[int, int, list[int]]:
    """``(xmin, xmax, xip)`` of a fresh snapshot: a txid ``t`` is finished iff ``t < xmax and t not in xip``."""
    row = conn.execute(
        "SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint, "
        "ARRAY(SELECT x::text::bigint FROM pg_snapshot_xip(s) x) FROM pg_current_snapshot() s").fetchone()
    return int(row[0]), int(row[1]), [int(x) for x in row[2]]


def changed_sessions(conn: psycopg.Connection, lo: int, hi: int, skip: list[int]) -> tuple[list[str], int, list[int]]:
    """Sessions changed by finished transactions with ``lo <= txid < hi`` and txid not in ``skip``
    (still running, or already applied), in order of first change; row count; their txids."""
    rows = conn.execute(sql.SQL(
        """SELECT session_id, count(*), array_agg(DISTINCT txid::text::bigint) FROM {s}.changes
           WHERE txid >= %s::text::xid8 AND txid < %s::text::xid8 AND txid::text::bigint <> ALL(%s::bigint[])
           GROUP BY session_id ORDER BY min(id)""").format(s=_S), [str(lo), str(hi), skip]).fetchall()
    txids = sorted({t for r in rows for t in r[2]})
    return [r[0] for r in rows], sum(int(r[1]) for r in rows), txids


def pending(conn: psycopg.Connection, lo: int, done: list[int]) -> tuple[int, float]:
    """Change rows visible and not yet applied, and the age of the oldest in seconds."""
    row = conn.execute(sql.SQL(
        "SELECT count(*), COALESCE(extract(epoch FROM clock_timestamp() - min(at)), 0) FROM {s}.changes "
        "WHERE txid >= %s::text::xid8 AND txid::text::bigint <> ALL(%s::bigint[])").format(s=_S),
        [str(lo), done]).fetchone()
    return int(row[0]), float(row[1])


def require_capture(conn: psycopg.Connection) -> None:
    if not capture_installed(conn):
        raise MigrationError("change capture is not installed in the source database",
                             hint="run fridgebench migrate --live first")

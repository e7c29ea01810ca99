"""Rehearsal data: fill the fridge2fork schema with realistic sessions, and a writer that keeps
changing them the way the application does.

``fill`` runs entirely in SQL (generate_series), so a million sessions take seconds, not minutes.
The mix: ~5% already expired (the app's cleanup has not run yet), ~3% expiring within two
minutes, the rest created over the last day with a 24 h expiry (some extended); ingredient
lists are short or long (exponential, mean ~8, up to 40), names from the Korean catalogue drawn
with its skewed popularity weights.

``write`` is a bounded writer (rate, duration) doing create / add / remove / extend / delete /
expire (the periodic ``DELETE ... WHERE expires_at < now()``), each as its own short transaction.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable

import psycopg

from fridgebench.config import mask_text, mask_url
from fridgebench.errors import MigrationError
from fridgebench.stores import schema

OPS = ("create", "add", "remove", "extend", "delete", "expire")
DEFAULT_MIX = {"create": 0.2, "add": 0.35, "remove": 0.15, "extend": 0.2, "delete": 0.07, "expire": 0.03}


@dataclass
class FillResult:
    sessions: int
    live: int
    expired: int
    expiring_soon: int
    ingredient_rows: int
    seconds: float


def _weighted_slots(n_slots: int = 20000) -> list[int]:
    ings = schema.ingredients()
    total = sum(i.weight for i in ings)
    slots: list[int] = []
    for i in ings:
        slots.extend([i.id] * max(1, round(i.weight / total * n_slots)))
    return slots


async def _setup(dsn: str, existing: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return await schema.setup_schema(conn, existing=existing)  # type: ignore[arg-type]
    finally:
        await conn.close()


_SESSION_TABLES = ("user_fridge_sessions", "user_fridge_ingredients")


def _schema_exists(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return bool(conn.execute("SELECT to_regclass('public.user_fridge_sessions') IS NOT NULL").fetchone()[0])


def _detach_indexes(conn: psycopg.Connection) -> list[str]:
    """Drop the constraints and indexes of the (empty) session tables; return the DDL that restores them.

    Only ever called on tables fridgebench created in this very run: loading into bare heaps and
    building each index once, sorted, afterwards is ~10x faster than maintaining them row by row
    (and than one FK trigger call per ingredient row). The DDL is read back from the catalogue, so
    the restored schema is exactly the one ``SCHEMA_SQL`` created (names, definitions).
    """
    restore: list[str] = []
    cons = conn.execute(
        """SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid), c.contype
           FROM pg_constraint c WHERE c.conrelid = ANY(%s::regclass[]) AND c.contype IN ('p', 'u', 'f')
           ORDER BY CASE c.contype WHEN 'f' THEN 0 ELSE 1 END""", [list(_SESSION_TABLES)]).fetchall()
    # first the foreign keys (they depend on the referenced keys), then the keys
    for rel, name, _def, _t in cons:
        conn.execute(f'ALTER TABLE {rel} DROP CONSTRAINT "{name}"')
    idx = conn.execute(
        """SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i
           WHERE i.indrelid = ANY(%s::regclass[])
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)""",
        [list(_SESSION_TABLES)]).fetchall()
    for name, _def in idx:
        conn.execute(f"DROP INDEX {name}")
    # restore keys before foreign keys, plain indexes last
    restore += [f'ALTER TABLE {rel} ADD CONSTRAINT "{name}" {d}' for rel, name, d, t in reversed(cons)]
    restore += [d for _n, d in idx]
    return restore


def fill(dsn: str, sessions: int, *, seed: int = 1, existing: str = "refuse", mean_ingredients: float = 8.0,
         expired_share: float = 0.05, expiring_share: float = 0.03) -> FillResult:
    """Create the schema (refuse/reuse/reset as ``schema.setup_schema``) and insert ``sessions`` sessions.

    Everything is generated server-side (generate_series) and inserted in key order. When this call
    created the schema (a fresh rehearsal database), the session tables are loaded bare and their
    keys, foreign keys and indexes are built afterwards, in the same transaction; an existing schema
    is never altered (rows go in through its constraints, sorted by key).
    """
    t0 = time.perf_counter()
    created_here = not _schema_exists(dsn)
    asyncio.run(_setup(dsn, existing))
    slots = _weighted_slots()
    # duplicates are dropped (unique(session_id, ingredient_id)): draw a few more to keep the mean
    draw_mean = mean_ingredients * 1.3
    with psycopg.connect(dsn, autocommit=False) as conn:
        conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
        conn.execute("SET LOCAL work_mem = '64MB'")
        conn.execute("SELECT setseed(%s)", [((seed % 1000) / 1000.0) * 2 - 1])
        restore = _detach_indexes(conn) if created_here else []
        conflict = "" if created_here else " ON CONFLICT DO NOTHING"
        conn.execute(
            """CREATE TEMP TABLE fb_new ON COMMIT DROP AS
               SELECT * FROM (
               SELECT md5(%(tag)s || g::text || random()::text)::uuid::text AS session_id,
                      r, created_at,
                      CASE WHEN r < %(exp)s THEN now() - random() * interval '2 hours'
                           WHEN r < %(exp)s + %(soon)s THEN now() + interval '1 second' + random() * interval '110 seconds'
                           WHEN r < 0.5 THEN now() + interval '24 hours' - random() * interval '2 hours'
                           ELSE created_at + interval '24 hours' END AS expires_at,
                      least(40, floor(-ln(1 - random()) * %(mean)s))::int AS k
               FROM (SELECT g, random() AS r, now() - random() * interval '23 hours' AS created_at
                     FROM generate_series(1, %(n)s) g) t) u ORDER BY session_id""",
            {"tag": f"fb{seed}-", "exp": expired_share, "soon": expiring_share, "n": sessions, "mean": draw_mean})
        conn.execute(
            """INSERT INTO user_fridge_sessions (session_id, created_at, expires_at, last_accessed)
               SELECT session_id, created_at, expires_at, least(now(), created_at + random() * (now() - created_at))
               FROM fb_new ORDER BY session_id""" + conflict)
        # the popularity slots travel as a parameter: an in-memory array, not a TOASTed column value
        # that PostgreSQL would detoast (80 kB) for every single draw -- that was most of the old 480 s
        # per session: draw k names, keep each name's first draw, in draw order (= added_at order),
        # so the link table is written grouped by session, in the order the backfill reads it
        conn.execute(
            """INSERT INTO user_fridge_ingredients (session_id, ingredient_id, added_at)
               SELECT n.session_id, d.ing,
                      n.created_at + (d.j::float8 / (n.k + 1)) * (least(now(), n.expires_at) - n.created_at)
               FROM fb_new n
               CROSS JOIN LATERAL (
                   SELECT ing, min(j) AS j FROM (
                       SELECT j, (%(slots)s::int[])[1 + floor(random() * %(nslots)s)::int] AS ing
                       FROM generate_series(1, n.k) j) x
                   GROUP BY ing ORDER BY 2) d
               ORDER BY n.session_id, d.j""" + conflict, {"slots": slots, "nslots": len(slots)})
        for ddl in restore:
            conn.execute(ddl)
        row = conn.execute(
            """SELECT count(*) FILTER (WHERE expires_at <= now()),
                      count(*) FILTER (WHERE expires_at > now() AND expires_at < now() + interval '2 minutes')
               FROM fb_new""").fetchone()
        n_rows = conn.execute(
            "SELECT count(*) FROM user_fridge_ingredients ui JOIN fb_new n USING (session_id)").fetchone()[0]
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:  # visibility map + hint bits now, not during the first backfill
            cur.execute("VACUUM (ANALYZE) user_fridge_sessions")
            cur.execute("VACUUM (ANALYZE) user_fridge_ingredients")
    expired, soon = int(row[0]), int(row[1])
    return FillResult(sessions=sessions, live=sessions - expired, expired=expired, expiring_soon=soon,
                      ingredient_rows=int(n_rows), seconds=time.perf_counter() - t0)


@dataclass
class WriterStats:
    ops: dict[str, int] = field(default_factory=lambda: {o: 0 for o in OPS})
    errors: int = 0
    seconds: float = 0.0
    first_error: str | None = None  # the first failed operation's error (masked, one line)

    @property
    def total(self) -> int:
        return sum(self.ops.values())


class Writer:
    """Changes sessions like the application: one short transaction per operation.

    ``run`` stops after ``duration`` seconds, or when ``stop`` is set. Rate is a target
    (operations per second, paced by the clock); 0 means as fast as possible.
    """

    def __init__(self, dsn: str, *, rate: float = 200.0, seed: int = 7, mix: dict[str, float] | None = None,
                 recent: int = 2000) -> None:
        self.dsn = dsn
        self.rate = rate
        self.rng = random.Random(seed)
        self.mix = mix or DEFAULT_MIX
        self.stop = threading.Event()
        self.stats = WriterStats()
        self._slots = _weighted_slots()
        self._recent = recent

    def _pick_session(self, conn: psycopg.Connection) -> str | None:
        row = conn.execute(
            """SELECT session_id FROM user_fridge_sessions
               WHERE session_id >= %s AND expires_at > now() ORDER BY session_id LIMIT 1""",
            [uuid.UUID(int=self.rng.getrandbits(128)).hex[: self.rng.randint(1, 8)]]).fetchone()
        return row[0] if row else None

    def step(self, conn: psycopg.Connection, op: str) -> None:
        rng = self.rng
        if op == "create":
            sid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            with conn.transaction():
                conn.execute("INSERT INTO user_fridge_sessions (session_id) VALUES (%s)", [sid])
                for ing in {rng.choice(self._slots) for _ in range(rng.randint(0, 4))}:
                    conn.execute("INSERT INTO user_fridge_ingredients (session_id, ingredient_id) VALUES (%s, %s) "
                                 "ON CONFLICT DO NOTHING", [sid, ing])
            return
        if op == "expire":
            conn.execute("DELETE FROM user_fridge_sessions WHERE expires_at < now()")
            return
        sid = self._pick_session(conn)
        if sid is None:
            return
        with conn.transaction():
            if op == "add":
                conn.execute("INSERT INTO user_fridge_ingredients (session_id, ingredient_id) VALUES (%s, %s) "
                             "ON CONFLICT DO NOTHING", [sid, rng.choice(self._slots)])
                conn.execute("UPDATE user_fridge_sessions SET expires_at = now() + interval '24 hours', "
                             "last_accessed = now() WHERE session_id = %s", [sid])
            elif op == "remove":
                conn.execute("""DELETE FROM user_fridge_ingredients WHERE id = (
                                  SELECT id FROM user_fridge_ingredients WHERE session_id = %s
                                  ORDER BY random() LIMIT 1)""", [sid])
            elif op == "extend":
                conn.execute("UPDATE user_fridge_sessions SET expires_at = now() + interval '24 hours', "
                             "last_accessed = now() WHERE session_id = %s", [sid])
            elif op == "delete":
                conn.execute("DELETE FROM user_fridge_sessions WHERE session_id = %s", [sid])

    def run(self, duration: float, on_tick: Callable[[WriterStats], None] | None = None) -> WriterStats:
        ops = list(self.mix)
        weights = [self.mix[o] for o in ops]
        t0 = time.perf_counter()
        n = 0
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.stop.is_set():
                now = time.perf_counter() - t0
                if now >= duration:
                    break
                if self.rate > 0:
                    due = n / self.rate
                    if due > now:
                        time.sleep(min(due - now, 0.05))
                        continue
                op = self.rng.choices(ops, weights)[0]
                try:
                    self.step(conn, op)
                    self.stats.ops[op] += 1
                except psycopg.errors.Error as err:
                    if conn.closed or conn.broken:
                        raise  # the server went away: not an operation's failure (connection_errors maps it)
                    self.stats.errors += 1  # e.g. a FK race with a concurrent delete: the app sees it too
                    if self.stats.first_error is None:
                        text = str(err).strip()
                        self.stats.first_error = mask_text(f"{op}: {text.splitlines()[0] if text else type(err).__name__}")
                n += 1
                if on_tick and n % 200 == 0:
                    on_tick(self.stats)
        self.stats.seconds = time.perf_counter() - t0
        return self.stats


def write(dsn: str, *, rate: float, duration: float, seed: int = 7,
          on_tick: Callable[[WriterStats], None] | None = None) -> WriterStats:
    """Run the writer; :class:`MigrationError` when the schema is missing or every operation failed
    (a run that changed nothing is not a rehearsal), naming the first error once."""
    if not _schema_exists(dsn):
        raise MigrationError(f"PostgreSQL at {mask_url(dsn)} has no fridge2fork tables (user_fridge_sessions)",
                             hint=f"create and fill them first: fridgebench rehearse fill --dsn {mask_url(dsn)}")
    stats = Writer(dsn, rate=rate, seed=seed).run(duration, on_tick)
    if stats.errors and not stats.total:
        raise MigrationError(f"every operation failed ({stats.errors:,} errors in {stats.seconds:.1f} s); "
                             f"the first: {stats.first_error}",
                             hint="fix the cause in the database (schema, privileges, triggers), then run again")
    return stats

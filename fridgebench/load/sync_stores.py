"""The three session stores as synchronous clients, for Locust's gevent users.

Locust runs users as greenlets in a process that gevent has monkey-patched: asyncpg and
redis.asyncio do not work there; psycopg 3 (gevent-aware since 3.1.14) and sync redis-py do.
These classes give each Locust user what :mod:`fridgebench.stores` gives ``compare`` — the same
operations with the same semantics, on the same statements, keys, values and Lua:

* ``postgres``: the SQL of :mod:`fridgebench.stores.postgres`, run verbatim (psycopg's
  ``RawCursor`` takes asyncpg's ``$n`` placeholders), each statement prepared on its connection;
* ``redis-seed``: the seed's ``GET`` -> modify -> ``SETEX`` on one connection, two round trips
  with nothing to stop another user's write in between (the race, on purpose);
* ``redis-atomic``: the same ``EVALSHA`` of :func:`fridgebench.stores.redis_atomic.lua_source`.

One :class:`UserClient` per Locust user (its own connection: an app worker's), one
:class:`StoreAdmin` on the master for housekeeping: data already there (``--reuse`` /
``--reset``), schema, population, read-back, server counters, and deleting exactly what the run
wrote. Both obey :mod:`fridgebench.stores.base`'s rule, through the same SQL, census, decisions and
messages as the async stores (:mod:`fridgebench.stores.existing`, :mod:`fridgebench.stores.schema`):
the admin records every session id the run wrote in a :class:`~fridgebench.stores.base.Ledger`
(the population before it is sent; every session the users created, from the workers' reports)
and every recipe cache key a user's ``SET ... NX`` created, and deletes exactly those — never a
pattern delete or ``TRUNCATE``, except :meth:`StoreAdmin.prepare` for ``--reset``.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Sequence

import psycopg
import redis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError
from redis.retry import Retry

from fridgebench.config import mask_text, mask_url
from fridgebench.errors import StoreUnavailable, UsageError
from fridgebench.stores import existing as ex
from fridgebench.stores import postgres as pg_sql
from fridgebench.stores import schema
from fridgebench.stores._redis_base import RECIPE_PREFIX, RECIPE_TTL_S, encode_session, now_iso, parse_created_at
from fridgebench.stores.base import Ledger, Removed, Session
from fridgebench.stores.redis_atomic import lua_source
from fridgebench.workload.generator import Op

SESSION_PREFIX = "session:"  # RedisStoreBase's default key prefix
BATCH = 1000
CONNECT_TIMEOUT_S = 10
_FAR_FUTURE = datetime.max.replace(tzinfo=timezone.utc)


def store_kind(name: str) -> str:
    from fridgebench.load.settings import LOAD_STORE_NAMES

    if name not in LOAD_STORE_NAMES:
        raise UsageError(f"store {name!r} has no Locust user", hint=f"choose from: {', '.join(LOAD_STORE_NAMES)}")
    return "postgres" if name == "postgres" else "redis"


def needs_postgres(name: str, mix_has_recipe: bool) -> bool:
    """The Redis stores read PostgreSQL only on a recipe-cache miss."""
    return name == "postgres" or mix_has_recipe


def pg_connect(dsn: str, *, what: str = "PostgreSQL") -> psycopg.Connection[Any]:
    """An autocommit connection taking ``$n`` placeholders; :class:`StoreUnavailable` on failure."""
    try:
        return psycopg.connect(dsn, autocommit=True, cursor_factory=psycopg.RawCursor,
                               prepare_threshold=0, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        reason = mask_text(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise StoreUnavailable(f"cannot reach {what} at {mask_url(dsn)}: {reason}",
                               hint="check FRIDGEBENCH_POSTGRES_DSN / --postgres-dsn and that the server "
                                    "accepts connections from here") from None


def redis_connect(url: str) -> redis.Redis:
    """A client holding one connection of its own (an app worker's), checked with PING.

    No retries (redis-py retries a failed command 3 times by default): a failure is measured as
    one, as ``compare``'s client does; a lost connection is reopened by the next command."""
    try:
        client = redis.Redis.from_url(url, single_connection_client=True, retry=Retry(NoBackoff(), 0),
                                      socket_connect_timeout=CONNECT_TIMEOUT_S)
        client.ping()
        return client
    except (redis.RedisError, OSError, ValueError) as exc:
        reason = mask_text(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        raise StoreUnavailable(f"cannot reach Redis at {mask_url(url)}: {reason}",
                               hint="check FRIDGEBENCH_REDIS_URL / --redis-url and that the server "
                                    "accepts connections from here") from None


def _session_from_row(session_id: str, row: Sequence[Any]) -> Session:
    return Session(session_id, row[0], row[1], tuple(row[2]))


def _session_from_redis(session_id: str, raw: bytes | None, pttl: int) -> Session | None:
    if raw is None or pttl == -2:
        return None
    data = json.loads(raw)
    expires_at = _FAR_FUTURE if pttl < 0 else datetime.fromtimestamp(time.time() + pttl / 1000, timezone.utc)
    return Session(session_id, parse_created_at(data.get("created_at")), expires_at,
                   tuple(data.get("ingredients") or ()))


def _script(name: str) -> tuple[str, str]:
    src = lua_source(name)
    return hashlib.sha1(src.encode()).hexdigest(), src


# --- one user's client --------------------------------------------------------------------------

class UserClient:
    """One Locust user's connection to one store. ``execute(op)`` is True when the session was
    found / the change applied (as ``compare``'s executor), False when there was no live session."""

    name: str

    def __init__(self, name: str, *, postgres_dsn: str | None, redis_url: str | None, ttl_s: int,
                 on_cache_key: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.ttl_s = ttl_s
        self.on_cache_key = on_cache_key  # told each recipe cache key this client's SET NX created
        self.postgres_dsn = postgres_dsn
        self.redis_url = redis_url
        self.cache_hits = 0
        self.cache_misses = 0
        self._pg: psycopg.Connection[Any] | None = None
        self._redis: redis.Redis | None = None
        if name == "postgres":
            if not postgres_dsn:
                raise UsageError("the postgres store needs FRIDGEBENCH_POSTGRES_DSN (or --postgres-dsn)")
            self._pg = pg_connect(postgres_dsn)
        else:
            if not redis_url:
                raise UsageError(f"the {name} store needs FRIDGEBENCH_REDIS_URL (or --redis-url)")
            self._redis = redis_connect(redis_url)
            if name == "redis-atomic":
                self._add, self._remove = _script("add_ingredients.lua"), _script("remove_ingredients.lua")

    def close(self) -> None:
        pg, self._pg = self._pg, None
        rd, self._redis = self._redis, None
        if pg is not None:
            pg.close()
        if rd is not None:
            rd.close()

    # -- dispatch ---------------------------------------------------------------------------
    def execute(self, op: Op) -> bool:
        k = op.kind
        if k == "get":
            return self.get(op.session_id) is not None
        if k == "add":
            return self.add(op.session_id, list(op.names))
        if k == "remove":
            return self.remove(op.session_id, list(op.names))
        if k == "extend":
            return self.extend(op.session_id)
        if k == "create":
            self.create(op.session_id)
            return True
        if k == "delete":
            return self.delete(op.session_id)
        if k == "recipe":
            return self.recipe(op.recipe_id) is not None
        raise ValueError(f"unknown operation {k}")

    # -- operations -------------------------------------------------------------------------
    def _pgc(self) -> psycopg.Connection[Any]:
        pg = self._pg
        if pg is not None and not pg.closed and not pg.broken:
            return pg
        if pg is not None:  # lost (server restart, network): this request reconnects, like a pool would
            pg.close()
            self._pg = None
        if self._pg is None:  # (also: a Redis store's recipe-cache backend, opened on the first miss)
            if not self.postgres_dsn:
                raise UsageError(f"store {self.name!r} needs FRIDGEBENCH_POSTGRES_DSN to read recipes on a cache miss")
            self._pg = pg_connect(self.postgres_dsn, what="PostgreSQL (recipe cache backend)")
        return self._pg

    @property
    def _r(self) -> redis.Redis:
        assert self._redis is not None, "not a Redis store"
        return self._redis

    def _key(self, session_id: str) -> str:
        return SESSION_PREFIX + session_id

    def create(self, session_id: str) -> None:
        if self.name == "postgres":
            self._pgc().execute(pg_sql.CREATE_SQL, (session_id, self.ttl_s))
        else:
            self._r.execute_command("SETEX", self._key(session_id), self.ttl_s, encode_session(now_iso(), []))

    def get(self, session_id: str) -> Session | None:
        if self.name == "postgres":
            row = self._pgc().execute(pg_sql.POINT_READ_SQL, (session_id,)).fetchone()
            return None if row is None else _session_from_row(session_id, row)
        pipe = self._r.pipeline(transaction=False)  # GET and PTTL in one write: one round trip
        key = self._key(session_id)
        pipe.execute_command("GET", key)
        pipe.execute_command("PTTL", key)
        raw, pttl = pipe.execute()
        return _session_from_redis(session_id, raw, pttl)

    def add(self, session_id: str, names: list[str]) -> bool:
        if self.name == "postgres":
            ids = pg_sql.resolve_ids(names)
            return bool(self._pgc().execute(pg_sql.ADD_SQL, (session_id, ids, self.ttl_s)).fetchone()[0])  # type: ignore[index]
        if self.name == "redis-seed":  # the seed, as written: GET -> extend -> SETEX (a full TTL again)
            key = self._key(session_id)
            raw = self._r.execute_command("GET", key)
            if not raw:
                return False
            data = json.loads(raw)
            data["ingredients"].extend(names)
            return self._r.execute_command("SETEX", key, self.ttl_s, json.dumps(data)) is not None
        return bool(self._eval(self._add, self._key(session_id), [self.ttl_s, *names]))

    def remove(self, session_id: str, names: list[str]) -> bool:
        if self.name == "postgres":
            ids = pg_sql.resolve_ids(names)
            return bool(self._pgc().execute(pg_sql.REMOVE_SQL, (session_id, ids)).fetchone()[0])  # type: ignore[index]
        if self.name == "redis-seed":  # GET -> filter -> SET KEEPTTL XX (racy like the add)
            key = self._key(session_id)
            raw = self._r.execute_command("GET", key)
            if not raw:
                return False
            drop = set(names)
            data = json.loads(raw)
            data["ingredients"] = [n for n in data["ingredients"] if n not in drop]
            return self._r.execute_command("SET", key, json.dumps(data), "KEEPTTL", "XX") is not None
        return bool(self._eval(self._remove, self._key(session_id), list(names)))

    def extend(self, session_id: str) -> bool:
        if self.name == "postgres":
            return self._pgc().execute(pg_sql.EXTEND_SQL, (session_id, self.ttl_s)).fetchone() is not None
        return bool(self._r.execute_command("EXPIRE", self._key(session_id), self.ttl_s))

    def delete(self, session_id: str) -> bool:
        if self.name == "postgres":
            return bool(self._pgc().execute(pg_sql.DELETE_SQL, (session_id,)).fetchone()[0])  # type: ignore[index]
        return bool(self._r.execute_command("DEL", self._key(session_id)))

    def recipe(self, recipe_id: int) -> list[str] | None:
        if self.name == "postgres":
            row = self._pgc().execute(pg_sql.RECIPE_SQL, (recipe_id,)).fetchone()
            return None if row is None or row[0] is None else list(row[0])
        key = f"{RECIPE_PREFIX}{recipe_id}"  # cache-aside, as the Redis stores do it
        raw = self._r.execute_command("GET", key)
        if raw is not None:
            self.cache_hits += 1
            return list(json.loads(raw))
        self.cache_misses += 1
        row = self._pgc().execute(pg_sql.RECIPE_SQL, (recipe_id,)).fetchone()
        if row is None or row[0] is None:
            return None
        names = list(row[0])
        # SET ... NX: a value someone else cached meanwhile stays as it is; a key this created is
        # reported, to be deleted (by name) at the end of the store's run
        if self._r.execute_command("SET", key, json.dumps(names), "EX", RECIPE_TTL_S, "NX") is not None \
                and self.on_cache_key is not None:
            self.on_cache_key(key)
        return names

    def _eval(self, script: tuple[str, str], key: str, args: list[Any]) -> Any:
        """EVALSHA; on NOSCRIPT (restart, SCRIPT FLUSH) EVAL, which caches it again."""
        sha, src = script
        try:
            return self._r.execute_command("EVALSHA", sha, 1, key, *args)
        except NoScriptError:
            return self._r.execute_command("EVAL", src, 1, key, *args)


# --- housekeeping on the master -----------------------------------------------------------------

class StoreAdmin:
    """Housekeeping for one store, run by the Locust master: never in a measured path.

    :attr:`written` is what this run wrote to the store (see the module docstring);
    :meth:`discard_written` deletes exactly that."""

    def __init__(self, name: str, *, postgres_dsn: str | None, redis_url: str | None) -> None:
        self.name = name
        self.kind = store_kind(name)
        self.postgres_dsn = postgres_dsn
        self.redis_url = redis_url
        self.written = Ledger()
        if self.kind == "postgres" and not postgres_dsn:
            raise UsageError("the postgres store needs FRIDGEBENCH_POSTGRES_DSN (or --postgres-dsn)")
        if self.kind == "redis" and not redis_url:
            raise UsageError(f"the {name} store needs FRIDGEBENCH_REDIS_URL (or --redis-url)")

    # -- connections --------------------------------------------------------------------------
    def _pg(self) -> psycopg.Connection[Any]:
        assert self.postgres_dsn
        return pg_connect(self.postgres_dsn)

    def _redis(self) -> redis.Redis:
        assert self.redis_url
        return redis_connect(self.redis_url)

    @property
    def where(self) -> str:
        """The store's server, masked, as the messages name it (a trailing space, as schema's ``where``)."""
        return mask_url(self.postgres_dsn if self.kind == "postgres" else self.redis_url) + " "

    # -- data already there: the same two steps as provisioning (fridgebench.stores.existing) ----
    def census(self) -> ex.RedisCensus | schema.SessionCensus:
        """Sessions (and, in Redis, recipe cache keys) already in the store; nothing is changed."""
        if self.kind == "postgres":
            with self._pg() as conn:
                return _pg_census(conn)
        client = self._redis()
        try:
            return ex.redis_census_sync(client, str(self.redis_url))
        finally:
            client.close()

    def refuse_existing(self) -> None:
        """Step 1 without ``--reuse`` / ``--reset``, read-only: refuse a store holding data fridgebench
        did not write (the same line as every other command)."""
        found = self.census()
        if isinstance(found, ex.RedisCensus):
            ex.redis_action(found, "refuse")
        else:
            schema.existing_action(found, "refuse", self.where)

    def prepare(self, existing: str) -> list[str]:
        """Step 2: refuse, delete (``reset``) or leave (``reuse``) what the store holds; for
        PostgreSQL also the schema and catalogue (:meth:`ensure_schema`). The lines to tell."""
        if self.kind == "postgres":
            return self.ensure_schema(existing)
        client = self._redis()
        try:
            found = ex.redis_census_sync(client, str(self.redis_url))
            action = ex.redis_action(found, existing)  # type: ignore[arg-type]
            if action is None:
                return []
            if action == "reuse":
                return [ex.reuse_line(found)]
            sessions = _scan_unlink(client, ex.SESSION_PATTERN)  # --reset only: the one pattern delete
            cache = _scan_unlink(client, ex.RECIPE_PATTERN)
            self.written.clear()
            return [ex.reset_line(found, sessions, cache)]
        finally:
            client.close()

    def ensure_schema(self, existing: str) -> list[str]:
        """:func:`fridgebench.stores.schema.setup_schema` with psycopg: sessions already there (refuse /
        reset / reuse), the tables, and the catalogue inserted where missing — a different catalogue is
        refused. The same SQL, decisions and notes; returns the notes."""
        where = self.where
        notes: list[str] = []
        with self._pg() as conn:
            found = _pg_census(conn)
            action = schema.existing_action(found, existing, where)  # type: ignore[arg-type]
            if action == "reset":
                notes.append(schema.reset_note(where, _pg_purge(conn)))
                self.written.clear()
            elif action == "reuse":
                notes.append(schema.reuse_note(where, found))
            missing = [t for t in schema.TABLES if not _val(conn, schema.TABLE_EXISTS_SQL, (t,))]
            if missing:
                others = int(_val(conn, schema.OTHER_TABLES_SQL, (list(schema.TABLES),)))
                if others:
                    notes.append(schema.tables_note(str(_val(conn, "SELECT current_database()")), missing, others))
            conn.execute(schema.SCHEMA_SQL, prepare=False)  # several statements: simple query protocol
            ing_args, rec_args = schema.catalogue_query_args()
            with conn.transaction():  # all or nothing: never a half-loaded catalogue
                conflict = schema.catalogue_conflict(
                    conn.execute(schema.CATALOGUE_INGREDIENTS_SQL, ing_args).fetchall(),
                    conn.execute(schema.CATALOGUE_RECIPES_SQL, rec_args).fetchall(), where)
                if conflict is not None:
                    raise conflict
                ings, recs, pairs = schema.catalogue_rows()
                with conn.cursor() as cur:
                    cur.executemany(schema.INGREDIENTS_INSERT_SQL, ings)
                    cur.executemany(schema.RECIPES_INSERT_SQL, recs)
                    cur.executemany(schema.RECIPE_INGREDIENTS_INSERT_SQL, pairs)
        return notes

    def ping(self) -> None:
        """Reachable (one clear line if not)."""
        if self.kind == "postgres":
            self._pg().close()
        else:
            self._redis().close()

    # -- what this run wrote -----------------------------------------------------------------------
    def discard_written(self) -> Removed:
        """Delete exactly the sessions and recipe cache keys :attr:`written` names (those still
        there; a cache key whose TTL ran out is someone else's if it exists now), and forget them."""
        ledger = self.written
        sessions, keys = sorted(ledger.sessions), ledger.live_cache_keys()
        removed = Removed()
        if self.kind == "postgres":
            if sessions:
                with self._pg() as conn:
                    n = 0
                    for start in range(0, len(sessions), pg_sql.DISCARD_CHUNK):
                        cur = conn.execute(pg_sql.DISCARD_SQL, (sessions[start:start + pg_sql.DISCARD_CHUNK],))
                        n += max(cur.rowcount, 0)
                removed = Removed(sessions=n)
        elif sessions or keys:
            client = self._redis()
            try:
                removed = Removed(_unlink(client, [SESSION_PREFIX + sid for sid in sessions]), _unlink(client, keys))
            finally:
                client.close()
        ledger.forget(sessions, ledger.cache_keys)
        return removed

    def bulk_load(self, sessions: list[tuple[str, list[str]]], ttl_s: int) -> None:
        """The population, all live: COPY in one transaction / pipelined SETEX (as ``bulk_load``).
        The ids are recorded in :attr:`written` before anything is sent."""
        self.written.bulk(sid for sid, _ in sessions)
        if self.kind == "postgres":
            resolved = [(sid, pg_sql.resolve_ids(names)) for sid, names in sessions]
            with self._pg() as conn, conn.transaction(), conn.cursor() as cur:
                now = cur.execute("SELECT now()").fetchone()[0]  # type: ignore[index]
                expires = now + timedelta(seconds=ttl_s)
                with cur.copy("COPY user_fridge_sessions (session_id, created_at, expires_at, last_accessed) "
                              "FROM STDIN") as copy:
                    for sid, _ in resolved:
                        copy.write_row((sid, now, expires, now))
                with cur.copy("COPY user_fridge_ingredients (session_id, ingredient_id, added_at) FROM STDIN") as copy:
                    for sid, ids in resolved:
                        for iid in ids:
                            copy.write_row((sid, iid, now))
            return
        client = self._redis()
        try:
            created = now_iso()
            for start in range(0, len(sessions), BATCH):
                pipe = client.pipeline(transaction=False)
                for sid, names in sessions[start:start + BATCH]:
                    pipe.execute_command("SETEX", SESSION_PREFIX + sid, ttl_s, encode_session(created, list(names)))
                pipe.execute()
        finally:
            client.close()

    def read_back(self, session_ids: Iterable[str]) -> dict[str, Session | None]:
        """Each session's state now (None: gone), for the lost-update check."""
        ids = list(session_ids)
        out: dict[str, Session | None] = {}
        if self.kind == "postgres":
            with self._pg() as conn:
                for sid in ids:
                    row = conn.execute(pg_sql.POINT_READ_SQL, (sid,)).fetchone()
                    out[sid] = None if row is None else _session_from_row(sid, row)
            return out
        client = self._redis()
        try:
            for start in range(0, len(ids), BATCH):
                chunk = ids[start:start + BATCH]
                pipe = client.pipeline(transaction=False)
                for sid in chunk:
                    pipe.execute_command("GET", SESSION_PREFIX + sid)
                    pipe.execute_command("PTTL", SESSION_PREFIX + sid)
                replies = pipe.execute()
                for i, sid in enumerate(chunk):
                    out[sid] = _session_from_redis(sid, replies[2 * i], replies[2 * i + 1])
        finally:
            client.close()
        return out

    # -- what the server itself counted ---------------------------------------------------------
    def max_connections(self) -> int | None:
        if self.kind != "postgres":
            return None
        with self._pg() as conn:
            row = conn.execute("SELECT current_setting('max_connections')::int - "
                               "current_setting('superuser_reserved_connections')::int - "
                               "(SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')"
                               ).fetchone()
            return int(row[0]) if row else None  # type: ignore[index]

    def server_counters(self) -> dict[str, int]:
        """PostgreSQL: rows inserted/updated/deleted in the session tables and commits
        (pg_stat_user_tables, pg_stat_database); Redis: calls per command (INFO commandstats)."""
        if self.kind == "postgres":
            with self._pg() as conn:
                if conn.info.server_version >= 150000:  # stats are flushed lazily since 15
                    conn.execute("SELECT pg_stat_force_next_flush()")
                out: dict[str, int] = {}
                for rel, ins, upd, dele in conn.execute(
                        "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables "
                        "WHERE relname IN ('user_fridge_sessions', 'user_fridge_ingredients')").fetchall():
                    out[f"{rel}.n_tup_ins"], out[f"{rel}.n_tup_upd"], out[f"{rel}.n_tup_del"] = int(ins), int(upd), int(dele)
                row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()").fetchone()
                out["xact_commit"] = int(row[0]) if row else 0  # type: ignore[index]
                return out
        client = self._redis()
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items() if isinstance(v, dict)}

    def settled_counters(self, deadline_s: float = 5.0) -> dict[str, int]:
        """Counters once they stop moving: PostgreSQL backends flush their statistics on their own
        schedule (and when they exit), so read until two reads 0.25 s apart agree."""
        last = self.server_counters()
        if self.kind != "postgres":
            return last
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            time.sleep(0.25)
            now = self.server_counters()
            if {k: v for k, v in now.items() if k != "xact_commit"} == {k: v for k, v in last.items() if k != "xact_commit"}:
                return now
            last = now
        return last


def _val(conn: psycopg.Connection[Any], sql: str, args: Sequence[Any] = ()) -> Any:
    row = conn.execute(sql, args).fetchone()  # type: ignore[arg-type]
    return None if row is None else row[0]


def _pg_census(conn: psycopg.Connection[Any]) -> schema.SessionCensus:
    if not _val(conn, schema.TABLE_EXISTS_SQL, ("user_fridge_sessions",)):
        return schema.SessionCensus()
    return schema.census_from_row(conn.execute(schema.CENSUS_SQL).fetchone())  # type: ignore[arg-type]


def _pg_purge(conn: psycopg.Connection[Any]) -> int:
    """:func:`fridgebench.stores.schema.purge_sessions` with psycopg (``--reset`` only)."""
    with conn.transaction():
        conn.execute(schema.PURGE_LOCK_SQL)
        n = int(_val(conn, schema.PURGE_COUNT_SQL))
        try:
            conn.execute(schema.PURGE_SQL)
        except psycopg.errors.FeatureNotSupported as err:  # referenced by another table's foreign key
            raise schema.purge_blocked(err) from None
    return n


def _unlink(client: redis.Redis, keys: list[str]) -> int:
    """UNLINK exactly these keys, ``BATCH`` per command, pipelined; how many existed."""
    n = 0
    for start in range(0, len(keys), BATCH * 20):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(start + BATCH * 20, len(keys)), BATCH):
            pipe.unlink(*keys[i:i + BATCH])
        n += sum(int(x) for x in pipe.execute())
    return n


def _scan_unlink(client: redis.Redis, pattern: str) -> int:
    """UNLINK every key matching ``pattern`` (SCAN in batches): ``--reset`` only."""
    n = 0
    batch: list[bytes] = []
    for k in client.scan_iter(match=pattern, count=BATCH):
        batch.append(k)
        if len(batch) >= BATCH:
            n += int(client.unlink(*batch))
            batch = []
    if batch:
        n += int(client.unlink(*batch))
    return n


def counter_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in sorted(set(before) | set(after)) if after.get(k, 0) != before.get(k, 0)}

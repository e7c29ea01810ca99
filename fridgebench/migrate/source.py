"""The PostgreSQL side of a migration: which tables and columns hold sessions, and the SQL that reads them.

Every query that produces a Redis value lives here, so backfill, apply and verify render a session
exactly the same way. PostgreSQL builds the JSON itself (``to_json`` + ``string_agg ... ORDER BY``):
that is both the fastest path (no per-row Python work) and the single canonical rendering:

    {"created_at": "2025-01-31T09:15:02.123456+00:00", "ingredients": ["김치", "두부"]}

``created_at`` is always UTC with an explicit ``+00:00`` offset and six fractional digits; ingredient
names are raw UTF-8 (``json.loads`` of the seed's app reads them unchanged); ingredients are ordered by
``added_at`` then the link row's ``id``. The expiry is rendered as epoch milliseconds (floor) for PXAT.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import psycopg
from psycopg import sql

from fridgebench.errors import MigrationRefused, UsageError

CAPTURE_SCHEMA = "fridgebench_migrate"


def ident(name: str) -> sql.Composable:
    """``schema.table`` or ``table`` as a quoted identifier."""
    return sql.Identifier(*name.split(".", 1))


@dataclass(frozen=True)
class SourceSchema:
    """Table and column names of the application's schema (defaults: fridge2fork, DESIGN.md)."""

    sessions: str = "user_fridge_sessions"
    items: str = "user_fridge_ingredients"
    catalogue: str = "ingredients"
    session_id: str = "session_id"
    created_at: str = "created_at"
    expires_at: str = "expires_at"
    item_id: str = "id"
    item_session_id: str = "session_id"
    item_ingredient_id: str = "ingredient_id"
    item_added_at: str = "added_at"
    catalogue_id: str = "id"
    catalogue_name: str = "name"

    @classmethod
    def from_overrides(cls, tables: dict[str, str] | None = None, columns: dict[str, str] | None = None) -> "SourceSchema":
        known = {f.name for f in fields(cls)}
        merged = {**(tables or {}), **(columns or {})}
        bad = sorted(set(merged) - known)
        if bad:
            raise UsageError(f"unknown schema name(s): {', '.join(bad)}",
                             hint=f"use one of {', '.join(sorted(known))}")
        return replace(cls(), **merged)

    def to_dict(self) -> dict[str, str]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    # --- checks -------------------------------------------------------------------------------

    def validate(self, conn: psycopg.Connection) -> None:
        """Raise :class:`MigrationRefused` naming the first missing table or column."""
        need = {
            self.sessions: [self.session_id, self.created_at, self.expires_at],
            self.items: [self.item_id, self.item_session_id, self.item_ingredient_id, self.item_added_at],
            self.catalogue: [self.catalogue_id, self.catalogue_name],
        }
        for table, cols in need.items():
            oid = conn.execute("SELECT to_regclass(%s)", [_regname(table)]).fetchone()[0]
            if oid is None:
                raise MigrationRefused(
                    f"the source database has no table {table!r}",
                    hint="point --from at the fridge2fork database, or name the table with --table")
            have = {r[0] for r in conn.execute(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
                [_regname(table)])}
            for col in cols:
                if col not in have:
                    raise MigrationRefused(
                        f"table {table!r} has no column {col!r}",
                        hint="name the column with --column KEY=NAME (see fridgebench migrate --help)")

    # --- SQL ----------------------------------------------------------------------------------

    def _value_sql(self, s: str, agg: sql.Composable) -> sql.Composable:
        """The JSON text of session alias ``s``; ``agg`` is the comma-joined JSON names (or NULL).

        The timestamp is quoted directly (digits and ``-T:.+`` need no JSON escaping): the same
        text ``to_json`` produced, without a JSON escape pass per session.
        """
        return sql.SQL(
            """'{{"created_at": ' || COALESCE('"' || to_char({s}.{created} AT TIME ZONE 'UTC',
                 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"') || '"', 'null')
               || ', "ingredients": [' || COALESCE({agg}, '') || ']}}'"""
        ).format(s=sql.Identifier(s), created=sql.Identifier(self.created_at), agg=agg)

    def _pxat_sql(self, s: str) -> sql.Composable:
        return sql.SQL("floor(extract(epoch FROM {s}.{exp}) * 1000)::bigint").format(
            s=sql.Identifier(s), exp=sql.Identifier(self.expires_at))

    def _names_subquery(self, sid: sql.Composable, catalogue: str | None = None) -> sql.Composable:
        """The comma-joined JSON names of session ``sid``: a plain join of the catalogue (the
        reference, what verify trusts), or with ``catalogue`` (a :meth:`catalogue_mode`) the
        backfill's lookup of each name in the catalogue rendered once per statement -- measured
        ~3x faster for the applier's random sessions, where the join's plan scanned the catalogue
        once per session."""
        ing = sql.SQL("ui.{}").format(sql.Identifier(self.item_ingredient_id))
        if catalogue is not None:
            name, join = self.catalogue_lookup_sql(ing, mode=catalogue), sql.SQL("")
        else:
            name = sql.SQL("to_json(c.{})::text").format(sql.Identifier(self.catalogue_name))
            join = sql.SQL("JOIN {cat} c ON c.{cid} = {ing}").format(
                cat=ident(self.catalogue), cid=sql.Identifier(self.catalogue_id), ing=ing)
        return sql.SQL(
            """(SELECT string_agg({name}, ', ' ORDER BY ui.{added}, ui.{iid})
                FROM {items} ui {join} WHERE ui.{isid} = {sid})"""
        ).format(name=name, join=join, added=sql.Identifier(self.item_added_at), iid=sql.Identifier(self.item_id),
                 items=ident(self.items), isid=sql.Identifier(self.item_session_id), sid=sid)

    def live_sessions_query(self, *, limit: int | None = None) -> sql.Composable:
        """Every live session in key order, ``sid, json, pxat_ms``: the reference rendering verify
        compares against (a plain join of the catalogue, independent of the backfill's lookups).
        The ingredient names are aggregated in a merge-friendly grouped subquery (one pass over the
        link table), not per row."""
        sid = sql.Identifier(self.session_id)
        agg = sql.SQL(
            """(SELECT ui.{isid} AS sid,
                       string_agg(to_json(c.{cname})::text, ', ' ORDER BY ui.{added}, ui.{iid}) AS names
                FROM {items} ui JOIN {cat} c ON c.{cid} = ui.{ing}
                GROUP BY ui.{isid})"""
        ).format(isid=sql.Identifier(self.item_session_id), cname=sql.Identifier(self.catalogue_name),
                 added=sql.Identifier(self.item_added_at), iid=sql.Identifier(self.item_id),
                 items=ident(self.items), cat=ident(self.catalogue), cid=sql.Identifier(self.catalogue_id),
                 ing=sql.Identifier(self.item_ingredient_id))
        q = sql.SQL(
            """SELECT s.{sid}::text, {value}, {pxat}
               FROM {sessions} s LEFT JOIN {agg} g ON g.sid = s.{sid}
               WHERE s.{exp} > now()
               ORDER BY s.{sid}"""
        ).format(sid=sid, value=self._value_sql("s", sql.SQL("g.names")), pxat=self._pxat_sql("s"),
                 sessions=ident(self.sessions), agg=agg, exp=sql.Identifier(self.expires_at))
        if limit is not None:
            q = q + sql.SQL(" LIMIT {n}").format(n=sql.Literal(limit))
        return q

    def backfill_batch_query(self, *, version_base: int, capture: bool, lower: bool = True, upper: bool = True,
                             catalogue: str = "dense") -> sql.Composable:
        """One backfill batch: the live sessions with ``%(lo)s < session_id <= %(hi)s`` (a bound is
        left out when ``lower``/``upper`` is false), in ONE row
        ``(values bytea, ids text[], pxats bigint[], versions bigint[] | NULL, sessions int)``.

        ``values`` are the sessions' JSON (the same ``_value_sql`` rendering as every other reader)
        as UTF-8, joined by newlines -- a newline never occurs in it (``to_json`` escapes control
        characters and the timestamp has none) -- in the order of ``ids`` and ``pxats``.
        ``versions`` (only with capture) let the batch write a version key for the rare session
        whose version is above ``version_base``. ``target.batch_commands`` turns the row into RESP:
        measured, framing the commands in Python costs ~0.9 us per session, a third of what the
        same string building costs PostgreSQL, which is the backfill's bottleneck.

        Per ingredient row the name is looked up in the catalogue rendered once
        (``catalogue_lookup_sql``); the plan is a merge of the two primary-key-ordered index range
        scans with a group aggregate.
        """
        sid = sql.Identifier(self.session_id)
        isid = sql.Identifier(self.item_session_id)

        if capture:
            # per session through the changes_session index: a range filter on the change table
            # would compare its text ids under another type (uuid ids) or collation than the source's
            version = sql.SQL("{base} + v.n").format(base=sql.Literal(version_base))
            vjoin = sql.SQL(
                "CROSS JOIN LATERAL (SELECT count(*) AS n FROM {cs}.changes ch WHERE ch.session_id = s.{sid}::text) v").format(
                cs=sql.Identifier(CAPTURE_SCHEMA), sid=sid)
            versions = sql.SQL("array_agg(t.ver)")
        else:
            version, vjoin, versions = sql.Literal(version_base), sql.SQL(""), sql.SQL("NULL::bigint[]")
        return sql.SQL(
            r"""SELECT convert_to(COALESCE(string_agg(t.val, E'\n'), ''), 'UTF8'), COALESCE(array_agg(t.sid), '{{}}'),
                      COALESCE(array_agg(t.pxn), '{{}}'), {versions}, count(*)::int
               FROM (SELECT s.{sid}::text AS sid, {value} AS val, {pxat} AS pxn, {version} AS ver
                     FROM {sessions} s
                     LEFT JOIN (SELECT ui.{isid} AS sid, string_agg({name}, ', ' ORDER BY ui.{added}, ui.{iid}) AS names
                                FROM {items} ui WHERE {irange}
                                GROUP BY ui.{isid}) g ON g.sid = s.{sid}
                     {vjoin}
                     WHERE s.{exp} > now() AND {srange}) t"""
        ).format(versions=versions, sid=sid, value=self._value_sql("s", sql.SQL("g.names")),
                 pxat=self._pxat_sql("s"), version=version, sessions=ident(self.sessions), isid=isid,
                 name=self.catalogue_lookup_sql(sql.SQL("ui.{}").format(sql.Identifier(self.item_ingredient_id)),
                                                mode=catalogue),
                 added=sql.Identifier(self.item_added_at), iid=sql.Identifier(self.item_id), items=ident(self.items),
                 irange=_key_range(sql.SQL("ui.{}").format(isid), lower=lower, upper=upper), vjoin=vjoin, exp=sql.Identifier(self.expires_at),
                 srange=_key_range(sql.SQL("s.{}").format(sid), lower=lower, upper=upper))

    def catalogue_lookup_sql(self, ing: sql.Composable, *, mode: str) -> sql.Composable:
        """The JSON string literal of ingredient ``ing``'s name (``to_json(name)::text``), per link
        row -- exactly what the reference join (``_names_subquery``) renders for it, or NULL (the name
        left out) when no catalogue row matches. ``mode`` comes from :meth:`catalogue_mode`:

        * ``dense`` (unique integer ids on both sides, spanning at most a few times the catalogue's
          size): the catalogue as one jsonb array built once per statement (an InitPlan) over
          ``min(id)..max(id)`` and indexed directly (``->>`` on a jsonb array is an offset lookup;
          measured ~2 us per session cheaper than a text[] subscript, which walks the array, or a
          jsonb object's key search). Ids outside ``[min, max]`` match nothing.
        * ``object`` (unique ids whose text form is their identity: text/varchar, uuid, integers):
          a jsonb object keyed by the id's text, built once per statement.
        * ``lookup`` (anything else: numeric, mixed types...): the catalogue's row by ``=`` per link
          row, the reference's own comparison.

        Each is read in the statement's own snapshot, so it sees the catalogue the link rows saw.
        """
        cid, cname, cat = sql.Identifier(self.catalogue_id), sql.Identifier(self.catalogue_name), ident(self.catalogue)
        if mode == "dense":
            return sql.SQL(
                """(CASE WHEN {ing} BETWEEN (SELECT min({cid}) FROM {cat}) AND (SELECT max({cid}) FROM {cat}) THEN
                     (SELECT jsonb_agg(to_json(c.{cname})::text ORDER BY g.i)
                      FROM generate_series((SELECT min({cid}) FROM {cat})::bigint, (SELECT max({cid}) FROM {cat})::bigint) g(i)
                      LEFT JOIN {cat} c ON c.{cid} = g.i) ->> ({ing} - (SELECT min({cid}) FROM {cat}))::int END)""").format(
                cname=cname, cid=cid, cat=cat, ing=ing)
        if mode == "object":
            return sql.SQL("((SELECT jsonb_object_agg({cid}::text, to_json({cname})::text) FROM {cat} "
                           "WHERE {cid} IS NOT NULL) ->> ({ing})::text)").format(
                cid=cid, cname=cname, cat=cat, ing=ing)
        return sql.SQL("(SELECT to_json(c.{cname})::text FROM {cat} c WHERE c.{cid} = {ing})").format(
            cname=cname, cat=cat, cid=cid, ing=ing)

    def catalogue_mode(self, conn: psycopg.Connection) -> str:
        """How the backfill looks names up (see :meth:`catalogue_lookup_sql`). Reads only the system
        catalog and the catalogue table, so it never aborts the caller's transaction. Raises
        :class:`MigrationRefused` when catalogue ids repeat: a link row would then name several
        ingredients, and no rendering of that is the application's."""
        typ = "(SELECT atttypid::regtype::text FROM pg_attribute WHERE attrelid = to_regclass(%s) " \
              "AND attname = %s AND NOT attisdropped)"
        cat_t, ing_t = (t or "?" for t in conn.execute(
            f"SELECT {typ}, {typ}", [_regname(self.catalogue), self.catalogue_id, _regname(self.items),
                                     self.item_ingredient_id]).fetchone())
        ints = ("smallint", "integer", "bigint")
        dense = cat_t in ints and ing_t in ints
        cid = sql.Identifier(self.catalogue_id)
        # a NULL id names no link row (``=`` never matches it), as in the reference join: not counted
        n, distinct, span = conn.execute(sql.SQL("SELECT count({cid}), count(DISTINCT {cid}), {span} FROM {cat}").format(
            cid=cid, cat=ident(self.catalogue),
            span=sql.SQL("max({cid})::bigint - min({cid})::bigint + 1").format(cid=cid) if dense else sql.SQL("NULL"))
        ).fetchone()
        if n != distinct:
            raise MigrationRefused(
                f"catalogue {self.catalogue!r} has {n - distinct} repeated {self.catalogue_id!r} values",
                hint="ingredient ids must be unique (a primary key); point --column catalogue_id at the key")
        if dense and (span is None or span <= max(4 * int(n), 100_000)):
            return "dense"
        family = {"text": "s", "character varying": "s", "uuid": "u", "smallint": "i", "integer": "i", "bigint": "i"}
        if family.get(cat_t) is not None and family.get(cat_t) == family.get(ing_t):
            return "object"
        return "lookup"

    def batch_bound_query(self, *, lower: bool, upper: bool) -> sql.Composable:
        """The id ``%(n)s`` keys after ``%(lo)s`` (within ``<= %(hi)s``), or none: the upper bound of a
        backfill batch of ``n + 1`` keys. Read from the primary key's index (an index-only scan on
        a vacuumed table), so batches are even whatever the ids' physical order; expired sessions
        count toward ``n`` (a batch holds up to that many live ones)."""
        sid = sql.Identifier(self.session_id)
        return sql.SQL("SELECT {sid}::text FROM {sessions} WHERE {cond} ORDER BY {sid} OFFSET %(n)s LIMIT 1").format(
            sid=sid, sessions=ident(self.sessions), cond=_key_range(sid, lower=lower, upper=upper))

    def split_points_query(self, *, after: str | None, percent: float, parts: int) -> sql.Composable:
        """``parts - 1`` session ids splitting the live keys after ``after`` evenly, from a block sample."""
        sid = sql.Identifier(self.session_id)
        after_s = sql.SQL("AND {sid} > {v}").format(sid=sid, v=sql.Literal(after)) if after is not None else sql.SQL("")
        fr = [i / parts for i in range(1, parts)]
        return sql.SQL(
            """SELECT percentile_disc({fr}::float8[]) WITHIN GROUP (ORDER BY {sid})::text[]
               FROM {sessions} TABLESAMPLE SYSTEM ({pct}) WHERE {exp} > now() {after_s}"""
        ).format(fr=sql.Literal(fr), sid=sid, sessions=ident(self.sessions), pct=sql.Literal(percent),
                 exp=sql.Identifier(self.expires_at), after_s=after_s)

    def count_query(self, *, after: str | None = None) -> sql.Composable:
        """``live, expired`` sessions (after ``after``) and live ingredient rows."""
        sid = sql.Identifier(self.session_id)
        after_s = sql.SQL("WHERE s.{sid} > {v}").format(sid=sid, v=sql.Literal(after)) if after is not None else sql.SQL("")
        return sql.SQL(
            """SELECT count(*) FILTER (WHERE s.{exp} > now()), count(*) FILTER (WHERE s.{exp} <= now())
               FROM {sessions} s {after_s}"""
        ).format(exp=sql.Identifier(self.expires_at), sessions=ident(self.sessions), after_s=after_s)

    def state_query(self, *, version_base: int, capture: bool, catalogue: str | None = None) -> sql.Composable:
        """Current state of the sessions in ``%(ids)s`` (text[]): ``sid, json|NULL, pxat|NULL, version``.

        NULL json means the session is gone or expired. One statement: value and version share
        one snapshot, which is what makes the version comparable (see ``fridgebench.migrate``).
        ``catalogue``: the names' lookup (see :meth:`_names_subquery`); None, the reference join.
        """
        sid = sql.Identifier(self.session_id)
        version = sql.SQL("{b}").format(b=sql.Literal(version_base))
        if capture:
            version = sql.SQL("{b} + (SELECT count(*) FROM {cs}.changes ch WHERE ch.session_id = x.sid)").format(
                b=sql.Literal(version_base), cs=sql.Identifier(CAPTURE_SCHEMA))
        return sql.SQL(
            """SELECT x.sid,
                      CASE WHEN s.{exp} > now() THEN {value} END,
                      CASE WHEN s.{exp} > now() THEN {pxat} END,
                      {version}
               FROM unnest(%(ids)s::text[]) AS x(sid)
               LEFT JOIN {sessions} s ON s.{sid}::text = x.sid"""
        ).format(exp=sql.Identifier(self.expires_at),
                 value=self._value_sql("s", self._names_subquery(sql.SQL("s.{sid}").format(sid=sid), catalogue)),
                 pxat=self._pxat_sql("s"), version=version, sessions=ident(self.sessions), sid=sid)

def _key_range(col: sql.Composable, *, lower: bool, upper: bool) -> sql.Composable:
    """``col > %(lo)s AND col <= %(hi)s``, each side only when asked for (``true`` when neither)."""
    parts = [sql.SQL("true")]
    if lower:
        parts.append(sql.SQL("{c} > %(lo)s").format(c=col))
    if upper:
        parts.append(sql.SQL("{c} <= %(hi)s").format(c=col))
    return sql.SQL(" AND ").join(parts)


def _regname(table: str) -> str:
    return ".".join('"' + p.replace('"', '""') + '"' for p in table.split(".", 1))


def parse_kv(pairs: list[str] | None, what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in pairs or []:
        if "=" not in p:
            raise UsageError(f"{what} {p!r} is not KEY=NAME", hint=f"e.g. {what} sessions=my_sessions")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out

"""Schemas that differ from fridge2fork's: the backfill's fast paths must not assume its types.

* uuid session ids (the live backfill's per-session version count must not compare a text
  change-table id with a uuid);
* a catalogue keyed by text (no array lookup), and an integer catalogue with a link row pointing
  below its smallest id and no foreign key (the array lookup must drop it, not index from the end);
* ids inserted in key order (batches cut from the index stay even, whatever the physical order).
"""

from __future__ import annotations

import psycopg
import pytest

from fridgebench.errors import MigrationRefused
from fridgebench.migrate import run
from fridgebench.migrate.source import SourceSchema

TABLES = {"sessions": "app.sess", "items": "app.sess_items", "catalogue": "app.foods"}


def _schema(dsn: str, *, id_type: str, cat_type: str, n: int, ing_type: str | None = None) -> SourceSchema:
    """``n`` live sessions in app.* with the given id types; every 7th has an item pointing at a
    catalogue id below the smallest one (integer catalogue only: no foreign key there)."""
    with psycopg.connect(dsn, autocommit=True) as c:
        fk = "REFERENCES app.foods(fid)" if cat_type == "text" else ""
        c.execute(f"""
            CREATE SCHEMA app;
            CREATE TABLE app.foods (fid {cat_type} PRIMARY KEY, label text NOT NULL);
            CREATE TABLE app.sess (sid {id_type} PRIMARY KEY, made timestamptz DEFAULT now(),
                                   dies timestamptz NOT NULL);
            CREATE TABLE app.sess_items (iid serial PRIMARY KEY,
                                         sid {id_type} NOT NULL REFERENCES app.sess(sid) ON DELETE CASCADE,
                                         fid {ing_type or cat_type} NOT NULL {fk}, at timestamptz DEFAULT now(),
                                         UNIQUE (sid, fid));""")
        key = "'k' || g" if cat_type == "text" else "g + 10"
        c.execute(f"INSERT INTO app.foods SELECT {key}, '음식 ' || g || CASE WHEN g = 3 THEN ' \"q\"' ELSE '' END "
                  "FROM generate_series(1, 40) g")
        sid = "gen_random_uuid()" if id_type == "uuid" else "lpad(g::text, 12, '0')"
        c.execute(f"INSERT INTO app.sess (sid, made, dies) SELECT {sid}, now() - interval '1 hour', "
                  "now() + interval '20 hours' + g * interval '1 second' FROM generate_series(1, %s) g", [n])
        ref = "'k' || (1 + (k * 7 + r) % 40)" if cat_type == "text" else "11 + (k * 7 + r) % 40"
        c.execute(f"""INSERT INTO app.sess_items (sid, fid, at)
                      SELECT s.sid, {ref}, now() - k * interval '1 minute'
                      FROM (SELECT sid, row_number() OVER (ORDER BY sid) AS r FROM app.sess) s,
                           generate_series(1, 1 + (s.r % 9)::int) k""")
        if cat_type != "text":
            c.execute("""INSERT INTO app.sess_items (sid, fid)
                         SELECT sid, 3 FROM (SELECT sid, row_number() OVER (ORDER BY sid) r FROM app.sess) s
                         WHERE r % 7 = 0""")
        c.execute("ANALYZE")
    return SourceSchema.from_overrides(TABLES, {
        "session_id": "sid", "created_at": "made", "expires_at": "dies", "item_id": "iid", "item_session_id": "sid",
        "item_ingredient_id": "fid", "item_added_at": "at", "catalogue_id": "fid", "catalogue_name": "label"})


def _change_some(dsn: str, cat_type: str) -> None:
    """The application at work: adds, removes, extends, deletes and creates after the backfill."""
    ref = "'k5'" if cat_type == "text" else "15"
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(f"INSERT INTO app.sess_items (sid, fid) SELECT sid, {ref} FROM app.sess ORDER BY sid LIMIT 40 "
                  "ON CONFLICT DO NOTHING")
        c.execute("DELETE FROM app.sess_items WHERE iid IN (SELECT iid FROM app.sess_items ORDER BY iid DESC LIMIT 30)")
        c.execute("UPDATE app.sess SET dies = dies + interval '1 hour' WHERE sid IN "
                  "(SELECT sid FROM app.sess ORDER BY sid DESC LIMIT 25)")
        c.execute("DELETE FROM app.sess WHERE sid IN (SELECT sid FROM app.sess ORDER BY sid LIMIT 10 OFFSET 100)")


def _live_verify(dsn: str, url: str, src: SourceSchema, cat_type: str, n: int) -> None:
    opts = run.Options(dsn=dsn, url=url, schema=src, live=True, until_caught_up=True, batch_size=97)
    first = run.migrate(opts)
    assert first["backfill"]["written"] == n
    _change_some(dsn, cat_type)
    second = run.migrate(opts)
    assert second["changes"]["change_rows"] > 50 and second["changes"]["foreign_skipped"] == 0
    rep = run.verify(dsn, url, src, ttl_tolerance_s=0.001, sample=5, settle_s=0)
    assert rep.total == 0 and rep.checked == n - 10 == rep.redis_keys, (rep.differences, rep.samples)


def test_uuid_session_ids_and_a_text_keyed_catalogue_migrate_live(pg_dsn, redis_url, rds, reports):
    src = _schema(pg_dsn, id_type="uuid", cat_type="text", n=1200)
    with psycopg.connect(pg_dsn) as c:
        assert src.catalogue_mode(c) == "object"  # text ids: the jsonb-object lookup
    _live_verify(pg_dsn, redis_url, src, "text", 1200)
    raw = rds.get(f"session:{_first_sid(pg_dsn)}")
    assert raw is not None and "음식" in raw.decode()


def test_integer_catalogue_without_foreign_key_drops_an_unknown_id_like_the_reference(pg_dsn, redis_url, rds,
                                                                                         reports):
    src = _schema(pg_dsn, id_type="varchar(40)", cat_type="integer", n=1000)
    with psycopg.connect(pg_dsn) as c:
        assert src.catalogue_mode(c) == "dense"  # ids 11..50: the array lookup, and id 3 lies below it
        c.execute("INSERT INTO app.foods VALUES (1000000, 'far')")  # a span of 1M ids for 41 rows: too sparse
        assert src.catalogue_mode(c) == "object"
        c.rollback()
    # id 3 must render as nothing (verify's reference query joins, so drops it), never as the name
    # jsonb's negative indexing would find at the end of the array
    _live_verify(pg_dsn, redis_url, src, "integer", 1000)


def test_batches_cut_from_the_index_are_even_when_ids_follow_the_physical_order(pg_dsn):
    src = _schema(pg_dsn, id_type="varchar(40)", cat_type="integer", n=5000)  # lpad ids: key order = heap order
    sizes = []
    with psycopg.connect(pg_dsn) as c:
        lo = None
        while True:
            row = c.execute(src.batch_bound_query(lower=lo is not None, upper=False), {"lo": lo, "n": 399}).fetchone()
            hi = row[0] if row else None
            q = src.backfill_batch_query(version_base=0, capture=False, lower=lo is not None, upper=hi is not None,
                                         catalogue="dense")
            sizes.append(c.execute(q, {"lo": lo, "hi": hi}).fetchone()[4])
            if hi is None:
                break
            lo = hi
    assert sum(sizes) == 5000 and sizes[:-1] == [400] * 12 and sizes[-1] == 200


def _first_sid(dsn: str) -> str:
    with psycopg.connect(dsn) as c:
        return str(c.execute("SELECT sid FROM app.sess ORDER BY sid LIMIT 1 OFFSET 200").fetchone()[0])


def test_smallint_catalogue_and_numeric_link_ids_render_like_the_reference(pg_dsn, redis_url, rds, reports):
    """A smallint catalogue uses the array (its bounds cast for generate_series); a numeric link
    column compares by value, never by its text ('12.00' is 12), so it takes the per-row lookup."""
    src = _schema(pg_dsn, id_type="varchar(40)", cat_type="smallint", n=600)
    with psycopg.connect(pg_dsn) as c:
        assert src.catalogue_mode(c) == "dense"
    _live_verify(pg_dsn, redis_url, src, "smallint", 600)


def test_numeric_link_ids_take_the_per_row_lookup_and_repeated_catalogue_ids_are_refused(pg_dsn, redis_url, rds,
                                                                                            reports):
    src = _schema(pg_dsn, id_type="varchar(40)", cat_type="integer", ing_type="numeric(8,2)", n=600)
    with psycopg.connect(pg_dsn) as c:
        assert src.catalogue_mode(c) == "lookup"
    _live_verify(pg_dsn, redis_url, src, "integer", 600)
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute("ALTER TABLE app.foods DROP CONSTRAINT foods_pkey")
        c.execute("INSERT INTO app.foods VALUES (12, 'another twelve')")
        with pytest.raises(MigrationRefused, match="repeated"):
            src.catalogue_mode(c)


@pytest.mark.parametrize("cat_type, mode", [("integer", "dense"), ("text", "object")])
def test_a_catalogue_row_without_an_id_names_nothing_as_in_the_reference(pg_dsn, redis_url, rds, reports,
                                                                         cat_type, mode):
    """A catalogue without a key may hold a row whose id is NULL: no link row can name it (``=``
    never matches NULL), so it is neither a repeated id nor a key of the jsonb object lookup."""
    src = _schema(pg_dsn, id_type="varchar(40)", cat_type=cat_type, n=500)
    with psycopg.connect(pg_dsn, autocommit=True) as c:
        c.execute("ALTER TABLE app.foods DROP CONSTRAINT foods_pkey CASCADE")  # and the link's foreign key
        c.execute("ALTER TABLE app.foods ALTER COLUMN fid DROP NOT NULL")
        c.execute("INSERT INTO app.foods VALUES (NULL, 'nobody')")
        assert src.catalogue_mode(c) == mode
    _live_verify(pg_dsn, redis_url, src, cat_type, 500)


def test_table_and_column_flags_through_the_cli(pg_dsn, redis_url, rds, reports):
    """The same differently named schema, named on the command line: migrate --live, the
    application's changes applied by the same command again, verify (with the same flags) = 0."""
    import json

    from tests.helpers import cli

    _schema(pg_dsn, id_type="varchar(40)", cat_type="integer", n=700)
    names = ["--table", "sessions=app.sess", "--table", "items=app.sess_items", "--table", "catalogue=app.foods",
             "--column", "session_id=sid", "--column", "created_at=made", "--column", "expires_at=dies",
             "--column", "item_id=iid", "--column", "item_session_id=sid", "--column", "item_ingredient_id=fid",
             "--column", "item_added_at=at", "--column", "catalogue_id=fid", "--column", "catalogue_name=label"]
    args = ("migrate", "--from", pg_dsn, "--to", redis_url, "--live", "--until-caught-up", *names)
    res = cli(*args, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["backfill"]["written"] == 700
    _change_some(pg_dsn, "integer")
    res = cli(*args, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["changes"]["change_rows"] > 50
    ver = cli("migrate", "verify", "--from", pg_dsn, "--to", redis_url, "--json", *names)
    assert ver.returncode == 0, ver.stderr
    doc = json.loads(ver.stdout)
    assert doc["total_differences"] == 0 and doc["checked"] == 690 == doc["redis_keys"]
    value = json.loads(rds.get(f"session:{_first_sid(pg_dsn)}"))
    assert value["ingredients"] and all(n.startswith("음식 ") for n in value["ingredients"])

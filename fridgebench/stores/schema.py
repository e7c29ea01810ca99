"""The fridge2fork PostgreSQL schema (DESIGN.md) and the ingredient / recipe catalogue.

``setup_schema`` is what provisioning and experiments call: it creates the tables, loads the
catalogue, and refuses to touch an existing database holding sessions unless told to
(``reuse`` keeps the data, ``reset`` empties the session tables). It never overwrites a row it
did not write: catalogue rows are only inserted where missing, and a database whose catalogue
differs from fridgebench's is refused. Creating the tables in a database that already holds
other tables is said in a note.

Each step's SQL (``*_SQL``) and its decision or message (:func:`existing_action`,
:func:`catalogue_conflict`, the ``*_note`` lines) are module-level, apart from the asyncpg calls:
``fridgebench load``'s Locust master runs the same steps with psycopg
(:meth:`fridgebench.load.sync_stores.StoreAdmin.ensure_schema`), asyncio being out of bounds there.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable, Literal, Sequence

import asyncpg

from fridgebench.errors import SchemaConflict

SESSION_TABLES = ("user_fridge_ingredients", "user_fridge_sessions")
TABLES = ("ingredients", "user_fridge_sessions", "user_fridge_ingredients", "recipes", "recipe_ingredients")

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS ingredients (
    id integer PRIMARY KEY,
    name text UNIQUE NOT NULL,
    category text,
    is_common boolean
);
CREATE TABLE IF NOT EXISTS user_fridge_sessions (
    session_id varchar(50) PRIMARY KEY,
    created_at timestamptz DEFAULT now(),
    expires_at timestamptz NOT NULL DEFAULT now() + interval '24 hours',
    last_accessed timestamptz DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_user_fridge_sessions_expires_at ON user_fridge_sessions (expires_at);
CREATE TABLE IF NOT EXISTS user_fridge_ingredients (
    id serial PRIMARY KEY,
    session_id varchar(50) NOT NULL REFERENCES user_fridge_sessions ON DELETE CASCADE,
    ingredient_id integer NOT NULL REFERENCES ingredients,
    added_at timestamptz DEFAULT now(),
    UNIQUE (session_id, ingredient_id)
);
CREATE TABLE IF NOT EXISTS recipes (
    id integer PRIMARY KEY,
    name text NOT NULL
);
CREATE TABLE IF NOT EXISTS recipe_ingredients (
    recipe_id integer NOT NULL REFERENCES recipes ON DELETE CASCADE,
    ingredient_id integer NOT NULL REFERENCES ingredients,
    PRIMARY KEY (recipe_id, ingredient_id)
);
"""


@dataclass(frozen=True)
class Ingredient:
    id: int
    name: str
    category: str
    is_common: bool
    weight: float  # relative popularity (skewed): how often users put it in a fridge


@dataclass(frozen=True)
class Recipe:
    id: int
    name: str
    weight: float  # relative popularity of lookups
    ingredients: tuple[str, ...]


def _read_tsv(name: str) -> list[dict[str, str]]:
    text = resources.files("fridgebench.data").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines(), delimiter="\t"))


@lru_cache(maxsize=1)
def ingredients() -> tuple[Ingredient, ...]:
    return tuple(
        Ingredient(int(r["id"]), r["name"], r["category"], r["is_common"] == "true", float(r["weight"]))
        for r in _read_tsv("ingredients.tsv")
    )


@lru_cache(maxsize=1)
def recipes() -> tuple[Recipe, ...]:
    return tuple(
        Recipe(int(r["id"]), r["name"], float(r["weight"]), tuple(x for x in r["ingredients"].split(",") if x))
        for r in _read_tsv("recipes.tsv")
    )


@lru_cache(maxsize=1)
def ingredient_ids() -> dict[str, int]:
    return {i.name: i.id for i in ingredients()}


Existing = Literal["refuse", "reuse", "reset"]

REUSE_HINT = ("pass --reuse to run beside them (fridgebench then deletes only what it writes) "
              "or --reset to delete them first")


@dataclass(frozen=True)
class SessionCensus:
    """The sessions a database holds (0 when it has no fridge2fork tables)."""

    sessions: int = 0
    expired: int = 0
    example: str | None = None  # one session_id, to name in messages

    def describe(self) -> str:
        if not self.sessions:
            return "no sessions"
        exp = f", {self.expired:,} of them expired" if self.expired else ""
        eg = f" (e.g. session_id {self.example!r})" if self.example is not None else ""
        return f"{self.sessions:,} session{'s' if self.sessions != 1 else ''}{exp}{eg}"


# The SQL of each step below, shared with the Locust side (psycopg runs asyncpg's ``$n`` placeholders
# verbatim through its RawCursor), so both drivers ask the database exactly the same questions.
TABLE_EXISTS_SQL = "SELECT to_regclass($1) IS NOT NULL"
CENSUS_SQL = ("SELECT count(*) AS n, count(*) FILTER (WHERE expires_at <= now()) AS expired, "
              "(SELECT session_id FROM user_fridge_sessions LIMIT 1) AS example "
              "FROM user_fridge_sessions")
PURGE_LOCK_SQL = "LOCK TABLE user_fridge_sessions, user_fridge_ingredients IN ACCESS EXCLUSIVE MODE"
PURGE_COUNT_SQL = "SELECT count(*) FROM user_fridge_sessions"
PURGE_SQL = "TRUNCATE user_fridge_ingredients, user_fridge_sessions"
OTHER_TABLES_SQL = """SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname NOT LIKE 'fridgebench\\_%'
      AND c.oid <> ALL(SELECT to_regclass(t) FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NOT NULL)"""


def census_from_row(row: Sequence[Any]) -> SessionCensus:
    """The census from :data:`CENSUS_SQL`'s one row (by position: any driver's row)."""
    return SessionCensus(int(row[0]), int(row[1]), row[2])


async def census(conn: asyncpg.Connection) -> SessionCensus:
    """Count the sessions in ``user_fridge_sessions`` (of the connection's search_path), if it exists."""
    if not await conn.fetchval(TABLE_EXISTS_SQL, "user_fridge_sessions"):
        return SessionCensus()
    return census_from_row(await conn.fetchrow(CENSUS_SQL))


def refuse_postgres(where: str, found: SessionCensus) -> SchemaConflict:
    """The one line refusing a database that holds sessions (``where`` ends with a space)."""
    return SchemaConflict(f"the database {where}already holds {found.describe()} that fridgebench did not write",
                          hint=REUSE_HINT)


def existing_action(found: SessionCensus, existing: Existing, where: str) -> Literal["reset", "reuse"] | None:
    """What to do about the sessions a database already holds: nothing (there are none), refuse
    (raises), or the caller deletes them (``"reset"``) / leaves them (``"reuse"``)."""
    if not found.sessions:
        return None
    if existing == "refuse":
        raise refuse_postgres(where, found)
    return existing


def reset_note(where: str, deleted: int) -> str:
    return f"--reset: deleted {deleted:,} session{'s' if deleted != 1 else ''} from {where.strip()}"


def reuse_note(where: str, found: SessionCensus) -> str:
    return (f"--reuse: {found.describe()} already in {where.strip()} stay untouched; "
            "fridgebench deletes only the sessions it writes")


def tables_note(database: str, missing: list[str], others: int) -> str:
    return (f"creating the fridge2fork tables ({', '.join(missing)}) in database {database!r}, "
            f"which already holds {others} other table{'s' if others != 1 else ''}")


def purge_blocked(err: Exception) -> SchemaConflict:
    """``--reset`` cannot TRUNCATE: another table's foreign key references the sessions."""
    return SchemaConflict(f"cannot delete the sessions for --reset: {err}",
                          hint="another table references user_fridge_sessions; empty it yourself "
                               "or point fridgebench at another database")


async def purge_sessions(conn: asyncpg.Connection) -> int:
    """Empty the two session tables (``--reset``, or a scratch schema): returns the sessions deleted.

    Locked, counted and truncated in one transaction, so the count is exactly what went. No
    CASCADE: a table of someone else's referencing the sessions makes this fail, not empty it.
    """
    async with conn.transaction():
        await conn.execute(PURGE_LOCK_SQL)
        n = int(await conn.fetchval(PURGE_COUNT_SQL))
        try:
            await conn.execute(PURGE_SQL)
        except asyncpg.FeatureNotSupportedError as err:  # referenced by another table's foreign key
            raise purge_blocked(err) from None
    return n


async def _other_tables(conn: asyncpg.Connection) -> int:
    """Tables in the database that are neither fridge2fork's (in this search_path) nor fridgebench's own."""
    return int(await conn.fetchval(OTHER_TABLES_SQL, list(TABLES)))


async def setup_schema(conn: asyncpg.Connection, *, existing: Existing = "refuse", where: str = "",
                       notes: list[str] | None = None) -> int:
    """Create tables and load the catalogue. Returns the number of sessions kept.

    With ``existing="refuse"`` a database that already holds sessions raises
    :class:`SchemaConflict` naming ``--reuse`` and ``--reset``; ``"reset"`` deletes them first;
    ``"reuse"`` leaves them. ``notes`` receives one line per thing worth telling the user
    (sessions deleted or left, tables created beside other tables).
    """
    say = notes.append if notes is not None else (lambda _line: None)
    db = where or f"{await conn.fetchval('SELECT current_database()')} "
    found = await census(conn)
    action = existing_action(found, existing, db)
    if action == "reset":
        say(reset_note(db, await purge_sessions(conn)))
    elif action == "reuse":
        say(reuse_note(db, found))
    missing = [t for t in TABLES if not await conn.fetchval(TABLE_EXISTS_SQL, t)]
    if missing:
        others = await _other_tables(conn)
        if others:
            say(tables_note(await conn.fetchval("SELECT current_database()"), missing, others))
    await conn.execute(SCHEMA_SQL)
    await load_catalogue(conn, where=db)
    return found.sessions if action == "reuse" else 0


CATALOGUE_INGREDIENTS_SQL = "SELECT id, name FROM ingredients WHERE id = ANY($1::int[]) OR name = ANY($2::text[])"
CATALOGUE_RECIPES_SQL = """SELECT r.id, r.name, coalesce(array_agg(ri.ingredient_id ORDER BY ri.ingredient_id)
                                    FILTER (WHERE ri.ingredient_id IS NOT NULL), '{}') AS ings
             FROM recipes r LEFT JOIN recipe_ingredients ri ON ri.recipe_id = r.id
            WHERE r.id = ANY($1::int[]) GROUP BY r.id, r.name"""


def catalogue_query_args() -> tuple[tuple[list[int], list[str]], tuple[list[int]]]:
    """The parameters of :data:`CATALOGUE_INGREDIENTS_SQL` and :data:`CATALOGUE_RECIPES_SQL`."""
    ings = ingredients()
    return ([i.id for i in ings], [i.name for i in ings]), ([r.id for r in recipes()],)


def catalogue_conflict(ingredient_rows: Iterable[Sequence[Any]], recipe_rows: Iterable[Sequence[Any]],
                       where: str = "") -> SchemaConflict | None:
    """Whether the rows the two queries above returned (by position: any driver's rows) differ from
    fridgebench's catalogue where they overlap: fridgebench would otherwise read and write its
    ingredient names under someone else's ids."""
    ours = {i.id: i.name for i in ingredients()}
    bad = [(r[0], r[1]) for r in ingredient_rows if ours.get(r[0]) != r[1]]
    if bad:
        i, name = bad[0]
        want = f"fridgebench's is {ours[i]!r}" if i in ours else "fridgebench has that name under another id"
        return SchemaConflict(
            f"the database {where}holds a different ingredient catalogue ({len(bad)} rows differ, e.g. "
            f"id {i} is {name!r}; {want}); fridgebench does not change it",
            hint="point fridgebench at a database without fridge2fork's catalogue (or one it set up)")
    ids = ingredient_ids()
    want_recipes = {r.id: (r.name, sorted({ids[n] for n in r.ingredients})) for r in recipes()}
    bad_recipes = [r[0] for r in recipe_rows if (r[1], list(r[2])) != want_recipes[r[0]]]
    if bad_recipes:
        return SchemaConflict(
            f"the database {where}holds different recipes ({len(bad_recipes)} differ, e.g. recipe id "
            f"{bad_recipes[0]}); fridgebench does not change them",
            hint="point fridgebench at a database without fridge2fork's recipes (or one it set up)")
    return None


async def check_catalogue(conn: asyncpg.Connection, where: str = "") -> None:
    """Refuse a database whose ingredient / recipe catalogue differs from fridgebench's where they
    overlap (:func:`catalogue_conflict`)."""
    ing_args, rec_args = catalogue_query_args()
    conflict = catalogue_conflict(await conn.fetch(CATALOGUE_INGREDIENTS_SQL, *ing_args),
                                  await conn.fetch(CATALOGUE_RECIPES_SQL, *rec_args), where)
    if conflict is not None:
        raise conflict


# The catalogue inserts (rows already there are never changed), shared by the asyncpg path below and
# the Locust side (psycopg, $n placeholders).
INGREDIENTS_INSERT_SQL = ("INSERT INTO ingredients (id, name, category, is_common) VALUES ($1, $2, $3, $4) "
                          "ON CONFLICT DO NOTHING")
RECIPES_INSERT_SQL = "INSERT INTO recipes (id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING"
RECIPE_INGREDIENTS_INSERT_SQL = ("INSERT INTO recipe_ingredients (recipe_id, ingredient_id) VALUES ($1, $2) "
                                 "ON CONFLICT DO NOTHING")


def catalogue_rows() -> tuple[list[tuple[int, str, str, bool]], list[tuple[int, str]], list[tuple[int, int]]]:
    """Rows for the three inserts above: ingredients, recipes, recipe -> ingredient pairs."""
    ids = ingredient_ids()
    recs = recipes()
    return ([(i.id, i.name, i.category, i.is_common) for i in ingredients()],
            [(r.id, r.name) for r in recs],
            [(r.id, ids[n]) for r in recs for n in r.ingredients])


async def load_catalogue(conn: asyncpg.Connection, *, where: str = "") -> None:
    """Insert the ingredient and recipe catalogue where missing (idempotent); rows already there are
    never changed, and a catalogue that differs from fridgebench's is refused (:func:`check_catalogue`)."""
    async with conn.transaction():  # all or nothing: never a half-loaded catalogue
        await _load_catalogue(conn, where)


async def _load_catalogue(conn: asyncpg.Connection, where: str) -> None:
    await check_catalogue(conn, where)
    ings, recs, pairs = catalogue_rows()
    await conn.executemany(INGREDIENTS_INSERT_SQL, ings)
    await conn.executemany(RECIPES_INSERT_SQL, recs)
    await conn.executemany(RECIPE_INGREDIENTS_INSERT_SQL, pairs)

"""The fridge2fork PostgreSQL schema (DESIGN.md) and the ingredient / recipe catalogue.

``setup_schema`` is what provisioning and experiments call: it creates the tables, loads the
catalogue, and refuses to touch an existing database holding sessions unless told to
(``reuse`` keeps the data, ``reset`` empties the session tables).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

import asyncpg

from fridgebench.errors import SchemaConflict

SESSION_TABLES = ("user_fridge_ingredients", "user_fridge_sessions")

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


async def setup_schema(conn: asyncpg.Connection, *, existing: Existing = "refuse", where: str = "") -> int:
    """Create tables and load the catalogue. Returns the number of live sessions kept.

    With ``existing="refuse"`` a database that already holds sessions raises
    :class:`SchemaConflict` naming ``--reuse`` and ``--reset``.
    """
    present = await conn.fetchval("SELECT to_regclass('public.user_fridge_sessions') IS NOT NULL")
    kept = 0
    if present:
        n = await conn.fetchval("SELECT count(*) FROM user_fridge_sessions")
        if n and existing == "refuse":
            raise SchemaConflict(
                f"the database {where}already holds the fridge2fork tables with {n} sessions",
                hint="pass --reuse to run on top of them or --reset to delete those sessions first",
            )
        if existing == "reset":
            await conn.execute("TRUNCATE user_fridge_ingredients, user_fridge_sessions")
        else:
            kept = int(n or 0)
    await conn.execute(SCHEMA_SQL)
    await load_catalogue(conn)
    return kept


# The catalogue upserts, shared by the asyncpg path below and the Locust side (psycopg, $n placeholders).
INGREDIENTS_UPSERT_SQL = """INSERT INTO ingredients (id, name, category, is_common) VALUES ($1, $2, $3, $4)
           ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, category = EXCLUDED.category,
           is_common = EXCLUDED.is_common"""
RECIPES_UPSERT_SQL = "INSERT INTO recipes (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name"
RECIPE_INGREDIENTS_INSERT_SQL = ("INSERT INTO recipe_ingredients (recipe_id, ingredient_id) VALUES ($1, $2) "
                                 "ON CONFLICT DO NOTHING")


def catalogue_rows() -> tuple[list[tuple[int, str, str, bool]], list[tuple[int, str]], list[tuple[int, int]]]:
    """Rows for the three upserts above: ingredients, recipes, recipe -> ingredient pairs."""
    ids = ingredient_ids()
    recs = recipes()
    return ([(i.id, i.name, i.category, i.is_common) for i in ingredients()],
            [(r.id, r.name) for r in recs],
            [(r.id, ids[n]) for r in recs for n in r.ingredients])


async def load_catalogue(conn: asyncpg.Connection) -> None:
    """Upsert the ingredient and recipe catalogue (idempotent)."""
    ings, recs, pairs = catalogue_rows()
    await conn.executemany(INGREDIENTS_UPSERT_SQL, ings)
    await conn.executemany(RECIPES_UPSERT_SQL, recs)
    await conn.executemany(RECIPE_INGREDIENTS_INSERT_SQL, pairs)

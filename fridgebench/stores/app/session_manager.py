"""fridge2fork's session functions, statement for statement (``server/app/core/session.py``).

Each function takes the request's ``AsyncSession`` and does what the application's function of the
same name does: the same ORM queries, in the same order, with the same commits. Written for
fridgebench (not copied). Where the application's behaviour would break the store contract,
the function says so and changes only what the contract needs, without adding a statement:

* ``get_or_create_session`` on a missing or expired session creates a new session under a *new*
  id in the application; here it returns None (the contract: an operation on a missing session
  reports it; the caller's id would never be read again anyway).
* The application's add does not move ``expires_at`` (only ``last_accessed``); the contract, and
  the seed's Redis code it is compared with (SETEX), refresh the expiry on an add. The add's
  ``get_or_create_session`` therefore sets ``expires_at`` in the same UPDATE as ``last_accessed``.
* ``add_ingredients`` adds in the order the request names them (the application adds in whatever
  order its ``IN`` query returns rows; the reordering is in Python, no statement).
* ``get_session_ingredients`` orders by ``added_at, id`` (the application has no ORDER BY and gets
  heap order, usually but not always insertion order).
* ``extend_session`` and the remove's session check only match a *live* session (the
  application's extend would bring an expired session back to life).

Timestamps are the client's clock, as in the application (``datetime.utcnow()``; here an aware
UTC datetime, the same instant).

**The app's statements per operation** (``BEGIN`` and ``COMMIT`` are round trips of their own):

* read  (get_or_create_session + get_session_ingredients): BEGIN, SELECT session, UPDATE
  last_accessed, COMMIT (a WAL flush), BEGIN, SELECT fridge rows, SELECT their ingredients
  (selectinload), COMMIT (end of request);
* add of k names, n of them new: BEGIN, SELECT session, UPDATE, COMMIT, BEGIN, SELECT the names,
  k x SELECT "is it there already?", n x INSERT (autoflush sends each new row before the next
  check), COMMIT;
* remove: BEGIN, SELECT session (the endpoint's check), SELECT ids of the names, DELETE, COMMIT;
* extend: BEGIN, SELECT session, UPDATE, COMMIT;
* create: BEGIN, INSERT, COMMIT, BEGIN, SELECT (refresh), COMMIT (end of request).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from sqlalchemy import and_, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from fridgebench.stores.app.models import Ingredient, RecipeIngredient, UserFridgeIngredient, UserFridgeSession


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def in_request_order(ingredients: Sequence[Ingredient], names: Sequence[str]) -> list[Ingredient]:
    """The rows of an ``IN (names)`` query in the order the request named them."""
    rank = {n: i for i, n in reversed(list(enumerate(names)))}
    return sorted(ingredients, key=lambda ing: rank.get(ing.name, len(rank)))


async def create_session(db: AsyncSession, session_id: str, ttl_s: int) -> UserFridgeSession:
    """Add a session row, COMMIT, refresh it (a SELECT). An existing row of that id (the contract:
    create replaces) is deleted and the insert retried: never on the benchmark's path, whose ids
    are new."""
    new_session = UserFridgeSession(session_id=session_id, expires_at=utcnow() + timedelta(seconds=ttl_s))
    db.add(new_session)
    try:
        await db.commit()
    except IntegrityError:
        await db.rollback()
        await db.execute(delete(UserFridgeSession).where(UserFridgeSession.session_id == session_id))
        new_session = UserFridgeSession(session_id=session_id, expires_at=utcnow() + timedelta(seconds=ttl_s))
        db.add(new_session)
        await db.commit()
    await db.refresh(new_session)
    return new_session


async def get_or_create_session(db: AsyncSession, session_id: str, *,
                                extend_ttl_s: int | None = None) -> UserFridgeSession | None:
    """SELECT the live session, set ``last_accessed`` (and, for an add, ``expires_at``), COMMIT."""
    result = await db.execute(
        select(UserFridgeSession).where(
            and_(UserFridgeSession.session_id == session_id, UserFridgeSession.expires_at > utcnow())))
    session = result.scalar_one_or_none()
    if session is None:
        return None
    now = utcnow()
    session.last_accessed = now
    if extend_ttl_s is not None:
        session.expires_at = now + timedelta(seconds=extend_ttl_s)
    await db.commit()
    return session


async def get_session_ingredients(db: AsyncSession, session_id: str) -> list[dict[str, Any]]:
    """The session's fridge rows with their ingredient (selectinload: a second SELECT), as the
    application's list of dicts."""
    result = await db.execute(
        select(UserFridgeIngredient)
        .options(selectinload(UserFridgeIngredient.ingredient))
        .where(UserFridgeIngredient.session_id == session_id)
        .order_by(UserFridgeIngredient.added_at, UserFridgeIngredient.id))
    return [{"id": fi.ingredient.id, "name": fi.ingredient.name, "category": fi.ingredient.category,
             "is_common": fi.ingredient.is_common, "added_at": fi.added_at}
            for fi in result.scalars().all()]


async def add_ingredients(db: AsyncSession, session_id: str, names: Sequence[str]) -> tuple[int, list[str]]:
    """Look the names up, then one SELECT per ingredient to see whether the session has it; add the
    new ones (autoflush sends each INSERT before the next SELECT); COMMIT. Unknown names are
    skipped, as the application skips them."""
    result = await db.execute(select(Ingredient).where(Ingredient.name.in_(names)))
    ingredients = in_request_order(result.scalars().all(), names)
    added = 0
    for ingredient in ingredients:
        existing = await db.execute(
            select(UserFridgeIngredient).where(
                and_(UserFridgeIngredient.session_id == session_id,
                     UserFridgeIngredient.ingredient_id == ingredient.id)))
        if existing.scalar_one_or_none() is None:
            db.add(UserFridgeIngredient(session_id=session_id, ingredient_id=ingredient.id))
            added += 1
    await db.commit()
    return added, [i.name for i in ingredients]


async def live_session_exists(db: AsyncSession, session_id: str) -> bool:
    """The remove endpoint's check that the session exists (here: and is live)."""
    result = await db.execute(
        select(UserFridgeSession).where(
            and_(UserFridgeSession.session_id == session_id, UserFridgeSession.expires_at > utcnow())))
    return result.scalar_one_or_none() is not None


async def remove_ingredients(db: AsyncSession, session_id: str, names: Sequence[str]) -> int:
    """SELECT the ids of the names, DELETE those rows of the session, COMMIT; the rows deleted."""
    rows = await db.execute(select(Ingredient.id).where(Ingredient.name.in_(names)))
    ids = [row[0] for row in rows.fetchall()]
    if not ids:
        return 0
    result = await db.execute(
        delete(UserFridgeIngredient).where(
            and_(UserFridgeIngredient.session_id == session_id, UserFridgeIngredient.ingredient_id.in_(ids))))
    await db.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


async def extend_session(db: AsyncSession, session_id: str, ttl_s: int) -> bool:
    """SELECT the (live) session, set ``expires_at`` and ``last_accessed``, COMMIT."""
    result = await db.execute(
        select(UserFridgeSession).where(
            and_(UserFridgeSession.session_id == session_id, UserFridgeSession.expires_at > utcnow())))
    session = result.scalar_one_or_none()
    if session is None:
        return False
    now = utcnow()
    session.expires_at = now + timedelta(seconds=ttl_s)
    session.last_accessed = now
    await db.commit()
    return True


async def delete_session(db: AsyncSession, session_id: str) -> bool:
    """Delete the session (its fridge rows go by ON DELETE CASCADE); True if it was live. The
    application has no such function; this is the ORM's one-statement way."""
    result = await db.execute(
        delete(UserFridgeSession).where(UserFridgeSession.session_id == session_id)
        .returning(UserFridgeSession.expires_at))
    expires = result.scalar_one_or_none()
    await db.commit()
    return expires is not None and expires > utcnow()


async def cleanup_expired_sessions(db: AsyncSession) -> int:
    """The application's cleanup: DELETE every expired session, COMMIT; the rows deleted."""
    result = await db.execute(delete(UserFridgeSession).where(UserFridgeSession.expires_at < utcnow()))
    await db.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


async def count_live_sessions(db: AsyncSession) -> int:
    result = await db.execute(
        select(func.count()).select_from(UserFridgeSession).where(UserFridgeSession.expires_at > utcnow()))
    return int(result.scalar_one())


async def recipe_ingredient_names(db: AsyncSession, recipe_id: int) -> list[str] | None:
    """A recipe's ingredient names (by ingredient id), or None for an unknown recipe."""
    result = await db.execute(
        select(Ingredient.name).join(RecipeIngredient, RecipeIngredient.ingredient_id == Ingredient.id)
        .where(RecipeIngredient.recipe_id == recipe_id).order_by(Ingredient.id))
    names = list(result.scalars().all())
    return names or None

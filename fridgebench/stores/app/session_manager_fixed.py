"""The application's session functions with the two cheapest fixes, and nothing else changed.

An engineer could make these two changes in a day, before migrating anything:

1. **No write on every read.** ``get_or_create_session`` touches ``last_accessed`` only when the
   stored value is older than :data:`LAST_ACCESSED_THROTTLE_S` (a throttled touch: the column
   stays meaningful to the minute), and commits only when it wrote. A read is then one
   read-only transaction: no UPDATE, no mid-request COMMIT, no WAL flush. (In a run shorter than
   the throttle no read writes; in production a session read more than a minute after its last
   touch still writes once.)
2. **One query instead of N+1 for adds.** ``add_ingredients`` asks for the session's rows of all
   the named ingredients in one SELECT, then adds the new ones together: the unit of work sends
   them as one multi-row INSERT at the commit.

Everything else — the ORM, the engine and its default pool, an ``AsyncSession`` per request,
the request's final COMMIT, ``selectinload`` for the read — is the application's code as
:mod:`.session_manager` reproduces it, and so are the functions imported from there unchanged.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Sequence

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from fridgebench.stores.app.models import Ingredient, UserFridgeIngredient, UserFridgeSession
from fridgebench.stores.app.session_manager import (  # unchanged by the fixes
    cleanup_expired_sessions,
    count_live_sessions,
    create_session,
    delete_session,
    extend_session,
    get_session_ingredients,
    in_request_order,
    live_session_exists,
    recipe_ingredient_names,
    remove_ingredients,
    utcnow,
)

__all__ = ["LAST_ACCESSED_THROTTLE_S", "add_ingredients", "cleanup_expired_sessions", "count_live_sessions",
           "create_session", "delete_session", "extend_session", "get_or_create_session",
           "get_session_ingredients", "live_session_exists", "recipe_ingredient_names", "remove_ingredients"]

#: a read touches ``last_accessed`` only when it is older than this
LAST_ACCESSED_THROTTLE_S = 60.0


async def get_or_create_session(db: AsyncSession, session_id: str, *,
                                extend_ttl_s: int | None = None) -> UserFridgeSession | None:
    """SELECT the live session; write (and commit) only for an add's expiry refresh or a
    ``last_accessed`` older than the throttle."""
    result = await db.execute(
        select(UserFridgeSession).where(
            and_(UserFridgeSession.session_id == session_id, UserFridgeSession.expires_at > utcnow())))
    session = result.scalar_one_or_none()
    if session is None:
        return None
    now = utcnow()
    stale = session.last_accessed is None or (now - session.last_accessed).total_seconds() > LAST_ACCESSED_THROTTLE_S
    if extend_ttl_s is None and not stale:
        return session  # nothing written: the request's one transaction stays read-only
    session.last_accessed = now  # a write anyway: touch it too
    if extend_ttl_s is not None:
        session.expires_at = now + timedelta(seconds=extend_ttl_s)
    await db.commit()
    return session


async def add_ingredients(db: AsyncSession, session_id: str, names: Sequence[str]) -> tuple[int, list[str]]:
    """Look the names up; one SELECT for the session's rows of all of them; add the new ones
    (one INSERT at the COMMIT)."""
    result = await db.execute(select(Ingredient).where(Ingredient.name.in_(names)))
    ingredients = in_request_order(result.scalars().all(), names)
    if not ingredients:
        return 0, []
    have = await db.execute(
        select(UserFridgeIngredient.ingredient_id).where(
            and_(UserFridgeIngredient.session_id == session_id,
                 UserFridgeIngredient.ingredient_id.in_([i.id for i in ingredients]))))
    present = set(have.scalars().all())
    new = [UserFridgeIngredient(session_id=session_id, ingredient_id=i.id) for i in ingredients if i.id not in present]
    db.add_all(new)
    await db.commit()
    return len(new), [i.name for i in ingredients]

"""The session-store contract every store implements.

One logical session in every store: id, created instant, expiry instant, ingredient names.
All methods are coroutines; one store object is shared by all in-flight operations of a run
(implementations hold a pool / a multiplexed client).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

DEFAULT_TTL_S = 86_400


@dataclass(frozen=True)
class Session:
    session_id: str
    created_at: datetime  # timezone-aware
    expires_at: datetime  # timezone-aware; live while expires_at > now
    ingredients: tuple[str, ...] = field(default_factory=tuple)


class SessionStore(abc.ABC):
    """Async session store. Operations on a missing or expired session return False/None."""

    name: ClassVar[str]  # "postgres", "redis-seed", "redis-atomic"
    kind: ClassVar[str]  # "postgres" or "redis": which server it needs

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> "SessionStore":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the application's operations ---------------------------------------------------
    @abc.abstractmethod
    async def create(self, session_id: str, ttl_s: int = DEFAULT_TTL_S) -> None:
        """Create an empty live session expiring ``ttl_s`` from now."""

    @abc.abstractmethod
    async def get(self, session_id: str) -> Session | None:
        """The live session, or None when missing or expired."""

    @abc.abstractmethod
    async def add_ingredients(self, session_id: str, names: list[str], ttl_s: int = DEFAULT_TTL_S) -> bool:
        """Add ingredients and refresh the expiry to a full ``ttl_s``. False if no live session."""

    @abc.abstractmethod
    async def remove_ingredients(self, session_id: str, names: list[str]) -> bool:
        """Remove ingredients (expiry unchanged). False if no live session."""

    @abc.abstractmethod
    async def extend(self, session_id: str, ttl_s: int = DEFAULT_TTL_S) -> bool:
        """Set the expiry to ``ttl_s`` from now. False if no live session."""

    @abc.abstractmethod
    async def delete(self, session_id: str) -> bool:
        """Delete the session. False if there was none."""

    @abc.abstractmethod
    async def recipe_ingredients(self, recipe_id: int) -> list[str] | None:
        """Ingredient names of a recipe (Redis stores: cache-aside in front of PostgreSQL)."""

    # -- housekeeping -------------------------------------------------------------------
    @abc.abstractmethod
    async def count_live(self) -> int: ...

    @abc.abstractmethod
    async def cleanup_expired(self) -> int:
        """The application's periodic cleanup; returns rows/keys removed (Redis: 0, TTL does it)."""

    @abc.abstractmethod
    async def reset(self) -> None:
        """Remove every session this store holds (between runs)."""

    @abc.abstractmethod
    async def bulk_load(self, sessions: list[tuple[str, list[str]]], ttl_s: int) -> None:
        """Populate quickly (pipelined / COPY): (session_id, ingredient names) pairs, all live."""

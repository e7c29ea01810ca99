"""The session-store contract every store implements.

One logical session in every store: id, created instant, expiry instant, ingredient names.
All methods are coroutines; one store object is shared by all in-flight operations of a run
(implementations hold a pool / a multiplexed client).

**What a store may delete.** A store is often pointed at someone else's PostgreSQL or Redis
(``--postgres-dsn`` / ``--redis-url``) holding sessions fridgebench did not write. The rule:

* every session a store writes is recorded in :attr:`SessionStore.written` (a :class:`Ledger`)
  *before* the write is sent: :meth:`~SessionStore.create` and :meth:`~SessionStore.bulk_load`
  do it here, in the base class, and call the implementation's ``_create`` / ``_bulk_load``.
  A store that writes anything else of its own (the Redis stores' ``recipe:{id}`` cache keys)
  records it with ``self.written.cache_key(name, ttl_s)``;
* :meth:`~SessionStore.discard_written` removes exactly what the ledger names (by id / key,
  never a pattern delete, never TRUNCATE) and is what experiments call between phases; leaving
  ``async with store:`` calls it too (also on an error or Ctrl-C), so a store cleans up after itself;
* :meth:`~SessionStore.purge` empties the store's whole namespace (every session and cache key,
  whoever wrote them). Only provisioning calls it, for ``--reset``, and experiments on a scratch
  schema they created themselves (:mod:`fridgebench.stores.scratch`);
* foreign data is found before anything is measured (:mod:`fridgebench.stores.existing`, called
  from provisioning for every command) and refused unless ``--reuse`` or ``--reset`` is given;
* the ids a run creates never collide with foreign ones: the workload salts them per run
  (:class:`fridgebench.workload.generator.Workload`).

A new store implements ``_create``, ``_bulk_load``, ``_discard`` (delete these session ids and
cache keys, return how many existed) and ``_purge``; recording and the rest are inherited.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Iterable

DEFAULT_TTL_S = 86_400


@dataclass(frozen=True)
class Session:
    session_id: str
    created_at: datetime  # timezone-aware
    expires_at: datetime  # timezone-aware; live while expires_at > now
    ingredients: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Removed:
    """What :meth:`SessionStore.discard_written` or :meth:`SessionStore.purge` deleted."""

    sessions: int = 0
    cache_keys: int = 0

    def __add__(self, other: "Removed") -> "Removed":
        return Removed(self.sessions + other.sessions, self.cache_keys + other.cache_keys)


class Ledger:
    """Everything a store wrote in this run: session ids, and cache keys with their expiry.

    Recording a session is one ``set.add`` (the hot path's only cost). A cache key is recorded
    with the monotonic instant its TTL runs out: after that Redis has expired it, and a key of the
    same name is someone else's, so :meth:`live_cache_keys` leaves it out.
    """

    __slots__ = ("sessions", "_cache")

    def __init__(self) -> None:
        self.sessions: set[str] = set()
        self._cache: dict[str, float] = {}

    def session(self, session_id: str) -> None:
        self.sessions.add(session_id)

    def bulk(self, session_ids: Iterable[str]) -> None:
        self.sessions.update(session_ids)

    def cache_key(self, key: str, ttl_s: float) -> None:
        """Record a cache key this store created (call it only when the write created the key)."""
        self._cache[key] = time.monotonic() + ttl_s

    def live_cache_keys(self, margin_s: float = 1.0) -> list[str]:
        """Cache keys recorded whose TTL has not run out (``margin_s`` before their deadline)."""
        now = time.monotonic() + margin_s
        return [k for k, deadline in self._cache.items() if deadline > now]

    @property
    def cache_keys(self) -> set[str]:
        return set(self._cache)

    def forget(self, session_ids: Iterable[str] = (), cache_keys: Iterable[str] = ()) -> None:
        self.sessions.difference_update(session_ids)
        for k in cache_keys:
            self._cache.pop(k, None)

    def clear(self) -> None:
        self.sessions.clear()
        self._cache.clear()

    def __len__(self) -> int:
        return len(self.sessions) + len(self._cache)

    def __bool__(self) -> bool:
        return bool(self.sessions or self._cache)


class SessionStore(abc.ABC):
    """Async session store. Operations on a missing or expired session return False/None.

    See the module docstring for what a store may delete: it records what it writes
    (:attr:`written`), removes exactly that (:meth:`discard_written`, also on leaving
    ``async with``), and empties its namespace only when told to (:meth:`purge`).
    """

    name: ClassVar[str]  # "postgres", "redis-seed", "redis-atomic"
    kind: ClassVar[str]  # "postgres" or "redis": which server it needs

    #: how long leaving ``async with`` after an error may spend removing what the store wrote
    DISCARD_ON_ERROR_TIMEOUT_S: ClassVar[float] = 30.0

    @functools.cached_property
    def written(self) -> Ledger:
        """What this store wrote (created on first use; then a plain attribute lookup)."""
        return Ledger()

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> "SessionStore":
        await self.open()
        return self

    async def __aexit__(self, exc_type: object, exc: object, tb: object) -> None:
        """Remove what this store wrote, then close. After an error (or Ctrl-C) the removal is
        bounded in time and its own failure is not raised over the original error."""
        try:
            if self.written:
                if exc_type is None:
                    await self.discard_written()
                else:
                    try:
                        await asyncio.wait_for(self.discard_written(), self.DISCARD_ON_ERROR_TIMEOUT_S)
                    except Exception:  # the original error says why the store is unusable
                        pass
        finally:
            await self.close()

    # -- the application's operations ---------------------------------------------------
    async def create(self, session_id: str, ttl_s: int = DEFAULT_TTL_S) -> None:
        """Create an empty live session expiring ``ttl_s`` from now (recorded first)."""
        self.written.sessions.add(session_id)
        await self._create(session_id, ttl_s)

    @abc.abstractmethod
    async def _create(self, session_id: str, ttl_s: int) -> None:
        """The store's create (replacing any session of that id with an empty one)."""

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
    async def count_live(self) -> int:
        """Live sessions in the store's namespace, whoever wrote them."""

    @abc.abstractmethod
    async def cleanup_expired(self) -> int:
        """The application's periodic cleanup over the whole namespace (PostgreSQL's
        ``DELETE ... WHERE expires_at < now()`` deletes expired sessions whoever wrote them: run
        it only in a scratch schema); returns rows/keys removed (Redis: 0, TTL does it)."""

    async def bulk_load(self, sessions: list[tuple[str, list[str]]], ttl_s: int) -> None:
        """Populate quickly (pipelined / COPY): (session_id, ingredient names) pairs, all live.
        The ids are recorded before anything is sent."""
        self.written.bulk(sid for sid, _ in sessions)
        await self._bulk_load(sessions, ttl_s)

    @abc.abstractmethod
    async def _bulk_load(self, sessions: list[tuple[str, list[str]]], ttl_s: int) -> None:
        """The store's bulk load (the ids do not exist yet)."""

    async def discard_written(self) -> Removed:
        """Delete exactly the sessions and cache keys this store wrote (those still there),
        and forget them. Never a pattern delete: foreign data is untouched."""
        ledger = self.written
        sessions, keys = list(ledger.sessions), ledger.live_cache_keys()
        removed = await self._discard(sessions, keys) if sessions or keys else Removed()
        ledger.forget(sessions, ledger.cache_keys)  # expired cache keys are gone by themselves
        return removed

    @abc.abstractmethod
    async def _discard(self, session_ids: list[str], cache_keys: list[str]) -> Removed:
        """Delete these sessions and cache keys (by exact id / key); count those that existed."""

    async def purge(self) -> Removed:
        """Delete every session (and cache key) in the store's namespace, whoever wrote them.
        Only for ``--reset`` and for a scratch namespace fridgebench created itself."""
        removed = await self._purge()
        self.written.clear()
        return removed

    @abc.abstractmethod
    async def _purge(self) -> Removed:
        """Empty the namespace; count the sessions and cache keys deleted."""

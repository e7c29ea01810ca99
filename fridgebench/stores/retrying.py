"""Retries around any store: the application's operations tried again after a retryable failure.

``make_store(..., client=ClientOptions(retries=N))`` wraps the store in :class:`RetryingStore`.
Which failures are retried is :func:`fridgebench.stores.outcomes.classify`'s call: refused or
lost connections, timeouts, Redis ``-LOADING``, PostgreSQL 57P03 -- never a refused write such as
``-OOM`` or a SQL error. The waits double (``backoff_s``, 2x, 4x, ...).

Every operation here is safe to repeat (adds have set semantics, removes and deletes of what is
gone change nothing, a create replaces), which is what makes retrying a timed-out write sound.
When every attempt failed and one of them may have reached the server (it timed out or lost its
connection), the error raised is marked indeterminate even if the last attempt was refused.

Housekeeping (bulk loads, discarding what the store wrote, purge) is passed through untouched.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, TypeVar

from fridgebench.stores.base import DEFAULT_TTL_S, Ledger, Removed, Session, SessionStore
from fridgebench.stores.outcomes import classify, mark_indeterminate

T = TypeVar("T")


class RetryingStore(SessionStore):
    """``inner`` with its application operations retried; everything else delegated."""

    def __init__(self, inner: SessionStore, retries: int, backoff_s: float) -> None:
        self.inner = inner
        self.retries = retries
        self.backoff_s = backoff_s
        self.name = inner.name  # type: ignore[misc]  # reports name the store, not the wrapper
        self.kind = inner.kind  # type: ignore[misc]
        self.retried = 0  # attempts made after a failure
        self.recovered = 0  # operations that succeeded on a retry

    def __getattr__(self, attr: str) -> Any:  # cache_hits, key_prefix, diagnostics, ...
        if attr == "inner":
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    @property  # type: ignore[override]
    def written(self) -> Ledger:
        return self.inner.written

    async def _retry(self, call: Callable[..., Awaitable[T]], *args: Any) -> T:
        attempt = 0
        maybe_applied = False
        while True:
            try:
                out = await call(*args)
            except Exception as exc:
                outcome = classify(exc)
                maybe_applied = maybe_applied or not outcome.definite
                if not outcome.retryable or attempt >= self.retries:
                    if maybe_applied:
                        mark_indeterminate(exc)
                    raise
                attempt += 1
                self.retried += 1
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
                continue
            if attempt:
                self.recovered += 1
            return out

    # -- lifecycle and housekeeping: the inner store's -----------------------------------------
    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def bulk_load(self, sessions: list[tuple[str, list[str]]], ttl_s: int) -> None:
        await self.inner.bulk_load(sessions, ttl_s)

    async def _bulk_load(self, sessions: list[tuple[str, list[str]]], ttl_s: int) -> None:
        raise AssertionError("bulk_load is delegated")

    async def discard_written(self) -> Removed:
        return await self.inner.discard_written()

    async def _discard(self, session_ids: list[str], cache_keys: list[str]) -> Removed:
        raise AssertionError("discard_written is delegated")

    async def purge(self) -> Removed:
        return await self.inner.purge()

    async def _purge(self) -> Removed:
        raise AssertionError("purge is delegated")

    async def count_live(self) -> int:
        return await self.inner.count_live()

    async def cleanup_expired(self) -> int:
        return await self.inner.cleanup_expired()

    # -- the application's operations, retried ---------------------------------------------------
    async def create(self, session_id: str, ttl_s: int = DEFAULT_TTL_S) -> None:
        await self._retry(self.inner.create, session_id, ttl_s)

    async def _create(self, session_id: str, ttl_s: int) -> None:
        raise AssertionError("create is delegated")

    async def get(self, session_id: str) -> Session | None:
        return await self._retry(self.inner.get, session_id)

    async def add_ingredients(self, session_id: str, names: list[str], ttl_s: int = DEFAULT_TTL_S) -> bool:
        return await self._retry(self.inner.add_ingredients, session_id, names, ttl_s)

    async def remove_ingredients(self, session_id: str, names: list[str]) -> bool:
        return await self._retry(self.inner.remove_ingredients, session_id, names)

    async def extend(self, session_id: str, ttl_s: int = DEFAULT_TTL_S) -> bool:
        return await self._retry(self.inner.extend, session_id, ttl_s)

    async def delete(self, session_id: str) -> bool:
        return await self._retry(self.inner.delete, session_id)

    async def recipe_ingredients(self, recipe_id: int) -> list[str] | None:
        return await self._retry(self.inner.recipe_ingredients, recipe_id)

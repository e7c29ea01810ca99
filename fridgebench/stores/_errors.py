"""Turning connection failures into one clear :class:`StoreUnavailable` line."""

from __future__ import annotations

from fridgebench.config import mask_text, mask_url
from fridgebench.connection_errors import store_error
from fridgebench.errors import StoreUnavailable


def unavailable(store: str, server: str, url: str, exc: BaseException) -> StoreUnavailable:
    """A StoreUnavailable naming the store, the masked URL and the cause (itself masked).

    The cause is read by :mod:`fridgebench.connection_errors`, the one mapping every command uses;
    ``server`` is "PostgreSQL", "Redis" or such a name with the role, e.g. "PostgreSQL (recipe cache backend)"."""
    mapped = store_error(exc, "redis" if server.startswith("Redis") else "postgres", url, connecting=True)
    role = server.partition(" ")[2]
    if mapped is not None:
        return StoreUnavailable(f"store {store!r}{' ' + role if role else ''}: {mapped.message}", hint=mapped.hint)
    reason = mask_text(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    return StoreUnavailable(
        f"store {store!r} cannot reach {server} at {mask_url(url)}: {reason}",
        hint=f"check that {server} is running (fridgebench status / up) and that the URL's host, port, "
        "user, password and database are right",
    )

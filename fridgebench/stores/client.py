"""How the stores' clients behave when a server is slow or gone: timeouts and retries.

Every store talks to its servers through clients whose behaviour under a fault is a choice, not
an accident: how long a request may wait for its reply, how long a connect may take, and how
often a failed request is tried again. :class:`ClientOptions` names those choices;
``make_store(..., client=...)`` hands them to the store, and every command that measures faults
states them in its results.

* ``ClientOptions()`` (the default) is what ``compare`` and ``ttl`` have always used: no request
  timeout, a 10 s connect timeout, no retries.
* :meth:`ClientOptions.seed_defaults` is what a user of the seed's code gets: redis-py with no
  ``socket_timeout`` and no ``socket_connect_timeout``, asyncpg with no ``command_timeout`` (and its
  own 60 s connect timeout). A hung server (SIGSTOP) or a black-holed network makes such a client
  wait for as long as the fault lasts -- it never sees an error, so a fallback that runs "on a
  Redis error" never runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ASYNCPG_DEFAULT_CONNECT_TIMEOUT_S = 60.0  # asyncpg.connect(timeout=60)


@dataclass(frozen=True)
class ClientOptions:
    """Timeouts (seconds; ``None`` = wait forever) and retries of the stores' clients."""

    timeout_s: float | None = None  # a request's reply: Redis socket read / PostgreSQL command
    connect_timeout_s: float | None = 10.0  # opening a connection (Redis: None = no limit; asyncpg: its 60 s)
    retries: int = 0  # further attempts after a retryable failure (stores/outcomes.py says which are)
    backoff_s: float = 0.05  # wait before the first retry; doubled before each further one
    label: str = ""  # how to call this client in a report, e.g. "seed defaults"

    def __post_init__(self) -> None:
        for name in ("timeout_s", "connect_timeout_s"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(f"{name} must be > 0 or None, got {v!r}")
        if self.retries < 0 or self.backoff_s < 0:
            raise ValueError("retries and backoff_s must be >= 0")

    @classmethod
    def seed_defaults(cls) -> "ClientOptions":
        """redis-py's and asyncpg's defaults, as the seed's code would run them."""
        return cls(timeout_s=None, connect_timeout_s=None, retries=0, backoff_s=0.0, label="seed defaults")

    @classmethod
    def with_timeout(cls, timeout_s: float, retries: int, backoff_s: float = 0.05) -> "ClientOptions":
        """A request timeout and the same connect timeout, ``retries`` retries."""
        return cls(timeout_s=timeout_s, connect_timeout_s=timeout_s, retries=retries, backoff_s=backoff_s,
                   label=f"timeout {timeout_s:g} s, {retries} {'retry' if retries == 1 else 'retries'}")

    @property
    def pg_connect_timeout_s(self) -> float:
        return self.connect_timeout_s if self.connect_timeout_s is not None else ASYNCPG_DEFAULT_CONNECT_TIMEOUT_S

    def describe(self) -> str:
        t = "no request timeout" if self.timeout_s is None else f"request timeout {self.timeout_s:g} s"
        c = ("no connect timeout (PostgreSQL: asyncpg's 60 s)" if self.connect_timeout_s is None
             else f"connect timeout {self.connect_timeout_s:g} s")
        r = "no retries" if not self.retries else (
            f"{self.retries} {'retry' if self.retries == 1 else 'retries'} after {self.backoff_s * 1000:g} ms "
            "(doubling) on refused / lost / timed-out / loading requests")
        return f"{self.label + ': ' if self.label else ''}{t}, {c}, {r}"

    def to_dict(self) -> dict[str, Any]:
        return {"timeout_s": self.timeout_s, "connect_timeout_s": self.connect_timeout_s,
                "postgres_connect_timeout_s": self.pg_connect_timeout_s, "retries": self.retries,
                "backoff_s": self.backoff_s, "label": self.label, "description": self.describe()}

"""The history of a fault run: every operation with its outcome, as Jepsen records one.

The load engine drives the store through :func:`recording`, which records each call -- kind,
session, ingredient names, when it was sent and when it returned, and its outcome:

* ``ok`` -- acknowledged (a read found the session, a write was applied);
* ``not-found`` -- answered "no such live session" (the store said so; not an error);
* a failure, classified by :func:`fridgebench.stores.outcomes.classify` into a named class that is
  either *definite* (certainly not applied) or *indeterminate* (may have been applied).

The engine records the same failures under the same class names (``error_class``), so timelines
and error tables say "timeout", "refused", "loading", never an exception's type name.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from fridgebench.stores.outcomes import UNFINISHED, Outcome, classify
from fridgebench.workload.generator import Op

OK = "ok"
NOT_FOUND = "not-found"
WRITES = ("create", "add", "remove", "extend", "delete")


@dataclass(frozen=True, slots=True)
class Event:
    """One operation as the client saw it (times: ``time.perf_counter()`` seconds)."""

    kind: str
    session_id: str
    names: tuple[str, ...]
    start: float
    end: float
    result: str  # OK, NOT_FOUND, or a failure class name (stores/outcomes.py)
    definite: bool = True  # for a failure: certainly not applied

    @property
    def ok(self) -> bool:
        return self.result == OK

    @property
    def failed(self) -> bool:
        return self.result not in (OK, NOT_FOUND)

    @property
    def may_have_applied(self) -> bool:
        """Applied, or may have been: acknowledged, answered, or failed indeterminately."""
        return not (self.failed and self.definite)


class OpError(Exception):
    """A store failure as the engine records it: under its outcome class (``error_class``)."""

    def __init__(self, outcome: Outcome, cause: BaseException) -> None:
        super().__init__(f"{outcome.name}: {cause}")
        self.outcome = outcome
        self.error_class = outcome.name


@dataclass
class History:
    events: list[Event] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)  # failure classes seen

    def add(self, e: Event) -> None:
        self.events.append(e)

    def session_ids(self) -> set[str]:
        return {e.session_id for e in self.events if e.session_id}

    def created_ids(self) -> list[str]:
        return list(dict.fromkeys(e.session_id for e in self.events if e.kind == "create"))

    def counts(self) -> dict[str, Any]:
        by: dict[str, int] = {}
        for e in self.events:
            by[e.result] = by.get(e.result, 0) + 1
        writes = [e for e in self.events if e.kind in WRITES]
        return {
            "operations": len(self.events),
            "by_result": by,
            "writes": len(writes),
            "writes_acknowledged": sum(e.ok for e in writes),
            "writes_answered_not_found": sum(e.result == NOT_FOUND for e in writes),
            "writes_failed_definite": sum(e.failed and e.definite for e in writes),
            "writes_indeterminate": sum(e.failed and not e.definite for e in writes),
        }


def recording(execute: Callable[[Op], Awaitable[bool]], history: History) -> Callable[[Op], Awaitable[bool]]:
    """``execute`` that records every call in ``history`` and raises failures as :class:`OpError`."""
    perf = time.perf_counter

    async def run(op: Op) -> bool:
        start = perf()
        try:
            found = await execute(op)
        except asyncio.CancelledError:  # the run ended with it in flight: may have been applied
            history.add(Event(op.kind, op.session_id, op.names, start, perf(), UNFINISHED.name, False))
            history.outcomes.setdefault(UNFINISHED.name, UNFINISHED)
            raise
        except Exception as exc:
            outcome = classify(exc)
            history.outcomes.setdefault(outcome.name, outcome)
            history.add(Event(op.kind, op.session_id, op.names, start, perf(), outcome.name, outcome.definite))
            raise OpError(outcome, exc) from exc
        history.add(Event(op.kind, op.session_id, op.names, start, perf(), OK if found else NOT_FOUND))
        return found

    return run

"""Counting lost updates from a log of acknowledged operations and the final state.

Input (what the engine records, one :class:`LoggedOp` per finished operation):

* ``kind`` — ``"add"``, ``"remove"``, ``"delete"`` or ``"create"`` (a create over an
  existing id empties it, so it counts like a delete);
* ``session_id``, ``names`` (the ingredient names; empty for delete/create);
* ``start`` / ``end`` — ``time.monotonic()`` (any one clock) just before the call was issued
  and just after it returned or failed;
* ``ok`` — the call's return value (``True`` = acknowledged). Log failed and timed-out calls
  too, with ``ok=False``: a remove/delete that timed out may still have been applied.

``final`` maps each session id to its state read with ``get`` after every logged operation
ended (``None`` when the session is gone).

An acknowledged add of ingredient *x* to session *s* is **lost** when *x* is absent from the
final state although nothing could have removed it after the add: every remove of *x* on *s*
and every delete/create of *s* (acknowledged or not) ended before the add started. An
operation that overlaps the add in time may have been ordered after it and legitimately
removed *x*, so it excuses the absence. Sessions whose final state is ``None`` (expired or
deleted) cannot be judged and are skipped (``sessions_missing``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from fridgebench.stores.base import Session

OpKind = Literal["add", "remove", "delete", "create"]
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class LoggedOp:
    kind: OpKind
    session_id: str
    start: float
    end: float
    names: tuple[str, ...] = ()
    ok: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("add", "remove", "delete", "create"):
            raise ValueError(f"unknown operation kind {self.kind!r}")
        if self.end < self.start:
            raise ValueError(f"operation ends ({self.end}) before it starts ({self.start})")
        if isinstance(self.names, (list, str)):
            object.__setattr__(self, "names", (self.names,) if isinstance(self.names, str) else tuple(self.names))


@dataclass(frozen=True)
class LostUpdates:
    adds_checked: int  # (acknowledged add, ingredient) pairs judged
    lost_updates: int  # of those, absent at the end with no possible later remover
    sessions_checked: int  # sessions with at least one acknowledged add and a final state
    sessions_missing: int = 0  # sessions with acknowledged adds but no final state (skipped)
    examples: list[tuple[str, str]] = field(default_factory=list)  # up to 5 (session_id, ingredient)

    @property
    def loss_rate(self) -> float:
        return self.lost_updates / self.adds_checked if self.adds_checked else 0.0


def count_lost_updates(ops: Iterable[LoggedOp], final: Mapping[str, Session | None]) -> LostUpdates:
    adds: dict[str, list[LoggedOp]] = {}
    wipe_end: dict[str, float] = {}  # latest end of a delete/create per session
    remove_end: dict[tuple[str, str], float] = {}  # latest end of a remove per (session, name)
    for op in ops:
        if op.kind == "add":
            if op.ok:
                adds.setdefault(op.session_id, []).append(op)
        elif op.kind == "remove":
            for n in op.names:
                k = (op.session_id, n)
                remove_end[k] = max(remove_end.get(k, op.end), op.end)
        else:
            wipe_end[op.session_id] = max(wipe_end.get(op.session_id, op.end), op.end)

    checked = lost = sessions = missing = 0
    examples: list[tuple[str, str]] = []
    for sid, session_adds in adds.items():
        state = final.get(sid)
        if state is None:
            missing += 1
            continue
        sessions += 1
        present = set(state.ingredients)
        last_wipe = wipe_end.get(sid, float("-inf"))
        for op in session_adds:
            for name in op.names:
                checked += 1
                if name in present:
                    continue
                # anything ending after the add started could have been ordered after it
                if last_wipe > op.start or remove_end.get((sid, name), float("-inf")) > op.start:
                    continue
                lost += 1
                if len(examples) < MAX_EXAMPLES:
                    examples.append((sid, name))
    return LostUpdates(checked, lost, sessions, missing, examples)

"""Jepsen-style accounting: after recovery, every session read back and judged against the history.

Inputs: the sessions loaded before the run (acknowledged by the bulk load), the history of every
operation (:mod:`.history`), and the state read back after the fault was healed and the store
answered again. Time is one clock (``perf_counter``); a session's expiry is its TTL after the
operation that last set it.

For every session the checker asks what the history *guarantees* and what it merely *allows*:

* **lost session** -- acknowledged (loaded, or a create acknowledged), never possibly deleted (no
  delete that may have been applied), its acknowledged expiry not passed, and gone;
* **lost add** -- an acknowledged add of ingredient *x* to a session still there, *x* absent, and
  nothing that may have removed *x* afterwards (a remove of *x*, a delete or create of the session,
  acknowledged or not, ending after the add began: it may have been ordered after it);
* **undone remove** -- an acknowledged remove of *x*, *x* present again, and no add of *x* that may
  have been applied afterwards;
* **stale session** -- a session still there holding an older ingredient list than the last
  acknowledged one (at least one lost add or undone remove);
* **failed write that appeared** -- a create or add that failed *definitely* (never sent, or refused)
  and whose effect is there anyway (an indeterminate failure appearing is allowed, and counted apart);
* **deleted session back** -- an acknowledged delete, and the session there again;
* **false "no such session"** -- a read or write answered "no such session" while the session was
  certainly live (acknowledged, not possibly deleted, not expired): the application would tell the
  user their fridge is gone.

Sessions whose acknowledged expiry passed before the read-back are excluded from the loss count,
and counted; sessions the read-back could not read are counted as unreadable, never judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from fridgebench.experiments.failure.history import NOT_FOUND, Event
from fridgebench.stores.base import Session

TTL_MARGIN_S = 1.0  # clock and TTL resolution slack around an expiry instant
MAX_EXAMPLES = 5


class _Unreadable:
    def __repr__(self) -> str:
        return "UNREADABLE"


UNREADABLE: Any = _Unreadable()  # a final state the read-back could not obtain


@dataclass(frozen=True)
class Window:
    """The fault's instants (``perf_counter``): injected, healed."""

    inject: float
    heal: float

    def phase(self, t: float) -> str:
        return "before" if t < self.inject else "during" if t < self.heal else "after"


@dataclass
class Accounting:
    sessions_judged: int = 0  # acknowledged, not possibly deleted, not expired, read back
    sessions_acknowledged_before_fault: int = 0  # of those judged: acknowledged before the fault began
    sessions_lost: int = 0
    sessions_lost_by_phase: dict[str, int] = field(default_factory=lambda: {"before": 0, "during": 0, "after": 0})
    adds_judged: int = 0  # (acknowledged add, ingredient) pairs in sessions still there
    adds_lost: int = 0
    adds_in_lost_sessions: int = 0  # acknowledged (add, ingredient) pairs gone with their session
    removes_judged: int = 0
    removes_undone: int = 0
    sessions_stale: int = 0
    failed_writes_appeared: int = 0  # definitely failed create/add, effect present
    indeterminate_writes: int = 0
    indeterminate_writes_applied: int = 0  # of the indeterminate creates/adds: effect present
    deleted_sessions_back: int = 0
    false_not_found: int = 0
    false_not_found_by_phase: dict[str, int] = field(default_factory=lambda: {"before": 0, "during": 0, "after": 0})
    false_not_found_by_kind: dict[str, int] = field(default_factory=dict)
    ttl_expired_excluded: int = 0
    possibly_deleted_excluded: int = 0
    unreadable: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    def example(self, what: str, text: str) -> None:
        xs = self.examples.setdefault(what, [])
        if len(xs) < MAX_EXAMPLES:
            xs.append(text)

    @property
    def anomalies(self) -> int:
        return (self.sessions_lost + self.adds_lost + self.removes_undone + self.failed_writes_appeared
                + self.deleted_sessions_back)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["anomalies"] = self.anomalies
        d["sessions_lost_of_acknowledged_before_fault"] = (
            f"{self.sessions_lost_by_phase['before']} of {self.sessions_acknowledged_before_fault}")
        return d


@dataclass
class _Session:
    events: list[Event] = field(default_factory=list)


def check(events: Iterable[Event], population: Mapping[str, Iterable[str]], loaded: tuple[float, float],
          final: Mapping[str, Session | None | Any], read_at: float, ttl_s: float, window: Window,
          population_ttl_s: float | None = None) -> Accounting:
    """Judge every session of ``population`` and of the history against its ``final`` state.

    ``loaded``: when the bulk load started and ended (the population's acknowledgement);
    ``read_at``: when the read-back started (expiry is judged at that instant)."""
    acc = Accounting()
    by_session: dict[str, list[Event]] = {}
    for e in sorted(events, key=lambda e: e.start):
        if e.session_id:
            by_session.setdefault(e.session_id, []).append(e)
    ids = list(dict.fromkeys([*population, *by_session]))
    pop_ttl = ttl_s if population_ttl_s is None else population_ttl_s
    for sid in ids:
        _judge(acc, sid, by_session.get(sid, []), population.get(sid), loaded, final.get(sid, UNREADABLE),
               read_at, ttl_s, pop_ttl, window)
    return acc


def _judge(acc: Accounting, sid: str, evs: list[Event], loaded_names: Iterable[str] | None,
           loaded: tuple[float, float], final: Any, read_at: float, ttl_s: float, pop_ttl: float,
           window: Window) -> None:
    creates = [e for e in evs if e.kind == "create"]
    deletes = [e for e in evs if e.kind == "delete"]
    wipes = creates + deletes  # a create over an existing id empties it
    in_population = loaded_names is not None

    # when the session was acknowledged to exist
    acked_from: float | None = loaded[1] if in_population else None
    ok_creates = [e for e in creates if e.ok]
    if acked_from is None and ok_creates:
        acked_from = ok_creates[0].end
    maybe_deleted = any(e.may_have_applied for e in deletes)
    acked_delete = [e for e in deletes if e.ok]

    # expiry: guaranteed (acknowledged refreshes, counted from their start) and possible
    guaranteed_until = loaded[0] + pop_ttl if in_population else float("-inf")
    for e in evs:
        if e.kind in ("create", "add", "extend") and e.ok:
            guaranteed_until = max(guaranteed_until, e.start + ttl_s)
    expired = read_at > guaranteed_until - TTL_MARGIN_S

    # answers of "no such session" while it was certainly live
    for e in evs:
        if e.result != NOT_FOUND or e.kind not in ("get", "add", "remove", "extend", "delete"):
            continue
        if acked_from is None or acked_from > e.start:
            continue
        if any(d.may_have_applied and d.start < e.end for d in deletes):
            continue
        expiry = loaded[0] + pop_ttl if in_population else float("-inf")
        for x in evs:
            if x.kind in ("create", "add", "extend") and x.ok and x.end <= e.start:
                expiry = max(expiry, x.start + ttl_s)
        if expiry - TTL_MARGIN_S <= e.end:
            continue
        phase = window.phase(e.start)
        acc.false_not_found += 1
        acc.false_not_found_by_phase[phase] += 1
        acc.false_not_found_by_kind[e.kind] = acc.false_not_found_by_kind.get(e.kind, 0) + 1
        acc.example("false_not_found", f"{e.kind} {sid} at {e.start:.3f} ({phase} the fault)")

    # indeterminate writes (counted whatever the final state)
    indeterminate = [e for e in evs if e.kind in ("create", "add", "remove", "extend", "delete")
                     and e.failed and not e.definite]
    acc.indeterminate_writes += len(indeterminate)

    if final is UNREADABLE:
        acc.unreadable += 1
        return

    if final is None:
        if acked_from is None:
            return  # never acknowledged (failed or indeterminate creates): nothing to lose
        if maybe_deleted:
            acc.possibly_deleted_excluded += 1
            return
        if expired:
            acc.ttl_expired_excluded += 1
            return
        acc.sessions_judged += 1
        if acked_from < window.inject:
            acc.sessions_acknowledged_before_fault += 1
        acc.sessions_lost += 1
        phase = window.phase(acked_from)
        acc.sessions_lost_by_phase[phase] += 1
        acc.adds_in_lost_sessions += sum(len(e.names) for e in evs if e.kind == "add" and e.ok)
        acc.adds_in_lost_sessions += len(list(loaded_names or ()))
        acc.example("session_lost", f"{sid} (acknowledged {phase} the fault)")
        return

    # the session is there
    if acked_from is None:
        if creates and all(e.failed and e.definite for e in creates):
            acc.failed_writes_appeared += 1
            acc.example("failed_write_appeared", f"create {sid} failed ({creates[0].result}) yet it exists")
        elif any(e.failed and not e.definite for e in creates):
            acc.indeterminate_writes_applied += 1
        return
    if acked_delete and not any(c.may_have_applied and c.start > acked_delete[-1].start for c in creates):
        acc.deleted_sessions_back += 1
        acc.example("deleted_session_back", f"{sid}: delete acknowledged at {acked_delete[-1].end:.3f}, "
                                            "session there afterwards")
        return
    if maybe_deleted:
        acc.possibly_deleted_excluded += 1
        return
    if expired:  # there, though its acknowledged expiry passed: an indeterminate extend may explain it
        acc.ttl_expired_excluded += 1
        return
    acc.sessions_judged += 1
    if acked_from < window.inject:
        acc.sessions_acknowledged_before_fault += 1
    for e in indeterminate:
        if e.kind == "add" and e.names and all(n in final.ingredients for n in e.names):
            acc.indeterminate_writes_applied += 1

    present = set(final.ingredients)
    adds = [e for e in evs if e.kind == "add"]
    removes = [e for e in evs if e.kind == "remove"]
    stale = False
    # acknowledged additions: the loaded list, then each acknowledged add
    acked_adds: list[tuple[str, float, float]] = [(n, loaded[0], loaded[1]) for n in (loaded_names or ())]
    acked_adds += [(n, e.start, e.end) for e in adds if e.ok for n in e.names]
    for name, start, _end in acked_adds:
        if any(w.may_have_applied and w.end > start for w in wipes):
            continue  # a create (which empties) may have been ordered after it
        acc.adds_judged += 1
        if name in present:
            continue
        if any(r.may_have_applied and r.end > start and name in r.names for r in removes):
            continue
        acc.adds_lost += 1
        stale = True
        acc.example("add_lost", f"{name} in {sid} (acknowledged at {_end:.3f})")
    for r in removes:
        if not r.ok:
            continue
        for name in r.names:
            acc.removes_judged += 1
            if name not in present:
                continue
            if any(a.may_have_applied and a.end > r.start and name in a.names for a in adds):
                continue
            acc.removes_undone += 1
            stale = True
            acc.example("remove_undone", f"{name} in {sid} (removal acknowledged at {r.end:.3f})")
    if stale:
        acc.sessions_stale += 1
    # what is there that no add that may have applied explains
    loaded_set = set(loaded_names or ())
    for name in present - loaded_set:
        tried = [a for a in adds if name in a.names]
        if tried and all(a.failed and a.definite for a in tried):
            acc.failed_writes_appeared += 1
            acc.example("failed_write_appeared", f"add {name} to {sid} failed ({tried[0].result}) yet it is there")

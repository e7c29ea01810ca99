"""The Jepsen-style checker on hand-built histories, one anomaly (or one excuse) at a time.

Times are plain seconds on one clock. The population is loaded between t=0 and t=1; the fault
runs from t=10 to t=20; the read-back happens at t=30; the TTL is 100 s unless a test says so.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from fridgebench.experiments.failure.accounting import UNREADABLE, Window, check
from fridgebench.experiments.failure.history import NOT_FOUND, OK, Event
from fridgebench.stores.base import Session

LOADED = (0.0, 1.0)
WINDOW = Window(10.0, 20.0)
READ_AT = 30.0
NOW = datetime.now(timezone.utc)


def s(sid: str, *names: str) -> Session:
    return Session(sid, NOW, NOW + timedelta(hours=1), tuple(names))


def ev(kind: str, sid: str, start: float, end: float, result: str = OK, *names: str, definite: bool = True) -> Event:
    return Event(kind, sid, tuple(names), start, end, result, definite)


def run(events: list[Event], population: dict[str, list[str]], final: dict, ttl: float = 100.0):  # type: ignore[no-untyped-def]
    return check(events, population, LOADED, final, READ_AT, ttl, WINDOW)


def test_nothing_wrong_counts_nothing() -> None:
    a = run([ev("add", "a", 2, 3, OK, "김치"), ev("get", "a", 4, 5)], {"a": ["두부"]}, {"a": s("a", "두부", "김치")})
    assert (a.sessions_judged, a.sessions_lost, a.adds_judged, a.adds_lost, a.anomalies) == (1, 0, 2, 0, 0)
    assert a.sessions_acknowledged_before_fault == 1


def test_loaded_sessions_gone_are_lost_and_counted_as_pre_fault() -> None:
    a = run([], {"a": ["두부"], "b": []}, {"a": None, "b": None})
    assert a.sessions_lost == 2 and a.sessions_lost_by_phase == {"before": 2, "during": 0, "after": 0}
    assert a.sessions_acknowledged_before_fault == 2
    assert a.adds_in_lost_sessions == 1  # 두부 went with its session
    assert a.examples["session_lost"]


def test_sessions_created_during_and_after_the_fault_are_placed_by_their_acknowledgement() -> None:
    events = [ev("create", "d", 12, 13), ev("create", "e", 22, 23), ev("create", "f", 5, 6)]
    a = run(events, {}, {"d": None, "e": None, "f": s("f")})
    assert a.sessions_lost_by_phase == {"before": 0, "during": 1, "after": 1}
    assert a.sessions_judged == 3 and a.sessions_acknowledged_before_fault == 1


def test_ttl_expiry_is_excluded_and_counted() -> None:
    # acknowledged expiry: loaded at 0 with a 20 s TTL -> gone by the read at 30; the add refreshed "b"
    events = [ev("add", "b", 25, 26, OK, "김치")]
    a = run(events, {"a": [], "b": []}, {"a": None, "b": s("b", "김치")}, ttl=20)
    assert a.ttl_expired_excluded == 1 and a.sessions_lost == 0 and a.sessions_judged == 1


def test_a_session_possibly_deleted_is_not_judged() -> None:
    events = [ev("delete", "a", 5, 6, "timeout", definite=False), ev("delete", "b", 5, 6, OK)]
    a = run(events, {"a": [], "b": []}, {"a": None, "b": None})
    assert a.sessions_lost == 0 and a.possibly_deleted_excluded == 2


def test_a_definitely_failed_delete_does_not_excuse_a_loss() -> None:
    a = run([ev("delete", "a", 5, 6, "refused", definite=True)], {"a": []}, {"a": None})
    assert a.sessions_lost == 1


def test_an_acknowledged_delete_whose_session_came_back() -> None:
    a = run([ev("delete", "a", 12, 13, OK)], {"a": ["두부"]}, {"a": s("a", "두부")})
    assert a.deleted_sessions_back == 1 and a.anomalies == 1


def test_acknowledged_add_missing_is_lost_and_the_session_stale() -> None:
    events = [ev("add", "a", 2, 3, OK, "김치", "대파"), ev("add", "a", 4, 5, OK, "계란")]
    a = run(events, {"a": ["두부"]}, {"a": s("a", "두부", "김치", "대파")})
    assert a.adds_lost == 1 and a.sessions_stale == 1 and a.adds_judged == 4
    assert "계란" in a.examples["add_lost"][0]


def test_a_remove_that_may_have_run_after_the_add_excuses_it() -> None:
    events = [ev("add", "a", 2, 4, OK, "김치"), ev("remove", "a", 3, 5, "timeout", "김치", definite=False),
              ev("add", "b", 2, 3, OK, "김치"), ev("remove", "b", 6, 7, OK, "김치")]
    a = run(events, {"a": [], "b": []}, {"a": s("a"), "b": s("b")})
    assert a.adds_lost == 0 and a.sessions_stale == 0


def test_a_definitely_failed_or_earlier_remove_does_not_excuse_it() -> None:
    events = [ev("add", "a", 2, 3, OK, "김치"), ev("remove", "a", 4, 5, "refused", "김치", definite=True),
              ev("remove", "b", 1.5, 1.8, OK, "김치"), ev("add", "b", 2, 3, OK, "김치")]
    a = run(events, {"a": [], "b": []}, {"a": s("a"), "b": s("b")})
    assert a.adds_lost == 2


def test_an_add_that_failed_definitely_yet_appears() -> None:
    events = [ev("add", "a", 12, 13, "oom", "김치", definite=True)]
    a = run(events, {"a": []}, {"a": s("a", "김치")})
    assert a.failed_writes_appeared == 1 and a.anomalies == 1


def test_an_indeterminate_add_may_appear_and_is_counted_as_applied() -> None:
    events = [ev("add", "a", 12, 13, "timeout", "김치", definite=False)]
    a = run(events, {"a": []}, {"a": s("a", "김치")})
    assert a.failed_writes_appeared == 0 and a.indeterminate_writes == 1 and a.indeterminate_writes_applied == 1
    assert a.anomalies == 0


def test_a_create_that_failed_definitely_yet_exists() -> None:
    a = run([ev("create", "n", 12, 13, "refused", definite=True)], {}, {"n": s("n")})
    assert a.failed_writes_appeared == 1


def test_an_acknowledged_remove_undone() -> None:
    events = [ev("remove", "a", 12, 13, OK, "두부")]
    a = run(events, {"a": ["두부", "김치"]}, {"a": s("a", "두부", "김치")})
    assert a.removes_undone == 1 and a.sessions_stale == 1


def test_no_such_session_for_a_live_one_is_counted_by_phase() -> None:
    events = [ev("get", "a", 12, 12.1, NOT_FOUND), ev("add", "a", 22, 22.1, NOT_FOUND, "김치"),
              ev("get", "a", 5, 5.1, OK)]
    a = run(events, {"a": []}, {"a": s("a")})
    assert a.false_not_found == 2
    assert a.false_not_found_by_phase == {"before": 0, "during": 1, "after": 1}
    assert a.false_not_found_by_kind == {"get": 1, "add": 1}


def test_no_such_session_is_fine_when_it_may_have_been_deleted_expired_or_never_created() -> None:
    events = [ev("delete", "a", 11, 11.5, "timeout", definite=False), ev("get", "a", 12, 12.1, NOT_FOUND),
              ev("get", "b", 25, 25.1, NOT_FOUND),  # "b": loaded with a 20 s TTL, expired at 20
              ev("create", "c", 12, 13, "refused", definite=True), ev("get", "c", 14, 14.1, NOT_FOUND),
              ev("create", "d", 12, 14, OK), ev("get", "d", 13, 13.5, NOT_FOUND)]  # read raced its create
    a = run(events, {"a": [], "b": []}, {"a": None, "b": None, "c": None, "d": s("d")}, ttl=20)
    assert a.false_not_found == 0


def test_unreadable_sessions_are_counted_not_judged() -> None:
    a = run([], {"a": [], "b": []}, {"a": UNREADABLE, "b": None})
    assert a.unreadable == 1 and a.sessions_judged == 1 and a.sessions_lost == 1


def test_a_session_missing_from_the_read_back_is_unreadable() -> None:
    a = run([], {"a": []}, {})
    assert a.unreadable == 1 and a.sessions_lost == 0


@pytest.mark.parametrize("outcome,definite", [("timeout", False), ("connection-lost", False), ("refused", True)])
def test_event_may_have_applied(outcome: str, definite: bool) -> None:
    e = ev("add", "a", 1, 2, outcome, "김치", definite=definite)
    assert e.failed and e.may_have_applied is (not definite)
    assert ev("add", "a", 1, 2, OK).may_have_applied and ev("add", "a", 1, 2, NOT_FOUND).may_have_applied

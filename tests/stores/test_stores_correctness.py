"""The lost-update counter on hand-built logs, then the product's point on real servers:
the seed's read-modify-write loses concurrent adds; the atomic store and PostgreSQL don't."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime, timezone

import pytest

from fridgebench.stores import schema
from fridgebench.stores.base import Session, SessionStore
from fridgebench.stores.correctness import LoggedOp, count_lost_updates

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def state(sid: str, *names: str) -> Session:
    return Session(sid, T0, T0, tuple(names))


def add(sid: str, name: str, start: float, end: float, ok: bool = True) -> LoggedOp:
    return LoggedOp("add", sid, start, end, (name,), ok)


def remove(sid: str, name: str, start: float, end: float) -> LoggedOp:
    return LoggedOp("remove", sid, start, end, (name,))


# -- the helper on hand-built logs ---------------------------------------------------------
def test_present_ingredients_are_not_lost() -> None:
    r = count_lost_updates([add("s", "김치", 0, 1), add("s", "두부", 0.5, 1.5)], {"s": state("s", "김치", "두부")})
    assert (r.adds_checked, r.lost_updates, r.sessions_checked, r.examples) == (2, 0, 1, [])


def test_absent_without_any_remove_is_lost() -> None:
    r = count_lost_updates([add("s", "김치", 0, 1), add("s", "두부", 0.5, 1.5)], {"s": state("s", "두부")})
    assert r.lost_updates == 1 and r.examples == [("s", "김치")]
    assert r.loss_rate == 0.5


def test_unacknowledged_add_is_not_judged() -> None:
    r = count_lost_updates([add("s", "김치", 0, 1, ok=False)], {"s": state("s")})
    assert (r.adds_checked, r.lost_updates, r.sessions_checked) == (0, 0, 0)


def test_remove_that_ended_before_the_add_started_does_not_excuse() -> None:
    ops = [remove("s", "김치", 0, 1), add("s", "김치", 2, 3)]
    assert count_lost_updates(ops, {"s": state("s")}).lost_updates == 1


def test_remove_overlapping_the_add_may_win() -> None:
    # remove started before the add, ended while it ran: either order is possible
    ops = [remove("s", "김치", 0, 2.5), add("s", "김치", 2, 3)]
    assert count_lost_updates(ops, {"s": state("s")}).lost_updates == 0
    # remove started during the add
    ops = [add("s", "김치", 2, 3), remove("s", "김치", 2.5, 4)]
    assert count_lost_updates(ops, {"s": state("s")}).lost_updates == 0


def test_remove_after_the_add_excuses_absence() -> None:
    ops = [add("s", "김치", 0, 1), remove("s", "김치", 5, 6)]
    assert count_lost_updates(ops, {"s": state("s")}).lost_updates == 0


def test_remove_of_another_ingredient_or_session_does_not_excuse() -> None:
    ops = [add("s", "김치", 0, 1), remove("s", "두부", 5, 6), remove("t", "김치", 5, 6)]
    r = count_lost_updates(ops, {"s": state("s"), "t": state("t")})
    assert r.lost_updates == 1 and r.sessions_checked == 1


def test_multi_name_remove_and_timed_out_remove_excuse() -> None:
    ops = [
        LoggedOp("add", "s", 0, 1, ("김치", "두부", "대파")),
        LoggedOp("remove", "s", 2, 3, ("두부", "양파")),
        LoggedOp("remove", "s", 2, 30, ("대파",), ok=False),  # timed out: may have applied
    ]
    r = count_lost_updates(ops, {"s": state("s")})
    assert (r.adds_checked, r.lost_updates, r.examples) == (3, 1, [("s", "김치")])


def test_delete_or_create_after_the_add_excuses_but_not_before() -> None:
    ops = [LoggedOp("delete", "s", 0, 1), add("s", "김치", 2, 3)]
    assert count_lost_updates(ops, {"s": state("s")}).lost_updates == 1
    ops = [add("s", "김치", 2, 3), LoggedOp("create", "s", 2.9, 3.1)]
    assert count_lost_updates(ops, {"s": state("s")}).lost_updates == 0


def test_sessions_gone_at_the_end_are_skipped() -> None:
    r = count_lost_updates([add("s", "김치", 0, 1), add("t", "두부", 0, 1)], {"s": None})
    assert (r.adds_checked, r.sessions_checked, r.sessions_missing) == (0, 0, 2)


def test_examples_are_capped_at_five() -> None:
    ops = [add("s", f"x{i}", 0, 1) for i in range(20)]
    r = count_lost_updates(ops, {"s": state("s")})
    assert r.lost_updates == 20 and len(r.examples) == 5


def test_bad_ops_are_refused() -> None:
    with pytest.raises(ValueError):
        LoggedOp("upsert", "s", 0, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        LoggedOp("add", "s", 2, 1, ("김치",))
    assert LoggedOp("add", "s", 0, 1, ["김치"]).names == ("김치",)  # type: ignore[arg-type]


# -- the product's point, on real servers --------------------------------------------------
N_ADDS = 50
ROUNDS = 3


async def concurrent_adds_round(store: SessionStore) -> tuple[int, int, int]:
    """50 concurrent single-ingredient adds to one session; returns (checked, lost, final size)."""
    sid = f"race-{uuid.uuid4()}"
    names = [i.name for i in schema.ingredients()[:N_ADDS]]
    await store.create(sid)
    log: list[LoggedOp] = []

    async def one(name: str) -> None:
        start = time.monotonic()
        ok = await store.add_ingredients(sid, [name])
        log.append(LoggedOp("add", sid, start, time.monotonic(), (name,), ok))

    await asyncio.gather(*(one(n) for n in names))
    final = await store.get(sid)
    result = count_lost_updates(log, {sid: final})
    assert result.sessions_checked == 1
    return result.adds_checked, result.lost_updates, len(final.ingredients) if final else 0


# the stores running the seed's GET -> modify -> SETEX as written (lean client, and the app's redis.asyncio)
RACY = ("redis-seed", "redis-app")


async def test_concurrent_adds_to_one_session(store: SessionStore) -> None:
    total_lost = 0
    for _ in range(ROUNDS):
        checked, lost, size = await concurrent_adds_round(store)
        assert checked == N_ADDS  # every add was acknowledged
        total_lost += lost
        if store.name not in RACY:
            assert lost == 0 and size == N_ADDS
        else:
            assert size == N_ADDS - lost
    if store.name in RACY:
        assert total_lost > 0, "the seed's GET -> SETEX should lose concurrent adds"

"""The ttl claims' verdicts and texts follow the figures (build_claims reads a results section only)."""

from __future__ import annotations

import copy
from typing import Any

from fridgebench.experiments.ttl import build_claims


def _expiry(kind: str, **over: Any) -> dict[str, Any]:
    e: dict[str, Any] = {
        "kind": kind, "readable_lag_ms": {"n": 10, "p50": 3.0, "p99": 9.0, "max": 12.0},
        "readable_resolution_ms": {"n": 10, "p50": 4.0}, "removed_lag_ms": {"n": 50, "p50": 40.0, "p99": 90.0, "max": 99.0},
        "readable_never_gone": 0, "removed_not_observed": 0, "notifications": kind == "redis",
        "sliding": {"total_violations": 0}, "max_expired_rows_waiting_for_cleanup": 120, "cleanup_every_s": 0.2,
    }
    e.update(over)
    return e


def _variant(size_before: int, size_after_vacuum: int) -> dict[str, Any]:
    return {"variant": "single", "deleted_sessions": 500, "expired_ingredient_rows": 4000, "duration_s": 0.05,
            "wal_bytes": 200_000, "dead_tuples_after": {"user_fridge_sessions": 500, "user_fridge_ingredients": 4000},
            "rows_per_s": 90_000.0, "size_before": {"total": size_before},
            "size_after_vacuum": {"total": size_after_vacuum},
            "foreground": {"baseline": {"p99_ms": 0.4}, "during_cleanup": {"p99_ms": 0.9}}}


def _section(**redis_over: Any) -> dict[str, Any]:
    return {"expiry": {"postgres": _expiry("postgres"), "redis-atomic": _expiry("redis", **redis_over)},
            "memory": {}, "cleanup": {"variants": [_variant(1_000_000, 1_000_000)]}}


def _auto(section: dict[str, Any]) -> Any:
    return next(c for c in build_claims(section) if c.key == "auto_expiry")


def test_both_stores_expire_on_their_own() -> None:
    c = _auto(_section())
    assert c.verdict == "partly supported"
    assert "removed by active expiry with no job" in c.measured and "files did not shrink" in c.measured


def test_redis_key_readable_after_expiry_contradicts() -> None:
    assert _auto(_section(readable_never_gone=3)).verdict == "contradicted"


def test_untimed_removal_is_inconclusive_not_contradicted() -> None:
    # managed Redis without CONFIG: no keyspace notifications, so no control key is ever seen removed
    c = _auto(_section(notifications=False, removed_not_observed=50, removed_lag_ms={"n": 0}))
    assert c.verdict == "inconclusive"
    assert "not timed" in c.measured and "removed by active expiry" not in c.measured


def test_vacuum_text_follows_the_sizes() -> None:
    section = _section()
    shrunk = copy.deepcopy(section)
    shrunk["cleanup"]["variants"] = [_variant(1_000_000, 600_000)]
    assert "files shrank by 40% after VACUUM" in _auto(shrunk).measured
    assert "did not shrink" not in _auto(shrunk).measured

"""The failure rows of the seed's claims table, table-driven (issue 10, item 1, for `fridgebench failure`).

Each case is a failure run's cases as its results document holds them (``sections.failure.cases``),
built from a few numbers; :func:`fridgebench.experiments.failure.claims.judge` turns them into the
"failure recovery" and "fault isolation" rows. Each asserts the verdict and the words a reader sees.
"""

from __future__ import annotations

from typing import Any

import pytest

from fridgebench.experiments.failure.claims import judge
from tests.claim_cases import ClaimCase, check


def case(store: str, fault: str, durability: str, *, acked: int = 3000, lost_before: int = 0, lost_during: int = 0,
         adds_lost: int = 0, first_success_s: float | None = 0.3, ready_s: float | None = 0.2,
         error_rate: float = 0.0, p99_us: float = 900.0, longest_wait_s: float = 0.01, timeout_s: float | None = 1.0,
         false_not_found: int = 0, stale: int = 0, fallbacks: int | None = None) -> dict[str, Any]:
    """One case of a failure run, as the results document holds it (the fields the claims read)."""
    target = "postgres" if store in ("postgres", "pg-redis-cache") and fault not in ("crash", "pause") else \
        "redis" if store != "postgres" else "postgres"
    return {
        "id": f"{store}-{fault}-{durability}", "store": store, "fault": fault, "durability": durability,
        "policy": None, "target": target,
        "accounting": {"sessions_acknowledged_before_fault": acked,
                       "sessions_lost_by_phase": {"before": lost_before, "during": lost_during, "after": 0},
                       "sessions_lost": lost_before + lost_during, "adds_lost": adds_lost,
                       "false_not_found": false_not_found, "sessions_stale": stale},
        "recovery": {"first_success_after_heal_s": first_success_s},
        "server": {"server_ready_s": ready_s},
        "during": {"error_rate": error_rate, "p99_us": p99_us, "longest_wait_s": longest_wait_s},
        "client": {"timeout_s": timeout_s},
        "store_stats": {"fallbacks": fallbacks} if fallbacks is not None else {},
    }


def claims(*cases: dict[str, Any]) -> Any:
    return lambda: judge(list(cases))


PG_SYNC = case("postgres", "crash", "sync")
REDIS_NONE_ALL_LOST = case("redis-atomic", "crash", "none", lost_before=3000, first_success_s=0.04)
REDIS_AOF_KEPT = case("redis-atomic", "crash", "aof-everysec", first_success_s=0.14)

RECOVERY = [
    ClaimCase("none loses every session, PostgreSQL sync keeps all: the seed's row as it is", claims(
        PG_SYNC, REDIS_NONE_ALL_LOST), "failure_recovery", "supported",
        says=("PostgreSQL `sync`: 0 of 3,000 sessions acknowledged before the crash lost",
              "Redis `none`: 3,000 of 3,000 sessions acknowledged before the crash lost",
              "An OS crash or power loss cannot be produced here", "Kubernetes:")),
    ClaimCase("none loses all, the chart's AOF keeps all: true only without persistence", claims(
        PG_SYNC, REDIS_NONE_ALL_LOST, REDIS_AOF_KEPT), "failure_recovery", "partly supported",
        says=("Redis `aof-everysec`: 0 of 3,000", "Redis `none`: 3,000 of 3,000")),
    ClaimCase("only AOF measured and nothing lost: Redis keeps sessions after a process crash", claims(
        PG_SYNC, REDIS_AOF_KEPT), "failure_recovery", "contradicted", says=("Redis `aof-everysec`: 0 of 3,000",)),
    ClaimCase("PostgreSQL sync losing an acknowledged add contradicts 'data kept'", claims(
        case("postgres", "crash", "sync", adds_lost=2), REDIS_NONE_ALL_LOST), "failure_recovery", "contradicted",
        says=("2 acknowledged adds lost",)),
    ClaimCase("PostgreSQL async may lose adds: not what 'sync' promises, so no contradiction", claims(
        PG_SYNC, case("postgres", "crash", "async", adds_lost=7), REDIS_NONE_ALL_LOST), "failure_recovery",
        "supported", says=("PostgreSQL `async`", "7 acknowledged adds lost")),
    ClaimCase("one side only: inconclusive, and says so", claims(PG_SYNC), "failure_recovery", "inconclusive",
              says=("only one side measured",)),
    ClaimCase("none lost only some sessions: inconclusive (not the seed's all-lost)", claims(
        PG_SYNC, case("redis-atomic", "crash", "none", lost_before=1200)), "failure_recovery", "inconclusive",
        says=("1,200 of 3,000",)),
]


@pytest.mark.parametrize("c", RECOVERY, ids=str)
def test_failure_recovery_verdict(c: ClaimCase) -> None:
    check(c)


FALLBACK_CRASH = case("redis-fallback", "crash", "none", lost_before=2900, false_not_found=4100, error_rate=0.0,
                      fallbacks=5200)
FALLBACK_HANG = case("redis-fallback", "pause", "none", timeout_s=None, longest_wait_s=1.5, error_rate=0.0,
                     p99_us=1_500_000, fallbacks=0)
CACHE_PAUSE = case("pg-redis-cache", "pause", "none", error_rate=0.0, p99_us=1_900_000, longest_wait_s=1.0)
CACHE_CLEAN = case("pg-redis-cache", "crash", "none", error_rate=0.01, longest_wait_s=0.2)

ISOLATION = [
    ClaimCase("the seed's fallback loses sessions and answers 'no such session' for live ones", claims(
        FALLBACK_CRASH, CACHE_CLEAN), "fault_isolation", "contradicted",
        says=("the seed's Phase 2 (redis-fallback)", "up to 2,900 acknowledged sessions lost",
              "up to 4,100 'no such session' answers for live sessions",
              "PostgreSQL with a Redis cache (pg-redis-cache)", "no acknowledged session lost")),
    ClaimCase("the seed's client hangs for the whole pause and the fallback never runs", claims(
        FALLBACK_HANG), "fault_isolation", "partly supported",
        says=("with the seed's client (no timeout) a pause hung requests for up to 1.50 s",
              "the fallback ran 0 times")),
    ClaimCase("no data lost and no service lost: supported", claims(
        case("redis-fallback", "reset", "none", error_rate=0.01, longest_wait_s=0.05)), "fault_isolation",
        "supported", says=("at most 1.0% of requests failed during a fault", "no acknowledged session lost")),
    ClaimCase("data kept but a fifth of requests failed during the fault: partly", claims(
        case("redis-fallback", "reset", "none", error_rate=0.2, longest_wait_s=0.05)), "fault_isolation",
        "partly supported", says=("at most 20.0% of requests failed during a fault",)),
    ClaimCase("only the fix measured: says the seed's own fallback was not, judges the fix", claims(
        CACHE_PAUSE), "fault_isolation", "partly supported",
        says=("the seed's own fallback (redis-fallback) was not measured",
              "p99 during a fault up to 1,900.0 ms with a 1 s client timeout")),
    ClaimCase("stale sessions after the fault are named", claims(
        case("pg-redis-cache", "crash", "aof-everysec", stale=45, adds_lost=45)), "fault_isolation",
        "partly supported", says=("up to 45 stale sessions afterwards (crash, aof-everysec",)),
]


@pytest.mark.parametrize("c", ISOLATION, ids=str)
def test_fault_isolation_verdict(c: ClaimCase) -> None:
    check(c)


def test_no_failure_case_for_a_row_leaves_it_unmeasured() -> None:
    # a PostgreSQL pause is neither a crash nor a Redis fault under the composites
    rows = {c.key: c for c in judge([case("postgres", "pause", "sync")])}
    assert {k: c.verdict for k, c in rows.items()} == {"failure_recovery": "not measured",
                                                       "fault_isolation": "not measured"}

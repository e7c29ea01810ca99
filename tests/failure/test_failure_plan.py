"""The failure run's plan (no servers): which cases a set of options makes, and the results format."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from fridgebench.errors import UsageError
from fridgebench.experiments.failure import FailureOptions, parse_clients, plan, short_preset
from fridgebench.measure.results import Claim, Environment, ResultsDocument
from fridgebench.report.claims import blank_claims
from fridgebench.stores import ClientOptions
from fridgebench.workload.model import load_scenario

SC = load_scenario("session-lifecycle").with_overrides({"load.duration_seconds": 8.0, "load.rate": 500.0})


def ids(p) -> set[str]:  # type: ignore[no-untyped-def]
    return {f"{c.store}:{c.fault}:{c.mode}:{c.client.timeout_s}:{c.policy}" for c in p.cases}


def test_the_default_plan_answers_the_seeds_rows() -> None:
    p = plan(FailureOptions(scenario=SC))
    assert len(p.cases) == 11
    assert {(c.store, c.mode) for c in p.cases if c.fault == "crash"} == {
        ("postgres", "sync"), ("redis-atomic", "none"), ("redis-atomic", "aof-everysec"), ("redis-fallback", "none"),
        ("redis-fallback", "aof-everysec"), ("pg-redis-cache", "none"), ("pg-redis-cache", "aof-everysec")}
    assert {(c.store, c.mode) for c in p.cases if c.fault == "pause"} == {
        ("postgres", "sync"), ("redis-atomic", "none"), ("redis-fallback", "none"), ("pg-redis-cache", "none")}
    assert set(p.servers()) == {("postgres", "sync"), ("redis", "none"), ("redis", "aof-everysec")}
    assert p.notes  # says pause ran in the first mode only


def test_durability_multiplies_data_faults_and_clients_multiply_hangs() -> None:
    clients = parse_clients("1,none", retries=2)
    assert clients[1] == ClientOptions.seed_defaults() and clients[0].retries == 2
    p = plan(FailureOptions(scenario=SC, faults=("crash", "pause", "reset"), stores=("redis-atomic",),
                            durability=("none", "aof-always"), clients=clients))
    assert ids(p) == {"redis-atomic:crash:none:1.0:None", "redis-atomic:crash:aof-always:1.0:None",
                      "redis-atomic:pause:none:1.0:None", "redis-atomic:pause:none:None:None",
                      "redis-atomic:reset:none:1.0:None"}


def test_memory_full_runs_each_policy_and_skips_postgres() -> None:
    p = plan(FailureOptions(scenario=SC, faults=("memory-full",), stores=("postgres", "redis-atomic")))
    assert {c.policy for c in p.cases} == {"noeviction", "allkeys-lru", "volatile-lru"}
    assert p.skipped == [{"store": "postgres", "fault": "memory-full",
                          "why": "memory-full acts on Redis; postgres's faults act on PostgreSQL"}]


def test_a_pg_mode_given_alone_keeps_the_redis_defaults() -> None:
    p = plan(FailureOptions(scenario=SC, faults=("crash",), stores=("postgres", "redis-atomic"), durability=("async",)))
    assert {(c.store, c.mode) for c in p.cases} == {("postgres", "async"), ("redis-atomic", "none"),
                                                    ("redis-atomic", "aof-everysec")}


def test_external_stores_get_one_external_mode_and_commands() -> None:
    opts = FailureOptions(scenario=SC, faults=("crash", "reset"), stores=("redis-atomic",), kill_cmd="k", start_cmd="s")
    p = plan(opts, frozenset({"redis"}))
    assert {(c.fault, c.mode) for c in p.cases} == {("crash", "external"), ("reset", "external")}
    with pytest.raises(UsageError, match="both external servers"):
        plan(FailureOptions(scenario=SC, faults=("crash",), stores=("postgres", "redis-atomic"), kill_cmd="k",
                            start_cmd="s"), frozenset({"redis", "postgres"}))


def test_compare_full_runs_a_short_set() -> None:
    opts = short_preset(SC, ("postgres", "redis-seed", "redis-atomic"), frozenset())
    p = plan(opts)
    assert [(c.store, c.fault, c.mode) for c in p.cases] == [
        ("postgres", "crash", "sync"), ("redis-atomic", "crash", "none"), ("redis-fallback", "crash", "none"),
        ("pg-redis-cache", "crash", "none")]
    assert opts.duration_s == 6.0 and opts.scenario.population.sessions == 2000
    ext = short_preset(SC, ("postgres", "redis-atomic"), frozenset({"redis"}))
    assert ext.faults == ("reset",) and {c.mode for c in plan(ext, frozenset({"redis"})).cases} == {"sync", "external"}
    closed = short_preset(load_scenario("saturation"), ("postgres",), frozenset())
    assert closed.scenario.load.model == "open"


def test_old_results_documents_still_load_and_new_ones_carry_fault_isolation() -> None:
    env = Environment.capture()
    old_claims = [c.model_dump() for c in blank_claims().values() if c.key != "fault_isolation"]
    doc = {"schema_version": "fridgebench.results/1", "command": "compare", "run_id": "x",
           "started_at": datetime.now(timezone.utc).isoformat(), "environment": env.model_dump(), "claims": old_claims}
    loaded = ResultsDocument.model_validate(json.loads(json.dumps(doc)))
    assert len(loaded.claims) == 6
    assert Claim(key="fault_isolation", topic="t", seed_postgres="a", seed_redis="b").key == "fault_isolation"
    assert "fault_isolation" in blank_claims()

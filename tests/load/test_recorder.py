"""The recorder's histograms survive Locust's transport and merge exactly (no servers needed)."""

from __future__ import annotations

import random

import msgpack

from fridgebench.load.recorder import ERROR, NOT_FOUND, OK, Aggregate, Recorder
from fridgebench.measure.summary import new_histogram
from fridgebench.workload.generator import Op


def test_reports_from_two_processes_merge_into_exactly_one_histogram() -> None:
    rng = random.Random(7)
    a, b, direct = Recorder(), Recorder(), new_histogram()
    agg = Aggregate()
    sent = 0
    for step in range(6):  # several periodic reports, then the final flush
        for rec in (a, b):
            for _ in range(500):
                us = rng.lognormvariate(5.5, 0.8)  # ~250 µs, a long tail: sub-millisecond detail matters
                result = rng.choice([OK, OK, OK, NOT_FOUND])
                rec.record("redis-atomic", "get", us, 1_700_000_000 + step, result)
                direct.record_value(max(1, int(round(us))))
                sent += 1
            rec.record("redis-atomic", "add", 100.0, 1_700_000_000 + step, OK, op=Op("add", "s1", ("김치",)))
            rec.record("redis-atomic", "add", 50.0, 1_700_000_000 + step, ERROR, TimeoutError("slow"), op=Op("add", "s1", ("두부",)))
        for name, rec in (("w0", a), ("w1", b)):
            wire = msgpack.unpackb(msgpack.packb(rec.take(), use_bin_type=True), raw=False)  # as Locust ships it
            agg.merge(name, wire)
    merged = new_histogram()
    for (sec, store, op), h in agg.hist.items():
        if op == "get":
            merged.add(h)
    assert merged.get_total_count() == direct.get_total_count() == sent
    for q in (50, 90, 99, 99.9, 100):
        assert merged.get_value_at_percentile(q) == direct.get_value_at_percentile(q)
    assert sum(agg.worker_requests("redis-atomic").values()) == sent + 2 * 2 * 6
    assert agg.errors[("redis-atomic", "add", "TimeoutError")][0] == 12
    muts = agg.mutations["redis-atomic"]
    assert len(muts) == 24 and sum(m.ok for m in muts) == 12  # failed adds are logged, as unacknowledged
    assert a.take()["hist"] == {}  # taken once: nothing is sent twice


def test_sessions_created_and_cache_keys_written_reach_the_master_from_every_process() -> None:
    """What the master deletes at the end: every create (acknowledged or not) and every cache key a
    user's SET NX created, from every process's reports."""
    a, b = Recorder(), Recorder()
    agg = Aggregate()
    a.record("redis-seed", "create", 80.0, 1_700_000_000, OK, op=Op("create", "s-a"))
    b.record("redis-seed", "create", 80.0, 1_700_000_000, ERROR, TimeoutError("slow"), op=Op("create", "s-b"))
    b.record("redis-seed", "add", 80.0, 1_700_000_000, OK, op=Op("add", "s-pop", ("김치",)))
    a.cache_key_created("redis-seed", "recipe:7")
    b.cache_key_created("redis-atomic", "recipe:8")
    for name, rec in (("w0", a), ("w1", b)):
        agg.merge(name, msgpack.unpackb(msgpack.packb(rec.take(), use_bin_type=True), raw=False))
    assert agg.created_sessions("redis-seed") == {"s-a", "s-b"}  # a create that timed out may have been applied
    assert [k for k, _ in agg.cache_keys["redis-seed"]] == ["recipe:7"]
    assert [k for k, _ in agg.cache_keys["redis-atomic"]] == ["recipe:8"]
    assert a.take()["cache_keys"] == []  # taken once

"""The plan the master sends: it survives Locust's transport, and every process salts the ids with the run's salt."""

from __future__ import annotations

import secrets

import msgpack

from fridgebench.load.plan import OpSource, Plan
from fridgebench.workload.model import load_scenario


def test_the_run_salt_travels_in_the_plan_and_every_process_agrees_on_the_ids() -> None:
    sc = load_scenario("session-lifecycle").with_overrides(**{"population.sessions": 50})
    salt = secrets.randbits(128)
    plan = Plan(phase=0, store="redis-atomic", scenario=sc.model_dump(), users=4, offered_rate=None,
                id_salt=(1 << 127) | salt)  # the top bit set: beyond every integer msgpack encodes
    wire = msgpack.unpackb(msgpack.packb({**plan.to_dict(), "stream": 3}, use_bin_type=True), raw=False)
    got = Plan.from_dict(wire)
    assert got.id_salt == plan.id_salt and got.stream == 3
    master, worker, other_run = OpSource(), OpSource(), OpSource()
    ids = [sid for sid, _ in master.population(sc, plan.id_salt)]
    assert [sid for sid, _ in worker.population(sc, got.id_salt)] == ids  # the worker's population is the master's
    other = [sid for sid, _ in other_run.population(sc, plan.id_salt ^ 1)]
    assert not set(other) & set(ids)  # another run (another salt): no id in common, the same sequence otherwise
    assert [names for _, names in other_run.population(sc, plan.id_salt ^ 1)] == \
           [names for _, names in master.population(sc, plan.id_salt)]

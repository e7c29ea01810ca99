"""What limited a run is said plainly: the generator, the machine, too few users, or the store."""

from __future__ import annotations

from typing import Any

import pytest

from fridgebench.load.summary import Phase, generator_verdict
from fridgebench.measure.summary import StoreMeasurement


def _m(achieved: float, mean_us: float) -> StoreMeasurement:
    overall = {"achieved_rate_per_s": achieved, "latency_service": {"mean_us": mean_us, "count": 1}}
    return StoreMeasurement({}, overall, [], {})


def _phase(offered: float | None, users: int = 32, host: float | None = 50.0, warned: bool = False) -> Phase:
    return Phase(store="redis-atomic", users=users, spawn_rate=32, offered_rate=offered, window=(0, 10),
                 ramp_up_s=1, warmup_s=1, populate_s=1, host_cpu_percent=host, locust_cpu_warning=warned)


def _procs(*cpu_wait: tuple[float, float]) -> list[dict[str, Any]]:
    return [{"process": f"worker {i}", "cpu_percent": c, "cpu_wait_percent": w} for i, (c, w) in enumerate(cpu_wait)]


@pytest.mark.parametrize("m, phase, procs, limit", [
    (_m(3000, 300), _phase(5000), _procs((97, 2), (60, 1)), "load generator"),   # one process used its core
    (_m(4000, 300), _phase(5000, warned=True), _procs((70, 0)), "load generator"),  # Locust's own warning
    (_m(3000, 300), _phase(5000, host=99), _procs((45, 50)), "machine"),          # wanted a core, waited half
    (_m(900, 40_000), _phase(2000, users=32), _procs((20, 0)), "users"),          # 32 users / 40 ms = 800/s
    (_m(1500, 300), _phase(2000), _procs((30, 0)), "store"),                      # room everywhere but the store
    (_m(1995, 300), _phase(2000), _procs((30, 0)), None),                          # kept up
    (_m(8000, 300), _phase(None), _procs((40, 0)), "store"),                       # back to back
])
def test_the_limit_is_named(m: StoreMeasurement, phase: Phase, procs: list[dict[str, Any]], limit: str | None) -> None:
    v = generator_verdict(m, phase, procs)
    assert v["limit"] == limit, v["verdict"]
    assert v["verdict"]

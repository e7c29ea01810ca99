"""The offered-load sweep and its scalability verdict."""

from __future__ import annotations

import pytest

from fridgebench.config import mask_url
from fridgebench.experiments.sweep import SweepOptions, judge_scalability, run_sweep
from fridgebench.provision.base import Endpoints, ServerInfo
from fridgebench.workload.model import load_scenario


def _section(pg: float | None, redis: float | None, driver: float | None) -> dict:
    def s(k):  # type: ignore[no-untyped-def]
        return {"steps": [], "max_sustained_per_s": k,
                "driver_bound": driver is None or (k is not None and k >= driver)}
    return {"slo_p99_us": 10_000, "rates": [], "driver": {"steps": [], "max_sustained_per_s": driver},
            "stores": {"postgres": s(pg), "redis-atomic": s(redis)}}


@pytest.mark.parametrize("pg, redis, driver, verdict", [
    (1000, 4000, 8000, "supported"),
    (2000, 3000, 8000, "partly supported"),
    (4000, 2000, 8000, "contradicted"),
    (8000, 8000, 8000, "inconclusive"),  # both at the driver's ceiling: the store's limit is unknown
    (None, 500, None, "inconclusive"),  # the driver itself could not keep up: machine too busy
])
def test_scalability_verdicts(pg, redis, driver, verdict) -> None:  # type: ignore[no-untyped-def]
    claim = next(c for c in judge_scalability(_section(pg, redis, driver)) if c.key == "scalability")
    assert claim.verdict == verdict
    assert "single node" in claim.measured


async def test_sweep_on_real_servers(external_fridge_dsn: str, external_redis_url: str) -> None:
    external_pg_dsn = external_fridge_dsn
    info = ServerInfo(kind="postgres", source="external", url=mask_url(external_pg_dsn))
    ep = Endpoints(external_pg_dsn, external_redis_url, info,
                   ServerInfo(kind="redis", source="external", url=external_redis_url))
    sc = load_scenario("session-lifecycle").with_overrides(**{"population.sessions": 500})
    lines: list[str] = []
    section, claims = await run_sweep(ep, SweepOptions(sc, ("postgres", "redis-atomic"), rates=(100, 200),
                                                       step_seconds=0.6, slo_p99_us=2_000_000), progress=lines.append)
    assert section["driver"]["max_sustained_per_s"] == 200  # a no-op at 200/s is always sustained
    for name in ("postgres", "redis-atomic"):
        steps = section["stores"][name]["steps"]
        assert steps[0]["offered_per_s"] == 100 and steps[0]["achieved_per_s"] > 50
        assert steps[0]["errors"] == 0
    c = next(c for c in claims if c.key == "scalability")
    assert c.verdict != "not measured" and c.figures
    assert any("sweep postgres" in line for line in lines)

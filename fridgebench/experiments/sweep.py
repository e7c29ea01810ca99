"""sweep: throughput and tail latency as offered load grows (the seed's "scalability" row).

Each store gets the same population once, then open-loop steps at rising arrival rates. A step
is *sustained* when the store kept up (achieved >= 95% of offered, nothing unsent) and its p99
from the intended start stayed under the SLO. The driver itself has a ceiling on a small
machine, so the same steps run first against a no-op "store": a store whose knee sits at the
driver's ceiling is reported as "at least" that rate, never as its limit.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Callable

from fridgebench.engine.driver import run
from fridgebench.experiments.compare import executor
from fridgebench.measure.results import Claim
from fridgebench.measure.summary import summarize
from fridgebench.provision.base import Endpoints
from fridgebench.report.claims import blank_claims, fill
from fridgebench.stores import make_store
from fridgebench.workload.generator import Op, Workload
from fridgebench.workload.model import Scenario

DEFAULT_RATES = (500, 1000, 2000, 4000, 8000)


@dataclass(frozen=True)
class SweepOptions:
    scenario: Scenario
    stores: tuple[str, ...] = ("postgres", "redis-seed", "redis-atomic")
    rates: tuple[float, ...] = DEFAULT_RATES
    step_seconds: float = 3.0
    slo_p99_us: int = 10_000


def _step_load(sc: Scenario, rate: float, step_s: float):  # type: ignore[no-untyped-def]
    return sc.load.model_copy(update={"model": "open", "rate": rate, "warmup_seconds": 0.5,
                                      "duration_seconds": step_s})


def _row(rate: float, m: Any, slo_us: int) -> dict[str, Any]:
    o = m.overall
    li = o["latency_intended"]
    kept_up = o["throughput_per_s"] >= 0.95 * rate and not o["unsent"] and not o["unfinished"]
    return {"offered_per_s": rate, "achieved_per_s": o["throughput_per_s"], "p50_us": li.get("p50_us"),
            "p99_us": li.get("p99_us"), "errors": o["errors"], "unsent": o["unsent"],
            "late_sends": o["late_sends"], "sustained": bool(kept_up and (li.get("p99_us") or 0) <= slo_us)}


def _knee(rows: list[dict[str, Any]]) -> float | None:
    best = None
    for r in rows:
        if not r["sustained"]:
            break
        best = r["offered_per_s"]
    return best


async def run_sweep(endpoints: Endpoints, opts: SweepOptions, *,
                    progress: Callable[[str], None] | None = None) -> tuple[dict[str, Any], list[Claim]]:
    say = progress or (lambda line: None)
    sc = opts.scenario
    workload = Workload.from_catalogue(sc)
    population = workload.population()

    async def noop(op: Op) -> bool:
        return True

    driver_rows = []
    for rate in opts.rates:
        log, win = await run(noop, itertools.repeat(Op("get", "x")), _step_load(sc, rate, opts.step_seconds),
                             seed=sc.seed)
        driver_rows.append(_row(rate, summarize(log, win), opts.slo_p99_us))
    driver_knee = _knee(driver_rows)
    say(f"sweep: the driver alone sustains {driver_knee or 0:g} ops/s (p99 under {opts.slo_p99_us} µs)")

    stores: dict[str, Any] = {}
    for name in opts.stores:
        store = make_store(name, postgres_dsn=endpoints.postgres_dsn, redis_url=endpoints.redis_url,
                           pool_size=sc.load.concurrency)
        rows = []
        async with store:  # leaving it removes exactly what the store wrote
            await store.bulk_load(population, sc.ttl_seconds)
            ops = workload.ops(population)
            for rate in opts.rates:
                log, win = await run(executor(store, sc.ttl_seconds), ops, _step_load(sc, rate, opts.step_seconds),
                                     seed=sc.seed)
                row = _row(rate, summarize(log, win), opts.slo_p99_us)
                rows.append(row)
                say(f"sweep {name}: {rate:g} ops/s offered -> {row['achieved_per_s']:,.0f} achieved, "
                    f"p99 {row['p99_us']} µs{'' if row['sustained'] else ' (not sustained)'}")
                if not row["sustained"]:
                    break  # past the knee: higher rates only queue
            await store.discard_written()
        knee = _knee(rows)
        stores[name] = {"steps": rows, "max_sustained_per_s": knee,
                        "driver_bound": driver_knee is None or (knee is not None and knee >= driver_knee)}
    section = {"slo_p99_us": opts.slo_p99_us, "step_seconds": opts.step_seconds, "rates": list(opts.rates),
               "driver": {"steps": driver_rows, "max_sustained_per_s": driver_knee}, "stores": stores}
    return section, judge_scalability(section)


def judge_scalability(section: dict[str, Any]) -> list[Claim]:
    claims = blank_claims()
    st = section["stores"]
    pg = st.get("postgres")
    redis = [(n, s) for n, s in st.items() if n != "postgres"]
    if not pg or not redis:
        return list(claims.values())

    def show(s: dict[str, Any]) -> str:
        k = s["max_sustained_per_s"]
        if k is None:
            return "none of the steps"
        return f"{'≥ ' if s['driver_bound'] else ''}{k:g} ops/s"

    name, best = max(redis, key=lambda kv: kv[1]["max_sustained_per_s"] or 0)
    pk, rk = pg["max_sustained_per_s"] or 0, best["max_sustained_per_s"] or 0
    slo = section["slo_p99_us"] / 1000
    text = (f"highest offered load sustained with p99 ≤ {slo:g} ms on this machine: PostgreSQL {show(pg)}, "
            f"{name} {show(best)}; the driver alone: {section['driver']['max_sustained_per_s'] or 0:g} ops/s")
    if section["driver"]["max_sustained_per_s"] is None:
        verdict = "inconclusive"
        text += " — the driver alone could not sustain the lowest step: the machine is too busy to judge"
    elif best["driver_bound"] and pg["driver_bound"]:
        verdict = "inconclusive"
        text += " — both reach the driver's ceiling; run the load from more cores (roadmap: fridgebench load)"
    elif pg["max_sustained_per_s"] is None and best["max_sustained_per_s"] is None:
        verdict = "inconclusive"
        lowest = min(section["rates"]) if section.get("rates") else None
        text += (" — neither store sustained even the lowest step"
                 + (f" ({lowest:g} ops/s)" if lowest is not None else "")
                 + " though the driver did: a store far away (network round trips above the p99 limit) or a "
                   "busy machine; nothing here tells them apart")
    elif rk >= 2 * max(pk, 1):
        verdict = "supported"
        text += " — Redis sustained at least twice PostgreSQL's load"
    elif rk > pk:
        verdict = "partly supported"
        text += " — Redis sustained more than PostgreSQL, but less than twice its load"
    else:
        verdict = "contradicted"
        text += " — PostgreSQL sustained as much load as Redis, or more"
    text += "; single node only — horizontal scaling (replicas, cluster) not measured"
    fill(claims, "scalability", command="compare --sweep", verdict=verdict, measured=text,
         figures={n: s["max_sustained_per_s"] for n, s in st.items()})
    return list(claims.values())

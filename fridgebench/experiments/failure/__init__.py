"""``fridgebench failure``: crash, hang and network faults under load -- sessions lost, time to recover.

The package composes provision (servers per durability mode, :mod:`fridgebench.provision.fleet`),
faults (:mod:`fridgebench.faults`), stores, the open-loop engine and measure:

* :mod:`.plan` -- options, the faults it knows, the cases (store x fault x durability x client);
* :mod:`.run` -- one case under load: inject, heal, recover, read back; and the whole run;
* :mod:`.history` -- every operation and its outcome (acknowledged / definite failure / indeterminate);
* :mod:`.accounting` -- Jepsen-style: sessions lost, adds lost, failed writes that appeared, stale;
* :mod:`.timeline` -- per-100 ms successes, errors by class, p99; recovery figures;
* :mod:`.claims` -- the seed's failure recovery and fault isolation rows.

:func:`section` turns a run into the results document's ``failure`` section; :func:`timeline_csv`
and :func:`hlog_files` give the interval files written next to it.
"""

from __future__ import annotations

from typing import Any

from fridgebench.experiments.failure.plan import (DEFAULT_FAULTS, DEFAULT_STORES, FAULT_TARGET, FAULTS, Case,
                                                  FailureOptions, Plan, parse_clients, parse_faults, plan)
from fridgebench.experiments.failure.run import FailureResult, run_failure
from fridgebench.faults.durability import MODES, NOT_PRODUCIBLE, SEED_DEPLOYMENT

__all__ = ["DEFAULT_FAULTS", "DEFAULT_STORES", "FAULTS", "FAULT_TARGET", "Case", "FailureOptions", "FailureResult",
           "Plan", "parse_clients", "parse_faults", "plan", "run_failure", "section", "timeline_csv", "hlog_files",
           "expected_seconds", "short_preset"]


def expected_seconds(p: Plan, opts: FailureOptions) -> float:
    """A rough duration: each case's warm-up, measured window and a few seconds of loading and reading."""
    load = opts.scenario.load
    per = load.warmup_seconds + load.duration_seconds + 2.0 + opts.scenario.population.sessions / 10_000
    return len(p.cases) * per + 3.0 * len(p.servers())


def section(result: FailureResult, opts: FailureOptions) -> dict[str, Any]:
    from fridgebench.faults.proxy import FAULTS as PROXY_FAULTS

    used_modes = {c.case.mode for c in result.cases}
    return {
        "options": opts.to_dict(),
        "faults": {n: {"what": f.what, "acts_on": sorted(f.kinds)} for n, f in FAULTS.items() if n in opts.faults},
        "durability_modes": {m: MODES[m].to_dict() for m in sorted(used_modes) if m in MODES},
        "seed_deployment": SEED_DEPLOYMENT,
        "not_producible_here": list(NOT_PRODUCIBLE),
        "servers": result.servers,
        "proxy": ({"where": "in fridgebench's own event loop (cannot outlive it)", "added_latency": result.proxy_overhead}
                  if any(c.case.fault in PROXY_FAULTS for c in result.cases) else None),
        "plan_notes": result.plan.notes,
        "skipped": result.plan.skipped,
        "cases": [c.to_dict() for c in result.cases],
    }


def timeline_csv(section_doc: dict[str, Any]) -> str:
    """Every case's per-100 ms timeline: one row per case and bucket."""
    lines = ["case,t_s,ops,ok,not_found,errors,errors_by_class,p50_us,p99_us,max_us"]
    for c in section_doc["cases"]:
        for b in c["timeline"]:
            cls = ";".join(f"{k}={v}" for k, v in sorted(b["errors_by_class"].items()))
            lines.append(f"{c['id']},{b['t_s']},{b['ops']},{b['ok']},{b['not_found']},{b['errors']},{cls},"
                         f"{_v(b['p50_us'])},{_v(b['p99_us'])},{_v(b['max_us'])}")
    return "\n".join(lines) + "\n"


def _v(x: Any) -> str:
    return "" if x is None else f"{x:g}"


def hlog_files(result: FailureResult) -> dict[str, str]:
    """``<case id>.hlog``: HdrHistogram interval logs (100 ms intervals, µs from the intended start)."""
    from fridgebench.experiments.failure.timeline import hlog_text

    return {f"{c.case.id}.hlog": hlog_text(c.interval_histograms, c.measure_start_epoch, c.case.id)
            for c in result.cases}


def short_preset(scenario: Any, stores: tuple[str, ...], external: frozenset[str]) -> FailureOptions:
    """``compare --full``'s short failure set: a crash of each compared store's server (PostgreSQL
    ``sync``, Redis ``none``: the seed's row) and of Redis under the two fallback designs (the seed's
    fault isolation claim); a reset through the fault proxy instead where a server is external
    (fridgebench crashes only servers it started). 6 s measured per case, 2,000 sessions, 500 ops/s."""
    from fridgebench.workload.model import load_scenario

    sc = scenario if scenario.load.model == "open" else load_scenario("session-lifecycle")
    sc = sc.with_overrides({"load.duration_seconds": 6.0, "load.warmup_seconds": 0.5, "load.rate": 500.0,
                            "population.sessions": 2000})
    chosen = [s for s in ("postgres",) if s in stores]
    chosen += [s for s in ("redis-atomic", "redis-seed") if s in stores][:1]
    chosen += ["redis-fallback", "pg-redis-cache"]
    targets = {FAULT_TARGET[s] for s in chosen}
    fault = "reset" if targets & external else "crash"
    return FailureOptions(scenario=sc, faults=(fault,), stores=tuple(dict.fromkeys(chosen)),
                          durability=tuple(m for k, m in (("redis", "none"), ("postgres", "sync"))
                                           if k in targets and k not in external),
                          down_s=1.5, at_s=1.5, measure_proxy=fault == "reset")

"""The seed's failure rows, judged from the cases a failure run measured.

* **failure recovery** -- PostgreSQL "data kept" vs Redis "sessions lost": the ``crash`` cases of
  the ``postgres`` store and of a single-server Redis store, per durability mode: acknowledged
  sessions lost, and how soon the store served again. What an OS crash, a power loss or a pod
  deletion would lose is stated from each mode's documentation and the seed's Helm values, never
  presented as measured.
* **fault isolation** -- "when Redis fails, PostgreSQL keeps working": the seed's Phase 2
  (``redis-fallback``) and PostgreSQL with a Redis cache (``pg-redis-cache``), side by side, under
  every Redis fault the run injected: requests failed or hung during the fault, sessions lost,
  "no such session" answers for live sessions, stale sessions afterwards.
"""

from __future__ import annotations

from typing import Any

from fridgebench.faults.durability import MODES, SEED_DEPLOYMENT_SHORT
from fridgebench.measure.results import Claim
from fridgebench.report.claims import blank_claims, fill

REDIS_SINGLE = ("redis-atomic", "redis-seed")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} s"


def judge(cases: list[dict[str, Any]]) -> list[Claim]:
    claims = blank_claims()
    _failure_recovery(claims, cases)
    _fault_isolation(claims, cases)
    return [c for c in claims.values() if c.key in ("failure_recovery", "fault_isolation")]


def _first_client(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (store, fault, durability): the case with the first client behaviour run."""
    seen: dict[tuple[str, str, str, str | None], dict[str, Any]] = {}
    for c in cases:
        seen.setdefault((c["store"], c["fault"], c["durability"], c.get("policy")), c)
    return list(seen.values())


def _failure_recovery(claims: dict[str, Claim], cases: list[dict[str, Any]]) -> None:
    crashes = [c for c in _first_client(cases) if c["fault"] == "crash"]
    pg = [c for c in crashes if c["store"] == "postgres"]
    redis_store = next((s for s in REDIS_SINGLE if any(c["store"] == s for c in crashes)), None)
    rd = [c for c in crashes if c["store"] == redis_store]
    if not pg and not rd:
        return
    parts = []
    figures: dict[str, Any] = {"postgres": {}, "redis": {}, "redis_store": redis_store}
    for c in pg + rd:
        a, r = c["accounting"], c["recovery"]
        name = "PostgreSQL" if c["store"] == "postgres" else "Redis"
        pre = a["sessions_acknowledged_before_fault"]
        lost_pre = a["sessions_lost_by_phase"]["before"]
        ready = (c.get("server") or {}).get("server_ready_s")
        parts.append(f"{name} `{c['durability']}`: {lost_pre:,} of {pre:,} sessions acknowledged before the crash "
                     f"lost ({a['sessions_lost']:,} lost in all, {a['adds_lost']:,} acknowledged adds lost); served "
                     f"again {_s(r['first_success_after_heal_s'])} after the restart began"
                     + (f" (server ready in {_s(ready)})" if ready is not None else ""))
        figures["postgres" if name == "PostgreSQL" else "redis"][c["durability"]] = {
            "sessions_acknowledged_before_crash": pre, "lost_of_those": lost_pre, "sessions_lost": a["sessions_lost"],
            "adds_lost": a["adds_lost"], "first_success_after_restart_s": r["first_success_after_heal_s"],
            "server_ready_s": ready, "case": c["id"]}
    promises = "; ".join(f"`{m}`: {MODES[m].os_crash}" for m in dict.fromkeys(c["durability"] for c in pg + rd)
                         if m in MODES)
    text = ("after a process crash (SIGKILL, restart on the same data): " + "; ".join(parts)
            + (f". An OS crash or power loss cannot be produced here; documented: {promises}" if promises else "")
            + ". Kubernetes: " + SEED_DEPLOYMENT_SHORT)
    pg_kept = all(f["lost_of_those"] == 0 and f["adds_lost"] == 0 for m, f in figures["postgres"].items() if m == "sync")
    none = figures["redis"].get("none")
    persisted = {m: f for m, f in figures["redis"].items() if m in ("aof-everysec", "aof-always")}
    if not pg or not rd:
        verdict = "inconclusive"
        text = "only one side measured: " + text
    elif figures["postgres"].get("sync") and not pg_kept:
        verdict = "contradicted"
    elif none is not None and none["sessions_acknowledged_before_crash"] and \
            none["lost_of_those"] >= 0.99 * none["sessions_acknowledged_before_crash"]:
        verdict = "partly supported" if any(f["lost_of_those"] == 0 for f in persisted.values()) else "supported"
    elif persisted and all(f["lost_of_those"] == 0 for f in persisted.values()):
        verdict = "contradicted"  # with the chart's AOF a process crash loses nothing
    else:
        verdict = "inconclusive"
    fill(claims, "failure_recovery", command="failure", verdict=verdict, measured=text, figures=figures)


def _fault_isolation(claims: dict[str, Claim], cases: list[dict[str, Any]]) -> None:
    rel = [c for c in cases if c["store"] in ("redis-fallback", "pg-redis-cache") and c["target"] == "redis"]
    if not rel:
        return
    figures: dict[str, list[dict[str, Any]]] = {"redis-fallback": [], "pg-redis-cache": []}
    for c in rel:
        a, d = c["accounting"], c["during"]
        figures[c["store"]].append({
            "case": c["id"], "fault": c["fault"], "policy": c.get("policy"), "durability": c["durability"],
            "client_timeout_s": c["client"]["timeout_s"], "error_rate_during": d["error_rate"],
            "p99_during_us": d["p99_us"], "longest_wait_s": d["longest_wait_s"], "sessions_lost": a["sessions_lost"],
            "sessions_lost_created_during": a["sessions_lost_by_phase"]["during"],
            "false_not_found": a["false_not_found"], "sessions_stale": a["sessions_stale"], "adds_lost": a["adds_lost"],
            "fallbacks": (c.get("store_stats") or {}).get("fallbacks")})
    text = "; ".join(_store_summary(store, fs) for store, fs in figures.items() if fs)
    seed, fix = figures["redis-fallback"], figures["pg-redis-cache"]

    def bad_data(fs: list[dict[str, Any]]) -> bool:
        return any(f["sessions_lost"] or f["false_not_found"] or f["adds_lost"] for f in fs)

    def bad_service(fs: list[dict[str, Any]]) -> bool:
        return any((f["error_rate_during"] or 0) > 0.05 or (f["longest_wait_s"] or 0) >= 1.0 for f in fs)

    if seed:
        verdict = "contradicted" if bad_data(seed) else "partly supported" if bad_service(seed) else "supported"
    else:
        verdict = "partly supported" if bad_data(fix) or bad_service(fix) else "supported"
        text = "the seed's own fallback (redis-fallback) was not measured; " + text
    fill(claims, "fault_isolation", command="failure", verdict=verdict, measured=text, figures=figures)


def _store_summary(store: str, fs: list[dict[str, Any]]) -> str:
    """One store across the Redis faults measured: the worst case of each figure, and the hang."""
    faults = ", ".join(dict.fromkeys(f["fault"] + (f" {f['policy']}" if f.get("policy") else "") for f in fs))
    name = "the seed's Phase 2 (redis-fallback)" if store == "redis-fallback" else "PostgreSQL with a Redis cache (pg-redis-cache)"
    worst = max(fs, key=lambda f: f["error_rate_during"] or 0)
    out = [f"{name}, under {faults}: at most {_pct(worst['error_rate_during'])} of requests failed during a fault"]
    lost = max(fs, key=lambda f: f["sessions_lost"])
    if lost["sessions_lost"]:
        out.append(f"up to {lost['sessions_lost']:,} acknowledged sessions lost ({lost['fault']}, {lost['durability']}; "
                   f"{lost['sessions_lost_created_during']:,} of them created during the fault)")
    else:
        out.append("no acknowledged session lost")
    nf = max(fs, key=lambda f: f["false_not_found"])
    if nf["false_not_found"]:
        out.append(f"up to {nf['false_not_found']:,} 'no such session' answers for live sessions ({nf['fault']})")
    stale = max(fs, key=lambda f: f["sessions_stale"])
    if stale["sessions_stale"]:
        out.append(f"up to {stale['sessions_stale']:,} stale sessions afterwards ({stale['fault']}, {stale['durability']}: "
                   f"{stale['adds_lost']:,} acknowledged adds hidden by an old copy)")
    timed = [f for f in fs if f["client_timeout_s"] is not None]
    if timed:
        slow = max(timed, key=lambda f: f["p99_during_us"] or 0)
        out.append(f"p99 during a fault up to {_ms(slow['p99_during_us'])} with a {slow['client_timeout_s']:g} s client "
                   f"timeout ({slow['fault']})")
    for f in fs:
        if f["client_timeout_s"] is None and f["fault"] in ("pause", "blackhole", "latency"):
            fell = f" and the fallback ran {f['fallbacks']:,} times" if f["fallbacks"] is not None else ""
            out.append(f"with the seed's client (no timeout) a {f['fault']} hung requests for up to "
                       f"{_s(f['longest_wait_s'])}{fell}")
            break
    return ", ".join(out)


def _ms(us: float | None) -> str:
    if us is None:
        return "-"
    return f"{us / 1000:,.1f} ms" if us >= 1000 else f"{us:,.0f} µs"

"""Terminal tables (Rich) rendered from results documents' sections — never from live objects."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from fridgebench.report.claims import MEASURED_BY

VERDICT_STYLE = {"supported": "green", "contradicted": "red", "partly supported": "yellow", "inconclusive": "magenta",
                 "not measured": "dim"}


def _us(v: Any) -> str:
    if v is None:
        return "-"
    v = float(v)
    if v >= 10_000:
        return f"{v / 1000:,.0f} ms"
    if v >= 1000:
        return f"{v / 1000:,.2f} ms"
    return f"{v:,.0f} µs"


def render_servers(servers: list[dict[str, Any]], console: Console) -> None:
    t = Table(title="Stores", title_justify="left", show_edge=False)
    for col in ("store", "source", "version", "address", "durability", "provisioned"):
        t.add_column(col)
    for s in servers:
        dur = ", ".join(f"{k}={v}" for k, v in (s.get("durability") or {}).items()
                        if k in ("fsync", "synchronous_commit", "appendonly", "appendfsync", "save"))
        took = f"{s['started_in_s']:.1f} s" if s.get("started_in_s") is not None else "external"
        t.add_row(s["kind"], s["source"], s.get("version", ""), f"{s.get('host')}:{s.get('port')}", dur, took)
    console.print(t)


def render_compare(section: dict[str, Any], console: Console, *, warnings: list[str] | None = None) -> None:
    stores = section["stores"]
    ov = section.get("driver_overhead") or {}
    for name, run in stores.items():
        o = run["overall"]
        load = (f"open loop, {o['offered_rate_per_s']:g} ops/s offered" if o["model"] == "open"
                else f"closed loop, {o['concurrency']} workers")
        t = Table(title=f"{name} — {load}, {o['measured_seconds']:g} s measured, "
                        f"{o['throughput_per_s']:,.0f} ops/s achieved",
                  title_justify="left", show_edge=False)
        for col in ("op", "ops/s", "p50", "p90", "p99", "p99.9", "max", "service p50", "errors", "late"):
            t.add_column(col, justify="right" if col != "op" else "left")
        for op, r in run["ops"].items():
            li, ls = r["latency_intended"], r["latency_service"]
            t.add_row(op, f"{r['throughput_per_s']:,.0f}", _us(li.get("p50_us")), _us(li.get("p90_us")),
                      _us(li.get("p99_us")), _us(li.get("p99_9_us")), _us(li.get("max_us")),
                      _us(ls.get("p50_us")), str(r["errors"]), str(r["late"]))
        console.print(t)
        c = run["correctness"]
        style = "red" if c["lost_updates"] else "green"
        extra = ""
        if run.get("recipe_cache"):
            extra = f"; recipe cache hit ratio {run['recipe_cache']['hit_ratio']:.1%}"
        console.print(f"  correctness: [{style}]{c['lost_updates']} lost of {c['adds_checked']:,} acknowledged "
                      f"ingredient adds[/]{extra}; unsent {o['unsent']}, unfinished {o['unfinished']}, "
                      f"errors {o['errors']}")
        for cls, e in run.get("errors", {}).items():
            console.print(f"  [red]{cls}[/]: {e['count']} (e.g. {e['sample']})")
        console.print()
    comps = section.get("comparisons") or []
    if comps:
        # open loop: every store is offered the same rate, so equal throughput says nothing about
        # capacity; the ratio only means something when workers run back to back (closed loop)
        closed = all(run["overall"]["model"] == "closed" for run in stores.values())
        basis = "latency per operation, back to back" if closed else "latency from intended start"
        # the explanation goes under the table: as its title it wrapped mid-phrase over the narrow table
        t = Table(title="PostgreSQL ÷ Redis", title_justify="left", show_edge=False,
                  caption=f"{basis}; >1 means Redis is faster", caption_justify="left")
        flags = not all(c["significant"] for c in comps)  # a column only when some ratio needs the warning
        cols = ["op", "vs", "p50 ratio", "95% CI", "p99 ratio", *(["throughput ratio"] if closed else []),
                *(["note"] if flags else [])]
        for col in cols:
            t.add_column(col, justify="right" if col not in ("op", "vs", "note") else "left")
        for c in comps:
            ci = c.get("p50_ratio_ci95")
            thr = [f"{c['throughput_ratio']:g}" if c["throughput_ratio"] else "-"] if closed else []
            note = ["" if c["significant"] else "[yellow]not significant[/]"] if flags else []
            t.add_row(c["op"], c["other"], f"{c['p50_ratio']:g}x", f"{ci[0]:g}–{ci[1]:g}" if ci else "-",
                      f"{c['p99_ratio']:g}x", *thr, *note)
        console.print(t)
        if not closed:
            console.print("[dim]same offered load for every store: throughput is compared by the closed-loop "
                          "`saturation` scenario and by --sweep[/]")
    if ov:
        d, s = ov.get("dispatch_lag", {}), ov.get("service", {})
        console.print(f"[dim]driver overhead (no-op at {ov.get('rate_per_s'):g} ops/s): dispatch lag p50 "
                      f"{_us(d.get('p50_us'))}, p99 {_us(d.get('p99_us'))}; per-op bookkeeping p50 "
                      f"{_us(s.get('p50_us'))}[/]")
    for w in warnings or []:
        console.print(f"[yellow]warning:[/] {w}")


def render_claims(claims: list[dict[str, Any]], console: Console) -> None:
    """The seed's table as a list: readable at any terminal width (and in CI logs)."""
    console.print("[bold]The seed's claims, measured[/]")
    for c in claims:
        st = VERDICT_STYLE.get(c["verdict"], "")
        console.print(f"  [bold]{c['topic']}[/] — seed: PostgreSQL “{c['seed_postgres']}”, "
                      f"Redis “{c['seed_redis']}” → [{st}]{c['verdict']}[/]")
        if c["verdict"] != "not measured":
            console.print(f"    {c['measured']}", soft_wrap=False)
        else:
            console.print(f"    [dim]measured by: {MEASURED_BY.get(c['key'], '?')}[/]")


def render_sweep(section: dict[str, Any], console: Console) -> None:
    t = Table(title=f"Offered load sweep — sustained: kept up and p99 ≤ {_us(section['slo_p99_us'])}",
              title_justify="left", show_edge=False)
    t.add_column("store")
    for r in section["rates"]:
        t.add_column(f"{r:g}/s", justify="right")
    t.add_column("max sustained", justify="right")
    for name, s in [("driver (no-op)", section["driver"]), *section["stores"].items()]:
        cells = []
        for r in section["rates"]:
            step = next((x for x in s["steps"] if x["offered_per_s"] == r), None)
            if step is None:
                cells.append("[dim]-[/]")
            else:
                style = "" if step["sustained"] else "red"
                cells.append(f"[{style}]p99 {_us(step['p99_us'])}[/]" if style else f"p99 {_us(step['p99_us'])}")
        k = s.get("max_sustained_per_s")
        bound = "≥ " if s.get("driver_bound") and name != "driver (no-op)" else ""
        t.add_row(name, *cells, f"{bound}{k:g}/s" if k else "none")
    console.print(t)

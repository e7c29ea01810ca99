"""Terminal tables (Rich) rendered from results documents' sections — never from live objects."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from fridgebench.report.claims import MEASURED_BY, NOT_MEASURED

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
        pool = run.get("client_pool")
        if pool and "max_overflow" in pool:
            console.print(f"  client pool (the app's default): {pool['class']} of {pool['size']} + {pool['max_overflow']} "
                          f"overflow, {pool['timeout_s']:g} s wait; {pool['connections_opened']:,} server connections "
                          "opened in the run (overflow connections are closed again when they come back to a full pool)")
        elif pool:
            console.print(f"  client pool (the app's default): {pool['class']}, at most {pool['max_connections']:,} "
                          f"connections; {pool['connections_made']:,} made in the run")
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
        # one PostgreSQL store (the server path alone, as before): "vs" names the Redis store; several
        # (both paths): the pair and its path
        paired = len({c.get("baseline", "postgres") for c in comps}) > 1
        first = ["path", "pair"] if paired else ["vs"]
        cols = ["op", *first, "p50 ratio", "95% CI", "p99 ratio", *(["throughput ratio"] if closed else []),
                *(["note"] if flags else [])]
        for col in cols:
            t.add_column(col, justify="right" if col not in ("op", "vs", "path", "pair", "note") else "left")
        previous = None
        for c in comps:
            ci = c.get("p50_ratio_ci95")
            thr = [f"{c['throughput_ratio']:g}" if c["throughput_ratio"] else "-"] if closed else []
            note = ["" if c["significant"] else "[yellow]not significant[/]"] if flags else []
            pair = (c.get("path", "server"), f"{c.get('baseline', 'postgres')} ÷ {c['other']}")
            who = list(pair) if paired else [c["other"]]
            if paired and previous is not None and pair != previous:
                t.add_section()
            previous = pair
            t.add_row(c["op"], *who, f"{c['p50_ratio']:g}x", f"{ci[0]:g}–{ci[1]:g}" if ci else "-",
                      f"{c['p99_ratio']:g}x", *thr, *note)
        console.print(t)
        fix = section.get("fix")
        if fix and fix.get("by_op"):
            parts = [f"{'read' if op == 'get' else op} "
                     + (f"{r['closed_by_fix']:.0%}" if r["closed_by_fix"] >= 0
                        else f"none (the fixed code was {-r['closed_by_fix']:.0%} of the gap slower)")
                     for op, r in fix["by_op"].items() if "closed_by_fix" in r and r.get("changed_by_fix", True)]
            if parts:
                console.print(f"[bold]{fix['fixed']}[/] (the two cheapest fixes) closes this share of the gap between "
                              f"{fix['baseline']} and {fix['redis']} (p50): {', '.join(parts)}; the rest remains for Redis "
                              "to close (or for a lean query: compare the server path's postgres)")
        for path, info in (section.get("paths") or {}).items():
            if info.get("rate_note") and info.get("offered_rate_per_s"):
                console.print(f"[dim]{path} path: {info['offered_rate_per_s']:g} ops/s offered — {info['rate_note']}[/]")
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
        if c["verdict"] != "not measured" or c.get("measured", NOT_MEASURED) != NOT_MEASURED:
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


def _verbs(counts: dict[str, float]) -> str:
    return ", ".join(f"{k}" if abs(v - 1) < 0.01 else f"{k} {v:g}" for k, v in counts.items())


def _num(v: Any) -> str:
    return "-" if v is None else f"{v:g}"


def render_profile(profile: dict[str, Any], console: Console) -> None:
    """Where the time goes: one operation of each kind on each store, taken apart."""
    t = Table(title=f"Where the time goes — one operation alone (mean of {profile['reps']}, after "
                    f"{profile['warmup']} warm-up)", title_justify="left", show_edge=False,
              caption="round trips and what was sent: the store's own connections; WAL flushes (commits of "
                      "transactions that wrote) and server time: the servers' counters",
              caption_justify="left")
    for col in ("store", "op", "round trips", "sent", "WAL flushes", "server time", "client CPU", "wall"):
        t.add_column(col, justify="left" if col in ("store", "op", "sent") else "right")
    previous = None
    for name, p in profile["stores"].items():
        if previous is not None:
            t.add_section()
        previous = name
        servers = [k for k in ("postgres", "redis") if any(k in row for row in p["ops"].values())]
        for op, row in p["ops"].items():
            trips, sent, flushes, server_us = [], [], [], []
            for k in servers:
                w = row.get(k) or {}
                sv = w.get("server") or {}
                label = ("P " if k == "postgres" else "R ") if len(servers) > 1 else ""
                trips.append(f"{label}{_num(w.get('round_trips'))}")
                what = w.get("by_statement") or w.get("by_command")
                if what:
                    sent.append(f"{label}{_verbs(what)}")
                if k == "postgres":
                    flushes.append(_num(sv.get("write_transactions")))
                if sv.get("exec_us") is not None:
                    server_us.append(f"{label}{_us(sv['exec_us'])}")
            t.add_row(name, op, " + ".join(trips), "; ".join(sent) or "-", " ".join(flushes) or "-",
                      " + ".join(server_us) or "-", _us(row.get("client_cpu_us")), _us(row.get("wall_us")))
    console.print(t)

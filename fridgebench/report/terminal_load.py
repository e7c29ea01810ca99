"""Terminal tables for a ``load`` results section (Rich), rendered from the results document only."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from fridgebench.report.terminal import _us, render_servers


def render_load(doc: dict[str, Any], console: Console) -> None:
    section = doc["sections"]["load"]
    render_servers(doc["environment"]["servers"], console)
    rate = section.get("offered_rate_per_s")
    console.print(f"[bold]Locust[/] {section.get('locust_version', '')}, {section['mode']}: {section['users']} users "
                  f"(spawned at {section['spawn_rate_per_s']:g}/s), "
                  + (f"paced to {rate:g} ops/s offered in all" if rate else "back to back (no pacing)"))
    for name, run in section["stores"].items():
        o = run["overall"]
        achieved = f"{o['achieved_rate_per_s']:,.0f} ops/s achieved"
        if o.get("offered_rate_per_s"):
            achieved += f" of {o['offered_rate_per_s']:g} offered ({o['achieved_vs_offered']:.0%})"
        t = Table(title=f"{name} — {o['users']} users, {o['measured_seconds']} s measured, {achieved}",
                  title_justify="left", show_edge=False)
        for col in ("op", "ops/s", "p50", "p90", "p99", "p99.9", "max", "not found", "errors"):
            t.add_column(col, justify="left" if col == "op" else "right")
        for op, r in run["ops"].items():
            li = r["latency_service"]
            t.add_row(op, f"{r['throughput_per_s']:,.0f}", _us(li.get("p50_us")), _us(li.get("p90_us")),
                      _us(li.get("p99_us")), _us(li.get("p99_9_us")), _us(li.get("max_us")), f"{r['not_found']:,}",
                      str(r["errors"]))
        console.print(t)
        c = run["correctness"]
        style = "red" if c["lost_updates"] else "green"
        console.print(f"  correctness: [{style}]{c['lost_updates']} lost of {c['adds_checked']:,} acknowledged "
                      f"ingredient adds[/] (across every process)")
        g = run["generator"]
        procs = ", ".join(f"{p['process']} {p['cpu_percent']:.0f}%" + (f" (+{p['cpu_wait_percent']:.0f}% waiting)"
                          if p.get("cpu_wait_percent") else "") if p.get("cpu_percent") is not None
                          else f"{p['process']} ?" for p in g["processes"])
        if section["mode"] == "distributed":
            procs += f"; master {g['master'].get('cpu_percent', '?')}%"
        style = "yellow" if g["limit"] in ("load generator", "machine") else "dim"
        console.print(f"  [{style}]load generator CPU (one core = 100%): {procs}"
                      + (f"; machine {g['host_cpu_percent']:.0f}%" if g.get("host_cpu_percent") is not None else "")
                      + f" — {g['verdict']}[/]")
        for cls, e in run.get("errors", {}).items():
            console.print(f"  [red]{cls}[/]: {e['count']} (e.g. {e['sample']})")
        console.print()
    console.print(f"[dim]{section['measurement']}[/]")
    for w in doc.get("warnings") or []:
        console.print(f"[yellow]warning:[/] {w}")

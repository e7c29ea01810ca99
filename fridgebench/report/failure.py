"""Terminal tables for a failure run, rendered from the results document's ``failure`` section."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def _ms(us: Any) -> str:
    if us is None:
        return "-"
    us = float(us)
    if us >= 10_000:
        return f"{us / 1000:,.0f} ms"
    if us >= 1000:
        return f"{us / 1000:,.1f} ms"
    return f"{us:,.0f} µs"


def _s(v: Any) -> str:
    return "-" if v is None else f"{float(v):.2f} s"


def _pct(v: Any) -> str:
    return "-" if v is None else f"{float(v):.1%}"


def _n(v: int, style: str = "red") -> str:
    return f"[{style}]{v:,}[/]" if v else "0"


def render_durability(section: dict[str, Any], console: Console) -> None:
    modes = section.get("durability_modes") or {}
    if not modes:
        return
    t = Table(title="Durability modes (settings passed to the servers; promises from their documentation)",
              title_justify="left", show_edge=False)
    for col in ("mode", "settings", "a process crash loses (measured below)", "an OS crash / power loss loses (stated)"):
        t.add_column(col, overflow="fold")
    for name, m in modes.items():
        settings = " ".join(f"{k}={v!r}" if v == "" else f"{k}={v}" for k, v in m["settings"].items())
        t.add_row(f"{m['kind']} {name}", settings, m["process_crash_promise"], m["os_crash_or_power_loss_promise"])
    console.print(t)
    sources = sorted({m["source"] for m in modes.values()})
    console.print(f"[dim]sources: {' ; '.join(sources)}[/]", soft_wrap=True)


def render_failure(section: dict[str, Any], console: Console, *, warnings: list[str] | None = None) -> None:
    render_durability(section, console)
    def table(title: str, cols: tuple[str, ...]) -> Table:
        t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
        t.add_column("case (store, fault, durability, client)", no_wrap=True)
        for col in cols:
            t.add_column(col, justify="right")
        return t

    service = table("Service: requests that arrived during the fault, and the recovery after the heal",
                    ("errors", "p99", "longest wait", "1st success", "p99 normal", "server ready"))
    data = table("Data: every session read back after recovery, every write judged (Jepsen-style)",
                 ("lost", "of pre-fault", "adds lost", "'none' (live)", "stale", "appeared", "indet.", "TTL"))
    for c in section["cases"]:
        a, d, r = c["accounting"], c["during"], c["recovery"]
        client = "seed client" if c["client"]["timeout_s"] is None else f"{c['client']['timeout_s']:g} s/{c['client']['retries']}r"
        key = (f"{c['store']} {c['fault']}{' ' + c['policy'] if c.get('policy') else ''} "
               f"[dim]{c['durability']} {client}[/]")
        service.add_row(key, f"{d['errors']:,} ({_pct(d['error_rate'])})", _ms(d["p99_us"]), _s(d["longest_wait_s"]),
                        _s(r["first_success_after_heal_s"]), _s(r["p99_back_within_1_5x_after_heal_s"]),
                        _s((c.get("server") or {}).get("server_ready_s")))
        pre = a["sessions_acknowledged_before_fault"]
        data.add_row(key, f"{_n(a['sessions_lost'])}/{a['sessions_judged']:,}",
                     f"{_n(a['sessions_lost_by_phase']['before'])}/{pre:,}", _n(a["adds_lost"]),
                     _n(a["false_not_found"], "yellow"), _n(a["sessions_stale"], "yellow"),
                     _n(a["failed_writes_appeared"]),
                     f"{a['indeterminate_writes']:,}/{a['indeterminate_writes_applied']:,}", f"{a['ttl_expired_excluded']:,}")
    console.print(service)
    console.print("[dim]1st success: from the heal to the first request sent after it that succeeded; p99 normal: "
                  "from the heal until 500 ms of arrivals had no error and a p99 within 1.5x of the pre-fault p99 "
                  "(100 ms steps); server ready: restart and data load[/]", soft_wrap=True)
    console.print(data)
    console.print("[dim]lost: acknowledged sessions gone / sessions judged; of pre-fault: of those acknowledged before "
                  "the fault; 'none' for live: reads and writes answered 'no such session' while it was live; stale: "
                  "an older ingredient list than the last acknowledged; appeared: definitely failed writes whose effect "
                  "is there; indet.: writes that timed out or lost their connection / of those, applied; TTL: sessions "
                  "whose TTL ran out, excluded[/]", soft_wrap=True)
    console.print("[dim]timelines per 100 ms, errors by class and every figure: results.json, timeline.csv, "
                  "<case>.hlog[/]", soft_wrap=True)
    for c in section["cases"]:
        where = c.get("where_sessions_are")
        if where:
            parts = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in where.items()
                              if isinstance(v, int) and k != "sessions")
            console.print(f"  {c['id']}: where the sessions are — {parts}", soft_wrap=True)
        errs = c["during"]["errors_by_class"]
        if errs:
            console.print(f"  [dim]{c['id']}: errors during the fault by class: "
                          f"{', '.join(f'{k} {v:,}' for k, v in sorted(errs.items()))}[/]", soft_wrap=True)
        for note in c.get("heal_notes") or []:
            console.print(f"  [yellow]{note}[/]")
    proxy = section.get("proxy")
    if proxy and proxy.get("added_latency"):
        for kind, o in proxy["added_latency"].items():
            console.print(f"[dim]fault proxy ({proxy['where']}), no fault, {o['request']} on one connection: p50 "
                          f"{o['direct_p50_us']:g} µs direct vs {o['proxied_p50_us']:g} µs through the proxy "
                          f"(+{o['added_p50_us']:g} µs; p99 {o['direct_p99_us']:g} vs {o['proxied_p99_us']:g} µs) "
                          f"[{kind}][/]", soft_wrap=True)
    for s in section.get("skipped") or []:
        console.print(f"[dim]skipped {s['store']} × {s['fault']}: {s['why']}[/]", soft_wrap=True)
    for n in section.get("plan_notes") or []:
        console.print(f"[dim]note: {n}[/]", soft_wrap=True)
    console.print("[bold]Not produced on this machine[/] (stated, not measured):")
    for x in section.get("not_producible_here") or []:
        console.print(f"  {x['fault']}: {x['why']}", soft_wrap=True)
    console.print(f"  [dim]{section.get('seed_deployment', '')}[/]", soft_wrap=True)
    for w in warnings or []:
        console.print(f"[yellow]warning:[/] {w}", soft_wrap=True)

"""The report's ``profile`` blocks: where the time of one operation goes, per store (``compare --profile``).

The profile is written by ``compare`` inside its section (``sections.compare.profile``); a run that
holds it at the top level (``sections.profile``) is read the same way. One table per operation:
each store's round trips, what it sent, the commits that waited for a WAL flush, the servers' own
execution time, the client's CPU and the wall time of the operation alone — and, when the numbers
show it, one sentence saying why the app path is slower than the server path.
"""

from __future__ import annotations

from typing import Any

from fridgebench.measure.runs import Run
from fridgebench.report.blocks import Block, Heading, Para, Table
from fridgebench.report.sections import Labels, us

SERVER_WORDS = {"postgres": "PostgreSQL", "redis": "Redis"}


def profile_of(run: Run) -> dict[str, Any] | None:
    """The run's profile, wherever it is kept (None: the run has none)."""
    top = run.doc.sections.get("profile")
    if isinstance(top, dict):
        return top
    compare = run.doc.sections.get("compare")
    p = compare.get("profile") if isinstance(compare, dict) else None
    return p if isinstance(p, dict) else None


def _paths(run: Run) -> dict[str, str]:
    """store -> path ("app" / "server"), from the run's own ``paths`` summary, else from the store's name."""
    compare = run.doc.sections.get("compare")
    summary = (compare.get("paths") if isinstance(compare, dict) else None) or {}
    out: dict[str, str] = {}
    for path, info in summary.items():
        for s in info.get("stores") or []:
            out[s] = path
    if not out:
        from fridgebench.stores import store_path

        for s in (profile_of(run) or {}).get("stores") or {}:
            try:
                out[s] = store_path(s)
            except KeyError:
                pass
    return out


def _us(v: Any) -> str:
    """µs as the page writes them, with a decimal under 10 µs (Redis executes a GET in well under one)."""
    if v is not None and v != "" and float(v) < 10:
        return f"{float(v):.1f} µs"
    return us(v)


def _num(v: Any) -> str:
    if v is None:
        return "–"
    return f"{float(v):g}"


def _servers(row: dict[str, Any]) -> list[str]:
    return [k for k in ("postgres", "redis") if isinstance(row.get(k), dict)]


def _sent(w: dict[str, Any]) -> str:
    total = w.get("statements", w.get("commands"))
    verbs = w.get("by_statement") or w.get("by_command") or {}
    if total is None:
        return "unreadable (TLS)" if w.get("round_trips") is not None else "–"
    parts = ", ".join(k if abs(float(v) - 1) < 0.01 else f"{k} {float(v):g}" for k, v in verbs.items())
    return f"{_num(total)}" + (f": {parts}" if parts else "")


def _cells(row: dict[str, Any]) -> list[str]:
    servers = _servers(row)
    two = len(servers) > 1

    def tag(k: str) -> str:
        return ("P " if k == "postgres" else "R ") if two else ""

    trips, sent, flushes, wal, server_us = [], [], [], [], []
    for k in servers:
        w = row[k]
        sv = w.get("server") or {}
        trips.append(f"{tag(k)}{_num(w.get('round_trips'))}")
        sent.append(f"{tag(k)}{_sent(w)}")
        if k == "postgres":
            flushes.append(_num(sv.get("write_transactions")))
            wal.append(f"{sv['wal_bytes']:,.0f} B" if sv.get("wal_bytes") is not None else "–")
        if sv.get("exec_us") is not None:
            server_us.append(f"{tag(k)}{_us(sv['exec_us'])}")
    return [" + ".join(trips) or "–", "; ".join(sent) or "–", " ".join(flushes) or "–", " ".join(wal) or "–",
            " + ".join(server_us) or "–", _us(row.get("client_cpu_us")), _us(row.get("wall_us"))]


def why_app_is_slower(profile: dict[str, Any], paths: dict[str, str]) -> str | None:
    """One sentence on why the app path's PostgreSQL store is slower than the server path's, from the
    profile's own numbers — or None when the profile does not show it (no pair, or not slower)."""
    stores = profile.get("stores") or {}

    def postgres_only(name: str) -> bool:
        rows = [r for r in (stores[name].get("ops") or {}).values() if isinstance(r, dict)]
        return bool(rows) and all("redis" not in r for r in rows) and any("postgres" in r for r in rows)

    # the first of each path in the run's order: postgres-app (as the app is), not its fixed variant
    app = next((s for s in stores if paths.get(s) == "app" and postgres_only(s)), None)
    server = next((s for s in stores if paths.get(s) == "server" and postgres_only(s)), None)
    if app is None or server is None:
        return None
    a_ops, s_ops = stores[app].get("ops") or {}, stores[server].get("ops") or {}
    op = "get" if "get" in a_ops and "get" in s_ops else next((o for o in a_ops if o in s_ops), None)
    if op is None:
        return None
    a, s = a_ops[op], s_ops[op]
    aw, sw = a.get("wall_us"), s.get("wall_us")
    if aw is None or sw is None or aw <= 1.5 * sw:
        return None
    ap, sp = a.get("postgres"), s.get("postgres")
    if not isinstance(ap, dict) or not isinstance(sp, dict):
        return None
    reasons = []
    if (ap.get("round_trips") or 0) > (sp.get("round_trips") or 0):
        reasons.append(f"{_num(ap['round_trips'])} round trips to PostgreSQL instead of {_num(sp.get('round_trips'))}"
                       + (f" ({_sent(ap).split(': ', 1)[-1]})" if ap.get("by_statement") else ""))
    aws, sws = (ap.get("server") or {}).get("write_transactions"), (sp.get("server") or {}).get("write_transactions")
    if aws is not None and sws is not None and aws > sws:
        reasons.append(f"{_num(aws)} commit{'s' if aws != 1 else ''} waiting for a WAL flush instead of {_num(sws)}")
    ac, sc = a.get("client_cpu_us"), s.get("client_cpu_us")
    if ac is not None and sc is not None and ac > 2 * sc:
        reasons.append(f"{us(ac)} of the client's CPU instead of {us(sc)}")
    if not reasons:
        return None
    text = (f"Why the app path is slower: one {op} alone takes {us(aw)} on {app} against {us(sw)} on {server}, "
            f"because it makes " + "; ".join(reasons) + ".")
    ae, se = (ap.get("server") or {}).get("exec_us"), (sp.get("server") or {}).get("exec_us")
    if ae is not None and se is not None and (ae - se) < 0.25 * (aw - sw):
        text += (f" PostgreSQL itself executed {us(ae)} of statements against {us(se)}: the difference is the "
                 "application's code and its conversations with the server, not the server's work.")
    return text


def build(runs: list[Run], labels: Labels) -> list[Block]:
    out: list[Block] = [Heading("Where the time goes: one operation alone, taken apart", 2, anchor="profile")]
    profiled = [(r, p) for r in runs if (p := profile_of(r)) is not None]
    first = profiled[0][1]
    out.append(Para(f"Per store, {first['what']}" if first.get("what") else
                    "Per store, one operation of each kind run alone, taken apart."))
    for r, p in profiled:
        sentence = why_app_is_slower(p, _paths(r))
        if sentence:
            out.append(Para(sentence + (f" ({labels.name(r)})" if labels.many else "")))
    ops: list[str] = []
    for _, p in profiled:
        for s in (p.get("stores") or {}).values():
            ops += [o for o in (s.get("ops") or {}) if o not in ops]
    cols = (["run"] if labels.many else []) + ["store", "path", "round trips", "statements / commands sent",
                                               "commits that flushed WAL", "WAL", "server time", "client CPU",
                                               "wall"]
    k = 1 if labels.many else 0
    for op in ops:
        rows = []
        for r, p in profiled:
            paths = _paths(r)
            for name, s in (p.get("stores") or {}).items():
                row = (s.get("ops") or {}).get(op)
                if row is None:
                    continue
                rows.append(([labels.name(r)] if labels.many else []) + [name, paths.get(name, "–"), *_cells(row)])
        out.append(Heading(op, 3))
        out.append(Table(cols, rows, numeric=frozenset({k + 2, k + 4, k + 5, k + 6, k + 7, k + 8}),
                         caption=f"{op}: the mean of one operation alone; round trips and what was sent counted on "
                                 "the store's own connections, WAL flushes and server time from the servers' own "
                                 "counters"))
    notes = []
    for r, p in profiled:
        for name, s in (p.get("stores") or {}).items():
            for server, info in (s.get("servers") or {}).items():
                if info.get("counters"):
                    notes.append(f"{name}: {SERVER_WORDS.get(server, server)} counters {info['counters']}")
                elif server == "postgres" and info.get("pg_stat_statements") is False:
                    notes.append(f"{name}: pg_stat_statements not available, no PostgreSQL statement counts or times")
        notes += list(p.get("warnings") or [])
    if notes:
        out.append(Para("Read with care: " + "; ".join(dict.fromkeys(notes)) + ".", "warning"))
    return out

"""Turn runs (results documents and their interval logs) into report blocks: text, tables, plots.

The page is read by someone who never ran the tool, so it opens with the seed's claims and
their verdicts in plain words, then each kind of measurement a run holds: ``compare`` (and its
``profile``), ``sweep``, ``ttl``, ``migrate``, ``failure``, ``load`` (the last three in
``sections_profile``, ``sections_failure``, ``sections_load``). Any other section — a newer
command, or one this version does not know — is shown as tables of its values rather than
refused. Several runs are overlaid (line style per run) so a before/after reads at a glance.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from fridgebench.measure.runs import Run
from fridgebench.report import plots
from fridgebench.report.blocks import Block, Figure, Heading, Para, Table
from fridgebench.report.claims import MEASURED_BY, explained, merge
from fridgebench.measure.results import Claim

KNOWN = ("compare", "profile", "sweep", "ttl", "migrate", "failure", "load")
VERDICT_WORDS = {
    "supported": "the measurements agree with the seed",
    "partly supported": "true in part: the direction holds, the size or the reason does not",
    "contradicted": "the measurements disagree with the seed",
    "inconclusive": "measured, but the run cannot settle it (noise, or a limit of this machine)",
    "not measured": "no command in these runs measures it",
}
MAX_GENERIC_ROWS = 50


def us(v: Any) -> str:
    if v is None or v == "":
        return "–"
    v = float(v)
    if v >= 10_000:
        return f"{v / 1000:,.0f} ms"
    if v >= 1000:
        return f"{v / 1000:,.2f} ms"
    return f"{v:,.0f} µs"


def human_bytes(n: Any) -> str:
    if n is None:
        return "–"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} GiB"


class Labels:
    """How runs are named on the page: nothing extra for one run, "run N" for several."""

    def __init__(self, runs: list[Run]) -> None:
        self.runs = runs
        self.index = {id(r): i for i, r in enumerate(runs)}

    @property
    def many(self) -> bool:
        return len(self.runs) > 1

    def run(self, r: Run) -> int:
        return self.index[id(r)]

    def name(self, r: Run) -> str:
        return f"run {self.run(r) + 1}"

    def series(self, r: Run, store: str) -> str:
        return f"{store} · {self.name(r)}" if self.many else store


def _section(run: Run, name: str) -> Any:
    """A section's value; the profile also where ``compare`` keeps it (``sections.compare.profile``)."""
    if name == "profile" and name not in run.doc.sections:
        return run.doc.sections["compare"]["profile"]
    return run.doc.sections[name]


def build(runs: list[Run]) -> tuple[str, list[Block]]:
    from fridgebench.report import sections_failure, sections_load, sections_profile

    labels = Labels(runs)
    blocks: list[Block] = []
    blocks += _intro(runs, labels)
    blocks += _claims(runs, labels)
    with_section: dict[str, list[Run]] = {}
    for r in runs:
        names = list(r.doc.sections)
        if "profile" not in names and sections_profile.profile_of(r) is not None:
            names.append("profile")
        for name in names:
            with_section.setdefault(name, []).append(r)
    builders: dict[str, Callable[[list[Run], Labels], list[Block]]] = {
        "compare": _compare, "profile": sections_profile.build, "sweep": _sweep, "ttl": _ttl,
        "migrate": _migrate, "failure": sections_failure.build, "load": sections_load.build}
    for name in [*KNOWN, *sorted(set(with_section) - set(KNOWN))]:
        rs = with_section.get(name)
        if not rs:
            continue
        build_one = builders.get(name)
        if build_one is not None:
            try:
                blocks += build_one(rs, labels)
                continue
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
                # a section shaped differently than this version expects: show its values, never fail
                blocks.append(Heading(f"{name}", 2, anchor=name))
                blocks.append(Para(f"This report could not draw the {name} section ({type(err).__name__}: {err}); "
                                   "its values follow as tables.", "warning"))
                for r in rs:
                    blocks += _generic(name, _section(r, name), labels, r, level=3, heading=False)
                continue
        blocks.append(Heading(f"{name} (shown as tables)", 2, anchor=name))
        blocks.append(Para(f"This version of fridgebench has no plots for “{name}” results; here are their values.",
                           "note"))
        for r in rs:
            blocks += _generic(name, r.doc.sections[name], labels, r, level=3, heading=labels.many)
    blocks += _runs_table(runs, labels)
    commands = sorted({r.doc.command for r in runs})
    title = f"fridgebench report — {', '.join(commands)}"
    return title, blocks


# --------------------------------------------------------------------------------------------


def _intro(runs: list[Run], labels: Labels) -> list[Block]:
    env = runs[0].doc.environment
    servers = {s.get("kind"): s for s in env.servers}
    bits = []
    if "postgres" in servers:
        s = servers["postgres"]
        bits.append(f"PostgreSQL {s.get('version', '?')} ({s.get('source', '?')})")
    if "redis" in servers:
        s = servers["redis"]
        bits.append(f"Redis {s.get('version', '?')} ({s.get('source', '?')})")
    where = f"on {env.cpu_count} × {env.cpu_model}, {human_bytes(env.memory_bytes)} RAM"
    started = min(r.doc.started_at for r in runs).strftime("%Y-%m-%d %H:%M UTC")
    text = (f"Should fridge2fork's anonymous sessions (24-hour sessions holding the ingredients in a user's fridge) "
            f"live in PostgreSQL or in Redis? This page answers the claims of the design note that recommends Redis "
            f"with measurements: {len(runs)} run{'s' if len(runs) > 1 else ''} from {started}, {where}"
            f"{', against ' + ' and '.join(bits) if bits else ''}.")
    out: list[Block] = [Para(text, "lead")]
    warns = [w for r in runs for w in r.doc.warnings]
    if warns:
        uniq = list(dict.fromkeys(warns))
        out.append(Para("Read with care: " + " · ".join(uniq[:6]) + (f" (+{len(uniq) - 6} more)" if len(uniq) > 6 else ""),
                        "warning"))
    return out


def _claims(runs: list[Run], labels: Labels) -> list[Block]:
    merged = merge(*[list(r.doc.claims) for r in runs])
    per_run: dict[str, list[str]] = {}
    for r in runs:
        for c in r.doc.claims:
            if c.verdict != "not measured":
                per_run.setdefault(c.key, []).append(f"{c.verdict} ({labels.name(r)})")
    rows, styles = [], {}
    for i, c in enumerate(merged):
        verdict = c.verdict
        if labels.many and len(set(per_run.get(c.key, []))) > 1 and \
                len({v.rsplit(' (', 1)[0] for v in per_run[c.key]}) > 1:
            verdict = "; ".join(per_run[c.key])
        measured = (c.measured if c.verdict != "not measured" or explained(c)
                    else f"not measured — run {MEASURED_BY.get(c.key, '?')}")
        rows.append([c.topic, c.seed_postgres, c.seed_redis, verdict, measured])
        styles[(i, 3)] = "v-" + c.verdict.replace(" ", "-")
    out: list[Block] = [
        Heading("The seed's claims, measured", 2, anchor="claims"),
        Table(["claim", "seed: PostgreSQL", "seed: Redis", "verdict", "what was measured"], rows, styles=styles,
              stack=True),
        Para("Verdicts: " + "; ".join(f"“{k}” — {v}" for k, v in VERDICT_WORDS.items()) + ".", "note"),
    ]
    return out


# --------------------------------------------------------------------------------------------
# compare


def _ops_table(runs: list[Run], labels: Labels) -> Table:
    cols = (["run"] if labels.many else []) + ["store", "op", "ops/s", "p50", "p90", "p99", "p99.9", "max",
                                               "service p50", "errors", "late"]
    rows = []
    for r in runs:
        for store, s in r.doc.sections["compare"]["stores"].items():
            for op, o in s["ops"].items():
                li, ls = o["latency_intended"], o.get("latency_service") or {}
                rows.append(([labels.name(r)] if labels.many else []) + [
                    store, op, f"{o.get('throughput_per_s', 0):,.0f}", us(li.get("p50_us")), us(li.get("p90_us")),
                    us(li.get("p99_us")), us(li.get("p99_9_us")), us(li.get("max_us")), us(ls.get("p50_us")),
                    o.get("errors", 0), o.get("late", 0)])
    first = 1 if labels.many else 0
    return Table(cols, rows, caption="Latency from the intended start (coordinated-omission corrected) unless noted; "
                                     "service = from the actual send.",
                 numeric=frozenset(range(first + 2, len(cols))))


def _store_table(runs: list[Run], labels: Labels) -> Table:
    cols = (["run"] if labels.many else []) + ["store", "load", "achieved ops/s", "p50", "p99", "errors",
                                               "lost updates", "unsent", "per-second CV"]
    rows = []
    for r in runs:
        for store, s in r.doc.sections["compare"]["stores"].items():
            o, c = s["overall"], s.get("correctness") or {}
            load = (f"open, {o['offered_rate_per_s']:g}/s" if o.get("model") == "open"
                    else f"closed, {o.get('concurrency')} workers")
            cv = (o.get("noise") or {}).get("cv_of_p50")
            rows.append(([labels.name(r)] if labels.many else []) + [
                store, load, f"{o.get('throughput_per_s', 0):,.0f}", us(o["latency_intended"].get("p50_us")),
                us(o["latency_intended"].get("p99_us")), o.get("errors", 0),
                f"{c.get('lost_updates', 0)} of {c.get('adds_checked', 0):,}", o.get("unsent", 0),
                "–" if cv is None else f"{cv:.2f}"])
    first = 1 if labels.many else 0
    return Table(cols, rows, numeric=frozenset(range(first + 2, len(cols))),
                 caption="lost updates: acknowledged ingredient adds missing afterwards (the seed's GET → SETEX race); "
                         "per-second CV: how much per-second medians wander (above 0.5 the run is too noisy to judge)")


def _ratio_rows(runs: list[Run], labels: Labels) -> list[dict[str, Any]]:
    """The ``comparisons`` rows, each labelled by what it compares: (op, path, baseline, other).
    Since compare runs two paths, rows carry ``path`` and ``baseline`` and several PostgreSQL stores
    share a Redis store: "get · app path: postgres-app ÷ redis-app". Documents from before (no
    ``path``, one PostgreSQL store) keep their labels: "get vs redis-seed"."""
    raw = [(r, c) for r in runs for c in r.doc.sections["compare"].get("comparisons") or []]
    named = any(c.get("path") for _, c in raw) or len({c.get("baseline", "postgres") for _, c in raw}) > 1
    comps = []
    for r, c in raw:
        path, base = c.get("path"), c.get("baseline", "postgres")
        if named:
            label = f"{c['op']} · {path + ' path: ' if path else ''}{base} ÷ {c['other']}"
        else:
            label = f"{c['op']} vs {c['other']}"
        comps.append({"op": c["op"], "other": c["other"], "run": labels.run(r), "path": path, "baseline": base,
                      "label": label + (f" · {labels.name(r)}" if labels.many else ""),
                      "group": (path, base) if named else None,
                      "ratio": c.get("p50_ratio"),
                      "ci": tuple(c["p50_ratio_ci95"]) if c.get("p50_ratio_ci95") else None,
                      "significant": bool(c.get("significant")), "p99": c.get("p99_ratio"),
                      "run_name": labels.name(r)})
    return comps


def _ratio_table(comps: list[dict[str, Any]], labels: Labels) -> Table:
    def cells(c: dict[str, Any]) -> list[Any]:
        return [f"{c['ratio']:g}x" if c.get("ratio") is not None else "–",
                f"{c['ci'][0]:g}–{c['ci'][1]:g}" if c["ci"] else "–",
                f"{c['p99']:g}x" if c.get("p99") else "–", "yes" if c["significant"] else "no"]

    tail = ["p50 ratio", "95% interval", "p99 ratio", "significant"]
    if not any(c["group"] for c in comps):  # documents before the pairs were named: as they always rendered
        return Table(["op", "vs", *tail], [[c["label"].split(" vs ")[0], c["label"].split(" vs ")[1], *cells(c)]
                                           for c in comps], numeric=frozenset({2, 3, 4}))
    with_path = any(c["path"] for c in comps)
    first = (["run"] if labels.many else []) + ["op"] + (["path"] if with_path else []) + ["PostgreSQL ÷ Redis"]
    rows = [([c["run_name"]] if labels.many else []) + [c["op"]] + ([c["path"] or "–"] if with_path else [])
            + [f"{c['baseline']} ÷ {c['other']}", *cells(c)] for c in comps]
    return Table([*first, *tail], rows, numeric=frozenset(range(len(first), len(first) + 3)),
                 caption="p50 and p99 latency of the PostgreSQL store ÷ the Redis store of the same path, per "
                         "operation; the 95% interval is a bootstrap over per-second medians")


def _compare(runs: list[Run], labels: Labels) -> list[Block]:
    out: list[Block] = [Heading("Performance: the same workload against each store", 2, anchor="compare")]
    perf = [c for r in runs for c in r.doc.claims if c.key == "performance" and c.verdict != "not measured"]
    sc = runs[0].doc.scenario or {}
    load = sc.get("load") or {}
    if sc:
        out.append(Para(f"Scenario “{sc.get('name', '?')}”: {sc.get('description', '')}. "
                        f"{'Open loop at ' + format(load.get('rate') or 0, 'g') + ' operations/s' if load.get('model') == 'open' else str(load.get('concurrency')) + ' closed-loop workers'}, "
                        f"{load.get('warmup_seconds', 0):g} s warm-up (excluded), {load.get('duration_seconds', 0):g} s "
                        f"measured per store, {((sc.get('population') or {}).get('sessions') or 0):,} sessions loaded first."))
    if perf:
        out.append(Para(perf[-1].measured))
    out.append(_store_table(runs, labels))

    panels: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        for store, s in r.doc.sections["compare"]["stores"].items():
            for op, o in s["ops"].items():
                h = r.hlog(store, op)
                curve = plots.curve_points(h.merged(), h.values) if h is not None and h.total else []
                li, ls = o["latency_intended"], o.get("latency_service") or {}
                pts = [(50.0, "p50_us"), (90.0, "p90_us"), (99.0, "p99_us"), (99.9, "p99_9_us")]
                if not curve:
                    curve = [(p, float(li[k])) for p, k in pts if li.get(k) is not None]
                n = int(ls.get("count") or 0)  # a percentile needs 1/(1-p) samples: p99.9 needs 1,000
                service = [(p, float(ls[k])) for p, k in pts if ls.get(k) is not None and n >= plots.percentile_x(p)]
                panels.setdefault(op, []).append({"label": labels.series(r, store), "store": store,
                                                  "run": labels.run(r), "curve": curve, "service": service})
    svg = plots.latency_by_percentile(list(panels.items()), title="Latency by percentile, per operation")
    if svg:
        out.append(Figure(svg, "Latency by percentile (HdrHistogram convention: the x axis stretches the tail — "
                               "1/(1−p), so 99% and 99.9% get as much room as 50–90%). Lines: from the intended "
                               "start, what a user waits; circles: service time from the actual send. Curves stop "
                               "where a run has too few operations to estimate that percentile."))
    series = []
    for r in runs:
        for store, s in r.doc.sections["compare"]["stores"].items():
            for iv in [*(s.get("warmup_intervals") or []), *s.get("intervals", [])]:
                series.append({"label": labels.series(r, store), "store": store, "run": labels.run(r),
                               "t_s": iv["t_s"], "ops": iv.get("ops", 0), "p50_us": iv.get("p50_us"),
                               "p99_us": iv.get("p99_us")})
    svg = plots.over_time(plots.frame(series), title="Latency and throughput, second by second")
    if svg:
        has_warm = any(s.get("warmup_intervals") for r in runs for s in r.doc.sections["compare"]["stores"].values())
        out.append(Figure(svg, "Per second, all operations together. " + (
            "Shaded: the warm-up, excluded from every figure." if has_warm else
            "These runs did not record their warm-up (results format 1): only measured seconds are shown.")))

    comps = _ratio_rows(runs, labels)
    if comps:
        svg = plots.ratio_with_ci(comps, title="PostgreSQL ÷ Redis, per operation (p50)")
        if svg:
            out.append(Figure(svg, "How many times faster Redis answered than PostgreSQL at the median, with the 95% "
                                   "bootstrap interval over per-second medians; the dashed line is the seed's “10x”."
                              + (" Each row names its path and pair: the app path (fridge2fork's own code) and the "
                                 "server path (lean clients) are compared within themselves, never across."
                                 if any(c["path"] for c in comps) else "")))
        out.append(_ratio_table(comps, labels))
    out.append(_ops_table(runs, labels))
    for r in runs:
        ov = r.doc.sections["compare"].get("driver_overhead") or {}
        d = ov.get("dispatch_lag") or {}
        if d:
            out.append(Para(f"Driver overhead{' (' + labels.name(r) + ')' if labels.many else ''}: a no-op operation at "
                            f"{ov.get('rate_per_s', 0):g}/s started {us(d.get('p50_us'))} late at p50, "
                            f"{us(d.get('p99_us'))} at p99 — the floor under every latency above.", "note"))
    return out


# --------------------------------------------------------------------------------------------
# sweep, ttl, migrate


def _sweep(runs: list[Run], labels: Labels) -> list[Block]:
    out: list[Block] = [Heading("Scalability: offered load stepped up to each store's knee", 2, anchor="sweep")]
    rec, rows = [], []
    slo = None
    for r in runs:
        sec = r.doc.sections["sweep"]
        slo = sec.get("slo_p99_us")
        for name, s in [("driver", sec.get("driver") or {}), *(sec.get("stores") or {}).items()]:
            for st in s.get("steps", []):
                rec.append({"label": labels.series(r, name if name != "driver" else "driver (no-op)"),
                            "store": name, "run": labels.run(r), "offered": st["offered_per_s"],
                            "achieved": st["achieved_per_s"], "p99_us": st.get("p99_us"),
                            "sustained": bool(st.get("sustained"))})
            k = s.get("max_sustained_per_s")
            bound = "≥ " if s.get("driver_bound") and name != "driver" else ""
            rows.append(([labels.name(r)] if labels.many else []) +
                        [name if name != "driver" else "driver (no-op)", f"{bound}{k:g}/s" if k else "none",
                         ", ".join(f"{st['offered_per_s']:g}→{st['achieved_per_s']:,.0f} (p99 {us(st.get('p99_us'))})"
                                   for st in s.get("steps", []))])
    claim = [c for r in runs for c in r.doc.claims if c.key == "scalability" and c.verdict != "not measured"]
    if claim:
        out.append(Para(claim[-1].measured))
    svg = plots.sweep(plots.frame(rec), slo, title="Offered vs achieved load; p99 vs offered load")
    if svg:
        out.append(Figure(svg, "A step is sustained when the store kept up (≥ 95% of the offered rate, nothing unsent) "
                               "and its p99 stayed under the SLO. The driver alone (grey) is the ceiling of this "
                               "machine's load generator: a store at that ceiling is “at least” that fast."))
    out.append(Table((["run"] if labels.many else []) + ["store", "max sustained", "steps (offered → achieved)"], rows,
                     stack=True))
    return out


def _ttl(runs: list[Run], labels: Labels) -> list[Block]:
    out: list[Block] = [Heading("Expiry, cleanup and memory (ttl)", 2, anchor="ttl")]
    for c in [c for r in runs for c in r.doc.claims if c.key in ("auto_expiry", "memory_use")
              and c.verdict != "not measured"][-2:]:
        out.append(Para(f"{c.topic}: {c.measured}"))
    dists = []
    for r in runs:
        for name, e in (r.doc.sections["ttl"].get("expiry") or {}).items():
            dists.append({"label": f"{labels.series(r, name)}: unreadable", "store": name,
                          "dist": e.get("readable_lag_ms") or {}})
            dists.append({"label": f"{labels.series(r, name)}: removed", "store": name,
                          "dist": e.get("removed_lag_ms") or {}})
    svg = plots.distributions(dists, title="Expiry lag after the intended expiry instant", unit="ms")
    if svg:
        out.append(Figure(svg, "Unreadable: a read after expiry returns nothing. Removed: the data is physically "
                               "gone (Redis: its own active expiry; PostgreSQL: the application's cleanup job)."))
    rows = []
    for r in runs:
        for name, e in (r.doc.sections["ttl"].get("expiry") or {}).items():
            s = e.get("sliding") or {}
            rows.append(([labels.name(r)] if labels.many else []) +
                        [name, (e.get("readable_lag_ms") or {}).get("p99", "–"), (e.get("removed_lag_ms") or {}).get("p99", "–"),
                         e.get("removed_how", ""), s.get("total_violations", "–")])
    if rows:
        out.append(Table((["run"] if labels.many else []) + ["store", "unreadable p99 (ms)", "removed p99 (ms)",
                                                             "removed by", "sliding-expiry violations"], rows))
    for r in runs:
        c = r.doc.sections["ttl"].get("cleanup")
        if not c:
            continue
        variants = c.get("variants") or []
        names = [v["variant"] for v in variants]
        svg = plots.bars(names, {"duration (s)": [v.get("duration_s") or 0 for v in variants],
                                 "VACUUM (s)": [v.get("vacuum_s") or 0 for v in variants]},
                         title=f"PostgreSQL cleanup of expired sessions{' · ' + labels.name(r) if labels.many else ''}",
                         ylabel="seconds")
        if svg:
            out.append(Figure(svg, "What Redis does with no job, PostgreSQL's application must do: the DELETE of "
                                   "expired rows (at once, or in batches), then VACUUM to reuse the space."))
        out.append(Table(["variant", "deleted", "duration", "WAL", "dead tuples", "size before → after VACUUM",
                          "read p99 before → during"],
                         [[v["variant"], f"{v.get('deleted_sessions', 0):,}", f"{v.get('duration_s', 0):.2f} s",
                           human_bytes(v.get("wal_bytes")),
                           f"{sum(x or 0 for x in (v.get('dead_tuples_after') or {}).values()):,}",
                           f"{human_bytes((v.get('size_before') or {}).get('total'))} → "
                           f"{human_bytes((v.get('size_after_vacuum') or {}).get('total'))}",
                           f"{((v.get('foreground') or {}).get('baseline') or {}).get('p99_ms', 0):.2f} → "
                           f"{((v.get('foreground') or {}).get('during_cleanup') or {}).get('p99_ms', 0):.2f} ms"]
                          for v in variants], numeric=frozenset({1, 2, 3, 4})))
    mem = []
    for r in runs:
        for name, m in (r.doc.sections["ttl"].get("memory") or {}).items():
            for pt in m.get("points") or []:
                mem.append({"label": labels.series(r, name), "store": name, "run": labels.run(r),
                            "sessions": pt["sessions"], "bps": pt.get("bytes_per_session")})
    svg = plots.lines(plots.frame(mem), x="sessions", y="bps", xlabel="sessions stored",
                      ylabel="bytes per session", title="Bytes per session vs number of sessions", logx=True,
                      ylim0=True)
    if svg:
        out.append(Figure(svg, "Redis: used_memory (RAM) per session. PostgreSQL: tables + indexes on disk per "
                               "session (RAM only as cache)."))
        out.append(Table(["store", "sessions", "bytes/session", "measured as"],
                         [[m["label"], f"{m['sessions']:,}", f"{m['bps']:,.0f}" if m["bps"] is not None else "–",
                           next((x.get("measured_as", "") for r in runs for n, x in
                                 (r.doc.sections["ttl"].get("memory") or {}).items() if n == m["store"]), "")]
                          for m in mem], numeric=frozenset({1, 2})))
    return out


def _migrate(runs: list[Run], labels: Labels) -> list[Block]:
    out: list[Block] = [Heading("Migration PostgreSQL → Redis", 2, anchor="migrate")]
    for r in runs:
        m = r.doc.sections["migrate"]
        if "differences" in m:  # migrate verify
            d = m["differences"]
            out.append(Para(f"verify{' (' + labels.name(r) + ')' if labels.many else ''}: checked "
                            f"{m.get('checked', 0):,} live sessions against {m.get('redis_keys', 0):,} Redis keys in "
                            f"{m.get('seconds', 0):.1f} s — " + ", ".join(f"{k} {v}" for k, v in d.items())))
            continue
        if m.get("interrupted"):
            out.append(Para(f"{labels.name(r) if labels.many else 'This run'} was interrupted at a resumable point.",
                            "warning"))
            continue
        b, c = m.get("backfill") or {}, m.get("changes")
        rows = [["sessions written", f"{b.get('written', 0):,}"],
                ["backfill rate", f"{b['rate_per_s']:,.0f} sessions/s" if b.get("rate_per_s") else "–"],
                ["skipped as expired", f"{m.get('skipped_expired', 0):,}"],
                ["duration", f"{m.get('duration_s', 0):.1f} s"], ["resumed", "yes" if m.get("resumed") else "no"]]
        if c:
            rows += [["changes applied", f"{c.get('change_rows', 0):,} rows over {c.get('sessions', 0):,} sessions"],
                     ["final lag", f"{c.get('lag', 0)} rows"]]
        out.append(Table(["", labels.name(r) if labels.many else "value"], rows))
        tl = m.get("timeline") or {}
        written = tl.get("backfill") or []
        lag = tl.get("lag") or []
        if written:
            rec = []
            prev = None
            for t, n in written:
                if prev is not None and t > prev[0]:
                    rec.append({"label": labels.series(r, "backfill"), "store": "postgres", "run": labels.run(r),
                                "t": t, "rate": (n - prev[1]) / (t - prev[0])})
                prev = (t, n)
            svg = plots.lines(plots.frame(rec), x="t", y="rate", xlabel="seconds since start",
                              ylabel="sessions / s", title="Backfill rate over time", ylim0=True)
            if svg:
                out.append(Figure(svg, "Sessions written to Redis per second during the backfill."))
        if lag:
            rec = [{"label": labels.series(r, "change lag"), "store": "redis-atomic", "run": labels.run(r),
                    "t": t, "lag": n} for t, n, *_ in lag]
            svg = plots.lines(plots.frame(rec), x="t", y="lag", xlabel="seconds since start",
                              ylabel="changes not yet applied", title="Change-capture lag over time", ylim0=True)
            if svg:
                out.append(Figure(svg, "Captured changes waiting to reach Redis after each apply pass."))
        if not written and not lag:
            out.append(Para("This run recorded no timeline (written before fridgebench recorded one): "
                            "rates over time are not available.", "note"))
    return out


# --------------------------------------------------------------------------------------------
# anything else: tables of values


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _cell(v: Any, limit: int = 120) -> str:
    if _scalar(v):
        return "–" if v is None else (f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v))
    text = json.dumps(v, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _generic(name: str, value: Any, labels: Labels, run: Run, *, level: int, heading: bool,
             depth: int = 0) -> list[Block]:
    out: list[Block] = []
    title = f"{name}{' · ' + labels.name(run) if labels.many else ''}"
    if heading:
        out.append(Heading(title, level))
    if isinstance(value, dict):
        scal = [[k, _cell(v)] for k, v in value.items() if _scalar(v) or
                (isinstance(v, list) and all(_scalar(x) for x in v))]
        if scal:
            out.append(Table(["field", "value"], scal))
        for k, v in value.items():
            if _scalar(v) or (isinstance(v, list) and all(_scalar(x) for x in v)):
                continue
            if depth >= 2:
                out.append(Table(["field", "value"], [[k, _cell(v, 400)]]))
                continue
            out += _generic(f"{name}.{k}", v, labels, run, level=min(level + 1, 4), heading=True, depth=depth + 1)
    elif isinstance(value, list):
        dicts = [x for x in value if isinstance(x, dict)]
        if dicts and len(dicts) == len(value):
            cols: list[str] = []
            for d in dicts:
                cols += [k for k in d if k not in cols]
            rows = [[_cell(d.get(c)) for c in cols] for d in dicts[:MAX_GENERIC_ROWS]]
            cap = f"first {MAX_GENERIC_ROWS} of {len(dicts)} rows" if len(dicts) > MAX_GENERIC_ROWS else ""
            out.append(Table(cols, rows, caption=cap))
        else:
            out.append(Table(["#", "value"], [[i, _cell(x)] for i, x in enumerate(value[:MAX_GENERIC_ROWS])]))
    else:
        out.append(Para(_cell(value, 400)))
    return out


# --------------------------------------------------------------------------------------------


def _runs_table(runs: list[Run], labels: Labels) -> list[Block]:
    out: list[Block] = [Heading("The runs", 2, anchor="runs")]
    rows = []
    for r in runs:
        d, env = r.doc, r.doc.environment
        took = (d.finished_at - d.started_at).total_seconds() if d.finished_at else None
        servers = "; ".join(
            f"{s.get('kind')} {s.get('version', '?')} {s.get('source', '')} "
            + ", ".join(f"{k}={v}" for k, v in (s.get("durability") or {}).items()
                        if k in ("fsync", "synchronous_commit", "appendonly", "appendfsync", "save"))
            for s in env.servers)
        rows.append([labels.name(r) if labels.many else "", d.run_id, d.command,
                     d.started_at.strftime("%Y-%m-%d %H:%M:%S UTC"), f"{took:.0f} s" if took is not None else "–",
                     f"{env.cpu_count} × {env.cpu_model}", servers or "–", d.schema_version.rsplit("/", 1)[-1],
                     f"{d.group.index + 1} of {d.group.count} ({' → '.join(d.group.order)})" if d.group else "–"])
    out.append(Table(["", "run id", "command", "started", "took", "CPU", "servers", "format", "repeat"], rows,
                     caption="format: the results format version (reports/README.md lists them); repeat: position "
                             "among `compare --repeat` runs and the order the stores ran in"))
    return out


def claims_of(runs: list[Run]) -> list[Claim]:
    return merge(*[list(r.doc.claims) for r in runs])

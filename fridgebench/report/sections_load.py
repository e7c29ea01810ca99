"""The report's ``load`` blocks: the scenario through Locust (``fridgebench load``).

Per store: users, achieved vs offered rate, errors, lost updates and what limited the load
generator; per store × operation: throughput and µs percentiles; the seconds of the run as a plot.
Locust's users are closed loops and their latency is measured from the actual send, so the page
says, in plain words, what that hides (coordinated omission) — next to the numbers, not in a footnote.
"""

from __future__ import annotations

from typing import Any

from fridgebench.measure.runs import Run
from fridgebench.report import plots
from fridgebench.report.blocks import Block, Figure, Heading, Para, Table
from fridgebench.report.sections import Labels, us

CAVEAT = ("How to read these numbers: each Locust user is a closed loop — it sends its next request only after the "
          "previous reply arrived. Latency is measured from the actual send, so when a store stalls, the users simply "
          "wait and send less: the stall shows up as lower throughput, not as slow requests, and the requests that "
          "would have been sent meanwhile are never counted (coordinated omission, not corrected here). A percentile "
          "below is what a request took once sent, not what a user arriving at a fixed rate would have waited; "
          "`fridgebench compare` measures that, from the intended start.")


def _intro(sec: dict[str, Any]) -> str:
    rate = sec.get("offered_rate_per_s")
    mode = sec.get("mode", "")
    text = (f"Locust {sec.get('locust_version', '')}".rstrip() + (f", {mode}" if mode else "")
            + f": {sec['users']} users")
    if sec.get("spawn_rate_per_s"):
        text += f" (spawned at {sec['spawn_rate_per_s']:g}/s)"
    text += (f", paced to {rate:g} operations/s offered in all" if rate else ", back to back (no pacing)")
    return text + "; the stores ran one after another, each user with its own connection."


def _stores_table(runs: list[Run], labels: Labels) -> Table:
    cols = (["run"] if labels.many else []) + ["store", "users", "measured", "offered", "achieved", "p50", "p99",
                                               "errors", "lost updates", "load generator"]
    rows = []
    for r in runs:
        for name, s in r.doc.sections["load"]["stores"].items():
            o, c, g = s["overall"], s.get("correctness") or {}, s.get("generator") or {}
            lat = o.get("latency_service") or {}
            achieved = f"{o.get('achieved_rate_per_s', o.get('throughput_per_s', 0)):,.0f}/s"
            if o.get("offered_rate_per_s") and o.get("achieved_vs_offered") is not None:
                achieved += f" ({o['achieved_vs_offered']:.0%})"
            rows.append(([labels.name(r)] if labels.many else []) + [
                name, o.get("users", "–"), f"{o.get('measured_seconds', 0):g} s",
                f"{o['offered_rate_per_s']:g}/s" if o.get("offered_rate_per_s") else "back to back", achieved,
                us(lat.get("p50_us")), us(lat.get("p99_us")), f"{o.get('errors', 0):,}",
                f"{c.get('lost_updates', 0)} of {c.get('adds_checked', 0):,}", g.get("verdict", "–")])
    k = 1 if labels.many else 0
    return Table(cols, rows, numeric=frozenset(range(k + 1, k + 9)),
                 caption="achieved: operations completed per measured second (share of the offered rate); "
                         "latency from the actual send (service time); lost updates: acknowledged ingredient adds "
                         "missing afterwards; load generator: whether Locust's own CPU limited the rate")


def _ops_table(runs: list[Run], labels: Labels) -> Table:
    cols = (["run"] if labels.many else []) + ["store", "op", "ops/s", "p50", "p90", "p99", "p99.9", "max",
                                               "not found", "errors"]
    rows = []
    for r in runs:
        for name, s in r.doc.sections["load"]["stores"].items():
            for op, o in s["ops"].items():
                li = o.get("latency_service") or {}
                rows.append(([labels.name(r)] if labels.many else []) + [
                    name, op, f"{o.get('throughput_per_s', 0):,.0f}", us(li.get("p50_us")), us(li.get("p90_us")),
                    us(li.get("p99_us")), us(li.get("p99_9_us")), us(li.get("max_us")),
                    f"{o.get('not_found', 0):,}", f"{o.get('errors', 0):,}"])
    k = 1 if labels.many else 0
    return Table(cols, rows, numeric=frozenset(range(k + 2, len(cols))),
                 caption="per store and operation, microsecond percentiles recorded from Locust's request events "
                         "(Locust's own statistics round to milliseconds); from the actual send")


def build(runs: list[Run], labels: Labels) -> list[Block]:
    out: list[Block] = [Heading("Load through Locust: many users, closed loops", 2, anchor="load")]
    for r in runs:
        out.append(Para(_intro(r.doc.sections["load"]) + (f" ({labels.name(r)})" if labels.many else "")))
    out.append(Para(CAVEAT, "note"))
    out.append(_stores_table(runs, labels))
    out.append(_ops_table(runs, labels))
    series = []
    for r in runs:
        for name, s in r.doc.sections["load"]["stores"].items():
            for iv in [*(s.get("warmup_intervals") or []), *(s.get("intervals") or [])]:
                series.append({"label": labels.series(r, name), "store": name, "run": labels.run(r),
                               "t_s": iv["t_s"], "ops": iv.get("ops", 0), "p50_us": iv.get("p50_us"),
                               "p99_us": iv.get("p99_us")})
    svg = plots.over_time(plots.frame(series), title="Latency and throughput through Locust, second by second",
                          latency_label="latency from the actual send")
    if svg:
        out.append(Figure(svg, "Per second, all operations together: p50 (line) and p99 (dots) from the actual send, "
                               "and operations completed. A dip in throughput is where a closed loop hides a stall."))
    errors = [([labels.name(r)] if labels.many else []) + [name, cls, f"{e.get('count', 0):,}", e.get("sample", "")]
              for r in runs for name, s in r.doc.sections["load"]["stores"].items()
              for cls, e in (s.get("errors") or {}).items()]
    if errors:
        out.append(Table((["run"] if labels.many else []) + ["store", "error", "count", "example"], errors,
                         stack=True))
    return out

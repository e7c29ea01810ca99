"""The report's ``failure`` blocks: what each fault case cost, mirroring the terminal's tables.

Per case (store × fault × durability × client): the service during the fault and the recovery
after the heal; the data read back afterwards (acknowledged sessions and adds lost, stale sessions,
"no such session" for live ones, failed writes that appeared); the durability modes and their
documented promises; and, from each case's per-100 ms timeline, requests served and failed over
time with the fault window shaded. The seed's failure recovery and fault isolation rows are in the
claims table at the top of the page.
"""

from __future__ import annotations

from typing import Any

from fridgebench.measure.runs import Run
from fridgebench.report import plots
from fridgebench.report.blocks import Block, Figure, Heading, Para, Table
from fridgebench.report.sections import Labels, us

MAX_PANELS = 12


def _s(v: Any) -> str:
    return "–" if v is None else f"{float(v):.2f} s"


def _pct(v: Any) -> str:
    return "–" if v is None else f"{float(v):.1%}"


def _n(v: Any) -> str:
    return "–" if v is None else f"{int(v):,}"


def case_name(c: dict[str, Any]) -> str:
    """The case as the run labelled it, or as the terminal builds it."""
    if c.get("label"):
        return str(c["label"])
    client = c.get("client") or {}
    who = ("seed client" if client.get("timeout_s") is None
           else f"{client['timeout_s']:g} s timeout, {client.get('retries', 0)} retries")
    return f"{c['store']} × {c['fault']}{' ' + c['policy'] if c.get('policy') else ''} [{c['durability']}; {who}]"


def _setup(section: dict[str, Any]) -> str:
    o = section.get("options") or {}
    faults = section.get("faults") or {}
    what = "; ".join(f"{name}: {f.get('what', '')}" for name, f in faults.items())
    text = "Each case drives the scenario's open loop against one store"
    if o.get("rate_per_s"):
        text += f" at {o['rate_per_s']:g} operations/s"
    if o.get("sessions"):
        text += f" over {o['sessions']:,} sessions loaded first"
    if o.get("at_s") is not None and o.get("down_s") is not None and o.get("measured_s"):
        text += (f"; the fault is injected {o['at_s']:g} s into the {o['measured_s']:g} s measured window and healed "
                 f"{o['down_s']:g} s later")
    text += (". Then every session is read back through the store and every write judged: acknowledged "
             "sessions and adds lost, stale sessions, “no such session” answers for live sessions, failed writes "
             "whose effect appeared.")
    return text + (f" Faults — {what}." if what else "")


def _durability(sections: list[dict[str, Any]]) -> list[Block]:
    modes: dict[str, dict[str, Any]] = {}
    for sec in sections:
        for name, m in (sec.get("durability_modes") or {}).items():
            modes.setdefault(name, m)
    if not modes:
        return []
    rows = []
    for name, m in modes.items():
        settings = " ".join(f"{k}={v!r}" if v == "" else f"{k}={v}" for k, v in (m.get("settings") or {}).items())
        rows.append([f"{m.get('kind', '')} {name}".strip(), settings, m.get("process_crash_promise", "–"),
                     m.get("os_crash_or_power_loss_promise", "–")])
    sources = sorted({m["source"] for m in modes.values() if m.get("source")})
    return [Table(["mode", "settings", "a process crash loses (measured below)",
                   "an OS crash / power loss loses (stated, not measured)"], rows, stack=True,
                  caption="Durability modes: the settings passed to the servers, and what their documentation "
                          "promises" + (f" (sources: {' ; '.join(sources)})" if sources else ""))]


def _service(cases: list[tuple[Run, dict[str, Any]]], labels: Labels) -> Table:
    cols = (["run"] if labels.many else []) + ["case", "failed during the fault", "p99 during", "longest wait",
                                               "first success after heal", "p99 back to normal", "server ready"]
    rows = []
    for r, c in cases:
        d, rec = c["during"], c["recovery"]
        rows.append(([labels.name(r)] if labels.many else []) + [
            case_name(c), f"{_n(d['errors'])} ({_pct(d.get('error_rate'))})", us(d.get("p99_us")),
            _s(d.get("longest_wait_s")), _s(rec.get("first_success_after_heal_s")),
            _s(rec.get("p99_back_within_1_5x_after_heal_s")), _s((c.get("server") or {}).get("server_ready_s"))])
    k = 1 if labels.many else 0
    return Table(cols, rows, numeric=frozenset(range(k + 1, len(cols))),
                 caption="Service: requests that arrived during the fault, and the recovery after the heal. "
                         "First success: from the heal to the first request sent after it that succeeded; p99 back "
                         "to normal: from the heal until 500 ms of arrivals had no error and a p99 within 1.5x of "
                         "the pre-fault p99; server ready: the restart and its data load; latency from the "
                         "intended start.")


def _data(cases: list[tuple[Run, dict[str, Any]]], labels: Labels) -> Table:
    cols = (["run"] if labels.many else []) + ["case", "sessions lost", "of those acknowledged before the fault",
                                               "acknowledged adds lost", "“no such session” for live ones",
                                               "stale", "failed writes that appeared", "indeterminate / applied",
                                               "TTL expired (excluded)"]
    rows = []
    for r, c in cases:
        a = c["accounting"]
        rows.append(([labels.name(r)] if labels.many else []) + [
            case_name(c), f"{_n(a['sessions_lost'])} of {_n(a.get('sessions_judged'))}",
            f"{_n((a.get('sessions_lost_by_phase') or {}).get('before'))} of "
            f"{_n(a.get('sessions_acknowledged_before_fault'))}",
            _n(a.get("adds_lost")), _n(a.get("false_not_found")), _n(a.get("sessions_stale")),
            _n(a.get("failed_writes_appeared")),
            f"{_n(a.get('indeterminate_writes'))} / {_n(a.get('indeterminate_writes_applied'))}",
            _n(a.get("ttl_expired_excluded"))])
    k = 1 if labels.many else 0
    return Table(cols, rows, numeric=frozenset(range(k + 1, len(cols))),
                 caption="Data: every session read back after recovery, every write judged. Stale: an older "
                         "ingredient list than the last acknowledged; appeared: writes that definitely failed but "
                         "whose effect is there; indeterminate: writes that timed out or lost their connection "
                         "(and of those, applied).")


def short_name(c: dict[str, Any], with_client: bool) -> str:
    """A panel title: store × fault · durability (and the client, when the run tried several)."""
    client = c.get("client") or {}
    who = client.get("label") or ("seed client" if client.get("timeout_s") is None else f"{client['timeout_s']:g} s")
    return (f"{c['store']} × {c['fault']}{' ' + c['policy'] if c.get('policy') else ''} · {c['durability']}"
            + (f" · {who}" if with_client else ""))


def _timelines(cases: list[tuple[Run, dict[str, Any]]], labels: Labels) -> list[Block]:
    panels = []
    clients = {str(c.get("client")) for _, c in cases}
    for r, c in cases:
        tl = c.get("timeline") or []
        if not tl or c.get("inject_s") is None or c.get("heal_s") is None:
            continue
        ts = [float(b["t_s"]) for b in tl]
        step = round(ts[1] - ts[0], 6) if len(ts) > 1 else 0.1
        panels.append({"title": short_name(c, len(clients) > 1) + (f" · {labels.name(r)}" if labels.many else ""),
                       "store": c["store"],
                       "t_s": ts, "bucket_s": step,
                       "served": [int(b.get("ok", 0)) + int(b.get("not_found", 0)) for b in tl],
                       "errors": [int(b.get("errors", 0)) for b in tl],
                       "inject_s": float(c["inject_s"]), "heal_s": float(c["heal_s"])})
    if not panels:
        return []
    shown = panels[:MAX_PANELS]
    svg = plots.fault_timelines(shown, title="Requests served and failed over time, per case")
    if not svg:
        return []
    more = f" The first {MAX_PANELS} of {len(panels)} cases are drawn." if len(panels) > MAX_PANELS else ""
    return [Figure(svg, "Per case, by the requests' intended start (each bucket: the users who arrived then), "
                        "scaled to requests per second: served (found or not found) and failed; shaded: the fault "
                        "from its injection to its heal." + more)]


def _notes(sec: dict[str, Any], labels: Labels, run: Run) -> list[Block]:
    out: list[Block] = []
    rows = []
    for c in sec["cases"]:
        errs = (c.get("during") or {}).get("errors_by_class") or {}
        where = c.get("where_sessions_are") or {}
        where_txt = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in where.items()
                              if isinstance(v, int) and k != "sessions")
        if errs or where_txt:
            rows.append([case_name(c), ", ".join(f"{k} {v:,}" for k, v in sorted(errs.items())) or "–",
                         where_txt or "–"])
        for note in c.get("heal_notes") or []:
            out.append(Para(f"{case_name(c)}: {note}", "warning"))
    if rows:
        out.insert(0, Table(["case", "errors during the fault, by class", "where the sessions are afterwards"], rows,
                            stack=True, caption="where the sessions are: for the two-store designs, which store "
                                                "holds each session after recovery"))
    proxy = sec.get("proxy") or {}
    for kind, o in (proxy.get("added_latency") or {}).items():
        out.append(Para(f"The fault proxy ({proxy.get('where', '')}) adds latency even with no fault: "
                        f"{o['request']} on one connection, p50 {o['direct_p50_us']:g} µs direct vs "
                        f"{o['proxied_p50_us']:g} µs through the proxy [{kind}].", "note"))
    for s in sec.get("skipped") or []:
        out.append(Para(f"Skipped {s['store']} × {s['fault']}: {s['why']}", "note"))
    for n in sec.get("plan_notes") or []:
        out.append(Para(f"Note: {n}", "note"))
    nope = sec.get("not_producible_here") or []
    if nope:
        out.append(Table(["not produced on this machine", "why (stated, not measured)"],
                         [[x.get("fault", "–"), x.get("why", "–")] for x in nope], stack=True))
    if sec.get("seed_deployment"):
        out.append(Para(sec["seed_deployment"], "note"))
    if labels.many and out:
        out.insert(0, Heading(f"Notes · {labels.name(run)}", 3))
    return out


def build(runs: list[Run], labels: Labels) -> list[Block]:
    out: list[Block] = [Heading("Failures: faults under load, sessions lost, time to recover", 2, anchor="failure")]
    sections = [r.doc.sections["failure"] for r in runs]
    cases = [(r, c) for r, sec in zip(runs, sections) for c in sec["cases"]]
    out.append(Para(_setup(sections[0])))
    if not cases:
        out.append(Para("This run measured no case (every planned case was skipped).", "warning"))
    out += _durability(sections)
    if cases:
        out.append(_service(cases, labels))
        out.append(_data(cases, labels))
        out += _timelines(cases, labels)
    for r, sec in zip(runs, sections):
        out += _notes(sec, labels, r)
    return out

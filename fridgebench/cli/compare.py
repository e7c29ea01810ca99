"""``fridgebench compare``: provision, replay a scenario against each store, report, write results."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from fridgebench.cli._app import app
from fridgebench.cli import _options as o
from fridgebench.cli._common import (announce_wait, console, emit_json, error_boundary, fail_if_inconclusive,
                                     report_run, run_async)
from fridgebench.errors import UsageError


def _parse_stores(value: str) -> tuple[str, ...]:
    from fridgebench.stores import STORE_NAMES

    names = tuple(s.strip() for s in value.split(",") if s.strip())
    bad = [s for s in names if s not in STORE_NAMES]
    if bad or not names:
        raise UsageError(f"unknown store {', '.join(bad) or '(none)'} in --stores",
                         hint=f"use a comma list of: {', '.join(STORE_NAMES)}")
    return tuple(dict.fromkeys(names))


def _parse_paths(value: str) -> tuple[str, ...]:
    from fridgebench.stores import PATHS

    names = tuple(s.strip() for s in value.split(",") if s.strip())
    bad = [s for s in names if s not in PATHS]
    if bad or not names:
        raise UsageError(f"unknown path {', '.join(bad) or '(none)'} in --paths",
                         hint="use app, server or app,server (app: fridge2fork's own code; server: lean clients)")
    return tuple(dict.fromkeys(names))


def _server_stores(names: tuple[str, ...]) -> tuple[str, ...]:
    """The server-path stores writing the same data as ``names`` (ttl and the sweep measure the servers)."""
    from fridgebench.stores import SERVER_EQUIVALENT

    return tuple(dict.fromkeys(SERVER_EQUIVALENT.get(n, n) for n in names))


@app.command()
def compare(
    scenario: Annotated[str, typer.Argument(help="Scenario name (see scenarios/) or path to a .toml file.")] = "session-lifecycle",
    stores: Annotated[Optional[str], typer.Option("--stores", help="Comma list of stores to run (instead of --paths): postgres, redis-seed, redis-atomic (server path); postgres-app, postgres-app-fixed, redis-app (app path).")] = None,
    paths: Annotated[Optional[str], typer.Option("--paths", help="Which paths to compare (default app,server): app (fridge2fork's own code: SQLAlchemy ORM vs the seed's redis.asyncio code, plus the ORM code with its two cheapest fixes), server (lean clients: postgres vs redis-atomic), or both.")] = None,
    app_rate: Annotated[Optional[float], typer.Option("--app-rate", metavar="OPS_PER_S", help="Open-loop rate of the app-path stores (default: the scenario's rate, at most 100: one Python process runs the app's ORM code and the driver, and the ORM costs milliseconds of CPU per request).")] = None,
    profile: Annotated[bool, typer.Option("--profile/--no-profile", envvar="FRIDGEBENCH_PROFILE", show_envvar=True, help="After each store's run, take one operation of each kind apart: round trips, statements, WAL flushes, server and client time.")] = True,
    duration: Annotated[Optional[float], typer.Option("--duration", metavar="SECONDS", help="Measured seconds per store (overrides the scenario).")] = None,
    warmup: Annotated[Optional[float], typer.Option("--warmup", metavar="SECONDS", help="Warm-up seconds per store, excluded from results.")] = None,
    rate: Annotated[Optional[float], typer.Option("--rate", metavar="OPS_PER_S", help="Open-loop arrival rate (overrides the scenario).")] = None,
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", help="Operations in flight per store (open loop: at most; closed loop: workers). Server-path stores open this many connections; app-path stores keep the app's own pools (PostgreSQL: 5 + 10 overflow), so requests beyond those wait for a connection, as in the app.")] = None,
    sessions: Annotated[Optional[int], typer.Option("--sessions", help="Sessions loaded before the run.")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed (same seed: same operations).")] = None,
    full: Annotated[bool, typer.Option("--full", help="Also run the load sweep and `fridgebench ttl` (on the server-path stores) and a short `fridgebench failure` set: fill every claim they can.")] = False,
    sweep: Annotated[bool, typer.Option("--sweep", help="Also step the offered load up to find each store's knee (scalability; the server-path stores writing what the chosen ones write).")] = False,
    out: Annotated[Path, typer.Option("--out", help="Folder for run directories.", envvar="FRIDGEBENCH_REPORTS")] = Path("reports"),
    repeat: Annotated[int, typer.Option("--repeat", metavar="N", help="Run the comparison N times on the same servers, the stores in alternating order (ABBA...), one run folder each under one folder: what `fridgebench gate` needs.")] = 1,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 4 when a claim this run measured is inconclusive (too noisy, no significant ratio, ...), as `gate --strict` does: for a CI step that must not pass on a run nobody can judge. The results are written either way.")] = False,
    json_out: o.Json = False,
    no_report: o.NoReport = False,
    postgres_dsn: o.PostgresDsn = None, redis_url: o.RedisUrl = None, pg_bin: o.PgBin = None,
    redis_bin: o.RedisBin = None, pg_user: o.PgUser = None, run_dir: o.RunDir = None,
    reuse: o.Reuse = False, reset: o.Reset = False,
) -> None:
    """Replay a session workload against PostgreSQL and Redis and compare them, side by side.

    Two paths by default: as fridge2fork's code uses the servers (the app path: SQLAlchemy's
    async ORM vs the seed's redis.asyncio code, and the ORM code with its two cheapest fixes) and
    as the servers can serve them (the server path: lean clients). Each PostgreSQL store is
    compared with the Redis stores of its path.

    With no store options, starts its own PostgreSQL and Valkey (embedded binaries) on free
    local ports and stops them afterwards.

    Examples:

      fridgebench compare

      fridgebench compare --paths server read-heavy --duration 30

      fridgebench compare --stores postgres-app,redis-app --app-rate 400

      fridgebench compare --postgres-dsn postgresql://app@db/fridge --redis-url redis://cache:6379/0 --reuse

      fridgebench compare --repeat 5 --out baseline     (then, on a change: --out head; fridgebench gate --baseline baseline --current head)

    Exit status: 0 measured (whatever the verdicts) · 4 with --strict, a verdict it measured is inconclusive · 1 runtime error · 2 bad input · 130 interrupted.
    """
    with error_boundary():
        from fridgebench.engine.driver import install_event_loop_policy
        from fridgebench.workload.model import load_scenario

        from fridgebench.measure.results import check_reports_root

        check_reports_root(out, "--out")  # before any server starts: a run's results need somewhere to go
        from fridgebench.stores import stores_for_paths

        if stores is not None and paths is not None:
            raise UsageError("--stores and --paths both choose the stores: give one of them",
                             hint="--paths app,server runs the default stores of each path; --stores names them")
        store_names = (_parse_stores(stores) if stores is not None
                       else stores_for_paths(_parse_paths(paths if paths is not None else "app,server")))
        sc = load_scenario(scenario).with_overrides({
            "load.duration_seconds": duration, "load.warmup_seconds": warmup, "load.rate": rate,
            "load.concurrency": concurrency, "population.sessions": sessions, "seed": seed,
        }, flags={"load.duration_seconds": "--duration", "load.warmup_seconds": "--warmup", "load.rate": "--rate",
                  "load.concurrency": "--concurrency", "population.sessions": "--sessions", "seed": "--seed"})
        for flag, given in (("--rate", rate), ("--app-rate", app_rate)):
            if given is not None and sc.load.model == "closed":
                raise UsageError(f"{flag} applies to open-loop scenarios; {sc.name} is closed-loop",
                                 hint="use --concurrency, or an open-loop scenario")
        if app_rate is not None and not 0 < app_rate <= 1_000_000:
            raise UsageError(f"--app-rate {app_rate:g}: must be a rate above 0 and at most 1,000,000 operations per second")
        if repeat < 1:
            raise UsageError(f"--repeat must be at least 1, got {repeat}")
        if repeat > 1 and (full or sweep):
            raise UsageError("--repeat repeats the comparison alone", hint="run --sweep / --full separately")
        ttl_opts = failure = None
        if full:
            from fridgebench.experiments.ttl import TtlOptions, validate
            from fridgebench.stores import TWO_SERVER_STORES

            server_stores = _server_stores(store_names)
            ttl_stores = tuple(s for s in server_stores if s not in TWO_SERVER_STORES)  # ttl watches one server
            if ttl_stores:
                ttl_opts = TtlOptions(stores=ttl_stores, seed=sc.seed)
                validate(ttl_opts)  # before any server starts
            from fridgebench.experiments.failure import plan as failure_plan, short_preset

            external = frozenset(k for k, url in (("postgres", postgres_dsn), ("redis", redis_url)) if url)
            fopts = short_preset(sc, server_stores, external)
            failure = (fopts, failure_plan(fopts, external))  # checked before any server starts
        from fridgebench.stores import servers_needed

        popts = o.provision_options(postgres_dsn, redis_url, pg_bin, redis_bin, pg_user, run_dir, reuse, reset,
                                    need=servers_needed(store_names, recipes=sc.mix.recipe > 0))
        loop_name = install_event_loop_policy()
        sweep_opts = None
        if full or sweep:
            from fridgebench.experiments.sweep import SweepOptions

            sweep_opts = SweepOptions(sc, _server_stores(store_names))  # scalability: the servers' claim
        from fridgebench.experiments.compare import CompareOptions
        from fridgebench.profile.run import ProfileOptions

        copts = CompareOptions(sc, store_names, app_rate=app_rate, profile=ProfileOptions() if profile else None)
        # per store: warm-up and measurement, plus loading its sessions (20,000 took 0.7–4.0 s a store on a 2-core
        # VM: ~0.15 ms each) and about a second to delete them, probe the machine and summarize
        wait = len(store_names) * (sc.load.warmup_seconds + sc.load.duration_seconds
                                   + sc.population.sessions * 0.15e-3 + 1.0)
        if profile:
            wait += sum(3.0 if s.endswith("-app") or "-app-" in s else 1.0 for s in store_names)
        if sweep_opts is not None:
            wait += len(sweep_opts.stores) * len(sweep_opts.rates) * (0.5 + sweep_opts.step_seconds)
        if ttl_opts is not None:
            from fridgebench.experiments.ttl import expected_wait_s

            wait += expected_wait_s(ttl_opts)
        if failure is not None:
            from fridgebench.experiments.failure import expected_seconds

            wait += expected_seconds(failure[1], failure[0])
        announce_wait(wait * repeat, f"measuring {', '.join(store_names)}")
        docs, paths = _run(sc, copts, popts, out, loop_name, json_out, ttl_opts, sweep_opts, repeat, failure)
        if json_out:
            emit_json(docs[0].to_dict() if repeat == 1 else [d.to_dict() for d in docs])
        for path in paths:
            console.print(f"results: {path}")
        report_run(paths[0].parent if repeat == 1 else paths[0].parent.parent, no_report)
        if strict:
            fail_if_inconclusive([c for d in docs for c in d.claims])



def abba(stores: tuple[str, ...], index: int) -> tuple[str, ...]:
    """The stores' order in repeat ``index``: forward, reversed, forward, ... (A B | B A | A B ...), so slow
    drift of the machine (page cache, thermal, neighbours) weighs on every store alike."""
    return stores if index % 2 == 0 else tuple(reversed(stores))


def _run(sc, copts, popts, out: Path, loop_name: str, json_out: bool, ttl_opts, sweep_opts,  # type: ignore[no-untyped-def]
         repeat: int = 1, failure=None):
    from dataclasses import replace

    from fridgebench.measure.results import RunGroup, new_run_id
    from fridgebench.provision import provisioned

    group_id = new_run_id(f"compare-x{repeat}") if repeat > 1 else None
    root = out / group_id if group_id else out
    docs, paths = [], []
    # the run folder appears once the stores are up: bad input leaves nothing behind in reports/
    with provisioned(popts, on_event=lambda line: console.print(f"[dim]{line}[/]")) as ep:
        for i in range(repeat):
            order = abba(copts.stores, i)
            group = RunGroup(id=group_id, index=i, count=repeat, order=list(order)) if group_id else None
            if group_id:
                console.print(f"[bold]repeat {i + 1} of {repeat}[/]: {' → '.join(order)}")
            doc, path = _run_once(sc, replace(copts, stores=order), ep, root, loop_name, json_out, ttl_opts,
                                  sweep_opts, group, render=i == repeat - 1,
                                  failure=(popts, *failure) if failure else None)
            docs.append(doc)
            paths.append(path)
    return docs, paths


def _run_once(sc, copts, ep, out: Path, loop_name: str, json_out: bool, ttl_opts, sweep_opts, group,  # type: ignore[no-untyped-def]
              render: bool = True, failure=None):
    from fridgebench.experiments.compare import run_compare
    from fridgebench.measure.results import Environment, ResultsDocument, RunDirectory, new_run_id
    from fridgebench.measure.summary import hdr_log_text
    from fridgebench.report import claims as claims_mod
    from fridgebench.report.terminal import render_claims, render_compare, render_servers

    started = datetime.now(timezone.utc)
    rundir = RunDirectory(out, new_run_id("compare"))
    view = _LiveView(enabled=console.is_terminal and not json_out, total=len(copts.stores))
    with rundir:
        servers = [s.to_dict() for s in ep.servers()]
        env = Environment.capture(servers=servers, event_loop=loop_name)
        base = dict(command="compare", run_id=rundir.run_id, started_at=started, environment=env,
                    scenario=sc.model_dump(), seed=sc.seed, group=group)
        ResultsDocument(**base)  # validate early: a bad document fails before minutes of measuring
        console.print(f"[bold]{sc.name}[/]: {sc.description}  [dim](run {rundir.run_id})[/]")
        with view:
            result = run_async(run_compare(ep, copts, on_progress=view.update, on_event=view.event))
        section = result.section()
        claims = result.claims
        sections = {"compare": section}
        warnings = list(result.warnings)
        if sweep_opts is not None:
            from fridgebench.experiments.sweep import run_sweep

            sweep_section, sweep_claims = run_async(run_sweep(ep, sweep_opts, progress=view.event))
            sections["sweep"] = sweep_section
            claims = claims_mod.merge(claims, sweep_claims)
        if ttl_opts is not None:
            from fridgebench.experiments.ttl import render_ttl, run_ttl

            ttl = run_async(run_ttl(ep, ttl_opts, progress=lambda line: console.print(f"[dim]{line}[/]")))
            sections["ttl"] = ttl.section
            claims = claims_mod.merge(claims, ttl.claims)
        if failure is not None:
            fsection, fclaims, files = _failure(*failure)  # (popts, options, plan)
            sections["failure"] = fsection
            claims = claims_mod.merge(claims, fclaims)
            for name, text in files.items():
                rundir.write_text_atomic(name, text)
        for name, run in result.runs.items():
            for op in run.measurement.histograms:
                rundir.write_text_atomic(f"{name}.{op}.hlog",
                                         hdr_log_text(run.measurement, op, result.measure_start_epoch, name))
        rundir.write_text_atomic("intervals.csv", _intervals_csv(section))
        doc = ResultsDocument(**base, finished_at=datetime.now(timezone.utc), complete=True,
                              sections=sections, claims=claims, warnings=warnings)
        path = rundir.finish(doc)
    if not render:
        return doc, path
    render_servers(servers, console)
    render_compare(section, console, warnings=warnings)
    if section.get("profile"):
        from fridgebench.report.terminal import render_profile

        render_profile(section["profile"], console)
    if "sweep" in doc.sections:
        from fridgebench.report.terminal import render_sweep

        render_sweep(doc.sections["sweep"], console)
    if ttl_opts is not None:
        render_ttl(ttl, console)
    if "failure" in doc.sections:
        from fridgebench.report.failure import render_failure

        render_failure(doc.sections["failure"], console)
    render_claims([c.model_dump() for c in doc.claims], console)
    return doc, path


def _failure(popts, fopts, plan):  # type: ignore[no-untyped-def]
    """The short failure set on servers of its own (started per durability mode, stopped at the end);
    external stores were checked (and --reset applied) when compare provisioned them."""
    from dataclasses import replace

    from fridgebench.experiments.failure import hlog_files, run_failure, section, timeline_csv
    from fridgebench.experiments.failure.claims import judge
    from fridgebench.faults.durability import MODES
    from rich.markup import escape

    from fridgebench.provision.fleet import Fleet
    from fridgebench.stores import servers_needed

    say = lambda line: console.print(f"[dim]{escape(line)}[/]", soft_wrap=True)  # noqa: E731
    say(f"failure: {len(plan.cases)} short fault cases ({', '.join(fopts.faults)} on {', '.join(fopts.stores)})")
    fleet_opts = replace(popts, existing="reuse" if popts.existing == "reset" else popts.existing,
                         need=servers_needed(fopts.stores, recipes=False))
    with Fleet(fleet_opts, on_event=say) as fleet:
        servers = {(k, m): fleet.server(k, m, dict(MODES[m].settings) if m in MODES else {})
                   for k, m in plan.servers()}
        result = run_async(run_failure(plan, fopts, servers, on_event=say))
    sec = section(result, fopts)
    files = {**hlog_files(result), "timeline.csv": timeline_csv(sec)}
    return sec, judge(sec["cases"]), files


def _intervals_csv(section: dict) -> str:  # type: ignore[type-arg]
    lines = ["store,t_s,ops,errors,p50_us,p99_us,max_us"]
    for name, run in section["stores"].items():
        for iv in run["intervals"]:
            lines.append(f"{name},{iv['t_s']},{iv['ops']},{iv['errors']},{iv.get('p50_us', '')},"
                         f"{iv.get('p99_us', '')},{iv.get('max_us', '')}")
    return "\n".join(lines) + "\n"


class _LiveView:
    """A live Rich progress view on stderr (a plain line per store when not a terminal)."""

    def __init__(self, enabled: bool, total: int) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.fields[store]:<13}"), TextColumn("{task.fields[phase]:<9}"), BarColumn(),
            TextColumn("{task.fields[rate]:>8} ops/s"), TextColumn("errors {task.fields[errors]}"),
            TextColumn("late {task.fields[late]}"), TimeRemainingColumn(), console=console, transient=False,
        )
        self.tasks: dict[str, int] = {}
        self.last: dict[str, object] = {}

    def __enter__(self) -> "_LiveView":
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self.progress.stop()
        else:
            for name, p in self.last.items():
                console.print(f"{name}: {p.completed:,} operations, {p.errors:,} error{'' if p.errors == 1 else 's'}, {p.late:,} late")  # type: ignore[attr-defined]

    def event(self, line: str) -> None:
        console.print(f"[dim]{line}[/]")

    def update(self, store: str, p) -> None:  # type: ignore[no-untyped-def]
        self.last[store] = p
        if not self.enabled:
            return
        if store not in self.tasks:
            self.tasks[store] = self.progress.add_task("", total=p.total_s, store=store, phase=p.phase,
                                                       rate="0", errors=0, late=0)
        self.progress.update(self.tasks[store], completed=min(p.elapsed_s, p.total_s), phase=p.phase,
                             rate=f"{p.achieved_rate:,.0f}", errors=p.errors, late=p.late)

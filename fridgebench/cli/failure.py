"""``fridgebench failure``: crash, hang and network faults under load; sessions lost, time to recover."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from fridgebench.cli._app import app
from fridgebench.cli import _options as o
from fridgebench.cli._common import announce_wait, console, emit_json, error_boundary, report_run, run_async
from fridgebench.errors import UsageError

if TYPE_CHECKING:
    from fridgebench.experiments.failure import FailureOptions, Plan
    from fridgebench.measure.results import ResultsDocument
    from fridgebench.provision.base import ProvisionOptions

_F = "Faults"
_C = "Client"


def _csv(value: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(x.strip() for x in value.split(",") if x.strip()))


@app.command()
def failure(
    faults: Annotated[Optional[list[str]], typer.Argument(
        metavar="[FAULT]...", help="crash, crash-backend, restart, pause, latency, reset, blackhole, refuse, "
                                   "memory-full (default: crash pause).", show_default=False)] = None,
    stores: Annotated[str, typer.Option("--stores", help="Comma list of stores. The Redis stores' faults act on "
                                        "Redis (redis-fallback and pg-redis-cache: the seed's 'Redis fails'), "
                                        "postgres's on PostgreSQL.")] = "postgres,redis-atomic,redis-fallback,pg-redis-cache",
    durability: Annotated[Optional[str], typer.Option("--durability", metavar="MODE,...", help="Redis: none, "
                          "aof-everysec, aof-always, rdb; PostgreSQL: sync, async. Default: none,aof-everysec,sync "
                          "(the seed's two Redis pictures, PostgreSQL's default).", rich_help_panel=_F)] = None,
    down: Annotated[float, typer.Option("--down", metavar="SECONDS", help="How long the fault lasts.",
                                        rich_help_panel=_F)] = 2.0,
    at: Annotated[float, typer.Option("--at", metavar="SECONDS", help="When the fault is injected, into the "
                                      "measured window.", rich_help_panel=_F)] = 1.5,
    duration: Annotated[float, typer.Option("--duration", metavar="SECONDS", help="Measured seconds per case "
                                            "(before, during and after the fault).")] = 8.0,
    warmup: Annotated[float, typer.Option("--warmup", metavar="SECONDS", help="Warm-up per case, excluded.")] = 1.0,
    rate: Annotated[float, typer.Option("--rate", metavar="OPS_PER_S", help="Open-loop arrival rate.")] = 500.0,
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", help="Connections per store (default: the "
                                                       "scenario's).")] = None,
    sessions: Annotated[int, typer.Option("--sessions", help="Sessions loaded before each case.")] = 3000,
    scenario: Annotated[str, typer.Option("--scenario", help="Scenario name or path (its mix and keys).")] = "session-lifecycle",
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed.")] = None,
    client_timeout: Annotated[str, typer.Option("--client-timeout", metavar="SECONDS|none,...", help="Request and "
                              "connect timeout of the stores' clients; `none` = the seed's defaults (redis-py and asyncpg "
                              "with no timeout, no retries). A comma list runs each (where timeouts matter).",
                              rich_help_panel=_C)] = "1",
    retries: Annotated[int, typer.Option("--retries", help="Retries after a refused / lost / timed-out / loading "
                                         "request (not for `none`).", rich_help_panel=_C)] = 1,
    latency_ms: Annotated[float, typer.Option("--latency-ms", help="latency: added to every reply.",
                                              rich_help_panel=_F)] = 100.0,
    jitter_ms: Annotated[float, typer.Option("--jitter-ms", help="latency: ± uniform jitter.", rich_help_panel=_F)] = 20.0,
    maxmemory_policy: Annotated[str, typer.Option("--maxmemory-policy", metavar="POLICY,...", help="memory-full: "
                                "noeviction, allkeys-lru, volatile-lru.", rich_help_panel=_F)] = "noeviction,allkeys-lru,volatile-lru",
    memory_fraction: Annotated[float, typer.Option("--memory-fraction", help="memory-full: maxmemory = used memory "
                               "minus this fraction of the data set.", rich_help_panel=_F)] = 0.3,
    kill_cmd: Annotated[Optional[str], typer.Option("--kill-cmd", help="crash on an external store: the shell "
                        "command that kills it (e.g. `kubectl delete pod redis-master-0`).", rich_help_panel=_F)] = None,
    start_cmd: Annotated[Optional[str], typer.Option("--start-cmd", help="crash on an external store: the shell "
                         "command that brings it back, run after --down.", rich_help_panel=_F)] = None,
    cmd_timeout: Annotated[float, typer.Option("--cmd-timeout", metavar="SECONDS", help="Limit for each of "
                           "--kill-cmd / --start-cmd.", rich_help_panel=_F)] = 60.0,
    ready_timeout: Annotated[float, typer.Option("--ready-timeout", metavar="SECONDS", help="How long a healed "
                             "server may take to serve again.", rich_help_panel=_F)] = 60.0,
    allow_config_set: o.AllowConfigSet = False,
    out: Annotated[Path, typer.Option("--out", help="Folder for run directories.", envvar="FRIDGEBENCH_REPORTS")] = Path("reports"),
    json_out: o.Json = False,
    no_report: o.NoReport = False,
    postgres_dsn: o.PostgresDsn = None, redis_url: o.RedisUrl = None, pg_bin: o.PgBin = None,
    redis_bin: o.RedisBin = None, pg_user: o.PgUser = None, run_dir: o.RunDir = None,
    reuse: o.Reuse = False, reset: o.Reset = False,
) -> None:
    """Inject crash, hang and network faults under load; count sessions lost and time to recover.

    Each case runs the scenario's open loop against one store, injects the fault --at seconds in,
    heals it --down seconds later, and keeps going to watch the recovery; then every session is read
    back and every write judged: acknowledged sessions and adds lost, failed writes that appeared,
    stale sessions, 'no such session' answers for live ones. Servers are started per durability mode
    and stopped afterwards; Ctrl-C heals the fault first.

    Examples:

      fridgebench failure

      fridgebench failure crash --stores postgres,redis-atomic --durability none,aof-always,sync,async

      fridgebench failure pause blackhole --stores redis-fallback,pg-redis-cache --client-timeout 1,none

      fridgebench failure memory-full --stores redis-atomic --maxmemory-policy noeviction,allkeys-lru

      fridgebench failure crash --stores redis-atomic --redis-url redis://cache:6379/0 --reuse
        --kill-cmd 'kubectl delete pod redis-master-0'
        --start-cmd 'kubectl wait --for=condition=Ready pod/redis-master-0 --timeout=120s'
    """
    with error_boundary():
        from fridgebench.engine.driver import install_event_loop_policy
        from fridgebench.experiments.failure import (FailureOptions, expected_seconds, parse_clients, parse_faults,
                                                     plan)
        from fridgebench.measure.results import check_reports_root
        from fridgebench.stores import servers_needed
        from fridgebench.workload.model import load_scenario

        check_reports_root(out, "--out")
        fault_names = parse_faults(list(faults or []))
        store_names = _csv(stores)
        clients = parse_clients(client_timeout, retries)
        if retries < 0 or retries > 10:
            raise UsageError(f"--retries must be between 0 and 10, got {retries}")
        sc = load_scenario(scenario).with_overrides({
            "load.duration_seconds": duration, "load.warmup_seconds": warmup, "load.rate": rate,
            "load.concurrency": concurrency, "population.sessions": sessions, "seed": seed,
        }, flags={"load.duration_seconds": "--duration", "load.warmup_seconds": "--warmup", "load.rate": "--rate",
                  "load.concurrency": "--concurrency", "population.sessions": "--sessions", "seed": "--seed"})
        opts = FailureOptions(
            scenario=sc, faults=fault_names, stores=store_names, durability=_csv(durability or ""), clients=clients,
            down_s=down, at_s=at, latency_ms=latency_ms, jitter_ms=jitter_ms, policies=_csv(maxmemory_policy),
            memory_fraction=memory_fraction, kill_cmd=kill_cmd or None, start_cmd=start_cmd or None,
            cmd_timeout_s=cmd_timeout, ready_timeout_s=ready_timeout, allow_config_set=allow_config_set)
        from fridgebench.stores import STORE_NAMES

        bad = [s for s in store_names if s not in STORE_NAMES]
        if bad or not store_names:
            raise UsageError(f"unknown store {', '.join(bad) or '(none)'} in --stores",
                             hint=f"use a comma list of: {', '.join(STORE_NAMES)}")
        need = servers_needed(store_names, recipes=sc.mix.recipe > 0)
        popts = o.provision_options(postgres_dsn, redis_url, pg_bin, redis_bin, pg_user, run_dir, reuse, reset,
                                    need=need)
        external = frozenset(k for k, url in (("postgres", postgres_dsn), ("redis", redis_url)) if url and k in need)
        p = plan(opts, external)  # every option checked before any server starts
        loop_name = install_event_loop_policy()
        announce_wait(expected_seconds(p, opts), f"{len(p.cases)} fault cases")
        doc, path = _run(p, opts, popts, out, loop_name)
        if json_out:
            emit_json(doc.to_dict())
        console.print(f"results: {path}")
        report_run(path.parent, no_report)


def _run(p: Plan, opts: FailureOptions, popts: ProvisionOptions, out: Path,
         loop_name: str) -> tuple[ResultsDocument, Path]:
    from fridgebench.experiments.failure import hlog_files, run_failure, section, timeline_csv
    from fridgebench.experiments.failure.claims import judge
    from fridgebench.faults.durability import MODES
    from fridgebench.measure.results import Environment, ResultsDocument, RunDirectory, new_run_id
    from rich.markup import escape

    from fridgebench.provision.fleet import Fleet
    from fridgebench.report import claims as claims_mod
    from fridgebench.report.failure import render_durability, render_failure
    from fridgebench.report.terminal import render_claims, render_servers

    started = datetime.now(timezone.utc)
    rundir = RunDirectory(out, new_run_id("failure"))
    say = lambda line: console.print(f"[dim]{escape(line)}[/]", soft_wrap=True)  # noqa: E731
    with Fleet(popts, on_event=say) as fleet:
        servers = {(k, m): fleet.server(k, m, dict(MODES[m].settings) if m in MODES else {})  # type: ignore[arg-type]
                   for k, m in p.servers()}
        infos = [s.info.to_dict() | {"mode": s.mode} for s in servers.values()]
        # the run folder appears once the servers are up: bad input leaves nothing behind in --out
        with rundir:
            env = Environment.capture(servers=infos, event_loop=loop_name)
            base: dict[str, Any] = dict(command="failure", run_id=rundir.run_id, started_at=started, environment=env,
                                        scenario=opts.scenario.model_dump(), seed=opts.scenario.seed)
            ResultsDocument(**base)  # validate before minutes of measuring
            render_durability({"durability_modes": {m: MODES[m].to_dict() for _, m in servers if m in MODES}}, console)
            console.print(f"[bold]{len(p.cases)} cases[/]: {', '.join(opts.faults)} on {', '.join(opts.stores)}; "
                          f"{opts.scenario.load.rate:g} ops/s, {opts.scenario.population.sessions:,} sessions, fault at "
                          f"{opts.at_s:g} s for {opts.down_s:g} s of {opts.duration_s:g} s measured; clients: "
                          + "; ".join(c.describe() for c in opts.clients) + f"  [dim](run {rundir.run_id})[/]",
                          soft_wrap=True)
            result = run_async(run_failure(p, opts, servers, on_event=say))
            sec = section(result, opts)
            claims = claims_mod.merge(judge(sec["cases"]))
            for name, text in hlog_files(result).items():
                rundir.write_text_atomic(name, text)
            rundir.write_text_atomic("timeline.csv", timeline_csv(sec))
            doc = ResultsDocument(**base, finished_at=datetime.now(timezone.utc), complete=True,
                                  sections={"failure": sec}, claims=claims, warnings=result.warnings)
            path = rundir.finish(doc)
    render_servers(infos, console)
    render_failure(sec, console, warnings=result.warnings)
    render_claims([c.model_dump() for c in doc.claims], console)
    return doc, path

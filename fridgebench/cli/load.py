"""``fridgebench load``: the session workload through Locust, on this machine or many.

Locust is never imported here (it monkey-patches the process with gevent): the command runs it
in child processes (fridgebench.load.runner) and reads back what Locust's master wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from fridgebench.cli._app import app
from fridgebench.cli import _options as o
from fridgebench.cli._common import console, emit_json, error_boundary, report_run

_D = "Distributed (Locust master / workers)"


class _Events:
    """Progress from the Locust processes: phase lines, and a per-second rate (every 5 s off a terminal)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = console.is_terminal

    def __call__(self, proc: str, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "error":
            return  # becomes the command's one error line
        if kind == "progress":
            if self.tty or event["second"] % 5 == 0 or event["second"] == event["of"]:
                line = (f"{event['store']}: {event['second']}/{event['of']} s, {event['rate']:,.0f} ops/s (Locust's "
                        f"rolling rate), {event['errors']} errors")
                if self.tty:
                    console.print(f"[dim]{line}[/]", end="\r")
                else:
                    console.print(f"[dim]{line}[/]")
            return
        text = event.get("text")
        if text:
            prefix = "" if proc in ("local", "master") else f"{proc}: "
            console.print(f"[dim]{prefix}{text}[/]", soft_wrap=True)


@app.command()
def load(
    scenario: Annotated[str, typer.Argument(help="Scenario name (see scenarios/) or path to a .toml file.")] = "session-lifecycle",
    stores: Annotated[str, typer.Option("--stores", help="Comma list of stores, run one after another.")] = "postgres,redis-seed,redis-atomic",
    users: Annotated[Optional[int], typer.Option("--users", "-u", help="Concurrent users (app workers, one connection each). Default: the scenario's concurrency.")] = None,
    spawn_rate: Annotated[Optional[float], typer.Option("--spawn-rate", "-r", metavar="USERS_PER_S", help="Users started per second (default: all within about a second).")] = None,
    duration: Annotated[Optional[float], typer.Option("--duration", metavar="SECONDS", help="Measured whole seconds per store (overrides the scenario).")] = None,
    warmup: Annotated[Optional[float], typer.Option("--warmup", metavar="SECONDS", help="Seconds after all users started, excluded from results.")] = None,
    rate: Annotated[Optional[float], typer.Option("--rate", metavar="OPS_PER_S", help="Offered operations/s in all, paced per user (rate / users each); 0: back to back. Default: the scenario's rate.")] = None,
    sessions: Annotated[Optional[int], typer.Option("--sessions", help="Sessions loaded before each store's run.")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed (same seed: same operations).")] = None,
    processes: Annotated[Optional[int], typer.Option("--processes", help="Run Locust's master and N worker processes here (one core each). With --worker: N workers.", rich_help_panel=_D)] = None,
    master: Annotated[bool, typer.Option("--master", help="Be the master of workers on other machines.", rich_help_panel=_D)] = False,
    expect_workers: Annotated[int, typer.Option("--expect-workers", help="With --master: start once this many workers joined.", rich_help_panel=_D)] = 1,
    master_bind_host: Annotated[str, typer.Option("--master-bind-host", help="With --master: the interface workers connect to.", rich_help_panel=_D)] = "0.0.0.0",
    master_port: Annotated[int, typer.Option("--master-port", help="The master's port (Locust's 5557).", rich_help_panel=_D)] = 5557,
    worker: Annotated[bool, typer.Option("--worker", help="Be a worker of the master at --master-host (no stores are started here).", rich_help_panel=_D)] = False,
    master_host: Annotated[Optional[str], typer.Option("--master-host", help="With --worker: the master's host.", rich_help_panel=_D)] = None,
    connect_timeout: Annotated[float, typer.Option("--connect-timeout", metavar="SECONDS", help="With --worker: give up when no master answers within this.", rich_help_panel=_D)] = 60.0,
    web: Annotated[bool, typer.Option("--web", help="Open Locust's web UI (start the test there) instead of running headless.")] = False,
    web_port: Annotated[int, typer.Option("--web-port", help="Port of Locust's web UI (127.0.0.1).")] = 8089,
    out: Annotated[Path, typer.Option("--out", help="Folder for run directories.", envvar="FRIDGEBENCH_REPORTS")] = Path("reports"),
    json_out: o.Json = False,
    no_report: o.NoReport = False,
    postgres_dsn: o.PostgresDsn = None, redis_url: o.RedisUrl = None, pg_bin: o.PgBin = None,
    redis_bin: o.RedisBin = None, pg_user: o.PgUser = None, run_dir: o.RunDir = None,
    reuse: o.Reuse = False, reset: o.Reset = False,
) -> None:
    """Replay a session workload through Locust: many concurrent users, on one machine or many.

    Each user is an app worker with its own connection (psycopg 3 / redis-py), replaying the same
    scenario as `compare` (operation mix, key popularity, ingredients). Stores run one after
    another. Latency is recorded in microseconds from Locust's request events (Locust's own
    statistics round to milliseconds) — from the actual send: Locust users are closed loops,
    coordinated omission is not corrected (`compare` does that). Writes results.json, .hlog files,
    intervals.csv and Locust's own CSV and HTML report to reports/<run-id>/.

    A store already holding sessions or recipe:* keys fridgebench did not write is refused unless
    --reuse (left untouched; fridgebench deletes only what it wrote, from every worker) or --reset.

    Examples:

      fridgebench load --users 200 --duration 30

      fridgebench load read-heavy --processes 2 --rate 4000 --stores redis-atomic

      fridgebench load --master --expect-workers 2 --postgres-dsn postgresql://app:pw@db/fridge --redis-url redis://cache:6379/0 --reuse

      fridgebench load --worker --master-host 10.0.0.5 --postgres-dsn ... --redis-url ...
    """
    with error_boundary():
        import importlib.util

        from fridgebench.errors import UsageError
        from fridgebench.load.run import LoadOptions, run_load, run_workers
        from fridgebench.load.settings import parse_stores

        if reuse and reset:
            raise UsageError("--reuse and --reset exclude each other", hint="pick one")
        opts = LoadOptions(scenario=scenario, stores=parse_stores(stores), duration=duration, warmup=warmup,
                           rate=rate, sessions=sessions, seed=seed, users=users, spawn_rate=spawn_rate,
                           processes=processes, master=master, expect_workers=expect_workers,
                           master_bind_host=master_bind_host, master_port=master_port, worker=worker,
                           master_host=master_host, connect_timeout=connect_timeout, web=web, web_port=web_port,
                           existing="reuse" if reuse else "reset" if reset else "refuse", out=out)
        settings = opts.validate()  # before any server starts
        if importlib.util.find_spec("locust") is None:
            raise UsageError("fridgebench load needs Locust, which is not installed",
                             hint="pip install 'fridgebench[load]'")
        events = _Events(quiet=json_out)
        if worker:
            run_workers(opts, postgres_dsn=postgres_dsn, redis_url=redis_url, on_event=events)
            console.print("worker finished: the master writes the results")
            return
        from fridgebench.stores import servers_needed

        popts = o.provision_options(postgres_dsn, redis_url, pg_bin, redis_bin, pg_user, run_dir, reuse, reset,
                                    need=servers_needed(opts.stores, recipes=settings.has_recipes))
        doc, path = run_load(opts, popts, on_event=events, on_provision=lambda line: console.print(f"[dim]{line}[/]"))
        from fridgebench.report.terminal_load import render_load

        render_load(doc.to_dict(), console)
        if json_out:
            emit_json(doc.to_dict())
        console.print(f"results: {path}")
        report_run(path.parent, no_report)

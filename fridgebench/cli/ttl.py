"""``fridgebench ttl``: expiry accuracy, sliding expiry, PostgreSQL cleanup cost, bytes per session."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from fridgebench.cli._app import app
from fridgebench.cli import _options as o
from fridgebench.cli._common import announce_wait, console, emit_json, error_boundary, report_run, run_async
from fridgebench.errors import UsageError

if TYPE_CHECKING:
    from fridgebench.experiments.ttl import TtlOptions
    from fridgebench.measure.results import ResultsDocument
    from fridgebench.provision.base import ProvisionOptions


def _stores(value: str) -> tuple[str, ...]:
    from fridgebench.experiments.ttl import TTL_STORE_NAMES
    from fridgebench.stores import STORE_NAMES

    names = tuple(dict.fromkeys(s.strip() for s in value.split(",") if s.strip()))
    bad = [s for s in names if s not in STORE_NAMES]
    if bad or not names:
        raise UsageError(f"unknown store {', '.join(bad) or '(none)'} in --stores",
                         hint=f"use a comma list of: {', '.join(TTL_STORE_NAMES)}")
    return names


def _counts(value: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(x.replace("_", "").strip()) for x in value.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"--memory-counts takes a comma list of whole numbers, got {value!r}",
                         hint="e.g. --memory-counts 10000,100000,1000000") from None
    if not counts:
        raise UsageError("--memory-counts is empty", hint="e.g. --memory-counts 10000,100000")
    return counts


@app.command()
def ttl(
    sessions: Annotated[int, typer.Option("--sessions", help="Sessions followed through expiry, per store.")] = 2000,
    ttl_s: Annotated[float, typer.Option("--ttl", metavar="SECONDS",
                                         help="Session TTL, scaled down from the application's 24 h "
                                              "(at most 3600; each store waits up to 1.8 TTLs).")] = 5.0,
    ingredients: Annotated[int, typer.Option("--ingredients", help="Ingredients per session.")] = 8,
    stores: Annotated[str, typer.Option("--stores", help="Comma list of stores to run.")] = "postgres,redis-seed,redis-atomic",
    memory_counts: Annotated[str, typer.Option("--memory-counts", metavar="N,N,...",
                                               help="Session counts at which bytes/session is measured.")] = "10000,100000",
    cleanup_sessions: Annotated[int, typer.Option("--cleanup-sessions",
                                                  help="PostgreSQL cleanup-cost dataset (half expired).")] = 50_000,
    cleanup_every: Annotated[Optional[float], typer.Option("--cleanup-every", metavar="SECONDS",
                                                           help="Period of the simulated application cleanup job "
                                                                "(default: TTL/24, an hourly job at 24 h).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 42,
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for run directories.",
                                                envvar="FRIDGEBENCH_REPORTS")] = None,
    allow_config_set: o.AllowConfigSet = False,
    json_out: o.Json = False,
    no_report: o.NoReport = False,
    postgres_dsn: o.PostgresDsn = None, redis_url: o.RedisUrl = None, pg_bin: o.PgBin = None,
    redis_bin: o.RedisBin = None, pg_user: o.PgUser = None, run_dir: o.RunDir = None,
    reuse: o.Reuse = False, reset: o.Reset = False,
) -> None:
    """Measure how precisely sessions expire, what PostgreSQL's cleanup costs, and bytes per session.

    Runs each store in turn: sessions expire while fridgebench watches (Redis keyspace notifications, PostgreSQL's cleanup job), half of a sliding set gets ingredients added before expiry (those must survive), the application's DELETE of expired rows is timed against batched deletes under a read load, and bytes per session are measured at each --memory-counts point. PostgreSQL is measured in a scratch schema dropped afterwards; in Redis exactly the keys fridgebench wrote are deleted afterwards.

    Examples:

      fridgebench ttl

      fridgebench ttl --sessions 5000 --ttl 10 --memory-counts 10000,100000,1000000

      fridgebench ttl --stores postgres,redis-atomic --json > ttl.json
    """
    with error_boundary():
        from fridgebench.experiments.ttl import TtlOptions, expected_wait_s, validate

        opts = TtlOptions(sessions=sessions, ttl_s=ttl_s, ingredients=ingredients, stores=_stores(stores),
                          memory_counts=_counts(memory_counts), seed=seed, cleanup_sessions=cleanup_sessions,
                          cleanup_every_s=cleanup_every, allow_config_set=allow_config_set)
        validate(opts)  # before any server is started
        from fridgebench.measure.results import check_reports_root, default_reports_root
        from fridgebench.stores import servers_needed

        check_reports_root(out or default_reports_root(), "--out")
        popts = o.provision_options(postgres_dsn, redis_url, pg_bin, redis_bin, pg_user, run_dir, reuse, reset,
                                    need=servers_needed(opts.stores, recipes=False))
        announce_wait(expected_wait_s(opts), f"waiting for sessions to expire ({len(opts.stores)} stores, "
                      f"TTL {opts.ttl_s:g} s)")
        doc, path = _run(opts, popts, out)
        if json_out:
            emit_json(doc.to_dict())
        console.print(f"results: {path}")
        report_run(path.parent, no_report)


def _run(opts: TtlOptions, popts: ProvisionOptions, out: Path | None) -> tuple[ResultsDocument, Path]:
    from fridgebench.experiments.ttl import render_ttl, run_ttl
    from fridgebench.measure.results import (Environment, ResultsDocument, RunDirectory, default_reports_root,
                                             new_run_id)
    from fridgebench.provision import provisioned

    started = datetime.now(timezone.utc)
    rundir = RunDirectory(out or default_reports_root(), new_run_id("ttl"))
    # the run folder appears once the stores are up: an unreachable store leaves nothing in --out
    with provisioned(popts, on_event=lambda line: console.print(f"[dim]{line}[/]")) as ep, rundir:
        env = Environment.capture(servers=[s.to_dict() for s in ep.servers()])
        base = dict(command="ttl", run_id=rundir.run_id, started_at=started, environment=env, seed=opts.seed)
        ResultsDocument(**base)  # validate before minutes of measuring
        result = run_async(run_ttl(ep, opts, progress=lambda line: console.print(f"[dim]{line}[/]")))
        doc = ResultsDocument(**base, finished_at=datetime.now(timezone.utc), complete=True,
                              sections={"ttl": result.section}, claims=result.claims,
                              warnings=list(result.section.get("warnings", [])))
        path = rundir.finish(doc)
    render_ttl(result, console)
    return doc, path

"""``fridgebench migrate`` (+ ``verify``, ``cleanup``) and ``fridgebench rehearse`` (``fill``, ``write``)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any, List, Optional

import typer

from fridgebench.cli import _options as _o
from fridgebench.cli._app import app
from fridgebench.cli._common import announce_wait, console, emit_json, error_boundary, report_run
from fridgebench.cli._options import NoReport
from fridgebench.config import ENV_POSTGRES_DSN, ENV_REDIS_URL, mask_url
from fridgebench.errors import ExitStatus, UsageError, VerificationFailed

if TYPE_CHECKING:
    from fridgebench.urls import PostgresTarget, RedisTarget

From = Annotated[Optional[str], typer.Option("--from", envvar=ENV_POSTGRES_DSN, show_envvar=True,
                                             callback=_o.remember_source,
                                             help="Source PostgreSQL URL naming the fridge2fork database: postgresql://user@host:5432/dbname.")]
To = Annotated[Optional[str], typer.Option("--to", envvar=ENV_REDIS_URL, show_envvar=True,
                                           callback=_o.remember_source,
                                           help="Target Redis URL: redis://host:port/db (rediss:// for TLS).")]
Tables = Annotated[Optional[List[str]], typer.Option("--table", metavar="KEY=NAME",
    help="Table names when the schema differs: sessions=, items=, catalogue=.")]
Columns = Annotated[Optional[List[str]], typer.Option("--column", metavar="KEY=NAME",
    help="Column names when they differ, e.g. expires_at=valid_until (see SourceSchema).")]
Json = Annotated[bool, typer.Option("--json", help="Print the document alone on stdout.")]

migrate_app = typer.Typer(
    help=("Move live sessions from PostgreSQL to Redis, losing none.\n\n"
          "Examples:\n\n"
          "  fridgebench migrate --from postgresql://app@db/fridge --to redis://cache:6379/0 --dry-run\n\n"
          "  fridgebench migrate --from ... --to ... --live --until-caught-up\n\n"
          "  fridgebench migrate verify --from ... --to ...\n\n"
          "  fridgebench migrate cleanup --from ..."),
    invoke_without_command=True, no_args_is_help=False)
rehearse_app = typer.Typer(help="Rehearsal data: fill the fridge2fork schema with sessions, and change them like the app.",
                           no_args_is_help=True)
app.add_typer(migrate_app, name="migrate")
app.add_typer(rehearse_app, name="rehearse")


def _need(value: str | None, flag: str) -> str:
    if not value:
        raise UsageError(f"{flag} is required", hint=f"pass {flag} (or set the environment variable)")
    return value


def _source(value: str | None) -> PostgresTarget:
    """--from (or FRIDGEBENCH_POSTGRES_DSN), validated: :class:`~fridgebench.urls.PostgresTarget`."""
    return _o.postgres_target(_need(value, "--from"), param="from_", flag="--from")


def _target(value: str | None) -> RedisTarget:
    """--to (or FRIDGEBENCH_REDIS_URL), validated: :class:`~fridgebench.urls.RedisTarget`."""
    return _o.redis_target(_need(value, "--to"), param="to", flag="--to")


def _rehearsal_db(value: str | None) -> PostgresTarget:
    return _o.postgres_target(_need(value, "--dsn"), param="dsn", flag="--dsn")


def _schema(tables: list[str] | None, columns: list[str] | None) -> Any:
    from fridgebench.migrate.source import SourceSchema, parse_kv

    return SourceSchema.from_overrides(parse_kv(tables, "--table"), parse_kv(columns, "--column"))


def _check_results_folder() -> None:
    """Before migrating or verifying: the results folder must be writable (FRIDGEBENCH_REPORTS)."""
    from fridgebench.measure.results import check_reports_root, default_reports_root

    check_reports_root(default_reports_root(), "results folder (FRIDGEBENCH_REPORTS)")


def _write_results(command: str, started: datetime, section: dict[str, Any], complete: bool,
                   warnings: list[str] | None = None) -> str:
    from fridgebench.measure.results import (Environment, ResultsDocument, RunDirectory, default_reports_root,
                                             new_run_id)

    run_id = new_run_id(command.replace(" ", "-"))
    doc = ResultsDocument(command=command, run_id=run_id, started_at=started, finished_at=datetime.now(timezone.utc),
                          complete=complete, environment=Environment.capture(), sections={"migrate": section},
                          warnings=warnings or [])
    with RunDirectory(default_reports_root(), run_id) as rd:
        if complete:
            rd.finish(doc)
        else:
            rd.write_partial(doc)
    return str(rd.path)


class _Live:
    """Rich progress for backfill and the change lag."""

    def __init__(self, quiet: bool) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn, TransferSpeedColumn)

        self.quiet = quiet
        self.p = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"),
                          TimeRemainingColumn(), console=console, transient=False, disable=quiet)
        del TransferSpeedColumn
        self.task = None
        self.apply_task = None
        self.base = 0
        self.t0 = 0.0

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        import time

        if event == "plan":  # before anything is written: what --force let through is said first, not only
            for w in data["warnings"]:  # after a migration it may have made fail (an OOM, say)
                console.print(f"[yellow]warning:[/] {w}")
        elif event == "backfill_start":
            self.base = 0
            self.t0 = time.perf_counter()
            self.p.start()
            self.task = self.p.add_task("backfill", total=data["total"], rate="")
        elif event == "backfill_progress" and self.task is not None:
            dt = max(1e-6, time.perf_counter() - self.t0)
            self.p.update(self.task, completed=data["written"], rate=f"{data['written'] / dt:,.0f} sessions/s")
        elif event == "backfill_done" and self.task is not None:
            self.p.update(self.task, completed=data["written"])
        elif event == "apply_pass":
            if self.apply_task is None:
                self.p.start()
                self.apply_task = self.p.add_task("changes", total=None, rate="")
            self.p.update(self.apply_task, completed=data["applied"],
                          rate=f"lag {data['lag']} rows ({data['lag_age_s']:.1f} s)")

    def stop(self) -> None:
        self.p.stop()


@migrate_app.callback()
def migrate(
    ctx: typer.Context,
    from_: From = None,
    to: To = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Counts, estimated time and Redis memory; change nothing.")] = False,
    live: Annotated[bool, typer.Option("--live", help="Capture changes (triggers) before the backfill and apply them.")] = False,
    until_caught_up: Annotated[bool, typer.Option("--until-caught-up", help="With --live: exit when the lag is zero.")] = False,
    follow: Annotated[bool, typer.Option("--follow", help="With --live: keep applying changes until stopped.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Live sessions per backfill batch, about: one PostgreSQL query, one Redis pipeline. Where expired rows sit among the keys, a batch spans up to 8x as many keys.")] = 4000,
    rate_limit: Annotated[float, typer.Option("--rate-limit", metavar="OPS_PER_S", min=0,
                                              help="At most this many sessions written per second (0: no limit).")] = 0.0,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=64, help="Parallel backfill readers, each with its own PostgreSQL and Redis connection. 3 keeps 2 cores busy (PostgreSQL, Redis and the framing overlap); lower it to spare a loaded source.")] = 3,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace session:* keys fridgebench did not write.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Migrate even if Redis may evict sessions or lacks memory.")] = False,
    tables: Tables = None,
    columns: Columns = None,
    json_: Json = False,
    no_report: NoReport = False,
) -> None:
    """Backfill live sessions (and, with --live, changes) from PostgreSQL into Redis. Resumable."""
    if ctx.invoked_subcommand is not None:
        return
    started = datetime.now(timezone.utc)
    with error_boundary():
        from fridgebench.migrate import run

        src, dst = _source(from_), _target(to)
        _check_results_folder()
        opts = run.Options(dsn=src.url, url=dst.url, schema=_schema(tables, columns),
                           dry_run=dry_run, live=live, follow=follow, until_caught_up=until_caught_up,
                           batch_size=batch_size, rate_limit=rate_limit, concurrency=concurrency,
                           overwrite=overwrite, force=force)
        console.print(f"migrate PostgreSQL {src.display} → Redis {dst.display}" + (" (dry run)" if dry_run else ""))
        ui = _Live(quiet=json_ or dry_run)
        try:
            summary = run.migrate(opts, progress=ui)
        except BaseException as err:
            ui.stop()
            if isinstance(err, (KeyboardInterrupt,)) or type(err).__name__ == "_Terminated":
                console.print("[yellow]stopped at a resumable point:[/] run the same command again to continue")
                _write_results("migrate", started, {"interrupted": True}, complete=False)
            raise
        ui.stop()
        path = _write_results("migrate", started, summary, complete=True, warnings=summary["plan"]["warnings"])
        summary["results"] = path
        if json_:
            emit_json(summary)
        _print_summary(summary)
        if not dry_run:
            report_run(path, no_report)


def _print_summary(s: dict[str, Any]) -> None:
    p = s["plan"]  # its warnings were printed when the plan was made (_Live)
    if s["dry_run"]:
        console.print(f"live sessions: {p['live_sessions']:,}   expired (skipped): {p['expired_sessions']:,}")
        console.print(f"estimated time: {p['estimated_seconds']} s   estimated Redis memory: "
                      f"{p['estimated_redis_bytes'] / 1e6:,.1f} MB   Redis: {p['redis']['maxmemory_policy']}, "
                      f"{p['redis']['session_keys']:,} session keys")
        if p["resuming"]:
            console.print(f"a checkpoint exists: would resume after {p['resuming']['last_session_id']!r}")
        console.print("dry run: nothing changed")
        return
    b = s["backfill"]
    rate = f"{b['rate_per_s']:,.0f}/s" if b.get("rate_per_s") else "-"
    console.print(f"[green]done[/] in {s['duration_s']:.1f} s: {b['written']:,} sessions written ({rate})"
                  f"{' — resumed' if s.get('resumed') else ''}, {s['skipped_expired']:,} skipped as expired")
    if "changes" in s:
        c = s["changes"]
        console.print(f"changes applied: {c['change_rows']:,} rows over {c['sessions']:,} sessions "
                      f"({c['written']:,} written, {c['deleted']:,} deleted, {c['stale_skipped']:,} older than Redis) "
                      f"in {c['seconds']:.1f} s, lag {c['lag']}")
        if c["foreign_skipped"]:
            console.print(f"[yellow]warning:[/] {c['foreign_skipped']} changes skipped: session keys not written by migrate")
    console.print(f"results: {s['results']}")


@migrate_app.command("verify")
def verify_cmd(
    from_: From = None,
    to: To = None,
    ttl_tolerance: Annotated[float, typer.Option("--ttl-tolerance", metavar="SECONDS", min=0,
                                                 help="Allowed difference between expiry instants.")] = 1.0,
    sample: Annotated[int, typer.Option("--sample", min=0, help="How many differences to show.")] = 10,
    settle: Annotated[float, typer.Option("--settle", metavar="SECONDS", min=0,
        help="While migrate --follow runs: how long a difference may take to be applied.")] = 5.0,
    tables: Tables = None,
    columns: Columns = None,
    json_: Json = False,
) -> None:
    """Compare every live PostgreSQL session with Redis: missing, extra, content, TTL.

    Exit status: 0 no differences, 5 differences found, 1 verify could not run (a store unreachable, ...), 2 bad input, 130 interrupted.

    Examples:

      fridgebench migrate verify --from postgresql://app@db:5432/fridge --to redis://cache:6379/0

      fridgebench migrate verify --json > verify.json; [ $? -eq 5 ] && echo "sessions differ"
    """
    started = datetime.now(timezone.utc)
    with error_boundary():
        from fridgebench.migrate import run

        src, dst = _source(from_), _target(to)
        _check_results_folder()
        dsn, url = src.url, dst.url
        console.print(f"verify PostgreSQL {src.display} against Redis {dst.display}")
        rep = run.verify(dsn, url, _schema(tables, columns), ttl_tolerance_s=ttl_tolerance, sample=sample, settle_s=settle)
        doc = {"source": mask_url(dsn), "target": mask_url(url), **rep.to_dict()}
        doc["results"] = _write_results("migrate verify", started, doc, complete=True)
        if json_:
            emit_json(doc)
        console.print(f"checked {rep.checked:,} live sessions against {rep.redis_keys:,} Redis keys in {rep.seconds:.1f} s")
        d = rep.differences
        console.print(f"missing {d['missing']}  extra {d['extra']}  content {d['content']}  ttl {d['ttl']}  "
                      f"no-expiry {d['no_expiry']}  (in flight {rep.in_flight}, changed during verify {rep.resolved_on_recheck})")
        for smp in rep.samples:
            console.print(f"  {smp['kind']:<8} session:{smp['session_id']}  {smp['detail']}", soft_wrap=True)
        if rep.total:
            raise VerificationFailed(f"{rep.total} sessions differ between PostgreSQL and Redis",
                                     hint="run fridgebench migrate again (it resumes and re-applies), then verify")
        console.print("[green]no differences[/]")


@migrate_app.command("cleanup")
def cleanup_cmd(
    from_: From = None,
    to: Annotated[Optional[str], typer.Option("--to", help="Also delete migrate's bookkeeping keys (version keys, ownership sets) in this Redis; sessions stay.")] = None,
) -> None:
    """Remove everything migrate installed in PostgreSQL (triggers, change table, checkpoints)."""
    with error_boundary():
        from fridgebench.migrate import run

        src = _source(from_)
        dst = _o.redis_target(to, param="to", flag="--to", envvar=None) if to is not None else None
        console.print(f"cleanup in PostgreSQL {src.display}" + (f" and Redis {dst.display}" if dst else ""))
        removed = run.cleanup(src.url, dst.url if dst else None)
        for line in removed or ["nothing to remove"]:
            console.print(f"removed {line}" if removed else line)
        if not to:
            console.print("Redis bookkeeping (fridgebench:migrate:owned:*, fridgebench:migrate:v:*) was left in place: "
                          "it expires with the sessions; until then a new migrate treats those session keys as its own. "
                          "Add --to URL to remove it now.")


@rehearse_app.command("fill")
def fill_cmd(
    dsn: Annotated[Optional[str], typer.Option("--dsn", envvar=ENV_POSTGRES_DSN, callback=_o.remember_source,
                                               help="PostgreSQL DSN to fill.")] = None,
    sessions: Annotated[int, typer.Option("--sessions", min=1, help="How many sessions to create.")] = 10000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same data).")] = 1,
    reuse: Annotated[bool, typer.Option("--reuse", help="Add to sessions already there.")] = False,
    reset: Annotated[bool, typer.Option("--reset", help="Delete sessions already there first.")] = False,
    json_: Json = False,
) -> None:
    """Fill the fridge2fork schema with realistic sessions (some expired, some about to expire)."""
    with error_boundary():
        from fridgebench.migrate import rehearsal

        if reuse and reset:
            raise UsageError("--reuse and --reset exclude each other", hint="pick one")
        target = _rehearsal_db(dsn)
        console.print(f"rehearse fill: PostgreSQL {target.display}")
        res = rehearsal.fill(target.url, sessions, seed=seed,
                             existing="reuse" if reuse else "reset" if reset else "refuse")
        if json_:
            emit_json(res.__dict__)
        console.print(f"filled {res.sessions:,} sessions ({res.live:,} live, {res.expired:,} expired, "
                      f"{res.expiring_soon:,} expiring within 2 min), {res.ingredient_rows:,} ingredient rows "
                      f"in {res.seconds:.1f} s")


@rehearse_app.command("write")
def write_cmd(
    dsn: Annotated[Optional[str], typer.Option("--dsn", envvar=ENV_POSTGRES_DSN, callback=_o.remember_source,
                                               help="PostgreSQL DSN.")] = None,
    rate: Annotated[float, typer.Option("--rate", min=0, help="Operations per second (0: as fast as possible).")] = 100.0,
    duration: Annotated[float, typer.Option("--duration", min=0.1, max=7 * 86400,
                                            help="Seconds to run (at most a week); stops by itself.")] = 30.0,
    seed: Annotated[int, typer.Option("--seed")] = 7,
    json_: Json = False,
) -> None:
    """Change sessions like the application: create, add, remove, extend, delete, expire."""
    with error_boundary():
        from fridgebench.migrate import rehearsal

        target = _rehearsal_db(dsn)
        console.print(f"rehearse write: PostgreSQL {target.display}")
        announce_wait(duration, f"changing sessions at {rate:g} operations/s" if rate else "changing sessions")
        stats = rehearsal.write(target.url, rate=rate, duration=duration, seed=seed)
        if json_:
            emit_json({"ops": stats.ops, "errors": stats.errors, "first_error": stats.first_error,
                       "seconds": stats.seconds})
        console.print(f"{stats.total:,} operations in {stats.seconds:.1f} s: "
                      + ", ".join(f"{k} {v}" for k, v in stats.ops.items()) + f"; errors {stats.errors}"
                      + (f" (the first: {stats.first_error})" if stats.first_error else ""), soft_wrap=True)


_ = ExitStatus

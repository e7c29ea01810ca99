"""Option declarations shared by every command that provisions stores (up, compare, ttl, ...)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from fridgebench.config import ENV_POSTGRES_DSN, ENV_REDIS_URL
from fridgebench.provision.base import ProvisionOptions

_P = "Stores"

PostgresDsn = Annotated[Optional[str], typer.Option("--postgres-dsn", envvar=ENV_POSTGRES_DSN, show_envvar=True,
    help="Use this external PostgreSQL (never started or stopped). sslmode= accepted.", rich_help_panel=_P)]
RedisUrl = Annotated[Optional[str], typer.Option("--redis-url", envvar=ENV_REDIS_URL, show_envvar=True,
    help="Use this external Redis (redis:// or rediss://; never started or stopped).", rich_help_panel=_P)]
PgBin = Annotated[Optional[str], typer.Option("--pg-bin", metavar="DIR",
    help="Start PostgreSQL from these system binaries (e.g. /usr/lib/postgresql/15/bin).", rich_help_panel=_P)]
RedisBin = Annotated[Optional[str], typer.Option("--redis-bin", metavar="PATH",
    help="Start this redis-server / valkey-server binary.", rich_help_panel=_P)]
PgUser = Annotated[Optional[str], typer.Option("--pg-user",
    help="When run as root: the unprivileged OS user to run PostgreSQL as.", rich_help_panel=_P)]
RunDir = Annotated[Optional[str], typer.Option("--run-dir", envvar="FRIDGEBENCH_RUN_DIR",
    help="Where started servers keep data and logs (default: a folder under the system temp dir).",
    rich_help_panel=_P)]
Reuse = Annotated[bool, typer.Option("--reuse", help="Run on top of sessions already in an external database.",
    rich_help_panel=_P)]
Reset = Annotated[bool, typer.Option("--reset", help="Delete sessions already in an external database first.",
    rich_help_panel=_P)]
Json = Annotated[bool, typer.Option("--json", help="Print the machine-readable document alone on stdout.")]
NoReport = Annotated[bool, typer.Option("--no-report", help="Do not write report.html / report.md into the run folder.")]


def provision_options(
    postgres_dsn: str | None, redis_url: str | None, pg_bin: str | None, redis_bin: str | None,
    pg_user: str | None, run_dir: str | None, reuse: bool, reset: bool,
    need: frozenset[str] = frozenset({"postgres", "redis"}),
) -> ProvisionOptions:
    from fridgebench.errors import UsageError

    if reuse and reset:
        raise UsageError("--reuse and --reset exclude each other", hint="pick one")
    return ProvisionOptions(
        postgres_dsn=postgres_dsn, redis_url=redis_url, pg_bin=pg_bin, redis_bin=redis_bin,
        pg_user=pg_user, run_dir=run_dir, existing="reuse" if reuse else "reset" if reset else "refuse",
        need=need,
    )

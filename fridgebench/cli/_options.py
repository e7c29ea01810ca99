"""Option declarations shared by every command that provisions stores (up, compare, ttl, ...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from fridgebench.cli._common import state
from fridgebench.config import ENV_POSTGRES_DSN, ENV_REDIS_URL
from fridgebench.provision.base import ProvisionOptions

if TYPE_CHECKING:
    from fridgebench.urls import PostgresTarget, RedisTarget

_P = "Stores"


def remember_source(ctx: typer.Context, param: typer.CallbackParam, value: Optional[str]) -> Optional[str]:
    """Option callback of every URL option: note whether the value came from its environment
    variable, so an error names ``FRIDGEBENCH_REDIS_URL=...`` rather than a flag nobody typed."""
    source = ctx.get_parameter_source(param.name or "")
    if param.name:
        if source is not None and source.name == "ENVIRONMENT":
            state.from_env.add(param.name)
        else:
            state.from_env.discard(param.name)
    return value


def _label(param: str, flag: str, envvar: str | None) -> str:
    """How the user gave ``param``: its flag, or ``ENVVAR=`` when it was read from the environment."""
    return f"{envvar}=" if envvar and param in state.from_env else flag


PostgresDsn = Annotated[Optional[str], typer.Option("--postgres-dsn", envvar=ENV_POSTGRES_DSN, show_envvar=True,
    callback=remember_source,
    help="Use this external PostgreSQL (never started or stopped): postgresql://user@host:5432/dbname, "
         "sslmode= accepted.", rich_help_panel=_P)]
RedisUrl = Annotated[Optional[str], typer.Option("--redis-url", envvar=ENV_REDIS_URL, show_envvar=True,
    callback=remember_source,
    help="Use this external Redis (never started or stopped): redis://host:6379/N (db index N), rediss:// for "
         "TLS.", rich_help_panel=_P)]
PgBin = Annotated[Optional[str], typer.Option("--pg-bin", metavar="DIR",
    help="Start PostgreSQL from these system binaries (e.g. /usr/lib/postgresql/15/bin).", rich_help_panel=_P)]
RedisBin = Annotated[Optional[str], typer.Option("--redis-bin", metavar="PATH",
    help="Start this redis-server / valkey-server binary.", rich_help_panel=_P)]
PgUser = Annotated[Optional[str], typer.Option("--pg-user",
    help="When run as root: the unprivileged OS user to run PostgreSQL as.", rich_help_panel=_P)]
RunDir = Annotated[Optional[str], typer.Option("--run-dir", envvar="FRIDGEBENCH_RUN_DIR",
    help="Where started servers keep data and logs (default: a folder under the system temp dir).",
    rich_help_panel=_P)]
Reuse = Annotated[bool, typer.Option("--reuse", help="Run beside sessions (and recipe:* cache keys) already in "
    "a store: they are left untouched; fridgebench deletes only what it writes.", rich_help_panel=_P)]
Reset = Annotated[bool, typer.Option("--reset", help="Delete the sessions (and recipe:* cache keys) already in a "
    "store first.", rich_help_panel=_P)]
Json = Annotated[bool, typer.Option("--json", help="Print the machine-readable document alone on stdout.")]
NoReport = Annotated[bool, typer.Option("--no-report", envvar="FRIDGEBENCH_NO_REPORT", show_envvar=True,
                                        help="Do not write report.html / report.md into the run folder.")]


def postgres_target(value: str, *, param: str = "postgres_dsn", flag: str = "--postgres-dsn",
                    envvar: str | None = ENV_POSTGRES_DSN) -> "PostgresTarget":
    """Validate a PostgreSQL URL given on the command line (or its env fallback) before anything
    connects, and remember it so any connection error later names this server and this flag."""
    from fridgebench import urls

    label = _label(param, flag, envvar)
    target = urls.postgres(value, label)
    state.targets["postgres"] = (target.url, label.rstrip("="))
    return target


def redis_target(value: str, *, param: str = "redis_url", flag: str = "--redis-url",
                 envvar: str | None = ENV_REDIS_URL) -> "RedisTarget":
    """Validate a Redis URL given on the command line (or its env fallback); see :func:`postgres_target`."""
    from fridgebench import urls

    label = _label(param, flag, envvar)
    target = urls.redis(value, label)
    state.targets["redis"] = (target.url, label.rstrip("="))
    return target


def provision_options(
    postgres_dsn: str | None, redis_url: str | None, pg_bin: str | None, redis_bin: str | None,
    pg_user: str | None, run_dir: str | None, reuse: bool, reset: bool,
    need: frozenset[str] = frozenset({"postgres", "redis"}),
) -> ProvisionOptions:
    from fridgebench.errors import UsageError

    if reuse and reset:
        raise UsageError("--reuse and --reset exclude each other", hint="pick one")
    if postgres_dsn is not None:  # an empty env var reads as not given; an empty flag value is refused
        postgres_target(postgres_dsn)
    if redis_url is not None:
        redis_target(redis_url)
    return ProvisionOptions(
        postgres_dsn=postgres_dsn, redis_url=redis_url, pg_bin=pg_bin, redis_bin=redis_bin,
        pg_user=pg_user, run_dir=run_dir, existing="reuse" if reuse else "reset" if reset else "refuse",
        need=need,
    )
AllowConfigSet = Annotated[bool, typer.Option(
    "--allow-config-set", help="An external Redis: let fridgebench change a server-wide setting for the run "
    "(CONFIG SET, restored afterwards) — failure's memory-full lowers maxmemory; ttl switches keyspace "
    "notifications on to time each key's removal (without it, removal is sampled).")]

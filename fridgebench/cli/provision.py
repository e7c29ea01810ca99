"""``fridgebench up / down / status``: start, stop and inspect the stores other commands use."""

from __future__ import annotations

from typing import Any, Iterable, Optional

import typer
from rich.table import Table

from fridgebench.cli._app import app
from fridgebench.cli._common import console, emit_json, error_boundary
from fridgebench.cli._options import (Json, PgBin, PgUser, PostgresDsn, RedisBin, RedisUrl, Reset, Reuse, RunDir,
                                      provision_options)
from fridgebench.config import mask_text
from fridgebench.errors import ExitStatus
from fridgebench.provision.base import ServerInfo


def _durability(info: ServerInfo) -> str:
    return "\n".join(f"{k}={v if v != '' else chr(34) * 2}" for k, v in info.durability.items())


def _table(rows: Iterable[tuple[ServerInfo, Optional[bool]]], title: str) -> Table:
    table = Table(title=title, title_justify="left", show_lines=False)
    for col in ("store", "source", "version", "address", "pid", "user", "durability", "time"):
        table.add_column(col, overflow="fold", no_wrap=col in ("store", "address", "pid", "time"))
    with_alive = False
    rows = list(rows)
    if any(alive is not None for _, alive in rows):
        table.add_column("alive")
        with_alive = True
    for info, alive in rows:
        address = f"{info.host}:{info.port}" if info.source != "external" else info.url
        cells = [info.kind, info.source, info.version, mask_text(address), str(info.pid or "-"),
                 info.os_user or "-", _durability(info),
                 f"{info.started_in_s:.1f} s" if info.started_in_s is not None else "-"]
        if with_alive:
            cells.append("[green]yes[/]" if alive else "[red]no[/]")
        table.add_row(*cells)
    return table


def _print_notes(infos: Iterable[ServerInfo]) -> None:
    for info in infos:
        for note in info.notes:
            if not note.startswith("connected in"):
                console.print(f"[yellow]note:[/] {mask_text(note)}")


def _doc(rows: Iterable[tuple[ServerInfo, Optional[bool]]]) -> dict[str, Any]:
    out = []
    for info, alive in rows:
        d = info.to_dict()
        if alive is not None:
            d["alive"] = alive
        out.append(d)
    return {"servers": out}


@app.command(rich_help_panel="Stores")
def up(
    postgres_dsn: PostgresDsn = None, redis_url: RedisUrl = None, pg_bin: PgBin = None, redis_bin: RedisBin = None,
    pg_user: PgUser = None, run_dir: RunDir = None, reuse: Reuse = False, reset: Reset = False, json: Json = False,
) -> None:
    """Start PostgreSQL and Redis/Valkey and leave them running for later commands.

    By default both come from fridgebench's embedded binaries and listen on free 127.0.0.1 ports.
    Later commands (compare, ttl, migrate) use these servers until [bold]fridgebench down[/].

    Examples:

      fridgebench up

      fridgebench up --pg-bin /usr/lib/postgresql/15/bin --redis-bin /usr/bin/redis-server

      fridgebench up --json | jq -r '.servers[0].url'
    """
    from fridgebench.provision import up as do_up

    with error_boundary():
        opts = provision_options(postgres_dsn, redis_url, pg_bin, redis_bin, pg_user, run_dir, reuse, reset)
        ep = do_up(opts, on_event=lambda line: console.print(mask_text(line), soft_wrap=True))
        infos = [ep.postgres, ep.redis]
        if json:
            emit_json(_doc((i, None) for i in infos))
        else:
            console.print(_table(((i, None) for i in infos), "stores up"))
            console.print("stop them with: fridgebench down")


@app.command(rich_help_panel="Stores")
def down(run_dir: RunDir = None, json: Json = False) -> None:
    """Stop the servers started by [bold]fridgebench up[/] and delete their data.

    Examples:

      fridgebench down

      fridgebench down --run-dir /var/tmp/fb
    """
    from fridgebench.provision import down as do_down

    with error_boundary():
        stopped = do_down(run_dir=run_dir)
        if json:
            emit_json(_doc((i, None) for i in stopped))
        elif not stopped:
            console.print("nothing to stop: no servers recorded by `fridgebench up`, none left running")
        else:
            for info in stopped:
                why = f" — {info.notes[0]}" if info.notes and info.notes[0].startswith("left running") else ""
                console.print(f"stopped {info.kind} (pid {info.pid}) on {info.host}:{info.port}{why}", soft_wrap=True)


@app.command(rich_help_panel="Stores")
def status(run_dir: RunDir = None, json: Json = False) -> None:
    """Show the servers started by [bold]fridgebench up[/] and whether each still answers.

    Also shows servers left running unrecorded by a fridgebench that was killed (e.g. `up` killed
    mid-start); [bold]fridgebench down[/] stops them. Exits with status 1 when a recorded server is
    no longer alive or such servers are left running.

    Examples:

      fridgebench status

      fridgebench status --json
    """
    from fridgebench.provision import orphans as do_orphans
    from fridgebench.provision import status as do_status

    with error_boundary():
        rows = do_status(run_dir=run_dir)
        left = do_orphans(run_dir=run_dir)
        if json:  # servers left running unrecorded are listed too, with "recorded": false
            doc = _doc(rows)
            for d in doc["servers"]:
                d["recorded"] = True
            doc["servers"] += [{**d, "recorded": False} for d in _doc((i, True) for i in left)["servers"]]
            emit_json(doc)
        else:
            if not rows:
                console.print("no servers recorded: start them with `fridgebench up`")
            else:
                console.print(_table(rows, "stores recorded by fridgebench up"))
                _print_notes(info for info, _ in rows)
            if left:
                console.print(_table(((i, True) for i in left), "servers left running, not recorded"))
                console.print(f"[red]{len(left)} server(s) left running[/] by a fridgebench that was killed before it "
                              "could record or stop them — `fridgebench down` stops them", soft_wrap=True)
        if any(not alive for _, alive in rows):
            if not json:
                console.print("[red]some recorded servers are gone[/] — `fridgebench down` then `fridgebench up`")
            raise typer.Exit(int(ExitStatus.ERROR))
        if left:
            raise typer.Exit(int(ExitStatus.ERROR))

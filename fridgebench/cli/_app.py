"""The Typer application every command module registers on (:mod:`fridgebench.cli` decides which modules load)."""

from __future__ import annotations

import typer

from fridgebench import __version__
from fridgebench.cli._common import state

app = typer.Typer(
    name="fridgebench",
    help=(
        "Measure whether fridge2fork's anonymous sessions belong in PostgreSQL or Redis, "
        "and move them from PostgreSQL to Redis without losing one.\n\n"
        "Start with:  fridgebench compare"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fridgebench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors.", envvar="FRIDGEBENCH_DEBUG"),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    state.debug = debug

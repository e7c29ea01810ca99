"""``fridgebench report``: report.html (plots) and report.md from finished runs — never from a live server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from fridgebench.cli._app import app
from fridgebench.cli._common import console, error_boundary


@app.command()
def report(
    runs: Annotated[List[Path], typer.Argument(metavar="RUN_DIR...",
                                               help="Run folders, or folders of runs (compare --repeat); several are overlaid.")],
    out: Annotated[Optional[Path], typer.Option("--out", metavar="DIR",
                                                help="Where to write report.html and report.md (default: the run folder "
                                                     "when one is given, else the current folder).")] = None,
) -> None:
    """Write a self-contained report.html (plots, readable on a phone, no network needed) and report.md.

    The seed's claims and their verdicts come first; then latency by percentile, over time,
    PostgreSQL ÷ Redis ratios, the load sweep, expiry and memory, migration — whatever the runs
    hold. Given several runs (e.g. before and after a change), it overlays them.

    Examples:

      fridgebench report reports/20261126T101500Z-compare-1a2b3c

      fridgebench report reports/before reports/after --out /tmp/before-after
    """
    with error_boundary():
        from fridgebench.report.build import write_report

        html, md, loaded = write_report(list(runs), out)
        console.print(f"report of {len(loaded)} run(s): {html}  (and {md.name})")

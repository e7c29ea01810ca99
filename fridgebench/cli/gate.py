"""``fridgebench gate``: fail a build on a real latency regression, and only on a real one."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, List, Optional, Tuple

import typer

from fridgebench.cli._app import app
from fridgebench.cli._common import console, emit_json, error_boundary
from fridgebench.errors import UsageError


@app.command()
def gate(
    baseline: Annotated[Path, typer.Option("--baseline", metavar="RUN_OR_FOLDER",
                                           help="The reference: a run folder, or a folder of repeated runs.")],
    current: Annotated[Path, typer.Option("--current", metavar="RUN_OR_FOLDER",
                                          help="The change under test: a run folder, or a folder of repeated runs.")],
    threshold: Annotated[float, typer.Option("--threshold", metavar="PERCENT",
                                             help="Minimum effect: a change counts only above this (and significant).")] = 10.0,
    percentile: Annotated[Optional[List[float]], typer.Option("--percentile", metavar="P",
                                                              help="Percentile to judge (repeatable). Default: 50 and 99.")] = None,
    stores: Annotated[Optional[str], typer.Option("--stores", help="Comma list of stores to judge (default: all both sides ran).")] = None,
    ops: Annotated[Optional[str], typer.Option("--ops", help="Comma list of operations to judge (default: all).")] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level of the tests.")] = 0.05,
    strict: Annotated[bool, typer.Option("--strict", help="Fail (exit 4) when any row is inconclusive.")] = False,
    fmt: Annotated[str, typer.Option("--format", metavar="text|github",
                                     help="github: also write $GITHUB_STEP_SUMMARY and ::error:: annotations.")] = "text",
    export: Annotated[Optional[Tuple[str, Path]], typer.Option("--export", metavar="FORMAT FILE",
        help="Also write the current side's latencies for a dashboard: github-action-benchmark or bencher.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the verdicts as JSON alone on stdout.")] = False,
    absolute: Annotated[bool, typer.Option(
        "--absolute", help="Judge raw latencies only: no adjustment for each run's machine speed (see below).")] = False,
) -> None:
    """Compare a current run (or repeated runs) with a baseline: regression, improvement, unchanged or inconclusive.

    Per store × operation × percentile: with 4+ runs a side, a Mann-Whitney U test across runs;
    with fewer, a bootstrap over per-second histograms. A change counts only when it is
    significant AND larger than --threshold. Runs that are not comparable (another scenario,
    server version, durability setting, CPU or event loop) are refused, not compared.

    With repeats, each operation is judged relative to its store's other operations in the same
    run (a shared runner makes whole runs 1.5-2x slower at random, every operation alike; that
    cancels in the ratios), and each store's operations together get one more row, "all
    operations", where a change of the whole store shows. --absolute turns this off.

    Exit status: 0 no regression · 3 regression · 4 refused, or nothing could be judged
    (with --strict: any row inconclusive).

    Examples:

      fridgebench compare --repeat 5 --out base      (on main)

      fridgebench compare --repeat 5 --out head      (on the branch)

      fridgebench gate --baseline base --current head

      fridgebench gate --baseline base --current head --threshold 15 --format github --export bencher bmf.json
    """
    with error_boundary():
        from fridgebench.gate.exports import KINDS, write_export
        from fridgebench.gate.judge import GateOptions, judge
        from fridgebench.measure.runs import load_runs

        if fmt not in ("text", "github"):
            raise UsageError(f"unknown --format {fmt!r}", hint="use text or github")
        if json_out and fmt == "github":
            raise UsageError("--json and --format github both write to stdout", hint="pick one")
        if export is not None and export[0] not in KINDS:
            raise UsageError(f"unknown export format {export[0]!r}", hint=f"use one of: {', '.join(KINDS)}")
        opts = GateOptions(threshold=threshold / 100.0, percentiles=tuple(percentile or (50.0, 99.0)), alpha=alpha,
                           stores=_split(stores), ops=_split(ops), strict=strict, adjust=not absolute)
        opts.validate()
        base_runs, cur_runs = load_runs(baseline), load_runs(current)
        result = judge(base_runs, cur_runs, opts)
        if export is not None:
            path = write_export(export[0], export[1], cur_runs, opts.percentiles, result)
            console.print(f"[dim]{export[0]} export: {path}[/]")
        _render(result)
        if fmt == "github":
            from fridgebench.gate.github import write_github

            written = write_github(result, sys.stdout)
            if written:
                console.print(f"[dim]step summary appended to {written}[/]")
            else:
                console.print("[yellow]warning:[/] GITHUB_STEP_SUMMARY is not set (not in GitHub Actions?): "
                              "no step summary written")
        if json_out:
            emit_json(result.to_dict())
        raise typer.Exit(int(result.exit_status))


def _split(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = tuple(dict.fromkeys(x.strip() for x in value.split(",") if x.strip()))
    return items or None


STYLE = {"regression": "bold red", "improvement": "green", "unchanged": "", "inconclusive": "yellow"}


def _render(result) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    from fridgebench.report.terminal import _us

    o = result.options
    console.print(f"[bold]fridgebench gate[/] — baseline {len(result.baseline)} run(s), current "
                  f"{len(result.current)} run(s); threshold {o.threshold * 100:g}%, α {o.alpha:g}"
                  f"{', strict' if o.strict else ''}")
    for reason in result.refused:
        console.print(f"[bold magenta]refused:[/] {reason}", soft_wrap=True)
    if result.rows:
        t = Table(show_edge=False, title_justify="left")
        for col in ("store", "op", "pct", "baseline", "current", "change", "95% CI", "p", "verdict", "why"):
            t.add_column(col, justify="left" if col in ("store", "op", "verdict", "why") else "right")
        for r in result.ordered():
            ci = f"{(r.ci95[0] - 1) * 100:+.1f}…{(r.ci95[1] - 1) * 100:+.1f}%" if r.ci95 else "-"
            st = STYLE[r.verdict]
            t.add_row(r.store, r.op, f"p{r.percentile:g}", _us(r.baseline_us), _us(r.current_us),
                      f"{r.change * 100:+.1f}%" if r.change is not None else "-", ci,
                      f"{r.p_value:.3g}" if r.p_value is not None else "-",
                      f"[{st}]{r.verdict}[/]" if st else r.verdict, r.why)
        console.print(t)
    for n in result.notes:
        console.print(f"[dim]note: {n}[/]")
    style = {"regression": "bold red", "refused": "bold magenta", "inconclusive": "yellow", "pass": "green"}
    console.print(f"[{style[result.outcome]}]{result.outcome}:[/] {result.headline()}", soft_wrap=True)

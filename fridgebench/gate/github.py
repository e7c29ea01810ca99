"""The gate in GitHub Actions: a job summary (``$GITHUB_STEP_SUMMARY``) and a few annotations.

GitHub renders the step summary as Markdown, strips images, and refuses a summary over 1 MiB:
tables only, the most important rows first, cut (with a line saying so) before the limit.
Annotations (``::error::``, ``::warning::``) show on the pull request; GitHub shows only the
first few per step, so the gate emits at most :data:`MAX_ANNOTATIONS`, most important first.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TextIO

from fridgebench.gate.judge import GateResult, Row

SUMMARY_LIMIT = 1024 * 1024  # bytes, GitHub's limit for one step's summary
MAX_ANNOTATIONS = 5
ICON = {"regression": "🔴 regression", "improvement": "🟢 improvement", "unchanged": "⚪ unchanged",
        "inconclusive": "🟡 inconclusive"}


def _us(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v / 1000:,.2f} ms" if v >= 1000 else f"{v:,.0f} µs"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _row_md(r: Row) -> str:
    ci = f"{(r.ci95[0] - 1) * 100:+.1f}% … {(r.ci95[1] - 1) * 100:+.1f}%" if r.ci95 else "–"
    change = f"{r.change * 100:+.1f}%" if r.change is not None else "–"
    return (f"| {r.store} | {r.op} | p{r.percentile:g} | {_us(r.baseline_us)} | {_us(r.current_us)} | {change} | "
            f"{ci} | {ICON[r.verdict]} | {_cell(r.why)} |")


def summary_markdown(res: GateResult, *, limit: int = SUMMARY_LIMIT, report_hint: str | None = None) -> str:
    """The step summary: headline, table of rows (most important first), notes; at most ``limit`` bytes."""
    o = res.options
    head = [f"## fridgebench gate: {res.outcome}", "", f"**{_cell(res.headline())}**", "",
            f"Baseline: {len(res.baseline)} run(s) · current: {len(res.current)} run(s) · threshold "
            f"{o.threshold * 100:g}% · α = {o.alpha:g}{' · strict' if o.strict else ''}", ""]
    if res.refused:
        head += ["Refused — the runs are not comparable:", ""] + [f"- {_cell(x)}" for x in res.refused] + [""]
    tail = [""] + [f"- {_cell(n)}" for n in res.notes]
    if report_hint:
        tail += ["", _cell(report_hint)]
    table = ["| store | op | pct | baseline | current | change | 95% CI | verdict | why |",
             "|---|---|---|---|---|---|---|---|---|"]
    rows = [_row_md(r) for r in res.ordered()]
    text = "\n".join(head + (table + rows if rows else []) + tail) + "\n"
    if len(text.encode()) <= limit:
        return text
    # too big: keep the most important rows that fit, and say how many were left out
    fixed = len("\n".join(head + table + tail).encode()) + 200
    kept: list[str] = []
    used = fixed
    for line in rows:
        size = len(line.encode()) + 1
        if used + size > limit:
            break
        kept.append(line)
        used += size
    cut = ["", f"*{len(rows) - len(kept)} more rows left out (GitHub's 1 MiB summary limit): see the gate's --json "
                f"output or the report artifact.*"]
    return "\n".join(head + table + kept + cut + tail) + "\n"


def _escape_data(s: str) -> str:
    return s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_prop(s: str) -> str:
    return _escape_data(s).replace(":", "%3A").replace(",", "%2C")


def annotations(res: GateResult, limit: int = MAX_ANNOTATIONS) -> list[str]:
    """Workflow commands, most important first: regressions as errors, then inconclusive rows as warnings."""
    out: list[str] = []
    if res.refused:
        out.append(f"::error title={_escape_prop('fridgebench gate refused')}::"
                   f"{_escape_data('runs are not comparable: ' + '; '.join(res.refused))}")
    for r in res.ordered():
        if len(out) >= limit:
            break
        if r.verdict == "regression":
            out.append(f"::error title={_escape_prop('performance regression: ' + r.name)}::{_escape_data(r.why)}")
        elif r.verdict == "inconclusive" and res.options.strict:
            out.append(f"::error title={_escape_prop('inconclusive (strict): ' + r.name)}::{_escape_data(r.why)}")
        elif r.verdict == "inconclusive":
            out.append(f"::warning title={_escape_prop('inconclusive: ' + r.name)}::{_escape_data(r.why)}")
    hidden = sum(1 for r in res.rows if r.verdict in ("regression", "inconclusive")) + bool(res.refused) - len(out)
    if hidden > 0 and out:
        out.append(f"::notice::{_escape_data(f'{hidden} more rows in the step summary')}")
    return out


def write_github(res: GateResult, stdout: TextIO, *, report_hint: str | None = None) -> str | None:
    """Append the summary to $GITHUB_STEP_SUMMARY (when set) and print the annotations; returns the path written."""
    for line in annotations(res):
        stdout.write(line + "\n")
    stdout.flush()
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    already = path.stat().st_size if path.exists() else 0
    text = summary_markdown(res, limit=max(4096, SUMMARY_LIMIT - already - 1024), report_hint=report_hint)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)
    return str(path)

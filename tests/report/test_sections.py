"""The report's builders for the sections added after compare/sweep/ttl/migrate, from real runs.

``data/v2-compare-paths``: ``compare --paths app,server --duration 6 --warmup 1 --sessions 500``
(five stores, two paths, the profile inside the compare section), on a shared, busy 2-core VM:
the tests read the shape and the figures the document holds, not how fast anything was.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fridgebench.measure.runs import load_runs
from fridgebench.report.build import render

DATA = Path(__file__).parent / "data"
V1 = DATA / "v1-compare"
COMPARE = DATA / "v2-compare-paths"


def _doc(run: Path) -> dict[str, Any]:
    return json.loads((run / "results.json").read_text())


def _md_rows(md: str, first_cells: int) -> list[tuple[str, ...]]:
    """The first ``first_cells`` cells of every Markdown table row."""
    return [tuple(c.strip() for c in line.strip("|").split("|")[:first_cells])
            for line in md.splitlines() if line.startswith("| ") and not line.startswith("|---")]


def _svg_texts(html: str) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", html)


# -------------------------------------------------------------------------------------------- compare


def test_ratio_rows_are_named_by_path_and_pair_so_none_repeats() -> None:
    doc = _doc(COMPARE)
    comps = doc["sections"]["compare"]["comparisons"]
    assert {c["path"] for c in comps} == {"app", "server"}
    assert len({(c["op"], c["other"]) for c in comps}) < len(comps)  # "get vs redis-app" would appear twice
    html, md = render(load_runs(COMPARE))
    assert "could not draw" not in html
    header = "| op | path | PostgreSQL ÷ Redis | p50 ratio | 95% interval | p99 ratio | significant |"
    assert header in md
    table = md[md.index(header):].split("\n\n")[0]
    rows = _md_rows(table, 3)[1:]
    assert len(rows) == len(comps) == len(set(rows))  # one row each, every one distinguishable
    for c in comps:
        assert (c["op"], c["path"], f"{c['baseline']} ÷ {c['other']}") in rows
        # the plot's row labels say the same: op · path: baseline ÷ other
        assert f"{c['op']} · {c['path']} path: {c['baseline']} ÷ {c['other']}" in _svg_texts(html)


def test_documents_without_paths_keep_their_ratio_labels() -> None:
    doc = _doc(V1)
    assert not any("path" in c for c in doc["sections"]["compare"]["comparisons"])
    html, md = render(load_runs(V1))
    assert "| op | vs | p50 ratio | 95% interval | p99 ratio | significant |" in md
    assert "| add | redis-seed | 19.35x |" in md
    assert "add vs redis-seed" in _svg_texts(html) and not any(" path: " in t for t in _svg_texts(html))



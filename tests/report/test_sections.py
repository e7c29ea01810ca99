"""The report's builders for the sections added after compare/sweep/ttl/migrate, from real runs.

``data/v2-compare-paths``: ``compare --paths app,server --duration 6 --warmup 1 --sessions 500``
(five stores, two paths, the profile inside the compare section), on a shared, busy 2-core VM:
the tests read the shape and the figures the document holds, not how fast anything was.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

from fridgebench.measure.runs import load_runs
from fridgebench.report.build import render
from fridgebench.report.sections import us
from fridgebench.report.sections_profile import why_app_is_slower

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


# -------------------------------------------------------------------------------------------- profile


def test_the_profile_has_a_table_per_operation_and_says_why_the_app_path_is_slower() -> None:
    profile = _doc(COMPARE)["sections"]["compare"]["profile"]
    html, md = render(load_runs(COMPARE))
    assert "Where the time goes" in html and "could not draw" not in html
    section = md[md.index("## Where the time goes"):md.index("## The runs")]
    ops = list(next(iter(profile["stores"].values()))["ops"])
    assert [h[4:] for h in re.findall(r"^### .*$", section, flags=re.M)] == ops
    get = section[section.index("### get"):].split("### ")[1]
    rows = {r[0]: r for r in _md_rows(get, 9)[1:]}
    assert set(rows) == set(profile["stores"])
    app, lean = profile["stores"]["postgres-app"]["ops"]["get"], profile["stores"]["postgres"]["ops"]["get"]
    assert rows["postgres-app"][:5] == ("postgres-app", "app", f"{app['postgres']['round_trips']:g}",
                                        "8: SELECT 3, BEGIN 2, COMMIT 2, UPDATE",
                                        f"{app['postgres']['server']['write_transactions']:g}")
    assert rows["postgres"][:5] == ("postgres", "server", "1", "1: SELECT", "0")
    assert rows["redis-app"][3] == "2: GET, PTTL" and rows["redis-app"][4] == "–"  # Redis has no WAL
    assert rows["postgres-app"][7] == us(app["client_cpu_us"])
    why = next(p for p in section.split("\n\n") if p.startswith("Why the app path is slower"))
    assert f"{us(app['wall_us'])} on postgres-app against {us(lean['wall_us'])} on postgres" in why
    assert "8 round trips to PostgreSQL instead of 1" in why and "1 commit waiting for a WAL flush instead of 0" in why
    assert "not the server's work" in why  # PostgreSQL's own execution time barely differs: said, from the numbers


def test_the_why_sentence_appears_only_when_the_numbers_show_it() -> None:
    profile = _doc(COMPARE)["sections"]["compare"]["profile"]
    paths = {"postgres": "server", "redis-atomic": "server", "postgres-app": "app", "postgres-app-fixed": "app",
             "redis-app": "app"}
    assert why_app_is_slower(profile, paths)
    same = copy.deepcopy(profile)  # the app path as lean as the server path: nothing to explain
    same["stores"]["postgres-app"]["ops"] = copy.deepcopy(same["stores"]["postgres"]["ops"])
    assert why_app_is_slower(same, paths) is None
    assert why_app_is_slower(profile, {"postgres": "server"}) is None  # no app path profiled


def test_a_profile_kept_at_the_top_level_is_read_the_same(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(COMPARE, run)
    doc = _doc(run)
    doc["sections"]["profile"] = doc["sections"]["compare"].pop("profile")
    (run / "results.json").write_text(json.dumps(doc))
    html, _ = render(load_runs(run))
    assert html.count("Why the app path is slower") == 1 and "profile (shown as tables)" not in html



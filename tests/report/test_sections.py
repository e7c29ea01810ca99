"""The report's builders for the sections added after compare/sweep/ttl/migrate, from real runs.

``data/v2-compare-paths``: ``compare --paths app,server --duration 6 --warmup 1 --sessions 500``
(five stores, two paths, the profile inside the compare section); ``data/v2-failure``: ``failure
crash --stores postgres,redis-atomic,redis-fallback --durability none,sync --duration 4 --warmup
0.5 --sessions 500 --rate 200 --at 1 --down 1``; ``data/v2-load``: ``load --stores
postgres,redis-atomic --users 4 --duration 3 --warmup 1 --rate 200 --sessions 500`` (Locust's own
CSV/HTML files left out). All three on a shared, busy 2-core VM: the tests read the shape and the
figures the documents hold, not how fast anything was.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from fridgebench.measure.runs import load_runs
from fridgebench.report.build import render
from fridgebench.report.sections import us
from fridgebench.report.sections_failure import case_name
from fridgebench.report.sections_profile import why_app_is_slower

DATA = Path(__file__).parent / "data"
V1 = DATA / "v1-compare"
COMPARE = DATA / "v2-compare-paths"
FAILURE = DATA / "v2-failure"
LOAD = DATA / "v2-load"


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


# -------------------------------------------------------------------------------------------- failure


def test_failure_shows_each_case_its_data_its_durability_and_a_timeline() -> None:
    sec = _doc(FAILURE)["sections"]["failure"]
    html, md = render(load_runs(FAILURE))
    assert "Failures: faults under load" in html and "could not draw" not in html
    part = md[md.index("## Failures"):md.index("## The runs")]
    for name, m in sec["durability_modes"].items():
        assert f"| {m['kind']} {name} |" in part and m["process_crash_promise"] in part
    for c in sec["cases"]:
        a, d = c["accounting"], c["during"]
        assert (f"| {case_name(c)} | {a['sessions_lost']:,} of {a['sessions_judged']:,} | "
                f"{a['sessions_lost_by_phase']['before']:,} of {a['sessions_acknowledged_before_fault']:,} | "
                f"{a['adds_lost']:,} | {a['false_not_found']:,} |") in part
        assert f"| {case_name(c)} | {d['errors']:,} ({d['error_rate']:.1%}) |" in part
    lost = {c["store"]: c["accounting"]["sessions_lost"] for c in sec["cases"]}
    assert lost["postgres"] == 0 and lost["redis-atomic"] > 0  # sync kept them, `none` did not
    assert "OS crash / kernel panic" in part  # what the machine cannot produce, stated
    # one timeline panel per case, the fault window in the legend
    assert html.count("<svg") == 1
    titles = [t for t in _svg_texts(html) if " × crash · " in t]
    assert sorted(titles) == sorted(f"{c['store']} × crash · {c['durability']}" for c in sec["cases"])
    assert "the fault (injected → healed)" in _svg_texts(html)
    # the claims table carries the seed's two failure rows
    assert "failure recovery" in md and "fault isolation" in md


# -------------------------------------------------------------------------------------------- load


def test_load_shows_percentiles_rates_the_closed_loop_caveat_and_a_plot() -> None:
    sec = _doc(LOAD)["sections"]["load"]
    html, md = render(load_runs(LOAD))
    assert "Load through Locust" in html and "could not draw" not in html
    part = md[md.index("## Load through Locust"):md.index("## The runs")]
    assert "coordinated omission, not corrected here" in part and "from the actual send" in part
    for name, s in sec["stores"].items():
        o = s["overall"]
        assert (f"| {name} | {o['users']} | {o['measured_seconds']:g} s | {o['offered_rate_per_s']:g}/s | "
                f"{o['achieved_rate_per_s']:,.0f}/s ({o['achieved_vs_offered']:.0%}) |") in part
        for op, r in s["ops"].items():
            li = r["latency_service"]
            assert (f"| {name} | {op} | {r['throughput_per_s']:,.0f} | {us(li['p50_us'])} | {us(li['p90_us'])} | "
                    f"{us(li['p99_us'])} |") in part
    assert html.count("<svg") == 1 and "latency from the actual send" in _svg_texts(html)


# -------------------------------------------------------------------------------------------- together


def test_every_kind_of_run_overlaid_on_one_page() -> None:
    runs = [*load_runs(V1), *load_runs(COMPARE), *load_runs(FAILURE), *load_runs(LOAD)]
    html, md = render(runs)
    assert "could not draw" not in html and "shown as tables" not in html
    order = [html.index(h) for h in ("Performance: the same workload", "Where the time goes", "Failures: faults",
                                     "Load through Locust", "The runs")]
    assert order == sorted(order)
    assert "| run | op | path | PostgreSQL ÷ Redis |" in md  # the old run's rows join the named ones
    assert "| run 1 | add | – | postgres ÷ redis-seed |" in md
    assert "| run 3 | postgres × crash" in md and "| run 4 | postgres | create |" in md


def _reshape_failure(doc: dict[str, Any]) -> None:
    doc["sections"]["failure"] = {"cases": "a newer shape", "durability_modes": {}}


def _reshape_load(doc: dict[str, Any]) -> None:
    doc["sections"]["load"]["stores"] = [{"store": "postgres", "p50": "a newer shape"}]


def _reshape_profile(doc: dict[str, Any]) -> None:
    doc["sections"]["compare"]["profile"] = {"stores": "a newer shape"}


@pytest.mark.parametrize("source, reshape, name", [
    (FAILURE, _reshape_failure, "failure"),
    (LOAD, _reshape_load, "load"),
    (COMPARE, _reshape_profile, "profile"),
])
def test_a_section_shaped_differently_is_shown_as_tables(tmp_path: Path, source: Path,
                                                         reshape: Callable[[dict[str, Any]], None], name: str) -> None:
    run = tmp_path / "run"
    shutil.copytree(source, run)
    doc = _doc(run)
    reshape(doc)
    (run / "results.json").write_text(json.dumps(doc))
    html, md = render(load_runs(run))
    assert f"could not draw the {name} section" in html and "a newer shape" in html and "a newer shape" in md


def test_the_new_plots_are_byte_for_byte_reproducible() -> None:
    code = ("import sys, hashlib; from fridgebench.measure.runs import load_runs; "
            "from fridgebench.report.build import render; "
            f"runs = [r for p in {[str(COMPARE), str(FAILURE), str(LOAD)]!r} for r in load_runs(p)]; "
            "print(hashlib.sha256(render(runs)[0].encode()).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={"PYTHONHASHSEED": str(seed), "PATH": "/usr/bin:/bin",
                                   "HOME": os.environ.get("HOME", "/tmp")}).stdout
               for seed in (1, 2)}
    assert len(digests) == 1
    here = [r for p in (COMPARE, FAILURE, LOAD) for r in load_runs(p)]
    assert hashlib.sha256(render(here)[0].encode()).hexdigest() + "\n" in digests  # and the same in this process


def test_the_terminal_says_when_the_fix_widened_a_gap_instead_of_a_negative_share() -> None:
    """closed_by_fix below 0 (the fixed code slower than the unfixed, e.g. the add in a noisy run): not "add -7%"."""
    import io

    from rich.console import Console

    from fridgebench.report.terminal import render_compare

    section = _doc(COMPARE)["sections"]["compare"]
    section["fix"]["by_op"]["add"]["closed_by_fix"] = -0.07
    out = io.StringIO()
    render_compare(section, Console(file=out, width=400, color_system=None))
    text = out.getvalue()
    assert f"read {section['fix']['by_op']['get']['closed_by_fix']:.0%}" in text
    assert "add none (the fixed code was 7% of the gap slower)" in text and "-7%" not in text

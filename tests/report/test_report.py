"""`fridgebench report`: rendering from committed results documents, reproducible SVG, bad input.

``data/v1-compare`` is a real `compare` run written by results format 1 (before format 2 added
per-second p99 and the warm-up); ``reports/examples`` holds a real format-2 run (compare --full)
and the report the current code makes from it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fridgebench.measure.runs import load_runs
from fridgebench.report.build import render, write_report
from tests.helpers import cli

DATA = Path(__file__).parent / "data"
V1 = DATA / "v1-compare"
EXAMPLES = Path(__file__).parents[2] / "reports" / "examples"


def _example_run() -> Path:
    runs = [p.parent for p in EXAMPLES.glob("*/results.json")]
    assert len(runs) == 1, f"reports/examples should hold exactly one run, found {runs}"
    return runs[0]


def _text_of(html: str) -> str:
    """The page without its plots: headings, paragraphs and tables."""
    return re.sub(r"<svg.*?</svg>", "<svg/>", html, flags=re.S)


def test_an_old_format_run_renders_with_the_claims_first(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(V1, run)
    res = cli("report", str(run))
    assert res.returncode == 0, res.stderr
    html = (run / "report.html").read_text()
    md = (run / "report.md").read_text()
    claims, perf = html.index("The seed&#x27;s claims, measured"), html.index("Performance: the same workload")
    assert claims < perf  # the claims table comes first
    assert html.count("<svg") >= 3  # percentile curves, over time, ratios
    assert "results format 1" in html  # the warm-up was not recorded: said, not hidden
    assert "<script" not in html and "http://" not in _text_of(html).replace('xmlns="http://www.w3.org', "")
    assert 'name="viewport"' in html  # readable on a phone
    assert md.startswith("# fridgebench report") and "| claim | seed: PostgreSQL |" in md
    assert "<svg" not in md


def test_an_unknown_section_is_shown_as_tables_not_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(V1, run)
    doc = json.loads((run / "results.json").read_text())
    doc["schema_version"] = "fridgebench.results/2"
    doc["sections"]["chaos"] = {"fault": "kill -9 redis", "sessions_lost": 1234, "recovery_s": 0.8,  # a newer command
                                  "timeline": [{"t_s": 0, "errors": 0}, {"t_s": 1, "errors": 57}],
                                  "per_store": {"postgres": {"lost": 0}, "redis-seed": {"lost": 1234}}}
    (run / "results.json").write_text(json.dumps(doc))
    html, md = render(load_runs(run))
    assert "chaos (shown as tables)" in html
    for needle in ("kill -9 redis", "1,234", "sessions_lost", "recovery_s", "57", "redis-seed"):
        assert needle in html and needle in md, needle


def test_a_section_of_an_unexpected_shape_is_shown_as_tables(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(V1, run)
    doc = json.loads((run / "results.json").read_text())
    doc["sections"]["sweep"] = {"stores": "a newer shape"}  # a known name, unknown content
    (run / "results.json").write_text(json.dumps(doc))
    html, _ = render(load_runs(run))
    assert "could not draw the sweep section" in html and "a newer shape" in html


def test_svg_is_reproducible_across_processes() -> None:
    code = ("import sys, hashlib; from fridgebench.measure.runs import load_runs; "
            "from fridgebench.report.build import render; "
            f"h, m = render(load_runs({str(V1)!r})); print(hashlib.sha256(h.encode()).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={"PYTHONHASHSEED": str(seed), "PATH": "/usr/bin:/bin",
                                   "HOME": os.environ.get("HOME", "/tmp")}).stdout
               for seed in (1, 2)}
    assert len(digests) == 1
    html, _ = render(load_runs(V1))
    assert "<dc:date>" not in html and "<dc:creator>" not in html  # no date or tool metadata in the SVG


def test_several_runs_are_overlaid(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(V1, a)
    shutil.copytree(_example_run(), b)
    html_path, md_path, runs = write_report([a, b], tmp_path / "out")
    html = html_path.read_text()
    assert len(runs) == 2
    assert "postgres · run 1" in html and "postgres · run 2" in html  # one series per run in the plots
    assert "run 1" in md_path.read_text() and "run 2" in md_path.read_text()


def test_the_committed_example_is_what_the_current_code_renders(tmp_path: Path) -> None:
    run = _example_run()
    committed = (run / "report.html").read_text()
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "report.html").unlink()
    res = cli("report", str(copy))
    assert res.returncode == 0, res.stderr
    fresh = (copy / "report.html").read_text()
    assert fresh.count("<svg") == committed.count("<svg") >= 7
    assert _text_of(fresh) == _text_of(committed), (
        "reports/examples is stale: regenerate it with `fridgebench report " + str(run.relative_to(EXAMPLES.parent.parent)) + "`")
    for section in ("Performance", "Scalability", "Expiry, cleanup and memory"):
        assert section in fresh


def test_a_migrate_run_plots_its_rate_and_lag(tmp_path: Path) -> None:
    from tests.helpers import WITH_REPORT, fill
    from tests.servers import REDIS_DB_SHARED, machine_database, machine_redis_db

    with machine_database() as dsn, machine_redis_db(REDIS_DB_SHARED) as url:  # its own database: dropped after
        fill(dsn, 3000)
        res = cli("migrate", "--from", dsn, "--to", url, "--live", "--until-caught-up",
                  env={"FRIDGEBENCH_REPORTS": str(tmp_path), **WITH_REPORT})  # written by default
        assert res.returncode == 0, res.stderr
        cli("migrate", "cleanup", "--from", dsn, "--to", url)
    run = next(tmp_path.glob("*-migrate-*"))
    doc = json.loads((run / "results.json").read_text())
    tl = doc["sections"]["migrate"]["timeline"]
    assert tl["backfill"][-1][1] == doc["sections"]["migrate"]["backfill"]["written"] > 0
    assert tl["lag"] and tl["lag"][-1][1] == 0
    html = (run / "report.html").read_text()  # written by migrate itself
    assert "Backfill rate over time" in html and "Change-capture lag over time" in html


@pytest.mark.parametrize("setup, needle", [
    ("missing", "no run at"),
    ("incomplete", "did not finish"),
    ("newer", "newer fridgebench"),
    ("empty", "holds no runs"),
    ("garbage", "not valid JSON"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, setup: str, needle: str) -> None:
    target = tmp_path / "target"
    if setup == "incomplete":
        target.mkdir()
        (target / "INCOMPLETE").write_text("this run did not finish\n")
        (target / "results.json.partial").write_text("{}")
    elif setup in ("newer", "garbage"):
        shutil.copytree(V1, target)
        if setup == "newer":
            doc = json.loads((target / "results.json").read_text())
            doc["schema_version"] = "fridgebench.results/3"
            (target / "results.json").write_text(json.dumps(doc))
        else:
            (target / "results.json").write_text("{ not json")
    elif setup == "empty":
        target.mkdir()
    res = cli("report", str(target))
    assert res.returncode == 2, res.stderr
    errors = [l for l in res.stderr.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], res.stderr
    assert "Traceback" not in res.stderr
    assert not (target / "report.html").exists()


def test_a_folder_of_runs_with_an_unfinished_one_is_refused(tmp_path: Path) -> None:
    shutil.copytree(V1, tmp_path / "group" / "a")
    (tmp_path / "group" / "b").mkdir()
    (tmp_path / "group" / "b" / "INCOMPLETE").write_text("x")
    res = cli("report", str(tmp_path / "group"))
    assert res.returncode == 2 and "did not finish" in res.stderr and "/b" in res.stderr


def test_a_ttl_run_alone_renders_its_plots(tmp_path: Path) -> None:
    run = tmp_path / "ttl-run"
    run.mkdir()
    doc = json.loads((_example_run() / "results.json").read_text())
    doc.update(command="ttl", run_id="20261126T000000Z-ttl-abcdef", scenario=None,
               sections={"ttl": doc["sections"]["ttl"]},
               claims=[c for c in doc["claims"] if c["key"] in ("auto_expiry", "memory_use")])
    (run / "results.json").write_text(json.dumps(doc))
    html, md = render(load_runs(run))
    assert "Expiry, cleanup and memory" in html and html.count("<svg") == 3
    assert "Performance: the same workload" not in html
    assert "could not draw" not in html
    assert "| store | sessions | bytes/session |" in md
